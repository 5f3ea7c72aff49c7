// SPDX-License-Identifier: GPL-2.0
/*
 * Helpers shared by rmtty's selftests.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kselftest.h"
#include "rmtty_util.h"

const unsigned int rmtty_type_units[RMTTY_NR_TYPES] = { 1, 2, 4 };

const char *rmtty_ko(void)
{
	return getenv("RMTTY_KO");
}

const char *rmtty_ko_missing(void)
{
	static char why[512];
	const char *ko = rmtty_ko();

	if (!ko || !*ko)
		return "RMTTY_KO is not set: it must name the rmtty.ko to test";
	if (access(ko, R_OK)) {
		snprintf(why, sizeof(why), "RMTTY_KO=%s: %s", ko, strerror(errno));
		return why;
	}
	return NULL;
}

int rmtty_load_args(const char *args)
{
	const char *ko = rmtty_ko();
	int fd, ret;

	if (!ko)
		return -ENOENT;
	fd = open(ko, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = syscall(SYS_finit_module, fd, args, 0);
	ret = ret ? -errno : 0;
	close(fd);
	return ret;
}

int rmtty_load(const struct rmtty_params *p)
{
	char args[64] = "";
	int len = 0;

	if (p && p->units)
		len += snprintf(args + len, sizeof(args) - len, "units=%u ", p->units);
	if (p && p->unit_mib)
		len += snprintf(args + len, sizeof(args) - len, "unit_mib=%u", p->unit_mib);
	return rmtty_load_args(args);
}

int rmtty_reload(const struct rmtty_params *p, unsigned int *units, unsigned int *unit_mib)
{
	int ret;

	*units = p->units ?: RMTTY_DEFAULT_UNITS;
	*unit_mib = p->unit_mib ?: RMTTY_DEFAULT_UNIT_MIB;
	ret = rmtty_cleanup();
	if (ret) {
		ksft_print_msg("the loaded rmtty cannot be unloaded: %s\n", strerror(-ret));
		return ret;
	}
	ret = rmtty_load(p);
	if (ret)
		ksft_print_msg("loading %s: %s\n", rmtty_ko() ?: "rmtty.ko (RMTTY_KO is not set)",
			       strerror(-ret));
	return ret;
}

int rmtty_unload(void)
{
	return syscall(SYS_delete_module, "rmtty", O_NONBLOCK) ? -errno : 0;
}

bool rmtty_loaded(void)
{
	return access("/sys/module/rmtty", F_OK) == 0;
}

int rmtty_cleanup(void)
{
	return rmtty_loaded() ? rmtty_unload() : 0;
}

void rmtty_uuid(char out[UUID_LEN + 1], unsigned int n)
{
	snprintf(out, UUID_LEN + 1, "8c1f7a2e-3b4d-4e5f-8a9b-%012x", n);
}

void rmtty_type_path(char *buf, size_t size, unsigned int units, const char *attr)
{
	snprintf(buf, size, RMTTY_TYPES "/rmtty-%u/%s", units, attr);
}

void rmtty_device_path(char *buf, size_t size, const char *uuid, const char *attr)
{
	snprintf(buf, size, MDEV_DEVICES "/%s/%s", uuid, attr);
}

int rmtty_create(unsigned int units, const char *uuid)
{
	char path[256];

	rmtty_type_path(path, sizeof(path), units, "create");
	return sysfs_write(path, uuid);
}

int rmtty_remove(const char *uuid)
{
	char path[256];

	rmtty_device_path(path, sizeof(path), uuid, "remove");
	return sysfs_write(path, "1");
}

bool rmtty_device_exists(const char *uuid)
{
	char path[256];

	rmtty_device_path(path, sizeof(path), uuid, "");
	return access(path, F_OK) == 0;
}

int sysfs_read(const char *path, char *buf, size_t size)
{
	ssize_t len;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	len = read(fd, buf, size - 1);
	if (len < 0)
		len = -errno;
	else
		buf[len] = '\0';
	close(fd);
	return len;
}

long sysfs_read_long(const char *path)
{
	char buf[64], *end;
	long value;
	int len;

	len = sysfs_read(path, buf, sizeof(buf));
	if (len < 0)
		return len;
	errno = 0;
	value = strtol(buf, &end, 10);
	if (errno || end == buf || strcmp(end, "\n"))
		return -EBADMSG;
	return value;
}

int sysfs_write_len(const char *path, const char *val, size_t len)
{
	ssize_t ret;
	int fd;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = write(fd, val, len);
	if (ret < 0)
		ret = -errno;
	else if ((size_t)ret != len)
		ret = -EIO;
	else
		ret = 0;
	close(fd);
	return ret;
}

int sysfs_write(const char *path, const char *val)
{
	return sysfs_write_len(path, val, strlen(val));
}

long rmtty_type_long(unsigned int units, const char *attr)
{
	char path[256];

	rmtty_type_path(path, sizeof(path), units, attr);
	return sysfs_read_long(path);
}

long rmtty_device_long(const char *uuid, const char *attr)
{
	char path[256];

	rmtty_device_path(path, sizeof(path), uuid, attr);
	return sysfs_read_long(path);
}

/*
 * The splats read from each kmsg descriptor since kmsg_open() or the last
 * kmsg_splats(), indexed by descriptor: kmsg_count() and kmsg_find() consume
 * the records they read, so every scan notes the splats among them, and a
 * search does not hide a splat from the kmsg_splats() that comes after it.
 */
static int *kmsg_splats_read;
static int kmsg_nr_fds;

