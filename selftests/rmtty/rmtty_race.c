// SPDX-License-Identifier: GPL-2.0
/* What the race tests share (rmtty_race.h). */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

#include "kselftest.h"
#include "rmtty_race.h"

const struct rmtty_params race_pool = { .units = 13, .unit_mib = 1 };

void count(struct tally *t, int ret)
{
	int err = ret < 0 ? -ret : ret;

	__atomic_add_fetch(&t->n[err < MAX_ERRNO ? err : MAX_ERRNO], 1, __ATOMIC_RELAXED);
}

unsigned int race_seconds(void)
{
	const char *text = getenv("RMTTY_RACE_SECONDS");
	unsigned int seconds = text ? strtoul(text, NULL, 10) : 0;

	return seconds ? seconds : 3;
}

double since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return seconds_between(t0, &t);
}

void pause_ms(unsigned int ms)
{
	struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&t, NULL);
}

void crowd_wait(struct crowd *c)
{
	while (!__atomic_load_n(&c->go, __ATOMIC_ACQUIRE))
		sched_yield();
}

bool running(struct crowd *c)
{
	return !__atomic_load_n(&c->stop, __ATOMIC_RELAXED);
}

bool crowd_add(struct crowd *c, void *(*fn)(void *), void *arg)
{
	if (c->n == ARRAY_SIZE(c->tid) ||
	    pthread_create(&c->tid[c->n], NULL, fn, arg))
		return false;
	c->n++;
	return true;
}

void crowd_go(struct crowd *c)
{
	__atomic_store_n(&c->go, true, __ATOMIC_RELEASE);
}

void crowd_stop(struct crowd *c)
{
	__atomic_store_n(&c->stop, true, __ATOMIC_RELAXED);
	crowd_go(c);
	while (c->n)
		pthread_join(c->tid[--c->n], NULL);
	c->go = false;
	c->stop = false;
}

long free_units(void)
{
	return rmtty_type_long(1, "available_instances");
}

int set_aggregation(const char *uuid, unsigned int aggregation)
{
	char path[256], value[16];

	rmtty_device_path(path, sizeof(path), uuid, "mdev/aggregated_instances");
	snprintf(value, sizeof(value), "%u", aggregation);
	return sysfs_write(path, value);
}

void *aggregate(void *arg)
{
	struct aggregator *a = arg;
	long free;

	crowd_wait(a->crowd);
	while (running(a->crowd)) {
		count(a->tally, set_aggregation(a->uuids[rand_r(&a->seed) % a->devices],
						1 + rand_r(&a->seed) % a->max));
		free = free_units();
		if (free < 0 || free > a->units)
			a->wrong++;
	}
	return NULL;
}
