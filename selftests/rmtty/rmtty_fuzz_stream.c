// SPDX-License-Identifier: GPL-2.0
/*
 * The stream fuzzer: mutated migration streams loaded into a device.
 *
 * Two valid streams are saved from a source device in two states; each case
 * mutates one of them, or splices the two, and loads the result into a
 * target device of the same shape over v2, in writes of random sizes, then
 * asks for STOP, which commits. Half of the mutations are blind (bit flips,
 * bytes replaced, inserted or cut, truncation, splices at any byte); the
 * other half are structure-aware: they change one field of the header or of
 * one record (type, flags, length, page index, reserved word, a summary
 * count, the header's version, flags and shape) and recompute that CRC, or
 * add an unknown record (REQUIRED or not, lengths around 64 KiB), repeat,
 * swap or drop whole records and rewrite the summary as a writer would, so
 * that they reach the loader's own checks behind the CRC.
 *
 * The commit must succeed exactly when migration-stream.md's "What a reader
 * accepts", written anew here as reader_verdict(), says the stream is taken
 * whole, and then the target's memory must be what the stream's page
 * records say. When it fails, nothing of the stream may have been applied: the
 * target, still in RESUMING, shows the UART registers (read while it is
 * stopped, when reads have no side effects) and configuration space it had, and after the
 * reset that ends RESUMING its memory is what it was. The run prints how
 * many streams each of the document's checks refused, and the kind of check
 * the driver's log lines name (those the rate limit let through).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "rmtty_fuzz.h"
#include "rmtty_util.h"
#include "rmtty_vfio.h"

#define MAX_REASONS	64
#define UART_REGS	8

struct stream {
	uint8_t *bytes;
	size_t len;
};

struct stream_fuzz {
	struct fuzz_rng rng;
	struct fuzz_run *run;
	size_t memory;
	struct rmtty_vfio source, target;
	struct stream valid[2];		/* from the source, in two states */
	struct stream target_own;	/* the target's state, saved */
	uint8_t *memory_before, *mutant, *seen;
	/* The target's registers, read while it is stopped (no read side effects then). */
	uint8_t uart_before[UART_REGS], config_before[256];
	size_t mutant_len, mutant_size;
	int log;
	unsigned long refusals, accepted;
	struct {
		char text[64];
		unsigned long count;
	} reasons[MAX_REASONS];
	unsigned int nr_reasons;
};

/* Records a reader knows, and their payload lengths. */
static long known_length(uint16_t type)
{
	switch (type) {
	case MIG_REC_CONFIG:
		return MIG_CONFIG_SIZE;
	case MIG_REC_UART:
		return MIG_UART_SIZE;
	case MIG_REC_PAGE:
		return 8 + MIG_PAGE;
	case MIG_REC_SUMMARY:
		return MIG_SUMMARY_SIZE;
	case MIG_REC_END:
		return 0;
	default:
		return -1;
	}
}

/*
 * What migration-stream.md's "What a reader accepts" says a 1.1 reader of a
 * device of @memory bytes does with the @len bytes of @s, if the commit
 * follows them: NULL if it takes them, else which check refuses them (or
 * finds them short). The checks of a config and a UART record's
 * content are left out: the mutations leave payloads to their CRCs.
 */
