// SPDX-License-Identifier: GPL-2.0
/*
 * The region I/O fuzzer: reads and writes of random region index, offset
 * (around every region's edges and the 1 << 40 boundaries between regions),
 * width and length, on an open device.
 *
 * First, alone: every access inside a region succeeds whole and every other
 * fails with EINVAL (README, "the device": region sizes, and accesses
 * outside a region or straddling its end refused); BAR2 reads give what a
 * twin of device memory that the fuzzer keeps says (the fuzzer's own writes,
 * all-ones past the backed size), and the configuration space keeps its
 * documented identity. Then the same accesses, migration region writes
 * included, from several threads at once, each with a file of its own from
 * the device's group: the outcomes must still be success or EINVAL (or
 * EBUSY and partial writes, for a device a state write stopped), and the
 * device still works after.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "rmtty_fuzz.h"
#include "rmtty_util.h"
#include "rmtty_vfio.h"

#define MIB		(1u << 20)
#define NUM_REGIONS	10
#define MIGRATION_INDEX	9
#define MIGRATION_SIZE	(4096 + MIB)
#define ACCESS_MAX	(MIB + 4096)
#define THREADS		3

struct region_fuzz {
	struct fuzz_run *run;
	int device;
	uint64_t size[NUM_REGIONS];	/* README's sizes */
	uint64_t backed;		/* BAR2's backed size */
	uint8_t *twin;			/* BAR2 as the fuzzer's writes left it; NULL: no twin */
	bool migration_writes;
	unsigned long refusals;
};

/* An access: where, how long, which way. */
struct access {
	uint64_t pos;
	size_t len;
	bool write;
	unsigned int index;
	uint64_t offset;
	int state;	/* a device_state write's value, or -1: random bytes */
};

static void pick(struct fuzz_rng *r, const struct region_fuzz *f, struct access *a)
{
	static const size_t lens[] = { 1, 2, 3, 4, 8, 16, 4095, 4096, 4097, 65535, 65536,
				       65537, MIB, MIB + 1 };
	uint64_t size, edge;

	switch (fuzz_below(r, 8)) {
	case 0:
		a->index = NUM_REGIONS + fuzz_below(r, 4);
		break;
	case 1:
		a->index = fuzz_below(r, 1u << 23);
		break;
	default:
		a->index = fuzz_pick(r, ((unsigned int[]){ 0, 1, 2, 2, 2, 7, 7, 9 }));
		break;
	}
	a->len = fuzz_chance(r, 70) ? fuzz_pick(r, lens) : 1 + fuzz_below(r, ACCESS_MAX);
	size = a->index < NUM_REGIONS ? f->size[a->index] : 0;
	switch (fuzz_below(r, 5)) {
	case 0:
		edge = 0;
		break;
	case 1:
		edge = size;
		break;
	case 2:
		edge = size - a->len;
		break;
	case 3:
		edge = (1ull << 40) - fuzz_below(r, 8);	/* into the next region */
		break;
	default:
		edge = fuzz_below(r, size + 1);
		break;
	}
	a->offset = (edge + fuzz_below(r, 5) - 2) & ((1ull << 40) - 1);
	if (fuzz_chance(r, 3))
		a->offset = fuzz_next(r) & ((1ull << 40) - 1);
	a->pos = (uint64_t)a->index << 40 | a->offset;
	if (fuzz_chance(r, 2))
		a->pos = fuzz_next(r) >> 1;	/* anywhere a file offset can be */
	a->index = a->pos >> 40;
	a->offset = a->pos & ((1ull << 40) - 1);
	a->write = fuzz_chance(r, 50);
	/* Now and then v1's device_state, with a state in it or near one. */
	if (fuzz_chance(r, 5)) {
		a->index = MIGRATION_INDEX;
		a->offset = 0;
		a->len = 4;
		a->pos = (uint64_t)a->index << 40;
		a->state = fuzz_below(r, 8);
	} else {
		a->state = -1;
	}
}

/* Whether @a lies inside its region. */
static bool inside(const struct region_fuzz *f, const struct access *a)
{
	return a->index < NUM_REGIONS && a->len && a->offset < f->size[a->index] &&
	       a->len <= f->size[a->index] - a->offset;
}

/* One access; what it returned (bytes) or -errno. */
static ssize_t do_access(int device, const struct access *a, uint8_t *buf)
{
	ssize_t n = a->write ? pwrite(device, buf, a->len, a->pos) : pread(device, buf, a->len, a->pos);

	return n < 0 ? -errno : n;
}

