// SPDX-License-Identifier: GPL-2.0
/*
 * rmtty's fuzzers, one test each (rmtty_fuzz*.c). Each prints its seed and
 * the cases it ran; after it, every type's available_instances must be back
 * to the whole pool, the kernel log must hold no splat, and rmtty must
 * unload.
 *
 *   RMTTY_FUZZ_SEED=S    the seed (decimal or 0x hex); by default a fixed one,
 *                        so that the suite runs the same cases every time
 *                        (make fuzz draws one from the clock)
 *   RMTTY_FUZZ_CASES=N   cases per fuzzer, 300 by default (make fuzz: 10000)
 *
 * A failing case prints the seed and the number of cases that replay it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "kselftest_harness.h"
#include "rmtty_fuzz.h"
#include "rmtty_util.h"
#include "rmtty_vfio.h"

#define DEFAULT_CASES	300
#define DEFAULT_SEED	0x726d747479ull	/* "rmtty" */

FIXTURE(fuzz) {
	unsigned int units, unit_mib;
	int kmsg;
	struct fuzz_run run;
};

FIXTURE_VARIANT(fuzz) {
	struct rmtty_params p;
};

/* A pool that the largest type fills with an aggregation of 3 and a unit to spare. */
FIXTURE_VARIANT_ADD(fuzz, thirteen_units) { .p = { .units = 13, .unit_mib = 2 } };

static uint64_t env_number(const char *name, uint64_t otherwise)
{
	const char *text = getenv(name);
	char *end;
	uint64_t value;

	if (!text || !*text)
		return otherwise;
	errno = 0;
	value = strtoull(text, &end, 0);
	if (errno || *end) {
		fprintf(stderr, "%s=%s is not a number\n", name, text);
		exit(KSFT_FAIL);
	}
	return value;
}

FIXTURE_SETUP(fuzz)
{
	rmtty_setup_watched(_metadata, &variant->p, &self->units, &self->unit_mib, &self->kmsg);
	self->run.seed = env_number("RMTTY_FUZZ_SEED", DEFAULT_SEED);
	self->run.cases = env_number("RMTTY_FUZZ_CASES", DEFAULT_CASES);
}

FIXTURE_TEARDOWN(fuzz)
{
	unsigned int i, n;

	TH_LOG("%s: seed %#" PRIx64 ", %lu of %lu cases, %lu refused as they should be",
	       self->run.name, self->run.seed, self->run.done, self->run.cases,
	       self->run.refused);
	EXPECT_EQ(0, self->run.failures);
	for (i = 0; i < RMTTY_NR_TYPES; i++) {
		n = rmtty_type_units[i];
		EXPECT_EQ(self->units / n, rmtty_type_long(n, "available_instances"))
			TH_LOG("rmtty-%u: the pool is not whole after the fuzzer", n);
	}
	rmtty_teardown_watched(_metadata, self->kmsg);
}

TEST_F_TIMEOUT(fuzz, sysfs, 1800)
{
	self->run.name = "sysfs";
	sysfs_fuzzer(&self->run, self->units, self->unit_mib);
}

/* A device of rmtty-1 aggregated 3 times: 6 MiB of memory in an 8 MiB BAR2. */
TEST_F_TIMEOUT(fuzz, region, 1800)
{
	char uuid[UUID_LEN + 1], path[256];

	self->run.name = "region";
	rmtty_uuid(uuid, 0x200);
	ASSERT_EQ(0, rmtty_create(1, uuid));
	rmtty_device_path(path, sizeof(path), uuid, "mdev/aggregated_instances");
	ASSERT_EQ(0, sysfs_write(path, "3"));
	region_fuzzer(&self->run, uuid, 3ull * self->unit_mib << 20);
	EXPECT_EQ(0, rmtty_remove(uuid));
}

/* A device of rmtty-2: 4 MiB of memory. */
TEST_F_TIMEOUT(fuzz, state, 1800)
{
	char uuid[UUID_LEN + 1];

	self->run.name = "state";
	rmtty_uuid(uuid, 0x300);
	ASSERT_EQ(0, rmtty_create(2, uuid));
	state_fuzzer(&self->run, uuid, 2ull * self->unit_mib << 20);
	EXPECT_EQ(0, rmtty_remove(uuid));
}

/* A device of rmtty-4: 4 units of memory, in a BAR2 of the next power of two. */
TEST_F_TIMEOUT(fuzz, ioctl, 1800)
{
	char uuid[UUID_LEN + 1];

	self->run.name = "ioctl";
	rmtty_uuid(uuid, 0x400);
	ASSERT_EQ(0, rmtty_create(4, uuid));
	ioctl_fuzzer(&self->run, uuid, bar2_size_for(4ull * self->unit_mib << 20));
	EXPECT_EQ(0, rmtty_remove(uuid));
}

/* Two devices of rmtty-1: 2 MiB of memory each. */
TEST_F_TIMEOUT(fuzz, stream, 1800)
{
	char source[UUID_LEN + 1], target[UUID_LEN + 1];

	self->run.name = "stream";
	rmtty_uuid(source, 0x500);
	rmtty_uuid(target, 0x501);
	ASSERT_EQ(0, rmtty_create(1, source));
	ASSERT_EQ(0, rmtty_create(1, target));
	stream_fuzzer(&self->run, source, target, (size_t)self->unit_mib << 20);
	EXPECT_EQ(0, rmtty_remove(source));
	EXPECT_EQ(0, rmtty_remove(target));
}

/*
 * Fuzzers @a and @b at once on a device of rmtty-1 (2 MiB), through the
 * group (two processes) and then through the cdev (two threads).
 */
static void pair(struct __test_metadata *_metadata, FIXTURE_DATA(fuzz) *self,
		 fuzz_shared_fn *a, fuzz_shared_fn *b, unsigned int n)
{
	uint64_t memory = (uint64_t)self->unit_mib << 20;
	struct fuzz_run group = self->run, cdev = self->run;
	char uuid[UUID_LEN + 1], group_name[64], cdev_name[64];

	snprintf(group_name, sizeof(group_name), "%s through the group", self->run.name);
	snprintf(cdev_name, sizeof(cdev_name), "%s through the cdev", self->run.name);
	group.name = group_name;
	cdev.name = cdev_name;
	rmtty_uuid(uuid, n);
	ASSERT_EQ(0, rmtty_create(1, uuid));
	pair_fuzzer(&group, a, b, uuid, memory, false);
	pair_fuzzer(&cdev, a, b, uuid, memory, true);
	EXPECT_EQ(0, rmtty_remove(uuid));
	/* The teardown's summary: both doors' cases together. */
	self->run.cases = group.cases + cdev.cases;
	self->run.done = group.done + cdev.done;
	self->run.failures = group.failures + cdev.failures;
	self->run.refused = group.refused + cdev.refused;
}

TEST_F_TIMEOUT(fuzz, region_with_ioctl, 1800)
{
	self->run.name = "region and ioctl";
	pair(_metadata, self, region_fuzz_shared, ioctl_fuzz_shared, 0x600);
}

TEST_F_TIMEOUT(fuzz, region_with_state, 1800)
{
	self->run.name = "region and state";
	pair(_metadata, self, region_fuzz_shared, state_fuzz_shared, 0x700);
}

TEST_F_TIMEOUT(fuzz, ioctl_with_state, 1800)
{
	self->run.name = "ioctl and state";
	pair(_metadata, self, ioctl_fuzz_shared, state_fuzz_shared, 0x800);
}

TEST_HARNESS_MAIN
