/* SPDX-License-Identifier: GPL-2.0 */
/*
 * rmtty's fuzzers: a seeded generator of hostile input, and one fuzzer for
 * each door userspace has to the driver. Each fuzzer runs a number of cases
 * from a seed; the same seed and number replay the same cases (the
 * concurrent ones the same cases in each thread, in whatever interleaving
 * the scheduler gives).
 */
#ifndef RMTTY_FUZZ_H
#define RMTTY_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* The generator: splitmix64 over a 64-bit state. */
struct fuzz_rng {
	uint64_t state;
};

static inline uint64_t fuzz_next(struct fuzz_rng *r)
{
	uint64_t x = r->state += 0x9e3779b97f4a7c15ull;

	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* A number in [0, @n); 0 if @n is 0. */
static inline uint64_t fuzz_below(struct fuzz_rng *r, uint64_t n)
{
	return n ? fuzz_next(r) % n : 0;
}

/* True with a chance of @percent in a hundred. */
static inline bool fuzz_chance(struct fuzz_rng *r, unsigned int percent)
{
	return fuzz_below(r, 100) < percent;
}

/* One of the @n elements of @array, by value. */
#define fuzz_pick(r, array) ((array)[fuzz_below(r, sizeof(array) / sizeof((array)[0]))])

/*
 * Text that a writer of a number might send, near one of the @n @edges:
 * the edge itself or a neighbour, in decimal, hexadecimal or octal, with or
 * without a sign, leading zeros, spaces, a newline or trailing junk. At most
 * @size - 1 bytes and a NUL; returns the length.
 */
size_t fuzz_number(struct fuzz_rng *r, char *buf, size_t size, const int64_t *edges, size_t n);

/*
 * Hostile bytes: binary junk, printable junk, whitespace alone, a long run
 * of one character, up to @size bytes (lengths near 0, a page and @size
 * favoured). Returns the length; @buf is not NUL-terminated.
 */
size_t fuzz_junk(struct fuzz_rng *r, char *buf, size_t size);

/*
 * Flip, replace, insert or delete a few bytes of the @len bytes in @buf
 * (at most @size); returns the new length.
 */
size_t fuzz_mutate(struct fuzz_rng *r, char *buf, size_t len, size_t size);

/* What a fuzzer did: its seed and cases, and what it found wrong. */
struct fuzz_run {
	const char *name;
	uint64_t seed;
	unsigned long cases;	/* to run */
	unsigned long done;	/* run */
	unsigned long failures;
	unsigned long refused;	/* cases the driver refused, as they should be */
};

/*
 * A file of its own on device @uuid of the VFIO group open in @group, or -1
 * with the failure counted in @run.
 */
int fuzz_group_file(struct fuzz_run *run, int group, const char *uuid);

/*
 * Report a failure of case @run->done (what the case did and what went
 * wrong, printf-style) with how to replay it; counts it.
 */
void fuzz_fail(struct fuzz_run *run, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* A reader of the kernel log from its current end on: a file descriptor, or -1. */
int fuzz_log_open(void);

/*
 * rmtty's log lines since fuzz_log_open() returned @fd, over a run of
 * @seconds in which the driver refused @refusals requests, are rate limited:
 * the driver and each device log at most LOG_BURST lines in each LOG_WINDOW
 * seconds (the kernel's default) under each of their two rate limits, one a
 * refusal at most, and a "callbacks suppressed" note a window at most for
 * each limit. False, with the failure counted, if not.
 */
bool fuzz_log_rate_ok(struct fuzz_run *run, int fd, unsigned long refusals, double seconds);

/*
 * The fuzzers. Each runs @run->cases cases from @run->seed; failures are
 * counted in @run. The sysfs fuzzer starts with rmtty loaded with @units
 * units of @unit_mib MiB and no device, and leaves no device behind.
 */
void sysfs_fuzzer(struct fuzz_run *run, unsigned int units, unsigned int unit_mib);

/*
 * The region I/O fuzzer, on device @uuid (closed, not used by anything
 * else), whose BAR2 is backed by @backed bytes; it leaves the device.
 */
void region_fuzzer(struct fuzz_run *run, const char *uuid, uint64_t backed);

/*
 * The migration state machine fuzzer, on device @uuid (closed, not used by
 * anything else) of @memory bytes; it leaves the device closed.
 */
void state_fuzzer(struct fuzz_run *run, const char *uuid, size_t memory);

/*
 * The ioctl fuzzer, on device @uuid (closed, not used by anything else)
 * whose BAR2 has @bar2 bytes; it leaves the device closed.
 */
void ioctl_fuzzer(struct fuzz_run *run, const char *uuid, uint64_t bar2);

/*
 * The stream fuzzer, from device @source to device @target (closed, not
 * used by anything else), both of @memory bytes; it leaves them closed.
 */
void stream_fuzzer(struct fuzz_run *run, const char *source, const char *target, size_t memory);

/*
 * The same fuzzers' cases on an open file @device of a device of @memory
 * bytes that another fuzzer uses at the same time: no model of the device,
 * only what holds whatever the other does (every refusal one the uAPI or
 * README names, every state reported a valid one). The file stays open.
 */
typedef void fuzz_shared_fn(struct fuzz_run *run, int device, uint64_t memory);
fuzz_shared_fn region_fuzz_shared, ioctl_fuzz_shared, state_fuzz_shared;

/*
 * The device recovers: VFIO_DEVICE_RESET succeeds, the configuration space
 * keeps README's identity, and BAR2 reads back a write.
 */
void fuzz_check_recovery(struct fuzz_run *run, int device);

/*
 * Fuzzers @a and @b at once, @run->cases cases each from @run->seed, on
 * device @uuid (closed, not used by anything else) of @memory bytes: @a in
 * a forked process with its own file from the group, or (@cdev) in a thread
 * sharing the one file of the cdev, which opens a device once; @b in this
 * process. Then the device must recover with a reset and report RUNNING on
 * both front ends. Afterwards @run counts both sides' cases.
 */
void pair_fuzzer(struct fuzz_run *run, fuzz_shared_fn *a, fuzz_shared_fn *b, const char *uuid,
		 uint64_t memory, bool cdev);

#endif /* RMTTY_FUZZ_H */