static const char *reader_verdict(const uint8_t *s, size_t len, size_t memory, uint8_t *seen)
{
	size_t pages = memory / MIG_PAGE, at = MIG_HEADER, i;
	bool summary = false, config = false, uart = false, end = false;
	uint32_t page_records = 0, plen, index;
	unsigned int minor;
	uint16_t type, flags;
	long want;

	if (len < MIG_HEADER)
		return "short: no header";
	minor = get_le16(s + 10);
	if (memcmp(s, "RMTTYMIG", 8) || get_le16(s + 8) != 1 || minor > 1 || get_le32(s + 12) ||
	    get_le32(s + 16) != memory >> 20 || get_le32(s + 20) != 1 || get_le32(s + 28))
		return "header field";
	if (get_le32(s + 24) != crc32c(s, 24))
		return "header CRC";
	memset(seen, 0, pages);
	while (at < len) {
		if (end)
			return "bytes after the end record";
		if (len - at < MIG_REC_HEADER)
			return "short: a record header";
		type = get_le16(s + at);
		flags = get_le16(s + at + 2);
		plen = get_le32(s + at + 4);
		want = known_length(type);
		if (flags & ~MIG_REQUIRED)
			return "record flags";
		if (want >= 0 ? plen != want : plen > 65536)
			return "record length";
		if (summary && type != MIG_REC_END)
			return "a record after the summary";
		if (len - at - MIG_REC_HEADER < plen)
			return "short: a record's payload";
		if (get_le32(s + at + 8) != mig_record_crc(s + at))
			return "record CRC";
		switch (type) {
		case MIG_REC_PAGE:
			index = get_le32(s + at + MIG_REC_HEADER);
			if (index >= pages || get_le32(s + at + MIG_REC_HEADER + 4))
				return "page index or reserved word";
			seen[index] = 1;
			page_records++;
			break;
		case MIG_REC_CONFIG:
			config = true;
			break;
		case MIG_REC_UART:
			uart = true;
			break;
		case MIG_REC_SUMMARY:
			/*
			 * A 1.1 reader checks a summary whatever the header's
			 * minor says, and wants one only after a 1.1 header.
			 */
			if (get_le32(s + at + MIG_REC_HEADER) != at ||
			    get_le32(s + at + MIG_REC_HEADER + 4) ||
			    get_le32(s + at + MIG_REC_HEADER + 8) != page_records ||
			    get_le32(s + at + MIG_REC_HEADER + 12))
				return "summary counts";
			summary = true;
			break;
		case MIG_REC_END:
			if (minor && !summary)
				return "end without a summary";
			end = true;
			break;
		default:
			if (flags & MIG_REQUIRED)
				return "unknown required record";
			break;
		}
		at += MIG_REC_HEADER + plen;
	}
	if (!end || !config || !uart)
		return "short: no end, config or UART record";
	for (i = 0; i < pages; i++)
		if (!seen[i])
			return "short: a page missing";
	return NULL;
}

/* Save the whole state of @device with a v2 stop-and-copy; false on failure. */
static bool save(struct stream_fuzz *f, int device, struct stream *s)
{
	size_t size = mig_stream_size(f->memory) + 4096;
	int fd = -1, none;
	ssize_t n;

	free(s->bytes);
	s->bytes = malloc(size);
	if (!s->bytes || mig_set_state(device, VFIO_DEVICE_STATE_STOP, &none) ||
	    mig_set_state(device, VFIO_DEVICE_STATE_STOP_COPY, &fd) || fd < 0)
		return false;
	n = mig_read_to_end(fd, s->bytes, size);
	close(fd);
	s->len = n < 0 ? 0 : n;
	return n > 0 && !mig_set_state(device, VFIO_DEVICE_STATE_RUNNING, &none);
}

/* The offsets of the records of a well-formed stream @s, at most @max; how many. */
static unsigned int records(const struct stream *s, size_t *at, unsigned int max)
{
	size_t off = MIG_HEADER;
	unsigned int n = 0;

	while (off + MIG_REC_HEADER <= s->len && n < max) {
		at[n++] = off;
		off += MIG_REC_HEADER + get_le32(s->bytes + off + 4);
	}
	return n;
}

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = v;
	p[1] = v >> 8;
}

/* A value near an edge that matters for a 32-bit field of value @v. */
static uint32_t near(struct stream_fuzz *f, uint32_t v)
{
	static const uint32_t edges[] = { 0, 1, 2, 0x7fffffff, 0x80000000, 0xfffffffe,
					  0xffffffff, 4096, 4104, 1u << 20 };

	switch (fuzz_below(&f->rng, 3)) {
	case 0:
		return v + (uint32_t)fuzz_below(&f->rng, 5) - 2;
	case 1:
		return fuzz_pick(&f->rng, edges);
	default:
		return (uint32_t)fuzz_next(&f->rng);
	}
}

