// SPDX-License-Identifier: GPL-2.0
/*
 * rmtty_bench: rmtty against the C mtty sample and against in-guest memcpy(),
 * in the same boot. Every figure is a ratio to a baseline measured right
 * beside it: the repetitions of rmtty and of its baseline alternate. Not a
 * test: tools/bench.sh runs it in a guest with rmtty (units=256) and mtty
 * loaded. README.md, "Benchmarks", says what each figure measures.
 *
 *   rmtty_bench [-r REPS] [-n ACCESSES] [-c CYCLES] [-m TRANSFERS] [-o FILE]
 *
 * REPS repetitions of each figure (default 7), ACCESSES register accesses per
 * repetition and thread (default 20000), CYCLES create+remove cycles per
 * repetition (default 20), TRANSFERS 1 MiB transfers per repetition (default
 * 16). The figures with their raw samples, medians and spread go to FILE as
 * JSON (default bench.json), a line a figure to stdout. It creates the devices
 * it measures and removes them. Exit status 0, or 1 with what failed on
 * stderr (devices it created may then be left: unloading the drivers removes
 * them).
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <linux/pci_regs.h>
#include <linux/serial_reg.h>

#include "rmtty_util.h"
#include "rmtty_vfio.h"

#define MTTY_TYPES	"/sys/class/mdev_bus/mtty/mdev_supported_types"
#define MAX_REPS	64
#define BAR2_BYTES	(1u << 20)
#define NSEC_PER_SEC	1e9

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

/* One side of a figure: a repetition of it, which returns its value */
struct side {
	double (*run)(void *ctx);
	void *ctx;
};

/*
 * Both sides once to warm up, then @reps repetitions of each, alternating, so
 * that whatever else the machine does falls on both alike. Without @b, @a alone.
 */
