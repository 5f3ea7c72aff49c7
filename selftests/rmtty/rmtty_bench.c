// SPDX-License-Identifier: GPL-2.0
/*
 * rmtty_bench: rmtty against the C mtty sample and against in-guest memcpy(),
 * in the same boot. Every figure is a ratio to a baseline measured right
 * beside it: the repetitions of rmtty and of its baseline alternate. Not a
 * test: tools/bench.sh runs it in a guest with rmtty (units=256) and mtty
 * loaded. README.md, "Benchmarks", says what each figure measures.
 *
 *   rmtty_bench [-r REPS] [-n ACCESSES] [-c CYCLES] [-m TRANSFERS] [-o FILE]
 *               [-f GROUPS]
 *
 * REPS repetitions of each figure (default 7), ACCESSES register accesses per
 * repetition and thread (default 20000), CYCLES create+remove cycles per
 * repetition (default 20), TRANSFERS 1 MiB transfers per repetition (default
 * 16). GROUPS names the groups of figures to run, e.g. "access,create,bar2"
 * (the default; to profile one group, run it alone under perf). The figures
 * with their raw samples, medians and spread go to FILE as JSON (default
 * bench.json), a line a figure to stdout. It creates the devices it measures
 * and removes them. Exit status 0, or 1 with what failed on stderr (devices
 * it created may then be left: unloading the drivers removes them).
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
#include "rmtty_util.h"
#include "rmtty_vfio.h"

#define MTTY_TYPES	"/sys/class/mdev_bus/mtty/mdev_supported_types"
#define MAX_REPS	64
#define BAR2_BYTES	(1u << 20)
#define NSEC_PER_SEC	1e9
/* Operations in a row before the other side's turn (see measure()) */
#define ACCESS_CHUNK	1000
#define CREATE_CHUNK	5

static unsigned int reps = 7, accesses = 20000, cycles = 20, transfers = 16;

/* How many other devices of the same driver are present while one is created and removed */
static const unsigned int others_counts[] = { 0, 16, 255 };

/* A driver and its one-port type, and the other devices this program gave it */
struct driver {
	const char *name;
	const char *type;	/* the type's sysfs directory */
	unsigned int id;	/* in the UUIDs of its devices */
	unsigned int others;
};

static struct driver rmtty = { "rmtty", RMTTY_TYPES "/rmtty-1", 1 };
static struct driver mtty = { "mtty", MTTY_TYPES "/mtty-1", 2 };

/* Device numbers: others from 0, then the devices the figures use */
#define DEV_ACCESS	0x1000
#define DEV_CREATE	0x2000
#define DEV_BAR2	0x3000

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "rmtty_bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / NSEC_PER_SEC;
}

static void dev_uuid(char out[UUID_LEN + 1], const struct driver *d, unsigned int n)
{
	rmtty_uuid(out, d->id << 16 | n);
}

/* Create device @n of @d's type with the same sysfs write for every driver. */
static void dev_create(const struct driver *d, unsigned int n)
{
	char path[256], uuid[UUID_LEN + 1];
	int ret;

	dev_uuid(uuid, d, n);
	snprintf(path, sizeof(path), "%s/create", d->type);
	ret = sysfs_write(path, uuid);
	if (ret)
		die("%s: creating %s: %s", d->name, uuid, strerror(-ret));
}

static void dev_remove(const struct driver *d, unsigned int n)
{
	char uuid[UUID_LEN + 1];
	int ret;

	dev_uuid(uuid, d, n);
	ret = rmtty_remove(uuid);
	if (ret)
		die("%s: removing %s: %s", d->name, uuid, strerror(-ret));
}

/* The values of one side of a figure, one a repetition */
struct series {
	const char *label;
	double v[MAX_REPS];
};

/* What a figure reports */
enum unit { NS_PER_ACCESS, PER_SECOND, MB_PER_SECOND };

static const char * const unit_names[] = { "ns/access", "/s", "MB/s" };

/* The figure of @ops operations that took @seconds (an operation moves BAR2_BYTES for MB/s) */
static double value(enum unit unit, double seconds, unsigned int ops)
{
	switch (unit) {
	case NS_PER_ACCESS:
		return seconds * NSEC_PER_SEC / ops;
	case PER_SECOND:
		return ops / seconds;
	default:
		return (double)ops * BAR2_BYTES / 1e6 / seconds;
	}
}

/* One side of a figure: @n of its operations, which return the seconds they took */
struct side {
	double (*run)(void *ctx, unsigned int n);
	void *ctx;
};

/* A figure's repetition: @ops operations, in chunks of @chunk */
struct plan {
	unsigned int ops, chunk;
	enum unit unit;
};

/*
 * A chunk of each side to warm up, then @reps repetitions; in each, the chunks
 * of the two sides alternate, and so does which side goes first, so that
 * whatever else the machine does falls on both alike. Without @b, @a alone.
 */
