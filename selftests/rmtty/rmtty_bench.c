// SPDX-License-Identifier: GPL-2.0
/*
 * rmtty_bench: rmtty against the C mtty sample and against in-guest memcpy(),
 * in the same boot. Every figure is a ratio to a baseline measured right
 * beside it: the repetitions of rmtty and of its baseline alternate. Not a
 * test: tools/bench.sh runs it in a guest with rmtty (units=256) and mtty
 * loaded. README.md, "Benchmarks", says what each figure measures.
 *
 *   rmtty_bench [-r REPS] [-n ACCESSES] [-c CYCLES] [-m TRANSFERS] [-o FILE]
 *               [-f GROUPS] [-O OTHERS] [-R MREPS] [-s SIZES] [-p MIB]
 *
 * REPS repetitions of each figure (default 7), ACCESSES register accesses per
 * repetition and thread (default 20000), CYCLES create+remove cycles per
 * repetition (default 20), TRANSFERS 1 MiB transfers per repetition (default
 * 16), OTHERS the most other devices create+remove is measured with (default
 * 255). The migration figures (rmtty_bench_mig.c) take MREPS repetitions
 * (default 5): device sizes SIZES in MiB (default "1,16,64,256"), and the
 * pre-copy figures a device of MIB MiB (default 64). GROUPS names the groups
 * of figures to run, e.g. "access,create,bar2,migration,precopy,qemu" (the
 * default; to profile one group, run it alone under perf). The figures with
 * their raw samples, medians and spread go to FILE as JSON (default
 * bench.json), a line a figure to stdout. It creates the devices it measures
 * and removes them. Exit status 0, or 1 with what failed on stderr (devices
 * it created may then be left: unloading the drivers removes them).
 * The migration figures run the rmtty-migrate of $RMTTY_MIGRATE, or else of
 * $RMTTY_TOP/tools/target/release; the QEMU figures run rmtty_bench_qemu.sh
 * from this program's directory.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <linux/pci_regs.h>
#include <linux/serial_reg.h>

#include "kselftest.h"
#include "rmtty_bench.h"
#include "rmtty_vfio.h"

/* Operations in a row before the other side's turn (see measure()) */
#define ACCESS_CHUNK	1000
#define CREATE_CHUNK	5

static unsigned int accesses = 20000, cycles = 20, transfers = 16, max_others = 255;

/* How many other devices of the same driver are present while one is created and removed */
static const unsigned int others_counts[] = { 0, 16, 255 };

/* One thread's @n register accesses: @len bytes at @pos of @fd, read or written */
struct accessor {
	int fd;
	__u64 pos;
	size_t len;
	bool write;
	unsigned int n;
	pthread_barrier_t *start;
	double seconds;
};

static void *access_loop(void *arg)
{
	struct accessor *a = arg;
	__u8 buf[4] = { 0x5a };
	unsigned int i;
	ssize_t n;
	double t0;

	pthread_barrier_wait(a->start);
	t0 = now();
	for (i = 0; i < a->n; i++) {
		n = a->write ? pwrite(a->fd, buf, a->len, a->pos) : pread(a->fd, buf, a->len, a->pos);
		if (n != (ssize_t)a->len)
			die("%s of %zu bytes at 0x%llx: %s", a->write ? "pwrite" : "pread", a->len,
			    (unsigned long long)a->pos, n < 0 ? strerror(errno) : "short");
	}
	a->seconds = now() - t0;
	return NULL;
}

/* An access figure's repetition on one driver: each thread on its own device */
struct access_run {
	int fds[2];
	unsigned int threads;
	__u64 pos;
	size_t len;
	bool write;
};

/* The seconds of the slowest thread */
static double run_accesses(void *ctx, unsigned int n)
{
	struct access_run *r = ctx;
	struct accessor a[2];
	pthread_barrier_t start;
	double slowest = 0;
	pthread_t other;
	unsigned int i;

	pthread_barrier_init(&start, NULL, r->threads);
	for (i = 0; i < r->threads; i++)
		a[i] = (struct accessor){ r->fds[i], r->pos, r->len, r->write, n, &start };
	if (r->threads > 1 && pthread_create(&other, NULL, access_loop, &a[1]))
		die("pthread_create failed");
	access_loop(&a[0]);
	if (r->threads > 1)
		pthread_join(other, NULL);
	pthread_barrier_destroy(&start);
	for (i = 0; i < r->threads; i++)
		if (a[i].seconds > slowest)
			slowest = a[i].seconds;
	return slowest;
}

