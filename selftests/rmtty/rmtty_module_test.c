// SPDX-License-Identifier: GPL-2.0
/*
 * rmtty module tests: parameter validation, unloading with devices present,
 * and repeated load/unload without leaks.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "rmtty_util.h"

#define KMEMLEAK "/sys/kernel/debug/kmemleak"

/* Start with rmtty.ko at hand and not loaded. */
static void require_module(struct __test_metadata *_metadata)
{
	int ret;

	rmtty_require_ko(_metadata);
	ret = rmtty_cleanup();
	ASSERT_EQ(0, ret) TH_LOG("unloading rmtty: %s", strerror(-ret));
	ASSERT_FALSE(rmtty_loaded());
}

/* Parameters insmod must refuse, and what the one log line names. */
FIXTURE(bad_params) {
	int kmsg;
};

FIXTURE_VARIANT(bad_params) {
	const char *args;
	const char *logged;
};

/* insmod arguments, and what the log line says */
FIXTURE_VARIANT_ADD(bad_params, units_zero) { "units=0", "units=0 is out of range" };
FIXTURE_VARIANT_ADD(bad_params, units_too_many) { "units=257", "units=257 is out of range" };
FIXTURE_VARIANT_ADD(bad_params, unit_mib_zero) { "unit_mib=0", "unit_mib=0 is out of range" };
FIXTURE_VARIANT_ADD(bad_params, unit_mib_too_big) { "unit_mib=65", "unit_mib=65 is out of range" };
FIXTURE_VARIANT_ADD(bad_params, pool_over_1gib) { "units=256 unit_mib=5", "exceeds 1024 MiB" };
FIXTURE_VARIANT_ADD(bad_params, units_not_a_number) { "units=many", "invalid for parameter" };
FIXTURE_VARIANT_ADD(bad_params, units_negative) { "units=-1", "invalid for parameter" };

FIXTURE_SETUP(bad_params)
{
	require_module(_metadata);
	self->kmsg = kmsg_open();
	ASSERT_LE(0, self->kmsg);
}

FIXTURE_TEARDOWN(bad_params)
{
	rmtty_expect_cleanup(_metadata);
	if (self->kmsg >= 0)
		close(self->kmsg);
}

TEST_F(bad_params, refused)
{
	ASSERT_EQ(-EINVAL, rmtty_load_args(variant->args));
	ASSERT_FALSE(rmtty_loaded());
	ASSERT_NE(0, access(RMTTY_PARENT, F_OK));
	ASSERT_NE(0, access("/sys/class/rmtty", F_OK));
	/* One line, and it says why; each time. */
	expect_logged_once(_metadata, self->kmsg, "rmtty", variant->logged);
	ASSERT_EQ(-EINVAL, rmtty_load_args(variant->args));
	ASSERT_EQ(1, kmsg_count(self->kmsg, variant->logged));
}

/* The edges of the valid ranges load, and the types follow the pool. */
FIXTURE(good_params) {
};

FIXTURE_VARIANT(good_params) {
	struct rmtty_params p;
};

FIXTURE_VARIANT_ADD(good_params, smallest) { .p = { .units = 1, .unit_mib = 1 } };
FIXTURE_VARIANT_ADD(good_params, most_units) { .p = { .units = 256, .unit_mib = 4 } };
FIXTURE_VARIANT_ADD(good_params, biggest_units) { .p = { .units = 16, .unit_mib = 64 } };
FIXTURE_VARIANT_ADD(good_params, one_big_unit) { .p = { .units = 1, .unit_mib = 64 } };

FIXTURE_SETUP(good_params)
{
	require_module(_metadata);
}

FIXTURE_TEARDOWN(good_params)
{
	rmtty_expect_cleanup(_metadata);
}

TEST_F(good_params, loads)
{
	unsigned int units = variant->p.units, i;

	ASSERT_EQ(0, rmtty_load(&variant->p));
	for (i = 0; i < RMTTY_NR_TYPES; i++) {
		unsigned int n = rmtty_type_units[i];

		EXPECT_EQ(units / n, rmtty_type_long(n, "available_instances"));
		EXPECT_EQ(units / n, rmtty_type_long(n, "aggregation"));
	}
	ASSERT_EQ(0, rmtty_unload());
	ASSERT_NE(0, access(RMTTY_PARENT, F_OK));
}

TEST(defaults)
{
	require_module(_metadata);
	ASSERT_EQ(0, rmtty_load(NULL));
	EXPECT_EQ(16, rmtty_type_long(1, "available_instances"));
	EXPECT_EQ(16, rmtty_type_long(1, "aggregation"));
	EXPECT_EQ(4, rmtty_type_long(4, "aggregation"));
	EXPECT_EQ(0, access("/sys/class/rmtty/rmtty", F_OK));
	ASSERT_EQ(0, rmtty_unload());
	EXPECT_NE(0, access("/sys/class/rmtty", F_OK));
	EXPECT_EQ(-ENOENT, rmtty_unload());
}

