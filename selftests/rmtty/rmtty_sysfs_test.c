// SPDX-License-Identifier: GPL-2.0
/*
 * rmtty sysfs tests: the parent, its types, device creation and removal,
 * aggregation, and the units every step takes or returns, for several pool
 * configurations.
 */
#include <dirent.h>
#include <errno.h>
#include <linux/netlink.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "rmtty_util.h"

FIXTURE(rmtty) {
	unsigned int units;	/* pool size */
	unsigned int unit_mib;
	unsigned int free;	/* what the test expects to be free */
	unsigned int next_uuid;
};

FIXTURE_VARIANT(rmtty) {
	struct rmtty_params p;
};

FIXTURE_VARIANT_ADD(rmtty, defaults) { .p = { 0, 0 } };
FIXTURE_VARIANT_ADD(rmtty, three_units) { .p = { .units = 3, .unit_mib = 2 } };
FIXTURE_VARIANT_ADD(rmtty, seven_units) { .p = { .units = 7, .unit_mib = 8 } };
FIXTURE_VARIANT_ADD(rmtty, big_pool) { .p = { .units = 256, .unit_mib = 4 } };

FIXTURE_SETUP(rmtty)
{
	rmtty_require_reload(_metadata, &variant->p, &self->units, &self->unit_mib);
	self->free = self->units;
}

FIXTURE_TEARDOWN(rmtty)
{
	rmtty_expect_cleanup(_metadata);
}

/* Every type's available_instances is what the free units allow. */
static void check_accounting(struct __test_metadata *_metadata,
			     FIXTURE_DATA(rmtty) *self)
{
	unsigned int i;

	for (i = 0; i < RMTTY_NR_TYPES; i++) {
		unsigned int n = rmtty_type_units[i];

		ASSERT_EQ(self->free / n, rmtty_type_long(n, "available_instances"))
			TH_LOG("rmtty-%u with %u of %u units free", n, self->free, self->units);
	}
}

/* Create a device of rmtty-@n, expecting success; returns its UUID in @uuid. */
static void create(struct __test_metadata *_metadata, FIXTURE_DATA(rmtty) *self,
		   unsigned int n, char uuid[UUID_LEN + 1])
{
	rmtty_uuid(uuid, self->next_uuid++);
	ASSERT_EQ(0, rmtty_create(n, uuid));
	ASSERT_TRUE(rmtty_device_exists(uuid));
	self->free -= n;
	check_accounting(_metadata, self);
}

static void remove_device(struct __test_metadata *_metadata, FIXTURE_DATA(rmtty) *self,
			  const char *uuid, unsigned int units)
{
	ASSERT_EQ(0, rmtty_remove(uuid));
	ASSERT_FALSE(rmtty_device_exists(uuid));
	self->free += units;
	check_accounting(_metadata, self);
}

TEST_F(rmtty, parent_and_types)
{
	char path[256], buf[256], expect[256];
	unsigned int i, found = 0;
	struct dirent *de;
	DIR *dir;

	ASSERT_EQ(0, access("/sys/class/rmtty/rmtty", F_OK));
	dir = opendir(RMTTY_TYPES);
	ASSERT_NE(NULL, dir);
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		EXPECT_TRUE(!strcmp(de->d_name, "rmtty-1") || !strcmp(de->d_name, "rmtty-2") ||
			    !strcmp(de->d_name, "rmtty-4")) TH_LOG("unexpected type %s", de->d_name);
		found++;
	}
	closedir(dir);
	ASSERT_EQ(RMTTY_NR_TYPES, found);

	for (i = 0; i < RMTTY_NR_TYPES; i++) {
		unsigned int n = rmtty_type_units[i];
		const char *s = n == 1 ? "" : "s";

		rmtty_type_path(path, sizeof(path), n, "name");
		ASSERT_LT(0, sysfs_read(path, buf, sizeof(buf)));
		snprintf(expect, sizeof(expect), "rmtty x%u (%u unit%s)\n", n, n, s);
		EXPECT_STREQ(expect, buf);

		rmtty_type_path(path, sizeof(path), n, "device_api");
		ASSERT_LT(0, sysfs_read(path, buf, sizeof(buf)));
		EXPECT_STREQ("vfio-pci\n", buf);

		rmtty_type_path(path, sizeof(path), n, "description");
		ASSERT_LT(0, sysfs_read(path, buf, sizeof(buf)));
		snprintf(expect, sizeof(expect),
			 "%u unit%s, 1 port, %u MiB device memory, aggregation up to %u\n",
			 n, s, n * self->unit_mib, self->units / n);
		EXPECT_STREQ(expect, buf);

		EXPECT_EQ(self->units / n, rmtty_type_long(n, "aggregation"));

		/* Type attributes are read-only, except create. */
		rmtty_type_path(path, sizeof(path), n, "aggregation");
		EXPECT_EQ(-EACCES, sysfs_write(path, "1"));
	}
	check_accounting(_metadata, self);
}