/* One field of the header or of one record changed, its CRC recomputed. */
static const char *mutate_field(struct stream_fuzz *f, uint8_t *s, size_t len)
{
	static const uint16_t types[] = { 0, MIG_REC_CONFIG, MIG_REC_UART, MIG_REC_PAGE,
					  MIG_REC_SUMMARY, 5, 0x7fff, 0xfffe, MIG_REC_END };
	struct stream view = { s, len };
	size_t at[4096], r;
	unsigned int n = records(&view, at, 4096);
	uint8_t *rec;
	uint32_t plen;

	if (!n || fuzz_chance(&f->rng, 15)) {
		switch (fuzz_below(&f->rng, 6)) {
		case 0:
			put_le16(s + 8, near(f, 1));		/* major */
			break;
		case 1:
			put_le16(s + 10, near(f, 1));		/* minor */
			break;
		case 2:
			put_le32(s + 12, near(f, 0));		/* flags */
			break;
		case 3:
			put_le32(s + 16, near(f, get_le32(s + 16)));	/* memory_mib */
			break;
		case 4:
			put_le32(s + 20, near(f, 1));		/* ports */
			break;
		default:
			put_le32(s + 28, near(f, 0));		/* reserved */
			break;
		}
		put_le32(s + 24, crc32c(s, 24));
		return "header field";
	}
	r = at[fuzz_below(&f->rng, n)];
	rec = s + r;
	switch (fuzz_below(&f->rng, 5)) {
	case 0:
		put_le16(rec, fuzz_pick(&f->rng, types));
		break;
	case 1:
		put_le16(rec + 2, get_le16(rec + 2) ^ (1u << fuzz_below(&f->rng, 16)));
		break;
	case 2:
		put_le32(rec + 4, near(f, get_le32(rec + 4)));
		break;
	case 3:
		if (get_le16(rec) == MIG_REC_PAGE)
			put_le32(rec + MIG_REC_HEADER, near(f, get_le32(rec + MIG_REC_HEADER)));
		else if (get_le16(rec) == MIG_REC_SUMMARY)
			put_le32(rec + MIG_REC_HEADER + 4 * fuzz_below(&f->rng, 4),
				 near(f, get_le32(rec + MIG_REC_HEADER)));
		else
			put_le16(rec, fuzz_pick(&f->rng, types));
		break;
	default:
		if (get_le16(rec) == MIG_REC_PAGE)
			put_le32(rec + MIG_REC_HEADER + 4, near(f, 0));	/* reserved */
		else
			put_le16(rec + 2, 0);	/* REQUIRED cleared */
		break;
	}
	plen = get_le32(rec + 4);
	if (r + MIG_REC_HEADER + (uint64_t)plen <= len)
		put_le32(rec + 8, mig_record_crc(rec));
	return "record field";
}

/* Make room for @n bytes at offset @at of the mutant; false if it has none. */
static bool open_gap(struct stream_fuzz *f, size_t at, size_t n)
{
	if (f->mutant_len + n > f->mutant_size)
		return false;
	memmove(f->mutant + at + n, f->mutant + at, f->mutant_len - at);
	f->mutant_len += n;
	return true;
}

/* The index among the @n records at @at of a random page record; @n if none. */
static unsigned int pick_page(struct stream_fuzz *f, const size_t *at, unsigned int n)
{
	unsigned int i, tries;

	for (tries = 0; tries < 16; tries++) {
		i = fuzz_below(&f->rng, n);
		if (get_le16(f->mutant + at[i]) == MIG_REC_PAGE)
			return i;
	}
	return n;
}

/*
 * Whole records added, repeated, swapped or dropped, each with its CRC, and
 * the summary rewritten to count what is before it as a writer would: they
 * reach the reader's checks of unknown records (lengths around 64 KiB,
 * REQUIRED set or not), of record order and of completeness.
 */