static const struct access_pattern {
	const char *id, *what;
	__u64 pos;
	size_t len;
	bool write;
	unsigned int threads;
	enum target target;
} access_patterns[] = {
	{ "bar0_read", "BAR0 1-byte pread", BAR0_OFFSET + UART_SCR, 1, false, 1, AT_MOST_1 },
	{ "bar0_write", "BAR0 1-byte pwrite", BAR0_OFFSET + UART_SCR, 1, true, 1, AT_MOST_1 },
	{ "bar0_read_2t", "BAR0 1-byte pread, 2 threads", BAR0_OFFSET + UART_SCR, 1, false, 2,
	  AT_MOST_1 },
	{ "bar0_write_2t", "BAR0 1-byte pwrite, 2 threads", BAR0_OFFSET + UART_SCR, 1, true, 2,
	  AT_MOST_1 },
	{ "config_read", "config 4-byte pread", CONFIG_OFFSET + PCI_VENDOR_ID, 4, false, 1, NONE },
};

/* The access figures through one front door, on devices DEV_ACCESS + 0 and 1 of each driver. */
static void access_figures(bool cdev)
{
	const char *door = cdev ? "cdev" : "group";
	struct rmtty_vfio v[2][2];
	struct access_run run[2];
	struct driver *drivers[2] = { &rmtty, &mtty };
	struct series s[2] = { { "rmtty" }, { "mtty" } };
	struct plan plan = { accesses, ACCESS_CHUNK, NS_PER_ACCESS };
	char uuid[UUID_LEN + 1], id[64], what[128];
	unsigned int d, i;

	for (d = 0; d < 4; d++) {
		dev_uuid(uuid, drivers[d / 2], DEV_ACCESS + d % 2);
		if (rmtty_vfio_open(&v[d / 2][d % 2], uuid, cdev))
			die("%s: opening %s through the %s", drivers[d / 2]->name, uuid, door);
	}
	for (i = 0; i < ARRAY_SIZE(access_patterns); i++) {
		const struct access_pattern *p = &access_patterns[i];
		struct side sides[2];

		for (d = 0; d < 2; d++) {
			run[d] = (struct access_run){ { v[d][0].device, v[d][1].device },
						      p->threads, p->pos, p->len, p->write };
			sides[d] = (struct side){ run_accesses, &run[d] };
		}
		measure(&s[0], &sides[0], &s[1], &sides[1], &plan);
		snprintf(id, sizeof(id), "%s_%s", p->id, door);
		snprintf(what, sizeof(what), "%s, %s", p->what, door);
		emit(id, what, NS_PER_ACCESS, p->target, &s[0], &s[1]);
	}
	for (d = 0; d < 4; d++)
		rmtty_vfio_close(&v[d / 2][d % 2]);
}

/*
 * Give @d @n other devices, or none if its type has no room for @n and one
 * more; whether it has them.
 */
static bool set_others(struct driver *d, unsigned int n)
{
	unsigned int want = n;
	char path[256];
	long room;

	snprintf(path, sizeof(path), "%s/available_instances", d->type);
	room = sysfs_read_long(path);
	if (room < 0)
		die("%s: %s: %s", d->name, path, strerror(-room));
	if (n > d->others && room <= (long)(n - d->others))
		n = 0;
	while (d->others > n)
		dev_remove(d, --d->others);
	while (d->others < n)
		dev_create(d, d->others++);
	return d->others == want;
}

static double run_create(void *ctx, unsigned int n)
{
	const struct driver *d = ctx;
	unsigned int i;
	double t0 = now();

	for (i = 0; i < n; i++) {
		dev_create(d, DEV_CREATE);
		dev_remove(d, DEV_CREATE);
	}
	return now() - t0;
}

/*
 * Create+remove with others_counts[] other devices present: against mtty
 * with as many (while it has room for them), and against rmtty with none.
 */
static void create_figures(void)
{
	struct side r = { run_create, &rmtty }, m = { run_create, &mtty };
	struct series sr = { "rmtty" }, sm = { "mtty" }, none = { "rmtty, no others" };
	struct plan plan = { cycles, CREATE_CHUNK, PER_SECOND };
	char id[64], what[128];
	unsigned int i, n;
	bool mtty_room;

	for (i = 0; i < ARRAY_SIZE(others_counts); i++) {
		n = others_counts[i];
		if (n > max_others)
			continue;
		if (!set_others(&rmtty, n))
			die("rmtty has no room for %u other devices: load it with units=%u", n, n + 1);
		mtty_room = set_others(&mtty, n);
		measure(&sr, &r, &sm, mtty_room ? &m : NULL, &plan);
		if (mtty_room) {
			snprintf(id, sizeof(id), "create_remove_%u", n);
			snprintf(what, sizeof(what), "create+remove, %u others", n);
			emit(id, what, PER_SECOND, AT_LEAST_1, &sr, &sm);
		}
		if (!n) {
			memcpy(none.v, sr.v, sizeof(none.v));
			continue;
		}
		snprintf(id, sizeof(id), "create_remove_growth_%u", n);
		snprintf(what, sizeof(what), "create+remove, %u others vs none", n);
		emit(id, what, PER_SECOND, NONE, &sr, &none);
	}
	set_others(&rmtty, 0);
	set_others(&mtty, 0);
}