static void measure(struct series *sa, const struct side *a, struct series *sb,
		    const struct side *b, const struct plan *p)
{
	unsigned int i, done, n, k = 0;
	double ta, tb;

	a->run(a->ctx, p->chunk);
	if (b)
		b->run(b->ctx, p->chunk);
	for (i = 0; i < reps; i++) {
		ta = tb = 0;
		for (done = 0; done < p->ops; done += n) {
			n = p->ops - done < p->chunk ? p->ops - done : p->chunk;
			if (b && k % 2)
				tb += b->run(b->ctx, n);
			ta += a->run(a->ctx, n);
			if (b && !(k++ % 2))
				tb += b->run(b->ctx, n);
		}
		sa->v[i] = value(p->unit, ta, p->ops);
		if (b)
			sb->v[i] = value(p->unit, tb, p->ops);
	}
}

static FILE *json;
static unsigned int figures;

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Write @s as the JSON member @key; returns its median. */
static double emit_series(const char *key, const struct series *s)
{
	double sorted[MAX_REPS], median;
	unsigned int i;

	memcpy(sorted, s->v, reps * sizeof(double));
	qsort(sorted, reps, sizeof(double), cmp_double);
	median = reps % 2 ? sorted[reps / 2] : (sorted[reps / 2 - 1] + sorted[reps / 2]) / 2;
	fprintf(json, "\"%s\": {\"label\": \"%s\", \"median\": %.6g, \"min\": %.6g, "
		"\"max\": %.6g, \"spread_pct\": %.3g, \"samples\": [",
		key, s->label, median, sorted[0], sorted[reps - 1],
		100 * (sorted[reps - 1] - sorted[0]) / median);
	for (i = 0; i < reps; i++)
		fprintf(json, "%s%.6g", i ? ", " : "", s->v[i]);
	fprintf(json, "]}");
	return median;
}

enum target { NONE, AT_MOST_1, AT_LEAST_1 };

/*
 * One figure: rmtty's series @a against the baseline @b; their ratio, the
 * median of the ratios of the repetitions (each pair ran side by side: what
 * else the machine did cancels out); and, if the SPEC sets one, the target of
 * the ratio and whether it is met.
 */
static void emit(const char *id, const char *what, enum unit unit, enum target target,
		 const struct series *a, const struct series *b)
{
	static const char * const targets[] = { "null", "\"<= 1.0\"", "\">= 1.0\"" };
	struct series r = { "rmtty / baseline, per repetition" };
	const char *verdict = "-";
	double ma, mb, ratio;
	unsigned int i;

	for (i = 0; i < reps; i++)
		r.v[i] = a->v[i] / b->v[i];
	fprintf(json, "%s\n    {\"id\": \"%s\", \"what\": \"%s\", \"unit\": \"%s\", ",
		figures++ ? "," : "", id, what, unit_names[unit]);
	ma = emit_series("rmtty", a);
	fprintf(json, ", ");
	mb = emit_series("baseline", b);
	fprintf(json, ", ");
	ratio = emit_series("ratio", &r);
	if (target != NONE)
		verdict = (target == AT_MOST_1 ? ratio <= 1.0 : ratio >= 1.0) ? "pass" : "miss";
	fprintf(json, ", \"target\": %s, \"verdict\": \"%s\"}", targets[target], verdict);
	fflush(json);
	printf("%-40s %10.1f %10.1f %-10s ratio %.3f %s\n", what, ma, mb, unit_names[unit], ratio,
	       verdict);
	fflush(stdout);
}

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
	const char *out = "bench.json", *groups = "access,create,bar2";
	long units, unit_mib;
	struct utsname u;
	unsigned int i;
	int opt;

	while ((opt = getopt(argc, argv, "r:n:c:m:o:f:")) != -1) {
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
		default:
			fprintf(stderr, "usage: rmtty_bench [-r REPS] [-n ACCESSES] [-c CYCLES] "
				"[-m TRANSFERS] [-o FILE] [-f GROUPS]\n");
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
		"\"others\": [",
		u.release, u.version, sysconf(_SC_NPROCESSORS_ONLN), reps, accesses, ACCESS_CHUNK,
		cycles, CREATE_CHUNK, BAR2_BYTES, transfers, units, unit_mib);
	for (i = 0; i < ARRAY_SIZE(others_counts); i++)
		fprintf(json, "%s%u", i ? ", " : "", others_counts[i]);
	fprintf(json, "]},\n  \"figures\": [");

	printf("%-40s %10s %10s %-10s\n", "figure", "rmtty", "baseline", "unit");
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

	fprintf(json, "\n  ]\n}\n");
	if (fclose(json))
		die("%s: %s", out, strerror(errno));
	return 0;
}