static const char *mutate_records(struct stream_fuzz *f)
{
	static const uint32_t lengths[] = { 0, 1, 4096, 65535, 65536, 65537 };
	static const uint16_t unknown[] = { 0, 5, 0x7fff, 0xfffe };
	struct stream view = { f->mutant, f->mutant_len };
	uint8_t page[MIG_PAGE_REC], *rec;
	size_t at[4096], from, to;
	unsigned int n = records(&view, at, 4096), i, j;
	const char *kind;
	uint32_t plen, k;

	/* Now and then near the tail: the summary and the end record. */
	i = fuzz_chance(&f->rng, 25) && n > 3 ? n - 1 - fuzz_below(&f->rng, 3) :
						fuzz_below(&f->rng, n);
	switch (fuzz_below(&f->rng, 4)) {
	case 0:
		plen = fuzz_chance(&f->rng, 70) ? fuzz_pick(&f->rng, lengths) :
		       fuzz_below(&f->rng, 70000);
		if (!open_gap(f, at[i], MIG_REC_HEADER + plen))
			return "nothing (no room)";
		rec = f->mutant + at[i];
		put_le16(rec, fuzz_pick(&f->rng, unknown));
		put_le16(rec + 2, fuzz_chance(&f->rng, 50) ? MIG_REQUIRED : 0);
		put_le32(rec + 4, plen);
		for (k = 0; k < plen; k++)
			rec[MIG_REC_HEADER + k] = fuzz_next(&f->rng);
		put_le32(rec + 8, mig_record_crc(rec));
		kind = "unknown record";
		break;
	case 1:
		/* Another record of a page, with other bytes: the last one counts. */
		j = pick_page(f, at, n);
		if (j == n)
			return "nothing (no page record)";
		if (!open_gap(f, at[i], MIG_PAGE_REC))
			return "nothing (no room)";
		from = at[j] + (at[j] >= at[i] ? MIG_PAGE_REC : 0);
		rec = f->mutant + at[i];
		memcpy(rec, f->mutant + from, MIG_REC_HEADER + 8);
		for (k = 0; k < MIG_PAGE; k++)
			rec[MIG_REC_HEADER + 8 + k] = fuzz_next(&f->rng);
		put_le32(rec + 8, mig_record_crc(rec));
		kind = "page record repeated";
		break;
	case 2:
		i = pick_page(f, at, n);
		j = pick_page(f, at, n);
		if (i == n || j == n || i == j)
			return "nothing (no two page records)";
		memcpy(page, f->mutant + at[i], MIG_PAGE_REC);
		memcpy(f->mutant + at[i], f->mutant + at[j], MIG_PAGE_REC);
		memcpy(f->mutant + at[j], page, MIG_PAGE_REC);
		kind = "page records swapped";
		break;
	default:
		from = at[i] + MIG_REC_HEADER + get_le32(f->mutant + at[i] + 4);
		to = at[i];
		memmove(f->mutant + to, f->mutant + from, f->mutant_len - from);
		f->mutant_len -= from - to;
		kind = "record dropped";
		break;
	}
	mig_fix_summary(f->mutant, f->mutant_len);
	return kind;
}

/* A mutant of the valid streams in f->mutant; what kind of mutation it was. */
static const char *mutate(struct stream_fuzz *f)
{
	const struct stream *a = &f->valid[fuzz_below(&f->rng, 2)], *b = &f->valid[1];
	size_t cut, from;

	memcpy(f->mutant, a->bytes, a->len);
	f->mutant_len = a->len;
	/* Structure-aware half the time: a field, or whole records. */
	if (fuzz_chance(&f->rng, 50))
		return fuzz_chance(&f->rng, 70) ? mutate_field(f, f->mutant, f->mutant_len) :
						  mutate_records(f);
	switch (fuzz_below(&f->rng, 4)) {
	case 0:
		f->mutant_len = fuzz_mutate(&f->rng, (char *)f->mutant, f->mutant_len,
					    f->mutant_size);
		return "bytes";
	case 1:
		f->mutant_len = fuzz_below(&f->rng, a->len);
		return "truncation";
	case 2:
		/* The start of one stream and the end of the other. */
		cut = fuzz_below(&f->rng, a->len);
		from = fuzz_below(&f->rng, b->len);
		if (cut + b->len - from > f->mutant_size)
			from = b->len - (f->mutant_size - cut);
		memcpy(f->mutant + cut, b->bytes + from, b->len - from);
		f->mutant_len = cut + b->len - from;
		return "splice";
	default:
		f->mutant[fuzz_below(&f->rng, a->len)] ^= 1u << fuzz_below(&f->rng, 8);
		return "bit flip";
	}
}

/* Count one more of @why among f->reasons. */
static void count(struct stream_fuzz *f, const char *prefix, const char *why, size_t len)
{
	char text[sizeof(f->reasons[0].text)];
	unsigned int i;

	snprintf(text, sizeof(text), "%s%.*s", prefix, (int)len, why);
	for (i = 0; i < f->nr_reasons && strcmp(f->reasons[i].text, text); i++)
		;
	if (i == f->nr_reasons && i < MAX_REASONS)
		strcpy(f->reasons[f->nr_reasons++].text, text);
	if (i < f->nr_reasons)
		f->reasons[i].count++;
}

/*
 * Tally a refused stream: the check of the document that refuses it
 * (@wrong), and the kind of check the target's log lines name (those the
 * rate limit let through), up to the first number or quote of the reason.
 */