TEST_F(rmtty, create_and_remove_every_type)
{
	char uuids[RMTTY_NR_TYPES][UUID_LEN + 1], path[256], buf[256];
	bool created[RMTTY_NR_TYPES] = { false };
	unsigned int i;

	for (i = 0; i < RMTTY_NR_TYPES; i++) {
		unsigned int n = rmtty_type_units[i];

		if (self->free < n)
			continue;
		create(_metadata, self, n, uuids[i]);
		created[i] = true;
		rmtty_device_path(path, sizeof(path), uuids[i], "mdev_type/name");
		ASSERT_LT(0, sysfs_read(path, buf, sizeof(buf)));
		EXPECT_EQ(0, strncmp(buf, "rmtty x", 7));
		EXPECT_EQ(1, rmtty_device_long(uuids[i], "mdev/aggregated_instances"));
	}
	/* Remove in creation order; units come back at each step. */
	for (i = 0; i < RMTTY_NR_TYPES; i++) {
		if (created[i])
			remove_device(_metadata, self, uuids[i], rmtty_type_units[i]);
	}
	ASSERT_EQ(self->units, self->free);
}

TEST_F_TIMEOUT(rmtty, exhaust_the_pool, 240)
{
	static char uuids[256][UUID_LEN + 1];
	unsigned int sizes[256], count = 0, i;
	char uuid[UUID_LEN + 1], reason[128];
	int kmsg;

	/* Largest types first, then fill what remains. */
	for (i = RMTTY_NR_TYPES; i-- > 0;) {
		while (self->free >= rmtty_type_units[i]) {
			sizes[count] = rmtty_type_units[i];
			create(_metadata, self, sizes[count], uuids[count]);
			count++;
		}
	}
	ASSERT_EQ(0, self->free);

	kmsg = kmsg_open();
	ASSERT_LE(0, kmsg);
	for (i = 0; i < RMTTY_NR_TYPES; i++) {
		rmtty_uuid(uuid, 9000 + i);
		ASSERT_EQ(-ENOSPC, rmtty_create(rmtty_type_units[i], uuid));
		ASSERT_FALSE(rmtty_device_exists(uuid));
		/* The failed creation is logged once: the driver core's line of the probe. */
		snprintf(reason, sizeof(reason), "%s: probe with driver rmtty failed with error %d",
			 uuid, -ENOSPC);
		expect_logged_once(_metadata, kmsg, uuid, reason);
	}
	close(kmsg);
	check_accounting(_metadata, self);

	while (count--)
		remove_device(_metadata, self, uuids[count], sizes[count]);
	ASSERT_EQ(self->units, self->free);
}

TEST_F(rmtty, malformed_uuids)
{
	static const char *const bad[] = {
		"not-a-uuid",
		"8c1f7a2e-3b4d-4e5f-8a9b-00000000000",	/* 35 characters */
		"8c1f7a2e-3b4d-4e5f-8a9b-00000000000g",
		"8c1f7a2e+3b4d-4e5f-8a9b-000000000001",
		"8c1f7a2e3b4d4e5f8a9b000000000001xxxx",
		"8c1f7a2e-3b4d-4e5f-8a9b-000000000001\n\n",
	};
	unsigned int i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		EXPECT_EQ(-EINVAL, rmtty_create(1, bad[i])) TH_LOG("'%s'", bad[i]);
		check_accounting(_metadata, self);
	}
	ASSERT_EQ(self->units, self->free);
}