/* The count of splats @fd's scans read; NULL if there is no memory for it. */
static int *kmsg_splat_count(int fd)
{
	int *counts, nr;

	if (fd < 0)
		return NULL;
	if (fd >= kmsg_nr_fds) {
		nr = fd + 16;
		counts = realloc(kmsg_splats_read, nr * sizeof(*counts));
		if (!counts)
			return NULL;
		memset(counts + kmsg_nr_fds, 0, (nr - kmsg_nr_fds) * sizeof(*counts));
		kmsg_splats_read = counts;
		kmsg_nr_fds = nr;
	}
	return &kmsg_splats_read[fd];
}

int kmsg_open(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	int *splats;

	if (fd < 0)
		return fd;
	lseek(fd, 0, SEEK_END);
	splats = kmsg_splat_count(fd);
	if (!splats) {
		close(fd);
		errno = ENOMEM;
		return -1;
	}
	*splats = 0;
	return fd;
}

/* Whether a record reports a warning, BUG or lockdep splat. */
static bool kmsg_is_splat(const char *record)
{
	/* Lockdep's reports start with "WARNING:" or "INFO:", not its banner. */
	static const char *const splats[] = {
		"WARNING:", "BUG:", "Oops", "INFO: possible", "INFO: trying",
		"refcount_t:", "general protection fault",
	};
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(splats); i++) {
		if (strstr(record, splats[i]))
			return true;
	}
	return false;
}

/*
 * Read the records logged since @fd's position; count those that contain any
 * of @needles, and copy the message of the last of them into @seen (if not
 * NULL) without its header and dictionary. The splats among the records read
 * are added to @fd's count for kmsg_splats(). -ENOMEM if there is no memory
 * to count them in.
 */
static int kmsg_scan(int fd, const char *const *needles, unsigned int nr, char *seen,
		     size_t size)
{
	int *splats = kmsg_splat_count(fd);
	char record[8192], *text;
	unsigned int i;
	int count = 0;
	ssize_t len;

	if (!splats)
		return -ENOMEM;
	for (;;) {
		len = read(fd, record, sizeof(record) - 1);
		if (len < 0 && errno == EPIPE)
			continue;	/* overwritten records: keep reading */
		if (len <= 0)
			break;
		record[len] = '\0';
		/* The out-of-tree taint notice is logged at most once a boot. */
		if (strstr(record, "taints kernel"))
			continue;
		if (kmsg_is_splat(record))
			(*splats)++;
		for (i = 0; i < nr; i++) {
			if (strstr(record, needles[i]))
				break;
		}
		if (i == nr)
			continue;
		count++;
		if (seen) {
			/* "<level>,<seq>,<usec>,<flags>;<message>\n[ KEY=value\n...]" */
			text = strchr(record, ';');
			text = text ? text + 1 : record;
			text[strcspn(text, "\n")] = '\0';
			snprintf(seen, size, "%s", text);
		}
	}
	return count;
}

int kmsg_count(int fd, const char *needle)
{
	return kmsg_scan(fd, &needle, 1, NULL, 0);
}

int kmsg_find(int fd, const char *needle, char *seen, size_t size)
{
	if (size)
		seen[0] = '\0';
	return kmsg_scan(fd, &needle, 1, seen, size);
}

int kmsg_splats(int fd)
{
	int ret = kmsg_scan(fd, NULL, 0, NULL, 0);

	if (ret < 0)
		return ret;
	ret = kmsg_splats_read[fd];	/* kmsg_scan() made room for @fd */
	kmsg_splats_read[fd] = 0;
	return ret;
}

#define FAULT_ATTRS	"/sys/kernel/debug"

/* Writes the fault attributes: @on for a test, or back to the kernel's defaults. */
static int fault_attributes(bool on, bool verbose)
{
	static const char *const kinds[] = { "failslab", "fail_page_alloc", "fail_usercopy" };
	const char *const settings[][2] = {
		{ "failslab/ignore-gfp-wait", on ? "N" : "Y" },
		{ "fail_page_alloc/ignore-gfp-wait", on ? "N" : "Y" },
		{ "fail_page_alloc/ignore-gfp-highmem", on ? "N" : "Y" },
		{ "fail_page_alloc/min-order", on ? "0" : "1" },
	};
	char path[128];
	unsigned int i;
	int ret;

	for (i = 0; i < ARRAY_SIZE(settings); i++) {
		snprintf(path, sizeof(path), FAULT_ATTRS "/%s", settings[i][0]);
		ret = sysfs_write(path, settings[i][1]);
		if (ret)
			return ret;
	}
	/* verbose 2: the report has the stack; the default rate limit is 5 s */
	for (i = 0; i < ARRAY_SIZE(kinds); i++) {
		snprintf(path, sizeof(path), FAULT_ATTRS "/%s/verbose", kinds[i]);
		ret = sysfs_write(path, !on || verbose ? "2" : "0");
		if (ret)
			return ret;
		snprintf(path, sizeof(path), FAULT_ATTRS "/%s/verbose_ratelimit_interval_ms",
			 kinds[i]);
		ret = sysfs_write(path, on ? "0" : "5000");
		if (ret)
			return ret;
	}
	return 0;
}

int fault_injection_setup(bool verbose)
{
	return fault_attributes(true, verbose);
}

void fault_injection_restore(void)
{
	fault_attributes(false, false);
}

int fail_nth_open(void)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%ld/fail-nth", (long)syscall(SYS_gettid));
	fd = open(path, O_RDWR | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int fail_nth_arm(int fd, unsigned int nth)
{
	char value[16];
	int len = snprintf(value, sizeof(value), "%u", nth);

	return pwrite(fd, value, len, 0) == len ? 0 : -errno;
}

bool fail_nth_fired(int fd)
{
	char value[16] = "";
	bool fired = pread(fd, value, sizeof(value) - 1, 0) > 0 && atoi(value) == 0;

	fail_nth_arm(fd, 0);
	return fired;
}