/* One case, checked; @buf holds ACCESS_MAX bytes. */
static void one_case(struct fuzz_rng *r, struct region_fuzz *f, struct access *a, uint8_t *buf,
		     int device)
{
	bool in;
	ssize_t n;
	size_t i;

	pick(r, f, a);
	in = inside(f, a);
	if (a->write && a->index == MIGRATION_INDEX && !f->migration_writes)
		return;
	for (i = 0; i < a->len; i += 8) {
		uint64_t word = fuzz_next(r);

		memcpy(buf + i, &word, a->len - i < 8 ? a->len - i : 8);
	}
	if (a->state >= 0)
		memcpy(buf, &a->state, 4);
	n = do_access(device, a, buf);
	if (n < 0)
		__atomic_add_fetch(&f->refusals, 1, __ATOMIC_RELAXED);
	/*
	 * The migration region's header takes its fields alone, at their
	 * widths, and its state requests may be refused; or busy, while the
	 * other front end's transfer runs.
	 */
	if (in && a->index == MIGRATION_INDEX && (n == -EINVAL || n == -EBUSY || n > 0))
		return;
	/*
	 * A device the migration region stopped refuses BAR writes (README);
	 * a BAR2 write that a stop overtook is taken in part, its first
	 * 64 KiB parts.
	 */
	if (in && f->migration_writes && a->write &&
	    (a->index == VFIO_PCI_BAR0_REGION_INDEX || a->index == VFIO_PCI_BAR2_REGION_INDEX) &&
	    (n == -EBUSY || (n > 0 && n % 65536 == 0)))
		return;
	if (in && n != (ssize_t)a->len) {
		fuzz_fail(f->run, "%zu-byte %s at %#" PRIx64 " inside region %u: %zd (%s)", a->len,
			  a->write ? "write" : "read", a->offset, a->index, n,
			  n < 0 ? strerror(-n) : "short");
		return;
	}
	if (!in && n != -EINVAL) {
		fuzz_fail(f->run, "%zu-byte %s at %#" PRIx64 " of region %u (%" PRIu64
			  " bytes): %zd, expected EINVAL", a->len, a->write ? "write" : "read",
			  a->offset, a->index, a->index < NUM_REGIONS ? f->size[a->index] : 0, n);
		return;
	}
	if (!in || a->index != VFIO_PCI_BAR2_REGION_INDEX || !f->twin)
		return;
	if (a->write) {
		if (a->offset < f->backed)
			memcpy(f->twin + a->offset, buf,
			       a->len < f->backed - a->offset ? a->len : f->backed - a->offset);
	} else if (memcmp(buf, f->twin + a->offset, a->len)) {
		for (i = 0; buf[i] == f->twin[a->offset + i]; i++)
			;
		fuzz_fail(f->run, "%zu-byte read of BAR2 at %#" PRIx64 ": byte %#" PRIx64
			  " is %#x, the twin says %#x", a->len, a->offset, a->offset + i, buf[i],
			  f->twin[a->offset + i]);
	}
}

/* The configuration space's identity is still README's. */
static void check_identity(struct fuzz_run *run, int device)
{
	if (!config_identity_ok(device))
		fuzz_fail(run, "the configuration space lost README's identity");
}

void fuzz_check_recovery(struct fuzz_run *run, int device)
{
	uint8_t buf[2][4096];

	if (ioctl(device, VFIO_DEVICE_RESET))
		fuzz_fail(run, "VFIO_DEVICE_RESET after the fuzzing: %s", strerror(errno));
	check_identity(run, device);
	memset(buf[0], 0x5a, sizeof(buf[0]));
	if (pwrite(device, buf[0], sizeof(buf[0]), BAR2_OFFSET) != sizeof(buf[0]) ||
	    pread(device, buf[1], sizeof(buf[1]), BAR2_OFFSET) != sizeof(buf[1]) ||
	    memcmp(buf[0], buf[1], sizeof(buf[0])))
		fuzz_fail(run, "BAR2 does not read back a write after the fuzzing");
}

/* README's region sizes for a BAR2 backed by f->backed bytes; returns BAR2's. */
static uint64_t set_sizes(struct region_fuzz *f)
{
	uint64_t bar = bar2_size_for(f->backed);

	f->size[VFIO_PCI_BAR0_REGION_INDEX] = 8;
	f->size[VFIO_PCI_BAR2_REGION_INDEX] = bar;
	f->size[VFIO_PCI_CONFIG_REGION_INDEX] = 256;
	f->size[MIGRATION_INDEX] = MIGRATION_SIZE;
	return bar;
}

