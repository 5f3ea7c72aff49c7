// SPDX-License-Identifier: GPL-2.0
/*
 * Races on the pool and between the front doors, several threads for a few
 * seconds each: creates racing for the last units, aggregation changes
 * racing each other, one device opened through both front doors at once.
 * Every outcome must be success or an errno README names for the
 * situation, the pool's accounting must come out whole, and the kernel log
 * must hold no splat.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "rmtty_race.h"
#include "rmtty_vfio.h"

FIXTURE(pool) {
	unsigned int units, unit_mib;
	int kmsg;
	struct crowd crowd;
};

FIXTURE_SETUP(pool)
{
	rmtty_setup_watched(_metadata, &race_pool, &self->units, &self->unit_mib, &self->kmsg);
	rmtty_vfio_quiet = true;
}

FIXTURE_TEARDOWN(pool)
{
	rmtty_teardown_watched(_metadata, self->kmsg);
}

/* A creator: devices of rmtty-@type until the pool refuses one. */
struct creator {
	struct crowd *crowd;
	struct tally *tally;
	unsigned int type, first;	/* UUIDs from @first on */
	unsigned int made;		/* how many it created */
	int last;			/* its last create's result */
	long free_after;		/* free units read right after a refusal */
};

static void *create_until_refused(void *arg)
{
	struct creator *c = arg;
	char uuid[UUID_LEN + 1];

	crowd_wait(c->crowd);
	do {
		rmtty_uuid(uuid, c->first + c->made);
		c->last = rmtty_create(c->type, uuid);
		count(c->tally, c->last);
	} while (!c->last && ++c->made < 16);
	/* At most as many as were free at the refusal: free units only shrink. */
	c->free_after = free_units();
	return NULL;
}

/*
 * Creators of rmtty-1, -2 and -4 racing for the pool: the units they got
 * and the free ones add up to the pool, and a type refused is one the free
 * units cannot hold (read right after the refusal: free units only shrink
 * while they race, so a refusal with enough units free shows).
 */
TEST_F_TIMEOUT(pool, creates_race_for_the_last_units, 300)
{
	static const unsigned int types[] = { 1, 2, 4, 1 };
	struct tally tally = { "create" };
	struct creator c[4];
	char uuid[UUID_LEN + 1];
	unsigned int round, i, k, used;
	struct timespec t0;
	long free;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (round = 0; round < 3 || since(&t0) < race_seconds(); round++) {
		for (i = 0; i < 4; i++) {
			c[i] = (struct creator){ &self->crowd, &tally, types[i], 0x1000 + 16 * i };
			CROWD_ADD(&self->crowd, create_until_refused, &c[i]);
		}
		crowd_go(&self->crowd);
		crowd_stop(&self->crowd);
		free = free_units();
		for (used = 0, i = 0; i < 4; i++)
			used += c[i].made * c[i].type;
		EXPECT_EQ(self->units, used + free)
			TH_LOG("round %u: %u units in devices, %ld free", round, used, free);
		for (i = 0; i < 4; i++) {
			EXPECT_EQ(-ENOSPC, c[i].last);
			EXPECT_LT(c[i].free_after, c[i].type)
				TH_LOG("round %u: rmtty-%u refused, then %ld units free", round,
				       c[i].type, c[i].free_after);
			for (k = 0; k < c[i].made; k++) {
				rmtty_uuid(uuid, c[i].first + k);
				EXPECT_EQ(0, rmtty_remove(uuid));
			}
		}
		EXPECT_EQ(self->units, free_units());
	}
	TH_LOG("%u rounds", round);
	EXPECT_ONLY(&tally, ENOSPC);
}

/*
 * Three threads changing the aggregation of three devices at random: the
 * free units never read out of range, and at the end the devices' units and
 * the free ones add up to the pool.
 */
TEST_F_TIMEOUT(pool, aggregation_changes_race, 300)
{
	struct tally tally = { "aggregated_instances write" };
	char uuids[3][UUID_LEN + 1];
	struct aggregator a[3];
	unsigned int i;
	long used = 0;

	for (i = 0; i < 3; i++) {
		rmtty_uuid(uuids[i], 0x2000 + i);
		ASSERT_EQ(0, rmtty_create(1, uuids[i]));
		a[i] = (struct aggregator){ &self->crowd, &tally, uuids, 3,
					    rmtty_type_long(1, "aggregation"), i, self->units };
	}
	for (i = 0; i < 3; i++)
		CROWD_ADD(&self->crowd, aggregate, &a[i]);
	crowd_go(&self->crowd);
	pause_ms(race_seconds() * 1000);
	crowd_stop(&self->crowd);
	for (i = 0; i < 3; i++) {
		EXPECT_EQ(0, a[i].wrong);
		used += rmtty_device_long(uuids[i], "mdev/aggregated_instances");
	}
	EXPECT_EQ(self->units, used + free_units());
	for (i = 0; i < 3; i++)
		EXPECT_EQ(0, rmtty_remove(uuids[i]));
	EXPECT_EQ(self->units, free_units());
	/* Every value was in range: the only refusal is the pool's. */
	EXPECT_ONLY(&tally, ENOSPC);
	EXPECT_LT(0, tally.n[0]);
	EXPECT_LT(0, tally.n[ENOSPC]);
}

/* An opener through one front door, counting who holds the device. */
struct door_opener {
	struct crowd *crowd;
	const char *uuid;
	bool cdev;
	int *holders;
	struct tally tally;
	unsigned long together;	/* opens that found the other door holding it */
};

static void *open_through_a_door(void *arg)
{
	struct door_opener *o = arg;
	struct rmtty_vfio v;
	int ret;

	crowd_wait(o->crowd);
	while (running(o->crowd)) {
		ret = rmtty_vfio_open(&v, o->uuid, o->cdev);
		count(&o->tally, ret);
		if (!ret) {
			if (__atomic_add_fetch(o->holders, 1, __ATOMIC_ACQ_REL) > 1)
				o->together++;
			pause_ms(1);
			__atomic_sub_fetch(o->holders, 1, __ATOMIC_ACQ_REL);
		}
		rmtty_vfio_close(&v);
		/* Room for the other door, whose open takes longer, to win too. */
		pause_ms(1);
	}
	return NULL;
}

/*
 * One device opened through both front doors at once, over and over: the
 * VFIO core lets one door hold it at a time and refuses the other with
 * EBUSY; each door wins now and then.
 */
TEST_F_TIMEOUT(pool, both_front_doors_at_once, 300)
{
	int holders = 0;
	struct door_opener o[2] = {
		{ &self->crowd, .cdev = false, .holders = &holders, .tally = { "group open" } },
		{ &self->crowd, .cdev = true, .holders = &holders, .tally = { "cdev open" } },
	};
	char uuid[UUID_LEN + 1];
	unsigned int i;

	rmtty_uuid(uuid, 0x7000);
	ASSERT_EQ(0, rmtty_create(1, uuid));
	for (i = 0; i < 2; i++) {
		o[i].uuid = uuid;
		CROWD_ADD(&self->crowd, open_through_a_door, &o[i]);
	}
	crowd_go(&self->crowd);
	pause_ms(race_seconds() * 1000);
	crowd_stop(&self->crowd);
	for (i = 0; i < 2; i++) {
		EXPECT_EQ(0, o[i].together);
		EXPECT_ONLY(&o[i].tally, EBUSY);
		EXPECT_LT(0, o[i].tally.n[0]);
	}
	EXPECT_EQ(0, rmtty_remove(uuid));
}

TEST_HARNESS_MAIN