/* 1 MiB transfers: pread or pwrite at @pos of @fd, or, if @fd < 0, memcpy() */
struct copy_run {
	int fd;
	__u64 pos;
	bool write;
	__u8 *buf, *src;
};

static double run_copy(void *ctx, unsigned int n)
{
	struct copy_run *c = ctx;
	unsigned int i;
	ssize_t done;
	double t0 = now();

	for (i = 0; i < n; i++) {
		if (c->fd < 0) {
			memcpy(c->buf, c->src, BAR2_BYTES);
			/* The copy is used: the compiler keeps it. */
			__asm__ __volatile__("" : : "r"(c->buf) : "memory");
			continue;
		}
		done = c->write ? pwrite(c->fd, c->buf, BAR2_BYTES, c->pos)
				: pread(c->fd, c->buf, BAR2_BYTES, c->pos);
		if (done != BAR2_BYTES)
			die("%s of 1 MiB at 0x%llx: %s", c->write ? "pwrite" : "pread",
			    (unsigned long long)c->pos, done < 0 ? strerror(errno) : "short");
	}
	return now() - t0;
}

/*
 * BAR2 bulk reads and writes of an rmtty-1 device against memcpy() of as much,
 * and against the same pread or pwrite of a memfd: what the kernel's copies to
 * and from user memory reach through a syscall.
 */
static void bar2_figures(void)
{
	struct series sr = { "rmtty" }, sb[2] = { { "memcpy" }, { "memfd" } };
	struct plan plan = { transfers, 1, MB_PER_SECOND };
	struct copy_run dev = { -1, BAR2_OFFSET }, base[2] = { { -1 }, { -1 } };
	struct side r = { run_copy, &dev }, b;
	char uuid[UUID_LEN + 1], id[64], what[128];
	__u8 *bufs = malloc(4 * BAR2_BYTES);
	struct rmtty_vfio v;
	unsigned int k, w;

	if (!bufs)
		die("out of memory");
	/* Fault the buffers in before they are timed. */
	memset(bufs, 0xa5, 4 * BAR2_BYTES);
	dev.buf = bufs;
	base[0].buf = bufs + BAR2_BYTES;
	base[0].src = bufs + 2 * BAR2_BYTES;
	base[1].buf = bufs + 3 * BAR2_BYTES;
	base[1].fd = memfd_create("rmtty_bench", 0);
	if (base[1].fd < 0 || pwrite(base[1].fd, base[1].buf, BAR2_BYTES, 0) != BAR2_BYTES)
		die("a memfd of 1 MiB: %s", strerror(errno));

	dev_create(&rmtty, DEV_BAR2);
	dev_uuid(uuid, &rmtty, DEV_BAR2);
	if (rmtty_vfio_open(&v, uuid, false))
		die("rmtty: opening %s through its group", uuid);
	dev.fd = v.device;
	for (k = 0; k < 2; k++) {
		b = (struct side){ run_copy, &base[k] };
		for (w = 0; w < 2; w++) {
			dev.write = base[k].write = w;
			measure(&sr, &r, &sb[k], &b, &plan);
			snprintf(id, sizeof(id), "bar2_%s_%s", w ? "write" : "read", sb[k].label);
			snprintf(what, sizeof(what), "BAR2 1 MiB %s vs %s", w ? "pwrite" : "pread",
				 sb[k].label);
			emit(id, what, MB_PER_SECOND, NONE, &sr, &sb[k]);
		}
	}
	rmtty_vfio_close(&v);
	dev_remove(&rmtty, DEV_BAR2);
	close(base[1].fd);
	free(bufs);
}

static unsigned int number(const char *arg, unsigned int min, unsigned int max)
{
	char *end;
	unsigned long n = strtoul(arg, &end, 10);

	if (!*arg || *end || n < min || n > max)
		die("%s: not a number from %u to %u", arg, min, max);
	return n;
}

/*
 * The pool rmtty was loaded with, as its sysfs shows it: an rmtty-1's
 * aggregation is the pool's units, and its type's migration_version says
 * unit_mib (Rust module parameters have no sysfs files).
 */
static void pool(long *units, long *unit_mib)
{
	char path[256], buf[4096];
	const char *p;

	snprintf(path, sizeof(path), "%s/aggregation", rmtty.type);
	*units = sysfs_read_long(path);
	snprintf(path, sizeof(path), "%s/migration_version", rmtty.type);
	p = sysfs_read(path, buf, sizeof(buf)) > 0 ? strstr(buf, "unit_mib=") : NULL;
	*unit_mib = p ? strtol(p + strlen("unit_mib="), NULL, 10) : -1;
}

