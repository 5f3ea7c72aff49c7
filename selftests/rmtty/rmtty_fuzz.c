// SPDX-License-Identifier: GPL-2.0
/*
 * The fuzzers' generator of hostile input, and what they share: reporting a
 * failing case so that it can be replayed, and the log's rate check.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/vfio.h>

#include "rmtty_fuzz.h"
#include "rmtty_util.h"

size_t fuzz_number(struct fuzz_rng *r, char *buf, size_t size, const int64_t *edges, size_t n)
{
	static const char *const prefix[] = { "", "", "", "+", "-", " ", "0", "00000000000", "\t" };
	static const char *const suffix[] = { "", "", "\n", "\n", " ", "x", "\n\n", "\0" "1", ".0" };
	int64_t value = (int64_t)((uint64_t)edges[fuzz_below(r, n)] + fuzz_below(r, 3) - 1);
	const char *pre = fuzz_pick(r, prefix), *post = fuzz_pick(r, suffix);
	int len;

	/* Now and then a power of two and its neighbours instead. */
	if (fuzz_chance(r, 15))
		value = (int64_t)((1ull << fuzz_below(r, 64)) + fuzz_below(r, 3) - 1);
	switch (fuzz_below(r, 6)) {
	case 0:
		len = snprintf(buf, size, "%s0x%" PRIx64 "%s", pre, (uint64_t)value, post);
		break;
	case 1:
		len = snprintf(buf, size, "%s0%" PRIo64 "%s", pre, (uint64_t)value, post);
		break;
	case 2:
		len = snprintf(buf, size, "%s%" PRIu64 "%s", pre, (uint64_t)value, post);
		break;
	default:
		len = snprintf(buf, size, "%s%" PRId64 "%s", pre, value, post);
		break;
	}
	if (len < 0)
		len = 0;
	if ((size_t)len >= size)
		len = size - 1;
	/* The suffix "\0" "1": a NUL inside the write, and a digit after it. */
	if (post[0] == '\0' && post[1] == '1' && (size_t)len + 2 < size) {
		buf[len] = '\0';
		buf[len + 1] = '1';
		len += 2;
		buf[len] = '\0';
	}
	return len;
}

size_t fuzz_junk(struct fuzz_rng *r, char *buf, size_t size)
{
	static const char whitespace[] = " \t\n\r\v\f";
	size_t len, i;

	switch (fuzz_below(r, 4)) {
	case 0:
		len = fuzz_below(r, 8);
		break;
	case 1:
		len = 4096 - 2 + fuzz_below(r, 5);
		break;
	case 2:
		len = size - fuzz_below(r, 3);
		break;
	default:
		len = fuzz_below(r, size + 1);
		break;
	}
	if (len > size)
		len = size;
	switch (fuzz_below(r, 4)) {
	case 0:
		for (i = 0; i < len; i++)
			buf[i] = fuzz_next(r);
		break;
	case 1:
		for (i = 0; i < len; i++)
			buf[i] = ' ' + fuzz_below(r, 95);
		break;
	case 2:
		for (i = 0; i < len; i++)
			buf[i] = whitespace[fuzz_below(r, sizeof(whitespace) - 1)];
		break;
	default:
		memset(buf, fuzz_chance(r, 50) ? '9' : 'a' + fuzz_below(r, 26), len);
		break;
	}
	return len;
}

size_t fuzz_mutate(struct fuzz_rng *r, char *buf, size_t len, size_t size)
{
	unsigned int edits = 1 + fuzz_below(r, 3);
	size_t at;

	while (edits--) {
		at = fuzz_below(r, len + 1);
		switch (fuzz_below(r, 4)) {
		case 0:
			if (at < len)
				buf[at] ^= 1u << fuzz_below(r, 8);
			break;
		case 1:
			if (at < len)
				buf[at] = fuzz_next(r);
			break;
		case 2:
			if (len < size) {
				memmove(buf + at + 1, buf + at, len - at);
				buf[at] = fuzz_next(r);
				len++;
			}
			break;
		default:
			if (at < len) {
				memmove(buf + at, buf + at + 1, len - at - 1);
				len--;
			}
			break;
		}
	}
	return len;
}