static void measure(struct series *sa, const struct side *a, struct series *sb,
		    const struct side *b)
{
	unsigned int i;

	a->run(a->ctx);
	if (b)
		b->run(b->ctx);
	for (i = 0; i < reps; i++) {
		sa->v[i] = a->run(a->ctx);
		if (b)
			sb->v[i] = b->run(b->ctx);
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
 * One figure: rmtty's series @a against the baseline @b, their ratio and, if
 * the SPEC sets one, the target of the ratio and whether it is met.
 */
static void emit(const char *id, const char *what, const char *unit, enum target target,
		 const struct series *a, const struct series *b)
{
	static const char * const targets[] = { "null", "\"<= 1.0\"", "\">= 1.0\"" };
	const char *verdict = "-";
	double ma, mb, ratio;

	fprintf(json, "%s\n    {\"id\": \"%s\", \"what\": \"%s\", \"unit\": \"%s\", ",
		figures++ ? "," : "", id, what, unit);
	ma = emit_series("rmtty", a);
	fprintf(json, ", ");
	mb = emit_series("baseline", b);
	ratio = ma / mb;
	if (target != NONE)
		verdict = (target == AT_MOST_1 ? ratio <= 1.0 : ratio >= 1.0) ? "pass" : "miss";
	fprintf(json, ", \"ratio\": %.4g, \"target\": %s, \"verdict\": \"%s\"}",
		ratio, targets[target], verdict);
	fflush(json);
	printf("%-48s %10.4g %10.4g %-10s ratio %.3f %s\n", what, ma, mb, unit, ratio, verdict);
	fflush(stdout);
}

/* One thread's register accesses: @len bytes at @pos of @fd, read or written */
struct accessor {
	int fd;
	__u64 pos;
	size_t len;
	bool write;
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
	for (i = 0; i < accesses; i++) {
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

/* ns per access of the slowest thread */
static double run_accesses(void *ctx)
{
	struct access_run *r = ctx;
	struct accessor a[2];
	pthread_barrier_t start;
	double slowest = 0;
	pthread_t other;
	unsigned int i;

	pthread_barrier_init(&start, NULL, r->threads);
	for (i = 0; i < r->threads; i++)
		a[i] = (struct accessor){ r->fds[i], r->pos, r->len, r->write, &start };
	if (r->threads > 1 && pthread_create(&other, NULL, access_loop, &a[1]))
		die("pthread_create failed");
	access_loop(&a[0]);
	if (r->threads > 1)
		pthread_join(other, NULL);
	pthread_barrier_destroy(&start);
	for (i = 0; i < r->threads; i++)
		if (a[i].seconds > slowest)
			slowest = a[i].seconds;
	return slowest * NSEC_PER_SEC / accesses;
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

/* The access figures through one front door, on two devices of each driver. */
static void access_figures(bool cdev)
{
	const char *door = cdev ? "cdev" : "group";
	struct rmtty_vfio v[2][2];
	struct access_run run[2];
	struct driver *drivers[2] = { &rmtty, &mtty };
	struct series s[2] = { { "rmtty" }, { "mtty" } };
	char uuid[UUID_LEN + 1], id[64], what[128];
	unsigned int d, k, i;

	for (d = 0; d < 2; d++) {
		for (k = 0; k < 2; k++) {
			dev_uuid(uuid, drivers[d], DEV_ACCESS + k);
			if (rmtty_vfio_open(&v[d][k], uuid, cdev))
				die("%s: opening %s through the %s", drivers[d]->name, uuid, door);
		}
	}
	for (i = 0; i < sizeof(access_patterns) / sizeof(access_patterns[0]); i++) {
		const struct access_pattern *p = &access_patterns[i];
		struct side sides[2];

		for (d = 0; d < 2; d++) {
			run[d] = (struct access_run){ { v[d][0].device, v[d][1].device },
						      p->threads, p->pos, p->len, p->write };
			sides[d] = (struct side){ run_accesses, &run[d] };
		}
		measure(&s[0], &sides[0], &s[1], &sides[1]);
		snprintf(id, sizeof(id), "%s_%s", p->id, door);
		snprintf(what, sizeof(what), "%s, %s", p->what, door);
		emit(id, what, "ns/access", p->target, &s[0], &s[1]);
	}
	for (d = 0; d < 2; d++)
		for (k = 0; k < 2; k++)
			rmtty_vfio_close(&v[d][k]);
}

/*
 * Give @d @n other devices, or none if its type has no room for @n and one
 * more; whether it has them.
 */
static bool set_others(struct driver *d, unsigned int n)
{
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
	return d->others == n;
}

/* Create+remove cycles per second */
static double run_create(void *ctx)
{
	const struct driver *d = ctx;
	unsigned int i;
	double t0 = now();

	for (i = 0; i < cycles; i++) {
		dev_create(d, DEV_CREATE);
		dev_remove(d, DEV_CREATE);
	}
	return cycles / (now() - t0);
}

/*
 * Create+remove with others_counts[] other devices present: against mtty
 * with as many (while it has room for them), and against rmtty with none.
 */
static void create_figures(void)
{
	struct side r = { run_create, &rmtty }, m = { run_create, &mtty };
	struct series sr = { "rmtty" }, sm = { "mtty" }, none = { "rmtty, no others" };
	char id[64], what[128];
	unsigned int i, n;
	bool mtty_room;

	for (i = 0; i < sizeof(others_counts) / sizeof(others_counts[0]); i++) {
		n = others_counts[i];
		if (!set_others(&rmtty, n))
			die("rmtty has no room for %u other devices: load it with units=%u", n, n + 1);
		mtty_room = set_others(&mtty, n);
		measure(&sr, &r, &sm, mtty_room ? &m : NULL);
		if (mtty_room) {
			snprintf(id, sizeof(id), "create_remove_%u", n);
			snprintf(what, sizeof(what), "create+remove, %u others", n);
			emit(id, what, "/s", AT_LEAST_1, &sr, &sm);
		}
		if (!n) {
			memcpy(none.v, sr.v, sizeof(none.v));
			continue;
		}
		snprintf(id, sizeof(id), "create_remove_growth_%u", n);
		snprintf(what, sizeof(what), "create+remove, %u others vs none", n);
		emit(id, what, "/s", NONE, &sr, &none);
	}
	set_others(&rmtty, 0);
	set_others(&mtty, 0);
}

/* 1 MiB transfers: through BAR2 of @fd, or, if @fd < 0, memcpy() */
struct copy_run {
	int fd;
	bool write;
	__u8 *buf, *src;
};

/* MB/s (10^6 bytes) */
static double run_copy(void *ctx)
{
	struct copy_run *c = ctx;
	unsigned int i;
	ssize_t n;
	double t0 = now();

	for (i = 0; i < transfers; i++) {
		if (c->fd < 0) {
			memcpy(c->buf, c->src, BAR2_BYTES);
			/* The copy is used: the compiler keeps it. */
			__asm__ __volatile__("" : : "r"(c->buf) : "memory");
			continue;
		}
		n = c->write ? pwrite(c->fd, c->buf, BAR2_BYTES, BAR2_OFFSET)
			     : pread(c->fd, c->buf, BAR2_BYTES, BAR2_OFFSET);
		if (n != BAR2_BYTES)
			die("%s of 1 MiB of BAR2: %s", c->write ? "pwrite" : "pread",
			    n < 0 ? strerror(errno) : "short");
	}
	return (double)transfers * BAR2_BYTES / 1e6 / (now() - t0);
}

/* BAR2 bulk reads and writes of an rmtty-1 device against memcpy() of as much. */
static void bar2_figures(void)
{
	struct series sr = { "rmtty" }, sm = { "memcpy" };
	struct copy_run dev = { -1 }, mem = { -1 };
	struct side r = { run_copy, &dev }, m = { run_copy, &mem };
	struct rmtty_vfio v;
	char uuid[UUID_LEN + 1];

	dev.buf = malloc(BAR2_BYTES);
	mem.buf = malloc(BAR2_BYTES);
	mem.src = malloc(BAR2_BYTES);
	if (!dev.buf || !mem.buf || !mem.src)
		die("out of memory");
	/* Fault the buffers in before they are timed. */
	memset(dev.buf, 0xa5, BAR2_BYTES);
	memset(mem.buf, 0, BAR2_BYTES);
	memset(mem.src, 0xa5, BAR2_BYTES);

	dev_create(&rmtty, DEV_BAR2);
	dev_uuid(uuid, &rmtty, DEV_BAR2);
	if (rmtty_vfio_open(&v, uuid, false))
		die("rmtty: opening %s through its group", uuid);
	dev.fd = v.device;
	measure(&sr, &r, &sm, &m);
	emit("bar2_read", "BAR2 1 MiB pread", "MB/s", NONE, &sr, &sm);
	dev.write = true;
	measure(&sr, &r, &sm, &m);
	emit("bar2_write", "BAR2 1 MiB pwrite", "MB/s", NONE, &sr, &sm);
	rmtty_vfio_close(&v);
	dev_remove(&rmtty, DEV_BAR2);
	free(dev.buf);
	free(mem.buf);
	free(mem.src);
}

static unsigned int number(const char *arg, unsigned int min, unsigned int max)
{
	char *end;
	unsigned long n = strtoul(arg, &end, 10);

	if (!*arg || *end || n < min || n > max)
		die("%s: not a number from %u to %u", arg, min, max);
	return n;
}

int main(int argc, char **argv)
{
	const char *out = "bench.json";
	struct utsname u;
	unsigned int i, k;
	int opt;

	while ((opt = getopt(argc, argv, "r:n:c:m:o:")) != -1) {
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
		default:
			fprintf(stderr, "usage: rmtty_bench [-r REPS] [-n ACCESSES] [-c CYCLES] "
				"[-m TRANSFERS] [-o FILE]\n");
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
	fprintf(json, "{\n  \"kernel\": \"%s\",\n  \"kernel_build\": \"%s\",\n  \"cpus\": %ld,\n"
		"  \"parameters\": {\"repetitions\": %u, \"accesses\": %u, \"create_cycles\": %u, "
		"\"bar2_bytes\": %u, \"bar2_transfers\": %u, \"others\": [0, 16, 255], "
		"\"rmtty_units\": %ld, \"rmtty_unit_mib\": %ld},\n  \"figures\": [",
		u.release, u.version, sysconf(_SC_NPROCESSORS_ONLN), reps, accesses, cycles,
		BAR2_BYTES, transfers, sysfs_read_long("/sys/module/rmtty/parameters/units"),
		sysfs_read_long("/sys/module/rmtty/parameters/unit_mib"));

	printf("%-48s %10s %10s %-10s\n", "figure", "rmtty", "baseline", "unit");
	for (i = 0; i < 2; i++)
		for (k = 0; k < 2; k++)
			dev_create(i ? &mtty : &rmtty, DEV_ACCESS + k);
	access_figures(false);
	access_figures(true);
	for (i = 0; i < 2; i++)
		for (k = 0; k < 2; k++)
			dev_remove(i ? &mtty : &rmtty, DEV_ACCESS + k);
	create_figures();
	bar2_figures();

	fprintf(json, "\n  ]\n}\n");
	if (fclose(json))
		die("%s: %s", out, strerror(errno));
	return 0;
}