int main(int argc, char **argv)
{
	const char *out = "bench.json", *groups = "access,create,bar2,migration,precopy,qemu";
	unsigned int mig_reps = 5, sizes[8] = { 1, 16, 64, 256 }, n_sizes = 4, precopy_mib = 64;
	long units, unit_mib;
	struct utsname u;
	unsigned int i;
	char *tok;
	int opt;

	while ((opt = getopt(argc, argv, "r:n:c:m:o:f:O:R:s:p:")) != -1) {
		switch (opt) {
		case 'r':
			reps = number(optarg, 1, MAX_REPS);
			break;
		case 'n':
			accesses = number(optarg, 1, 1u << 30);
			break;
		case 'c':
			cycles = number(optarg, 1, 1u << 20);
			break;
		case 'm':
			transfers = number(optarg, 1, 1u << 20);
			break;
		case 'o':
			out = optarg;
			break;
		case 'f':
			groups = optarg;
			break;
		case 'O':
			max_others = number(optarg, 0, 255);
			break;
		case 'R':
			mig_reps = number(optarg, 1, MAX_REPS);
			break;
		case 's':
			for (n_sizes = 0, tok = strtok(optarg, ","); tok && n_sizes < ARRAY_SIZE(sizes);
			     tok = strtok(NULL, ","))
				sizes[n_sizes++] = number(tok, 1, 1024);
			break;
		case 'p':
			precopy_mib = number(optarg, 1, 1024);
			break;
		default:
			fprintf(stderr, "usage: rmtty_bench [-r REPS] [-n ACCESSES] [-c CYCLES] "
				"[-m TRANSFERS] [-o FILE] [-f GROUPS] [-O OTHERS] [-R MREPS] "
				"[-s SIZES] [-p MIB]\n");
			return 2;
		}
	}
	if (access(rmtty.type, F_OK) || access(mtty.type, F_OK))
		die("%s and %s must exist: load rmtty.ko (units=256) and mtty.ko", rmtty.type,
		    mtty.type);
	json = fopen(out, "w");
	if (!json)
		die("%s: %s", out, strerror(errno));
	uname(&u);
	pool(&units, &unit_mib);
	fprintf(json, "{\n  \"kernel\": \"%s\",\n  \"kernel_build\": \"%s\",\n  \"cpus\": %ld,\n"
		"  \"parameters\": {\"repetitions\": %u, \"accesses\": %u, \"access_chunk\": %u, "
		"\"create_cycles\": %u, \"create_chunk\": %u, \"bar2_bytes\": %u, "
		"\"bar2_transfers\": %u, \"rmtty_units\": %ld, \"rmtty_unit_mib\": %ld, "
		"\"migration_repetitions\": %u, \"precopy_mib\": %u, \"others\": [",
		u.release, u.version, sysconf(_SC_NPROCESSORS_ONLN), reps, accesses, ACCESS_CHUNK,
		cycles, CREATE_CHUNK, BAR2_BYTES, transfers, units, unit_mib, mig_reps,
		precopy_mib);
	for (i = 0; i < ARRAY_SIZE(others_counts) && others_counts[i] <= max_others; i++)
		fprintf(json, "%s%u", i ? ", " : "", others_counts[i]);
	fprintf(json, "], \"migration_mib\": [");
	for (i = 0; i < n_sizes; i++)
		fprintf(json, "%s%u", i ? ", " : "", sizes[i]);
	fprintf(json, "]},\n  \"figures\": [");

	printf("%-48s %10s %10s %-10s\n", "figure", "rmtty", "baseline", "unit");
	if (strstr(groups, "access")) {
		for (i = 0; i < 4; i++)
			dev_create(i / 2 ? &mtty : &rmtty, DEV_ACCESS + i % 2);
		access_figures(false);
		access_figures(true);
		for (i = 0; i < 4; i++)
			dev_remove(i / 2 ? &mtty : &rmtty, DEV_ACCESS + i % 2);
	}
	if (strstr(groups, "create"))
		create_figures();
	if (strstr(groups, "bar2"))
		bar2_figures();
	/* The migration figures have repetitions of their own: they are long. */
	reps = mig_reps;
	if (strstr(groups, "migration"))
		migration_figures(sizes, n_sizes, unit_mib);
	if (strstr(groups, "precopy"))
		precopy_figures(precopy_mib, unit_mib);
	if (strstr(groups, "qemu"))
		qemu_figures(argv[0]);

	fprintf(json, "\n  ]\n}\n");
	if (fclose(json))
		die("%s: %s", out, strerror(errno));
	return 0;
}
