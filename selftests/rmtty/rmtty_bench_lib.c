// SPDX-License-Identifier: GPL-2.0
/*
 * rmtty_bench's shared part: the devices it creates, the alternating
 * repetitions of a figure and its baseline, and each figure as a JSON object
 * and a line on stdout.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rmtty_bench.h"

unsigned int reps = 7;

struct driver rmtty = { "rmtty", RMTTY_TYPES "/rmtty-1", 1 };
struct driver mtty = { "mtty", MTTY_TYPES "/mtty-1", 2 };

FILE *json;
char *emit_extra;
static unsigned int figures;

void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "rmtty_bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / NSEC_PER_SEC;
}

void dev_uuid(char out[UUID_LEN + 1], const struct driver *d, unsigned int n)
{
	rmtty_uuid(out, d->id << 16 | n);
}

/* Create device @n of @d's type with the same sysfs write for every driver. */
void dev_create(const struct driver *d, unsigned int n)
{
	char path[256], uuid[UUID_LEN + 1];
	int ret;

	dev_uuid(uuid, d, n);
	snprintf(path, sizeof(path), "%s/create", d->type);
	ret = sysfs_write(path, uuid);
	if (ret)
		die("%s: creating %s: %s", d->name, uuid, strerror(-ret));
}

void dev_remove(const struct driver *d, unsigned int n)
{
	char uuid[UUID_LEN + 1];
	int ret;

	dev_uuid(uuid, d, n);
	ret = rmtty_remove(uuid);
	if (ret)
		die("%s: removing %s: %s", d->name, uuid, strerror(-ret));
}

static const char * const unit_names[] = { "ns/access", "/s", "MB/s", "ms", "B" };

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

/*
 * A chunk of each side to warm up, then @reps repetitions; in each, the chunks
 * of the two sides alternate, and so does which side goes first, so that
 * whatever else the machine does falls on both alike. Without @b, @a alone.
 */
void measure(struct series *sa, const struct side *a, struct series *sb, const struct side *b,
	     const struct plan *p)
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
		median ? 100 * (sorted[reps - 1] - sorted[0]) / median : 0);
	for (i = 0; i < reps; i++)
		fprintf(json, "%s%.6g", i ? ", " : "", s->v[i]);
	fprintf(json, "]}");
	return median;
}

/*
 * One figure: rmtty's series @a against the baseline @b; their ratio, the
 * median of the ratios of the repetitions (each pair ran side by side: what
 * else the machine did cancels out); and, if the SPEC sets one, the target of
 * the ratio (or of rmtty's own figure) and whether it is met.
 */
void emit(const char *id, const char *what, enum unit unit, enum target target,
	  const struct series *a, const struct series *b)
{
	static const char * const targets[] = { "null", "\"<= 1.0\"", "\">= 1.0\"", "\">= 0.5\"",
						"\"<= 65536 B\"" };
	struct series r = { "rmtty / baseline, per repetition" };
	const char *verdict = "-";
	double ma, mb, ratio;
	unsigned int i;
	bool met = false;

	for (i = 0; i < reps; i++)
		r.v[i] = b->v[i] ? a->v[i] / b->v[i] : 0;
	fprintf(json, "%s\n    {\"id\": \"%s\", \"what\": \"%s\", \"unit\": \"%s\", ",
		figures++ ? "," : "", id, what, unit_names[unit]);
	ma = emit_series("rmtty", a);
	fprintf(json, ", ");
	mb = emit_series("baseline", b);
	fprintf(json, ", ");
	ratio = emit_series("ratio", &r);
	switch (target) {
	case NONE:
		break;
	case AT_MOST_1:
		met = ratio <= 1.0;
		break;
	case AT_LEAST_1:
		met = ratio >= 1.0;
		break;
	case AT_LEAST_HALF:
		met = ratio >= 0.5;
		break;
	case AT_MOST_64K:
		met = ma <= 65536;
		break;
	}
	if (target != NONE)
		verdict = met ? "pass" : "miss";
	fprintf(json, ", \"target\": %s, \"verdict\": \"%s\"", targets[target], verdict);
	if (emit_extra)
		fprintf(json, ", %s", emit_extra);
	fprintf(json, "}");
	free(emit_extra);
	emit_extra = NULL;
	fflush(json);
	printf("%-48s %10.1f %10.1f %-10s ratio %.3f %s\n", what, ma, mb, unit_names[unit], ratio,
	       verdict);
	fflush(stdout);
}