TEST_F(rmtty, duplicate_uuid)
{
	char uuid[UUID_LEN + 1], upper[UUID_LEN + 1];
	unsigned int i;

	create(_metadata, self, 1, uuid);
	ASSERT_EQ(-EEXIST, rmtty_create(1, uuid));
	if (self->free >= 2)
		ASSERT_EQ(-EEXIST, rmtty_create(2, uuid));
	/* UUIDs are compared by value: upper case is the same device. */
	for (i = 0; i <= UUID_LEN; i++)
		upper[i] = uuid[i] >= 'a' && uuid[i] <= 'f' ? uuid[i] - 'a' + 'A' : uuid[i];
	ASSERT_EQ(-EEXIST, rmtty_create(1, upper));
	check_accounting(_metadata, self);
	remove_device(_metadata, self, uuid, 1);
}

TEST_F(rmtty, upper_case_uuid_with_newline)
{
	const char *written = "8C1F7A2E-3B4D-4E5F-8A9B-00000000ABCD\n";
	const char *uuid = "8c1f7a2e-3b4d-4e5f-8a9b-00000000abcd";

	ASSERT_EQ(0, rmtty_create(1, written));
	ASSERT_TRUE(rmtty_device_exists(uuid));
	self->free -= 1;
	check_accounting(_metadata, self);
	remove_device(_metadata, self, uuid, 1);
}

TEST_F(rmtty, remove_twice)
{
	char uuid[UUID_LEN + 1], path[256];

	create(_metadata, self, 1, uuid);
	rmtty_device_path(path, sizeof(path), uuid, "remove");
	ASSERT_EQ(-EINVAL, sysfs_write(path, "yes"));
	ASSERT_EQ(0, sysfs_write(path, "0"));	/* zero: nothing to do */
	ASSERT_TRUE(rmtty_device_exists(uuid));
	check_accounting(_metadata, self);
	remove_device(_metadata, self, uuid, 1);
	ASSERT_EQ(-ENOENT, rmtty_remove(uuid));
	check_accounting(_metadata, self);
}

/* Aggregation: each write takes or returns units at once. */
TEST_F_TIMEOUT(rmtty, aggregation, 180)
{
	/* (An empty write never reaches the driver: write(2) returns 0.) */
	static const char *const bad[] = { "0", "-1", "abc", "\n", "1x", "2 ", "0x2", "+2",
					   "99999999999999999999" };
	char uuid[UUID_LEN + 1], path[256], value[32];
	unsigned int i, n, max, taken;

	n = self->units >= 2 ? 2 : 1;
	create(_metadata, self, n, uuid);
	max = self->units / n;
	rmtty_device_path(path, sizeof(path), uuid, "mdev/aggregated_instances");
	ASSERT_EQ(1, rmtty_device_long(uuid, "mdev/aggregated_instances"));
	ASSERT_EQ(1 + self->free / n, rmtty_device_long(uuid, "mdev/max_aggregation"));

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		EXPECT_EQ(-EINVAL, sysfs_write(path, bad[i])) TH_LOG("'%s'", bad[i]);
		EXPECT_EQ(1, rmtty_device_long(uuid, "mdev/aggregated_instances"));
		check_accounting(_metadata, self);
	}
	snprintf(value, sizeof(value), "%u\n", max + 1);
	ASSERT_EQ(-EINVAL, sysfs_write(path, value));
	ASSERT_EQ(0, sysfs_write(path, "1\n"));	/* same value */
	/* Decimal, however many leading zeros (the sysfs fuzzer found 10 digits refused) */
	ASSERT_EQ(0, sysfs_write(path, "00000000000000000001\n"));
	check_accounting(_metadata, self);

	/* Raise to the maximum, one step at a time. */
	for (taken = 1; taken < max; taken++) {
		snprintf(value, sizeof(value), "%u", taken + 1);
		ASSERT_EQ(0, sysfs_write(path, value));
		self->free -= n;
		ASSERT_EQ(taken + 1, rmtty_device_long(uuid, "mdev/aggregated_instances"));
		ASSERT_EQ(max, rmtty_device_long(uuid, "mdev/max_aggregation"));
		check_accounting(_metadata, self);
	}
	/* Lower it back to 1 and remove: everything is returned. */
	ASSERT_EQ(0, sysfs_write(path, "1"));
	self->free += (max - 1) * n;
	check_accounting(_metadata, self);
	snprintf(value, sizeof(value), "%u", max);
	ASSERT_EQ(0, sysfs_write(path, value));
	self->free -= (max - 1) * n;
	check_accounting(_metadata, self);
	remove_device(_metadata, self, uuid, max * n);
	ASSERT_EQ(self->units, self->free);
}