/* Create one device of each type, one of them aggregated. */
static void create_set(struct __test_metadata *_metadata, unsigned int base)
{
	char uuid[UUID_LEN + 1], path[256];
	unsigned int i;

	for (i = 0; i < RMTTY_NR_TYPES; i++) {
		rmtty_uuid(uuid, base + i);
		ASSERT_EQ(0, rmtty_create(rmtty_type_units[i], uuid));
	}
	rmtty_device_path(path, sizeof(path), uuid, "mdev/aggregated_instances");
	ASSERT_EQ(0, sysfs_write(path, "2"));
}

TEST(unload_with_devices)
{
	char uuid[UUID_LEN + 1];
	unsigned int i;

	require_module(_metadata);
	ASSERT_EQ(0, rmtty_load(NULL));
	create_set(_metadata, 0);
	/* 1 + 2 + 4 x 2 units taken */
	ASSERT_EQ(5, rmtty_type_long(1, "available_instances"));

	ASSERT_EQ(0, rmtty_unload());
	for (i = 0; i < RMTTY_NR_TYPES; i++) {
		rmtty_uuid(uuid, i);
		EXPECT_FALSE(rmtty_device_exists(uuid));
	}
	ASSERT_EQ(0, rmtty_load(NULL));
	ASSERT_EQ(16, rmtty_type_long(1, "available_instances"));
	/* The same UUIDs are free again. */
	create_set(_metadata, 0);
	ASSERT_EQ(0, rmtty_unload());
}

static int kmemleak_write(const char *cmd)
{
	return sysfs_write(KMEMLEAK, cmd);
}

/*
 * The leak reports of objects that process @pid allocated (kmemleak names
 * the allocating task), copied into @out (@size bytes); their number, or
 * -errno. The report lists the oldest objects first: it is read whole.
 */
static int kmemleak_reports(char *out, size_t size, pid_t pid)
{
	static char report[1 << 20];
	char *rec, *next, ours[32];
	size_t len = 0, used = 0;
	int fd, count = 0;
	ssize_t n;

	fd = open(KMEMLEAK, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while ((n = read(fd, report + len, sizeof(report) - 1 - len)) > 0)
		len += n;
	close(fd);
	if (n < 0)
		return -errno;
	if (len == sizeof(report) - 1)
		return -EFBIG;
	report[len] = '\0';
	snprintf(ours, sizeof(ours), ", pid %d,", pid);
	out[0] = '\0';
	for (rec = strstr(report, "unreferenced object"); rec; rec = next) {
		next = strstr(rec + 1, "unreferenced object");
		if (next)
			next[-1] = '\0';
		if (strstr(rec, ours)) {
			count++;
			used += snprintf(out + used, size - used, "%s\n", rec);
			if (used >= size)
				used = size - 1;
		}
	}
	return count;
}

FIXTURE(reload) {
};

FIXTURE_SETUP(reload)
{
	require_module(_metadata);
}

FIXTURE_TEARDOWN(reload)
{
	rmtty_expect_cleanup(_metadata);
}

TEST_F_TIMEOUT(reload, twenty_times_without_leaks, 300)
{
	static char report[1 << 16];
	struct timespec unloaded, now;
	unsigned int round;

	if (access(KMEMLEAK, F_OK))
		mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL);
	ASSERT_EQ(0, access(KMEMLEAK, F_OK)) TH_LOG("kmemleak is not available");
	/*
	 * The loads, creates, removes and unloads all run in this process,
	 * so a leak of theirs is an object this process allocated: what
	 * earlier tests and the boot leaked is not counted, and stays for
	 * the scan after the whole suite (no "clear"). What a kworker or
	 * an interrupt allocated on their behalf is left to that scan too.
	 */
	for (round = 0; round < 20; round++) {
		ASSERT_EQ(0, rmtty_load(NULL));
		create_set(_metadata, round * 8);
		ASSERT_EQ(0, rmtty_unload());
	}
	ASSERT_FALSE(rmtty_loaded());

	/*
	 * kmemleak reports an unreferenced object in a scan that starts once
	 * the object is older than its minimum age (5 s), and whose contents
	 * did not change since the scan before: the first scan records them
	 * (it takes about 15 s here), the second, 6 s at least after the last
	 * unload, reports.
	 */
	clock_gettime(CLOCK_MONOTONIC, &unloaded);
	ASSERT_EQ(0, kmemleak_write("scan"));
	do
		clock_gettime(CLOCK_MONOTONIC, &now);
	while (seconds_between(&unloaded, &now) < 6 && !usleep(100000));
	ASSERT_EQ(0, kmemleak_write("scan"));
	ASSERT_EQ(0, kmemleak_reports(report, sizeof(report), getpid())) TH_LOG("%s", report);
}

TEST_HARNESS_MAIN