struct region_thread {
	struct region_fuzz *f;
	const char *uuid;
	uint64_t seed;
	unsigned long cases;
	int group;
};

static void *region_thread(void *arg)
{
	struct region_thread *t = arg;
	struct fuzz_rng r = { t->seed };
	struct access a;
	uint8_t *buf = malloc(ACCESS_MAX);
	unsigned long i;
	int device;

	/*
	 * A file of its own, from the same group (the cdev refuses a device
	 * its group has open: EBUSY).
	 */
	device = fuzz_group_file(t->f->run, t->group, t->uuid);
	for (i = 0; buf && device >= 0 && i < t->cases; i++)
		one_case(&r, t->f, &a, buf, device);
	if (device >= 0)
		close(device);
	free(buf);
	return NULL;
}

void region_fuzzer(struct fuzz_run *run, const char *uuid, uint64_t backed)
{
	struct region_fuzz f = { .run = run, .backed = backed };
	struct region_thread threads[THREADS];
	pthread_t tid[THREADS];
	struct rmtty_vfio v = RMTTY_VFIO_INIT;
	struct fuzz_rng r = { run->seed };
	struct timespec t0, t1;
	struct access a;
	uint8_t *buf = malloc(ACCESS_MAX);
	int log = fuzz_log_open();
	unsigned int i;
	uint64_t bar;

	bar = set_sizes(&f);
	f.twin = malloc(bar);
	if (!buf || !f.twin || log < 0 || rmtty_vfio_open(&v, uuid, false)) {
		fuzz_fail(run, "setting up: no memory, no kernel log, or the device did not open");
		goto out;
	}
	f.device = v.device;
	clock_gettime(CLOCK_MONOTONIC, &t0);

	/* The twin starts from a fill of the backed part; past it, all-ones. */
	memset(f.twin + backed, 0xff, bar - backed);
	for (a.pos = BAR2_OFFSET; a.pos < BAR2_OFFSET + backed; a.pos += MIB) {
		a.len = MIB;
		for (i = 0; i < MIB; i++)
			f.twin[a.pos - BAR2_OFFSET + i] = fuzz_next(&r);
		if (pwrite(f.device, f.twin + (a.pos - BAR2_OFFSET), MIB, a.pos) != MIB)
			fuzz_fail(run, "filling BAR2 at %#" PRIx64 ": %s", (uint64_t)(a.pos - BAR2_OFFSET),
				  strerror(errno));
	}

	/* Alone, against the twin: half of the cases. */
	for (run->done = 0; run->done < run->cases / 2 && !run->failures; run->done++)
		one_case(&r, &f, &a, buf, f.device);
	check_identity(run, f.device);

	/* Together: the other half, shared among the threads, each with a file of its own. */
	free(f.twin);
	f.twin = NULL;
	f.migration_writes = true;
	for (i = 0; i < THREADS && !run->failures; i++) {
		threads[i] = (struct region_thread){ &f, uuid, fuzz_next(&r),
						     (run->cases - run->done) / THREADS, v.group };
		if (pthread_create(&tid[i], NULL, region_thread, &threads[i])) {
			fuzz_fail(run, "no thread");
			break;
		}
	}
	while (i--)
		pthread_join(tid[i], NULL);
	if (!run->failures)
		run->done = run->cases;

	fuzz_check_recovery(run, f.device);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fuzz_log_rate_ok(run, log, f.refusals, seconds_between(&t0, &t1));
	run->refused = f.refusals;
	rmtty_vfio_close(&v);
out:
	if (log >= 0)
		close(log);
	free(f.twin);
	free(buf);
}

void region_fuzz_shared(struct fuzz_run *run, int device, uint64_t memory)
{
	struct region_fuzz f = { .run = run, .device = device, .backed = memory,
				 .migration_writes = true };
	struct fuzz_rng r = { run->seed };
	uint8_t *buf = malloc(ACCESS_MAX);
	struct access a;

	set_sizes(&f);
	if (!buf)
		fuzz_fail(run, "no memory");
	for (run->done = 0; buf && run->done < run->cases && !run->failures; run->done++)
		one_case(&r, &f, &a, buf, device);
	run->refused = f.refusals;
	free(buf);
}