TEST_F(rmtty, aggregation_without_free_units)
{
	char a[UUID_LEN + 1], b[UUID_LEN + 1], path[256], reason[128];
	int kmsg;

	if (self->units < 2)
		SKIP(return, "needs two units");
	create(_metadata, self, 1, a);
	/* Take everything else with rmtty-1 devices aggregated into one. */
	create(_metadata, self, 1, b);
	rmtty_device_path(path, sizeof(path), b, "mdev/aggregated_instances");
	if (self->free) {
		char value[32];

		snprintf(value, sizeof(value), "%u", self->free + 1);
		ASSERT_EQ(0, sysfs_write(path, value));
		self->free = 0;
	}
	check_accounting(_metadata, self);
	ASSERT_EQ(1, rmtty_device_long(a, "mdev/max_aggregation"));

	kmsg = kmsg_open();
	ASSERT_LE(0, kmsg);
	rmtty_device_path(path, sizeof(path), a, "mdev/aggregated_instances");
	ASSERT_EQ(-ENOSPC, sysfs_write(path, "2"));
	snprintf(reason, sizeof(reason),
		 "%s: aggregated_instances: 2 needs 2 units, 1 held and 0 free", a);
	expect_logged_once(_metadata, kmsg, a, reason);
	close(kmsg);
	ASSERT_EQ(1, rmtty_device_long(a, "mdev/aggregated_instances"));
	check_accounting(_metadata, self);

	remove_device(_metadata, self, b, self->units - 1);
	remove_device(_metadata, self, a, 1);
}

/*
 * Write "junk" @n times to @paths (@nr_paths, in turn) as fast as userspace
 * can, expecting EINVAL each time; the lines since @kmsg's last look that
 * contain @needle must be at least one, at most LOG_BURST for each
 * LOG_WINDOW seconds begun, and fewer than the writes.
 */
static void flood(struct __test_metadata *_metadata, int kmsg, const char *const *paths,
		  unsigned int nr_paths, unsigned int n, const char *needle)
{
	struct timespec t0, t1;
	unsigned int i;
	int lines, windows;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < n; i++)
		EXPECT_EQ(-EINVAL, sysfs_write(paths[i % nr_paths], "junk"));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	windows = (t1.tv_sec - t0.tv_sec + 1) / LOG_WINDOW + 1;
	lines = kmsg_count(kmsg, needle);
	EXPECT_LE(1, lines);
	EXPECT_GE(windows * LOG_BURST, lines)
		TH_LOG("%d lines in %ld s", lines, (long)(t1.tv_sec - t0.tv_sec));
	EXPECT_GT((int)n, lines);
}

/*
 * Writes of junk as fast as userspace can make them, to a device's
 * attributes and to a type's: each logs a line, but no more than the rate
 * limit lets through (LOG_BURST lines in LOG_WINDOW seconds, for a device and
 * for the types). The sysfs fuzzer found these lines unlimited.
 */
TEST_F(rmtty, refusals_are_rate_limited)
{
	static const char *const attrs[] = { "mdev/aggregated_instances", "stream_version",
					     "migration_version" };
	char uuid[UUID_LEN + 1], paths[3][256], type[256];
	const char *device_paths[3], *type_path = type;
	unsigned int i;
	int kmsg;

	create(_metadata, self, 1, uuid);
	for (i = 0; i < 3; i++) {
		rmtty_device_path(paths[i], sizeof(paths[i]), uuid, attrs[i]);
		device_paths[i] = paths[i];
	}
	rmtty_type_path(type, sizeof(type), 1, "migration_version");
	kmsg = kmsg_open();
	ASSERT_LE(0, kmsg);
	flood(_metadata, kmsg, device_paths, 3, 5 * LOG_BURST, uuid);
	flood(_metadata, kmsg, &type_path, 1, 5 * LOG_BURST, "rmtty-1: migration_version refused");
	close(kmsg);
	remove_device(_metadata, self, uuid, 1);
}