void fuzz_fail(struct fuzz_run *run, const char *fmt, ...)
{
	va_list ap;

	printf("# %s: case %lu of seed %#" PRIx64 ": ", run->name, run->done, run->seed);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n# %s: replay with RMTTY_FUZZ_SEED=%#" PRIx64 " RMTTY_FUZZ_CASES=%lu\n",
	       run->name, run->seed, run->done + 1);
	fflush(stdout);
	__atomic_add_fetch(&run->failures, 1, __ATOMIC_RELAXED);
}

int fuzz_group_file(struct fuzz_run *run, int group, const char *uuid)
{
	int device = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, uuid);

	if (device < 0)
		fuzz_fail(run, "another VFIO_GROUP_GET_DEVICE_FD: %s", strerror(errno));
	return device;
}

int fuzz_log_open(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd >= 0)
		lseek(fd, 0, SEEK_END);
	return fd;
}

/* Lines of each logger: the driver ("rmtty: ...") or one of its devices. */
struct logger {
	char name[64];
	unsigned long lines;
};

#define MAX_LOGGERS	128

bool fuzz_log_rate_ok(struct fuzz_run *run, int fd, unsigned long refusals, double seconds)
{
	/* The windows a run of @seconds can touch, one begun before it included. */
	unsigned long windows = (unsigned long)(seconds / LOG_WINDOW) + 2, lines = 0, notes = 0;
	static struct logger loggers[MAX_LOGGERS];
	unsigned int n = 0, i;
	char rec[8192], *msg, *end;
	ssize_t len;
	bool ok = true;

	for (;;) {
		len = read(fd, rec, sizeof(rec) - 1);
		if (len < 0 && errno == EPIPE)
			continue;	/* overwritten records: the next one follows */
		if (len <= 0)
			break;
		rec[len] = '\0';
		msg = strchr(rec, ';');
		/* Refusals are warnings: not the IOMMU core's notes of devices added. */
		if (!msg || (atoi(rec) & 7) > 4)
			continue;
		if (strncmp(++msg, "rmtty", 5) || (msg[5] != ':' && msg[5] != ' '))
			continue;
		if (strstr(msg, "callbacks suppressed")) {
			notes++;
			continue;
		}
		/* The driver core's line for a refused creation: not rmtty's. */
		if (strstr(msg, ": probe with driver rmtty failed"))
			continue;
		end = strchr(msg, ':');
		if (!end)
			continue;
		*end = '\0';
		for (i = 0; i < n && strcmp(loggers[i].name, msg); i++)
			;
		if (i == n && n < MAX_LOGGERS) {
			snprintf(loggers[n].name, sizeof(loggers[n].name), "%s", msg);
			loggers[n++].lines = 0;
		}
		if (i < n)
			loggers[i].lines++;
		lines++;
	}
	if (len < 0 && errno != EAGAIN) {
		fuzz_fail(run, "reading the kernel log: %s", strerror(errno));
		return false;
	}
	/*
	 * A device has two rate limits: the VFIO abstraction's, for the
	 * requests it logs, and the driver's, for the lines it logs itself.
	 */
	for (i = 0; i < n; i++) {
		if (loggers[i].lines > 2 * LOG_BURST * windows) {
			fuzz_fail(run, "%s logged %lu lines in %.1f s: more than 2 x %u in each %u s",
				  loggers[i].name, loggers[i].lines, seconds, LOG_BURST, LOG_WINDOW);
			ok = false;
		}
	}
	if (lines > refusals) {
		fuzz_fail(run, "%lu log lines for %lu refusals: more than one each", lines, refusals);
		ok = false;
	}
	if (notes > 2 * (n + 1) * windows) {
		fuzz_fail(run, "%lu \"callbacks suppressed\" notes from %u loggers in %.1f s",
			  notes, n, seconds);
		ok = false;
	}
	return ok;
}