static void tally(struct stream_fuzz *f, const char *wrong)
{
	char rec[8192], *why;
	ssize_t len;

	if (wrong)
		count(f, "document: ", wrong, strlen(wrong));
	/* EPIPE: records were overwritten, the next read goes on. */
	while ((len = read(f->log, rec, sizeof(rec) - 1)) > 0 || (len < 0 && errno == EPIPE)) {
		if (len <= 0)
			continue;
		rec[len] = '\0';
		why = strstr(rec, "refused: ");
		if (why) {
			why += strlen("refused: ");
			count(f, "driver: ", why, strcspn(why, "0123456789\"\n"));
		}
	}
}

/*
 * The target's UART registers (each of the 8 offsets read once: a stopped
 * device reads a copy of its UART, so reads change nothing, and refuses
 * writes, so the divisor latch behind LCR[DLAB] is out of reach) and its
 * configuration space, read while it is stopped; false on failure.
 */
static bool read_stopped(struct stream_fuzz *f, uint8_t *uart, uint8_t *config)
{
	int device = f->target.device;
	unsigned int reg;

	for (reg = 0; reg < UART_REGS; reg++)
		if (pread(device, uart + reg, 1, BAR0_OFFSET + reg) != 1)
			return false;
	return pread(device, config, 256, CONFIG_OFFSET) == 256;
}

/*
 * Nothing of a refused stream was applied: the target, still in RESUMING,
 * shows the registers it had, and after the reset that ends RESUMING (the
 * memory survives it) its memory.
 */
static void check_unchanged(struct stream_fuzz *f, const char *kind)
{
	uint8_t uart[UART_REGS], config[256], *now;

	if (!read_stopped(f, uart, config))
		fuzz_fail(f->run, "reading the target's registers in RESUMING: %s", strerror(errno));
	else if (memcmp(uart, f->uart_before, sizeof(uart)) ||
		 memcmp(config, f->config_before, sizeof(config)))
		fuzz_fail(f->run, "a refused stream (%s) changed the target's registers", kind);
	if (ioctl(f->target.device, VFIO_DEVICE_RESET))
		fuzz_fail(f->run, "VFIO_DEVICE_RESET after a refused stream: %s", strerror(errno));
	now = memory_read_all(f->target.device, f->memory);
	if (!now || memcmp(now, f->memory_before, f->memory))
		fuzz_fail(f->run, "a refused stream (%s) changed the target's memory", kind);
	free(now);
}

/*
 * After the commit of a stream the reader takes: the target's memory is what
 * the stream's page records say, the last record of a page winning (the
 * stream was complete, so each page has one).
 */
static void check_applied(struct stream_fuzz *f, const char *kind)
{
	uint8_t *want = calloc(1, f->memory), *now = NULL, *rec;
	size_t off = MIG_HEADER;
	uint32_t index;

	while (want && off + MIG_REC_HEADER <= f->mutant_len) {
		rec = f->mutant + off;
		if (get_le16(rec) == MIG_REC_PAGE && get_le32(rec + 4) == 8 + MIG_PAGE &&
		    off + MIG_PAGE_REC <= f->mutant_len) {
			index = get_le32(rec + MIG_REC_HEADER);
			if ((uint64_t)index * MIG_PAGE < f->memory)
				memcpy(want + (size_t)index * MIG_PAGE, rec + MIG_REC_HEADER + 8,
				       MIG_PAGE);
		}
		off += MIG_REC_HEADER + get_le32(rec + 4);
	}
	now = want ? memory_read_all(f->target.device, f->memory) : NULL;
	if (!now || memcmp(now, want, f->memory))
		fuzz_fail(f->run, "a committed stream (%s) is not what the target's memory holds",
			  kind);
	free(now);
	free(want);
}

/*
 * Load f->mutant into the target; whether the commit succeeded. A refused
 * one leaves the target in RESUMING.
 */
static bool load(struct stream_fuzz *f)
{
	int target = f->target.device, fd = -1, none;
	size_t done = 0, chunk;
	bool committed;

	if (mig_set_state(target, VFIO_DEVICE_STATE_RESUMING, &fd) || fd < 0) {
		fuzz_fail(f->run, "RUNNING -> RESUMING: %s", strerror(errno));
		return false;
	}
	while (done < f->mutant_len) {
		chunk = fuzz_chance(&f->rng, 50) ? 1 + fuzz_below(&f->rng, 64) :
			1 + fuzz_below(&f->rng, 1u << 18);
		if (chunk > f->mutant_len - done)
			chunk = f->mutant_len - done;
		if (write(fd, f->mutant + done, chunk) != (ssize_t)chunk)
			break;
		done += chunk;
	}
	committed = !mig_set_state(target, VFIO_DEVICE_STATE_STOP, &none);
	close(fd);
	if (committed)
		mig_set_state(target, VFIO_DEVICE_STATE_RUNNING, &none);
	return committed;
}