/* The pool the uevent test loads rmtty with: 8 units, so rmtty-n aggregates 8 / n. */
#define UEVENT_UNITS	8

/*
 * The parent's uevent, from the kernel's netlink group: "change@<devpath>"
 * and NUL-separated KEY=value strings.
 */
static bool is_registered_event(const char *msg, size_t len)
{
	bool change = false, registered = false;
	const char *p;

	for (p = msg; p < msg + len; p += strlen(p) + 1) {
		if (!strncmp(p, "change@", 7) && strlen(p) > 6 &&
		    !strcmp(p + strlen(p) - 6, "/rmtty"))
			change = true;
		else if (!strcmp(p, "MDEV_STATE=registered"))
			registered = true;
	}
	return change && registered;
}

static void *load_with_pool(void *arg)
{
	struct rmtty_params p = { .units = UEVENT_UNITS, .unit_mib = 1 };
	int *ret = arg;

	*ret = rmtty_load(&p);
	return NULL;
}

/*
 * What udev rules and mdevctl's autostart do: act on the parent's
 * MDEV_STATE=registered uevent. The moment a netlink listener receives it,
 * every type already has rmtty's attributes, and they are text attributes
 * like the core's own (stat() gives a page, where a binary attribute gives
 * 0), with the values the pool implies.
 */
TEST(type_attributes_exist_at_the_registered_uevent)
{
	struct sockaddr_nl addr = { .nl_family = AF_NETLINK, .nl_groups = 1 };
	struct timeval timeout = { .tv_sec = 30 };
	int sock, loaded = -EINPROGRESS, rcvbuf = 1 << 20;
	char msg[8192], path[256], buf[256];
	bool seen = false;
	pthread_t loader;
	unsigned int i;
	ssize_t len;

	rmtty_require_ko(_metadata);
	ASSERT_EQ(0, rmtty_cleanup());
	sock = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
	ASSERT_LE(0, sock);
	ASSERT_EQ(0, setsockopt(sock, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)));
	ASSERT_EQ(0, setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)));
	ASSERT_EQ(0, bind(sock, (struct sockaddr *)&addr, sizeof(addr)));
	ASSERT_EQ(0, pthread_create(&loader, NULL, load_with_pool, &loaded));

	while (!seen && (len = recv(sock, msg, sizeof(msg) - 1, 0)) > 0) {
		msg[len] = '\0';
		if (!is_registered_event(msg, len))
			continue;
		seen = true;
		/* Read them before anything else: the module's init may still run. */
		for (i = 0; i < RMTTY_NR_TYPES; i++) {
			unsigned int n = rmtty_type_units[i];
			static const char *const attrs[] = { "aggregation", "migration_version" };
			unsigned int a;

			for (a = 0; a < ARRAY_SIZE(attrs); a++) {
				struct stat st;
				int got;

				rmtty_type_path(path, sizeof(path), n, attrs[a]);
				EXPECT_EQ(0, stat(path, &st)) TH_LOG("%s: %s", path, strerror(errno));
				EXPECT_TRUE(S_ISREG(st.st_mode)) TH_LOG("%s", path);
				EXPECT_EQ(sysconf(_SC_PAGESIZE), st.st_size)
					TH_LOG("%s is not a text attribute", path);
				got = sysfs_read(path, buf, sizeof(buf));
				EXPECT_LT(0, got) TH_LOG("%s", path);
				if (got > 0)
					EXPECT_EQ('\n', buf[got - 1]) TH_LOG("%s: '%s'", path, buf);
			}
			EXPECT_EQ(UEVENT_UNITS / n, rmtty_type_long(n, "aggregation"))
				TH_LOG("rmtty-%u", n);
		}
	}
	ASSERT_EQ(0, pthread_join(loader, NULL));
	close(sock);
	EXPECT_TRUE(seen) TH_LOG("no MDEV_STATE=registered uevent of rmtty within %ld s",
				 (long)timeout.tv_sec);
	EXPECT_EQ(0, loaded) TH_LOG("loading rmtty: %s", strerror(-loaded));
	rmtty_expect_cleanup(_metadata);
}

TEST_HARNESS_MAIN
