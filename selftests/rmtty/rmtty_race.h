/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the race tests share: a tally of outcomes by errno, a crowd of
 * threads that start together and run until told to stop, and the pool the
 * races run on.
 */
#ifndef RMTTY_RACE_H
#define RMTTY_RACE_H

#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "rmtty_util.h"

/* Errnos counted one by one; those above, together. */
#define MAX_ERRNO	160

/* How long each race runs, in seconds: $RMTTY_RACE_SECONDS, or 3. */
unsigned int race_seconds(void);

/* What a kind of request returned, by errno (0: success; MAX_ERRNO: any above). */
struct tally {
	const char *what;
	unsigned long n[MAX_ERRNO + 1];
};

/* Count @ret (0 or -errno) in @t; safe from several threads. */
void count(struct tally *t, int ret);

/* Seconds since @t0 (CLOCK_MONOTONIC). */
double since(const struct timespec *t0);

/* Sleep @ms milliseconds. */
void pause_ms(unsigned int ms);

/* A crowd of threads that start together and run until told to stop. */
struct crowd {
	bool go, stop;
	unsigned int n;
	pthread_t tid[8];
};

/* In each of the crowd's threads, first: wait for the others. */
void crowd_wait(struct crowd *c);
/* Whether the crowd still runs. */
bool running(struct crowd *c);
/*
 * A thread of the crowd running @fn(@arg), which must call crowd_wait()
 * first; false if there is none.
 */
bool crowd_add(struct crowd *c, void *(*fn)(void *), void *arg);
/* Let the crowd's threads go, all at once. */
void crowd_go(struct crowd *c);
/* Stop the crowd's threads and wait for them; the crowd can be used again. */
void crowd_stop(struct crowd *c);

/* rmtty's pool in the races: rmtty-4 fills it three times with a unit to spare. */
extern const struct rmtty_params race_pool;

/* Free units: what rmtty-1's available_instances says, or -errno. */
long free_units(void);
/* Write @aggregation to device @uuid's mdev/aggregated_instances; 0 or -errno. */
int set_aggregation(const char *uuid, unsigned int aggregation);

/* An aggregator: random aggregations of random devices until stopped. */
struct aggregator {
	struct crowd *crowd;
	struct tally *tally;
	char (*uuids)[UUID_LEN + 1];
	unsigned int devices, max, seed, units;
	unsigned long wrong;	/* free units read out of 0..units */
};

/* A crowd's thread: @arg is a struct aggregator. */
void *aggregate(void *arg);

#ifdef __KSELFTEST_HARNESS_H
/*
 * Print @t, and fail unless every refusal in it was one of the @nr errnos
 * in @allowed.
 */
static inline void expect_only(struct __test_metadata *_metadata, const struct tally *t,
			       const int *allowed, unsigned int nr)
{
	unsigned int err, i;
	char line[512];
	size_t len;

	len = snprintf(line, sizeof(line), "%s: %lu succeeded", t->what, t->n[0]);
	for (err = 1; err <= MAX_ERRNO; err++) {
		if (!t->n[err])
			continue;
		if (len < sizeof(line))
			len += snprintf(line + len, sizeof(line) - len, ", %lu %s", t->n[err],
					err < MAX_ERRNO ? strerrorname_np(err) : "above");
		for (i = 0; i < nr && allowed[i] != (int)err; i++)
			;
		EXPECT_LT(i, nr) TH_LOG("%s: refused with %s, which README does not name here",
					t->what,
					err < MAX_ERRNO ? strerror(err) : "an errno above");
	}
	TH_LOG("%s", line);
}

#define EXPECT_ONLY(t, ...) \
	expect_only(_metadata, (t), (const int[]){ __VA_ARGS__ }, \
		    sizeof((const int[]){ __VA_ARGS__ }) / sizeof(int))
#define EXPECT_NONE_REFUSED(t) expect_only(_metadata, (t), NULL, 0)

/*
 * In a test: a thread of crowd @c running @fn(@arg), or the crowd's other
 * threads stopped (they use the test's stack) and the test failed.
 */
#define CROWD_ADD(c, fn, arg) do {				\
	if (!crowd_add((c), (fn), (arg))) {			\
		crowd_stop(c);					\
		ASSERT_TRUE(false) TH_LOG("no thread for %s", #fn);	\
	}							\
} while (0)
#endif

#endif /* RMTTY_RACE_H */