static void one_case(struct stream_fuzz *f)
{
	const char *kind = mutate(f);
	const char *wrong = reader_verdict(f->mutant, f->mutant_len, f->memory, f->seen);
	bool committed = load(f);

	if (committed && wrong)
		fuzz_fail(f->run, "a %zu-byte stream (%s) the reader must refuse (%s) was committed",
			  f->mutant_len, kind, wrong);
	if (!committed && !wrong)
		fuzz_fail(f->run, "a %zu-byte stream (%s) the reader must take was refused",
			  f->mutant_len, kind);
	if (committed) {
		f->accepted++;
		if (!wrong)
			check_applied(f, kind);
		/* Back to the target's own state, which its own stream restores. */
		memcpy(f->mutant, f->target_own.bytes, f->target_own.len);
		f->mutant_len = f->target_own.len;
		if (!load(f))
			fuzz_fail(f->run, "the target's own stream did not load back");
		return;
	}
	f->refusals++;
	tally(f, wrong);
	check_unchanged(f, kind);
}

void stream_fuzzer(struct fuzz_run *run, const char *source, const char *target, size_t memory)
{
	struct stream_fuzz *f = calloc(1, sizeof(*f));
	unsigned int i;

	if (!f) {
		fuzz_fail(run, "no memory");
		return;
	}
	f->run = run;
	f->rng.state = run->seed;
	f->memory = memory;
	f->source = f->target = (struct rmtty_vfio)RMTTY_VFIO_INIT;
	f->log = fuzz_log_open();
	f->mutant_size = 2 * mig_stream_size(memory) + 4096;
	f->mutant = malloc(f->mutant_size);
	f->seen = malloc(memory / MIG_PAGE);
	if (f->log < 0 || !f->mutant || !f->seen || rmtty_vfio_open(&f->source, source, false) ||
	    rmtty_vfio_open(&f->target, target, false)) {
		fuzz_fail(run, "setting up: no memory, no kernel log, or a device did not open");
		goto out;
	}
	/* Two states of the source, and the target's own, all different. */
	if (uart_give_state(f->source.device, 1) || config_give_state(f->source.device, 1) ||
	    memory_give_state(f->source.device, memory, 1) ||
	    !save(f, f->source.device, &f->valid[0]) || ioctl(f->source.device, VFIO_DEVICE_RESET) ||
	    uart_give_state(f->source.device, 2) || memory_give_state(f->source.device, memory, 2) ||
	    !save(f, f->source.device, &f->valid[1]) ||
	    memory_give_state(f->target.device, memory, 3) ||
	    !save(f, f->target.device, &f->target_own) ||
	    !(f->memory_before = memory_read_all(f->target.device, memory)) ||
	    mig_set_state(f->target.device, VFIO_DEVICE_STATE_STOP, NULL) ||
	    !read_stopped(f, f->uart_before, f->config_before) ||
	    mig_set_state(f->target.device, VFIO_DEVICE_STATE_RUNNING, NULL)) {
		fuzz_fail(run, "giving the devices their states and saving them failed");
		goto out;
	}
	for (run->done = 0; run->done < run->cases && !run->failures; run->done++)
		one_case(f);
	tally(f, NULL);
	printf("# stream: %lu refused, %lu well formed and committed; the checks that refused them\n"
	       "# (the document's, and the driver's lines the rate limit let through):\n",
	       f->refusals, f->accepted);
	for (i = 0; i < f->nr_reasons; i++)
		printf("#   %6lu  %s\n", f->reasons[i].count, f->reasons[i].text);
	run->refused = f->refusals;
out:
	rmtty_vfio_close(&f->source);
	rmtty_vfio_close(&f->target);
	if (f->log >= 0)
		close(f->log);
	for (i = 0; i < 2; i++)
		free(f->valid[i].bytes);
	free(f->target_own.bytes);
	free(f->memory_before);
	free(f->mutant);
	free(f->seen);
	free(f);
}
