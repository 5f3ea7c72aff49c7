/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the parts of rmtty_bench share: the devices it creates, the series of
 * repetitions a figure is made of, and the JSON and the line each figure
 * becomes (rmtty_bench_lib.c).
 */
#ifndef RMTTY_BENCH_H
#define RMTTY_BENCH_H

#include <stdbool.h>
#include <stdio.h>

#include "rmtty_util.h"

#define MTTY_TYPES	"/sys/class/mdev_bus/mtty/mdev_supported_types"
#define MAX_REPS	64
#define BAR2_BYTES	(1u << 20)
#define NSEC_PER_SEC	1e9
#define MIB		(1u << 20)

/* Repetitions of each figure; the figures of a group may change it while they run */
extern unsigned int reps;

/* A driver and its one-port type, and the other devices this program gave it */
struct driver {
	const char *name;
	const char *type;	/* the type's sysfs directory */
	unsigned int id;	/* in the UUIDs of its devices */
	unsigned int others;
};

extern struct driver rmtty, mtty;

/* Device numbers: others from 0, then the devices the figures use */
#define DEV_ACCESS	0x1000
#define DEV_CREATE	0x2000
#define DEV_BAR2	0x3000
#define DEV_MIGRATION	0x4000
#define DEV_PRECOPY	0x5000
#define DEV_QEMU	0x6000

void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
double now(void);
void dev_uuid(char out[UUID_LEN + 1], const struct driver *d, unsigned int n);
void dev_create(const struct driver *d, unsigned int n);
void dev_remove(const struct driver *d, unsigned int n);

/* The values of one side of a figure, one a repetition */
struct series {
	const char *label;
	double v[MAX_REPS];
};

/* What a figure reports */
enum unit { NS_PER_ACCESS, PER_SECOND, MB_PER_SECOND, MILLISECONDS, BYTES };

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

void measure(struct series *sa, const struct side *a, struct series *sb, const struct side *b,
	     const struct plan *p);

/*
 * The SPEC's target for a figure: on the ratio (rmtty / baseline), or, for
 * AT_MOST_64K, on rmtty's own median.
 */
enum target { NONE, AT_MOST_1, AT_LEAST_1, AT_LEAST_HALF, AT_MOST_64K };

extern FILE *json;

/*
 * More members for the next figure's JSON object (e.g. "\"passes\": [...]"),
 * or NULL; emit() writes and clears it.
 */
extern char *emit_extra;

void emit(const char *id, const char *what, enum unit unit, enum target target,
	  const struct series *a, const struct series *b);

void migration_figures(const unsigned int *sizes, unsigned int n_sizes, long unit_mib);
void precopy_figures(unsigned int mib, long unit_mib);
void qemu_figures(const char *self);

#endif /* RMTTY_BENCH_H */
