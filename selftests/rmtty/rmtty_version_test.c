// SPDX-License-Identifier: GPL-2.0
/*
 * rmtty migration_version tests: the strings of type and device nodes, the
 * verdicts of writes to both, and refusals that change nothing and log one
 * line each, within the rate limits of the types and of each device.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "rmtty_util.h"

/* The reasons the driver logs for a malformed string */
#define NOT_RMTTY	"not an rmtty device"
#define NOT_ASCII	"not printable ASCII"
#define BAD_VERSION	"malformed: version is not <major>.<minor>"
#define BAD_VALUE	"malformed: value is not a number from 1 to 999999999"

/* Strings every node refuses, whatever its shape, and why. */
static const struct {
	const char *s, *reason;
} malformed[] = {
	{ "\n", NOT_RMTTY },
	{ "mtty 1.0 ports=1 memory_mib=4 unit_mib=1", NOT_RMTTY },
	{ "rmtty 2.0 ports=1 memory_mib=4 unit_mib=1",
	  "stream major version 2, this driver reads 1" },
	{ "rmtty 0.9 ports=1 memory_mib=4 unit_mib=1",
	  "stream major version 0, this driver reads 1" },
	{ "rmtty 1.2 ports=1 memory_mib=4 unit_mib=1", "stream minor version 2 is newer than 1.1" },
	{ "rmtty 1 ports=1 memory_mib=4 unit_mib=1", BAD_VERSION },
	{ "rmtty 1. ports=1 memory_mib=4 unit_mib=1", BAD_VERSION },
	{ "rmtty +1.0 ports=1 memory_mib=4 unit_mib=1", BAD_VERSION },
	{ "rmtty 1.0 ports=1 memory_mib=4x unit_mib=1", BAD_VALUE },
	{ "rmtty 1.0 ports=1 memory_mib=0 unit_mib=1", BAD_VALUE },
	{ "rmtty 1.0 ports=1 memory_mib=-4 unit_mib=1", BAD_VALUE },
	{ "rmtty 1.0 ports=1 memory_mib=4000000000 unit_mib=1", BAD_VALUE },
	{ "rmtty 1.0 ports=1 memory_mib=4",
	  "malformed: ports, memory_mib and unit_mib are required" },
	{ "rmtty 1.0 ports=1 memory_mib=4 memory_mib=4 unit_mib=1", "malformed: repeated key" },
	{ "rmtty 1.0 ports=1 memory_mib=4 unit_mib=1 colour=blue", "malformed: unknown key" },
	{ "rmtty 1.0 ports=1  memory_mib=4 unit_mib=1", "malformed: expected key=value" },
	{ " rmtty 1.0 ports=1 memory_mib=4 unit_mib=1", NOT_RMTTY },
	{ "rmtty 1.0 ports=1 memory_mib=4 unit_mib=1\n\n", NOT_ASCII },
	{ "rmtty 1.0 ports=1 memory_mib=\xc3\xa9 unit_mib=1", NOT_ASCII },
	{ "rmtty 1.0 ports=1 memory_mib=4 unit_mib=1\t", NOT_ASCII },
	{ "RMTTY 1.0 PORTS=1 MEMORY_MIB=4 UNIT_MIB=1", NOT_RMTTY },
};

FIXTURE(version) {
	unsigned int units, unit_mib;
	int kmsg;
	/*
	 * The refusals the types' rate limit and the devices' still log
	 * (the test's devices count as one: fewer lines are then required).
	 */
	unsigned int type_budget, device_budget;
};

FIXTURE_VARIANT(version) {
	struct rmtty_params p;
};

FIXTURE_VARIANT_ADD(version, defaults) { .p = { 0, 0 } };
FIXTURE_VARIANT_ADD(version, two_mib_units) { .p = { .units = 16, .unit_mib = 2 } };

FIXTURE_SETUP(version)
{
	rmtty_require_reload(_metadata, &variant->p, &self->units, &self->unit_mib);
	self->kmsg = kmsg_open();
	ASSERT_LE(0, self->kmsg);
	self->type_budget = LOG_BURST;
	self->device_budget = LOG_BURST;
}

FIXTURE_TEARDOWN(version)
{
	rmtty_expect_cleanup(_metadata);
	if (self->kmsg >= 0)
		close(self->kmsg);
}

static void device_string(char *buf, size_t size, unsigned int memory_mib,
			  unsigned int unit_mib)
{
	snprintf(buf, size, "rmtty 1.1 ports=1 memory_mib=%u unit_mib=%u\n", memory_mib, unit_mib);
}

static void read_attr(struct __test_metadata *_metadata, const char *path, char *buf,
		      size_t size)
{
	ASSERT_LT(0, sysfs_read(path, buf, size)) TH_LOG("%s", path);
}

/* What every refusal's log line contains */
#define REFUSED		"migration_version refused"
/* The reason a device logs for a string of another shape: ports and MiB, then its own */
#define SHAPE_DIFFERS	"shape ports=%u memory_mib=%u differs from this device's ports=1 memory_mib=%u"
/* The reason logged for a string longer than the 1024 bytes a node reads */
#define TOO_LONG	"%zu bytes, more than 1024"

/* Write @s to @path expecting it to be accepted, and nothing logged. */
static void accepted(struct __test_metadata *_metadata, int kmsg, const char *path,
		     const char *s)
{
	EXPECT_EQ(0, sysfs_write(path, s)) TH_LOG("'%s' to %s", s, path);
	EXPECT_EQ(0, kmsg_count(kmsg, REFUSED)) TH_LOG("'%s' to %s", s, path);
}

/*
 * Write @s to @path expecting it to be refused, and one line logged that
 * names the node (the directory of @path: the device's UUID or the type) and
 * the reason @fmt says, as long as the node's rate limit lets it log.
 */
static void __printf(5, 6)
refused(struct __test_metadata *_metadata, FIXTURE_DATA(version) *self, const char *path,
	const char *s, const char *fmt, ...)
{
	unsigned int *budget = strstr(path, "mdev_supported_types") ? &self->type_budget :
				&self->device_budget;
	const char *attr = strrchr(path, '/'), *node = attr;
	char reason[512];
	va_list args;
	int len;

	while (node > path && node[-1] != '/')
		node--;
	len = snprintf(reason, sizeof(reason), "%.*s: " REFUSED ": ", (int)(attr - node), node);
	va_start(args, fmt);
	vsnprintf(reason + len, sizeof(reason) - len, fmt, args);
	va_end(args);

	EXPECT_EQ(-EINVAL, sysfs_write(path, s)) TH_LOG("'%s' to %s", s, path);
	expect_logged_within(_metadata, self->kmsg, REFUSED, reason, budget);
}

TEST_F(version, type_strings)
{
	char path[256], buf[256], expect[256];
	unsigned int i;

	for (i = 0; i < RMTTY_NR_TYPES; i++) {
		unsigned int n = rmtty_type_units[i];

		rmtty_type_path(path, sizeof(path), n, "migration_version");
		read_attr(_metadata, path, buf, sizeof(buf));
		snprintf(expect, sizeof(expect),
			 "rmtty 1.1 ports=1 memory_mib=%u unit_mib=%u max_aggregation=%u\n",
			 n * self->unit_mib, self->unit_mib, self->units / n);
		EXPECT_STREQ(expect, buf);
	}
}

/* rmtty-1 x4, rmtty-2 x2 and rmtty-4 have one shape and one string. */
TEST_F(version, aggregated_devices_match_bigger_types)
{
	char one[UUID_LEN + 1], two[UUID_LEN + 1], four[UUID_LEN + 1];
	char path[256], s1[256], s2[256], s4[256], expect[256];

	rmtty_uuid(one, 1);
	rmtty_uuid(two, 2);
	rmtty_uuid(four, 4);
	ASSERT_EQ(0, rmtty_create(1, one));
	ASSERT_EQ(0, rmtty_create(2, two));
	ASSERT_EQ(0, rmtty_create(4, four));

	rmtty_device_path(path, sizeof(path), four, "migration_version");
	read_attr(_metadata, path, s4, sizeof(s4));
	device_string(expect, sizeof(expect), 4 * self->unit_mib, self->unit_mib);
	ASSERT_STREQ(expect, s4);

	/* Not yet: rmtty-2 x1 is not an rmtty-4 */
	rmtty_device_path(path, sizeof(path), two, "migration_version");
	refused(_metadata, self, path, s4, SHAPE_DIFFERS, 1, 4 * self->unit_mib,
		2 * self->unit_mib);
	read_attr(_metadata, path, s2, sizeof(s2));
	accepted(_metadata, self->kmsg, path, s2);

	rmtty_device_path(path, sizeof(path), one, "mdev/aggregated_instances");
	ASSERT_EQ(0, sysfs_write(path, "4"));
	rmtty_device_path(path, sizeof(path), two, "mdev/aggregated_instances");
	ASSERT_EQ(0, sysfs_write(path, "2"));

	rmtty_device_path(path, sizeof(path), one, "migration_version");
	read_attr(_metadata, path, s1, sizeof(s1));
	EXPECT_STREQ(s4, s1);
	accepted(_metadata, self->kmsg, path, s4);
	rmtty_device_path(path, sizeof(path), two, "migration_version");
	read_attr(_metadata, path, s2, sizeof(s2));
	EXPECT_STREQ(s4, s2);
	accepted(_metadata, self->kmsg, path, s1);
	rmtty_device_path(path, sizeof(path), four, "migration_version");
	accepted(_metadata, self->kmsg, path, s2);

	/* Without the newline, and from a source of another unit size. */
	s4[strlen(s4) - 1] = '\0';
	accepted(_metadata, self->kmsg, path, s4);
	device_string(expect, sizeof(expect), 4 * self->unit_mib, self->unit_mib * 2);
	accepted(_metadata, self->kmsg, path, expect);
	/* A type node's string carries an ignored max_aggregation. */
	snprintf(expect, sizeof(expect),
		 "rmtty 1.0 ports=1 memory_mib=%u unit_mib=1 max_aggregation=1\n",
		 4 * self->unit_mib);
	accepted(_metadata, self->kmsg, path, expect);
	/* Other shapes are refused. */
	device_string(expect, sizeof(expect), 4 * self->unit_mib + 1, self->unit_mib);
	refused(_metadata, self, path, expect, SHAPE_DIFFERS, 1, 4 * self->unit_mib + 1,
		4 * self->unit_mib);
	snprintf(expect, sizeof(expect), "rmtty 1.0 ports=2 memory_mib=%u unit_mib=%u",
		 4 * self->unit_mib, self->unit_mib);
	refused(_metadata, self, path, expect, SHAPE_DIFFERS, 2, 4 * self->unit_mib,
		4 * self->unit_mib);
}

TEST_F(version, type_node_verdicts)
{
	char path[256], s[256];
	unsigned int i, a, m;

	for (i = 0; i < RMTTY_NR_TYPES; i++) {
		unsigned int n = rmtty_type_units[i], max = self->units / n;

		rmtty_type_path(path, sizeof(path), n, "migration_version");
		/* Every shape from 1 unit to one more than the pool */
		for (m = 1; m <= self->units + 1; m++) {
			a = m / n;
			device_string(s, sizeof(s), m * self->unit_mib, self->unit_mib);
			if (m % n == 0 && a >= 1 && a <= max)
				accepted(_metadata, self->kmsg, path, s);
			else
				refused(_metadata, self, path, s,
					"no aggregation 1..=%u of ports=1 memory_mib=%u gives ports=1 memory_mib=%u",
					max, n * self->unit_mib, m * self->unit_mib);
		}
	}
}

TEST_F(version, refusals_change_nothing)
{
	char uuid[UUID_LEN + 1], dev[256], type[256], before[256], after[256];
	static char overlong[2000];
	unsigned int i;

	rmtty_uuid(uuid, 7);
	ASSERT_EQ(0, rmtty_create(2, uuid));
	rmtty_device_path(dev, sizeof(dev), uuid, "migration_version");
	rmtty_type_path(type, sizeof(type), 2, "migration_version");
	read_attr(_metadata, dev, before, sizeof(before));

	for (i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
		refused(_metadata, self, dev, malformed[i].s, "%s", malformed[i].reason);
		refused(_metadata, self, type, malformed[i].s, "%s", malformed[i].reason);
	}
	/* Longer than 1024 bytes: a valid string padded with spaces */
	memset(overlong, ' ', sizeof(overlong) - 1);
	memcpy(overlong, before, strlen(before) - 1);
	refused(_metadata, self, dev, overlong, TOO_LONG, strlen(overlong));
	refused(_metadata, self, type, overlong, TOO_LONG, strlen(overlong));

	read_attr(_metadata, dev, after, sizeof(after));
	EXPECT_STREQ(before, after);
	EXPECT_EQ(1, rmtty_device_long(uuid, "mdev/aggregated_instances"));
	EXPECT_EQ((self->units - 2) / 2, rmtty_type_long(2, "available_instances"));
}

/* The reason a device logs for a stream_version it does not take */
#define NOT_A_VERSION	"is not a stream version this driver writes (1.0, 1.1)"

/* stream_version: 1.1 by default, 1.0 or 1.1 written, anything else refused. */
TEST_F(version, stream_version_attribute)
{
	static const char *const bad[] = {
		"\n", "1", "1.", "1.2", "1.00", "01.0", "2.0", "0.9", " 1.0", "1.0 ", "1.0\n\n",
		"v1.0", "1.1x", "rmtty 1.0", "1,0", "-1.0",
	};
	char uuid[UUID_LEN + 1], path[256], about[128], reason[128], buf[64];
	static char overlong[2000];
	unsigned int i;

	rmtty_uuid(uuid, 9);
	ASSERT_EQ(0, rmtty_create(1, uuid));
	rmtty_device_path(path, sizeof(path), uuid, "stream_version");
	snprintf(about, sizeof(about), "%s: stream_version: ", uuid);
	read_attr(_metadata, path, buf, sizeof(buf));
	EXPECT_STREQ("1.1\n", buf);

	/* The log line shows the value's first 16 bytes */
	memset(overlong, '1', sizeof(overlong) - 1);
	EXPECT_EQ(-EINVAL, sysfs_write(path, overlong));
	expect_logged_within(_metadata, self->kmsg, about, "\"1111111111111111\"... " NOT_A_VERSION,
			     &self->device_budget);
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		EXPECT_EQ(-EINVAL, sysfs_write(path, bad[i])) TH_LOG("'%s'", bad[i]);
		/* The value as it was written, less one trailing newline */
		if (!strchr(bad[i], '\n'))
			snprintf(reason, sizeof(reason), "\"%s\" " NOT_A_VERSION, bad[i]);
		else
			snprintf(reason, sizeof(reason), "%s", NOT_A_VERSION);
		expect_logged_within(_metadata, self->kmsg, about, reason, &self->device_budget);
		read_attr(_metadata, path, buf, sizeof(buf));
		EXPECT_STREQ("1.1\n", buf) TH_LOG("after '%s'", bad[i]);
	}

	/* With and without newline; the same value again changes nothing */
	EXPECT_EQ(0, sysfs_write(path, "1.0"));
	read_attr(_metadata, path, buf, sizeof(buf));
	EXPECT_STREQ("1.0\n", buf);
	EXPECT_EQ(0, sysfs_write(path, "1.0\n"));
	read_attr(_metadata, path, buf, sizeof(buf));
	EXPECT_STREQ("1.0\n", buf);
	EXPECT_EQ(0, sysfs_write(path, "1.1\n"));
	read_attr(_metadata, path, buf, sizeof(buf));
	EXPECT_STREQ("1.1\n", buf);
	EXPECT_EQ(0, kmsg_count(self->kmsg, about));

	/* A new device starts at 1.1, whatever another was set to */
	EXPECT_EQ(0, sysfs_write(path, "1.0"));
	EXPECT_EQ(0, rmtty_remove(uuid));
	ASSERT_EQ(0, rmtty_create(1, uuid));
	read_attr(_metadata, path, buf, sizeof(buf));
	EXPECT_STREQ("1.1\n", buf);
}

/*
 * A device's migration_version names the version it writes, and its verdicts
 * follow the version it reads; type nodes stay at 1.1.
 */
TEST_F(version, migration_version_follows_stream_version)
{
	char older[UUID_LEN + 1], newer[UUID_LEN + 1], stream[256], path[256], type[256];
	char s10[256], s11[256], s12[256], buf[256], expect[256];
	const unsigned int m = 2 * self->unit_mib;

	rmtty_uuid(older, 10);
	rmtty_uuid(newer, 11);
	ASSERT_EQ(0, rmtty_create(2, older));
	ASSERT_EQ(0, rmtty_create(2, newer));
	rmtty_device_path(stream, sizeof(stream), older, "stream_version");
	rmtty_device_path(path, sizeof(path), older, "migration_version");
	rmtty_type_path(type, sizeof(type), 2, "migration_version");
	snprintf(s10, sizeof(s10), "rmtty 1.0 ports=1 memory_mib=%u unit_mib=%u\n", m,
		 self->unit_mib);
	snprintf(s11, sizeof(s11), "rmtty 1.1 ports=1 memory_mib=%u unit_mib=%u\n", m,
		 self->unit_mib);
	snprintf(s12, sizeof(s12), "rmtty 1.2 ports=1 memory_mib=%u unit_mib=%u\n", m,
		 self->unit_mib);

	read_attr(_metadata, path, buf, sizeof(buf));
	EXPECT_STREQ(s11, buf);
	ASSERT_EQ(0, sysfs_write(stream, "1.0\n"));
	read_attr(_metadata, path, buf, sizeof(buf));
	EXPECT_STREQ(s10, buf);
	snprintf(expect, sizeof(expect),
		 "rmtty 1.1 ports=1 memory_mib=%u unit_mib=%u max_aggregation=%u\n", m,
		 self->unit_mib, self->units / 2);
	read_attr(_metadata, type, buf, sizeof(buf));
	EXPECT_STREQ(expect, buf);

	/* The 1.0 device takes 1.0 sources only */
	accepted(_metadata, self->kmsg, path, s10);
	refused(_metadata, self, path, s11, "stream minor version 1 is newer than 1.0");
	refused(_metadata, self, path, s12, "stream minor version 2 is newer than 1.0");
	/* The version is checked before the shape */
	snprintf(buf, sizeof(buf), "rmtty 1.1 ports=1 memory_mib=%u unit_mib=1", m + 1);
	refused(_metadata, self, path, buf, "stream minor version 1 is newer than 1.0");
	snprintf(buf, sizeof(buf), "rmtty 1.0 ports=1 memory_mib=%u unit_mib=1", m + 1);
	refused(_metadata, self, path, buf, SHAPE_DIFFERS, 1, m + 1, m);

	/* A 1.1 device and the type node take both */
	rmtty_device_path(path, sizeof(path), newer, "migration_version");
	accepted(_metadata, self->kmsg, path, s10);
	accepted(_metadata, self->kmsg, path, s11);
	refused(_metadata, self, path, s12, "stream minor version 2 is newer than 1.1");
	accepted(_metadata, self->kmsg, type, s10);
	accepted(_metadata, self->kmsg, type, s11);
	refused(_metadata, self, type, s12, "stream minor version 2 is newer than 1.1");

	/* Back to 1.1 */
	ASSERT_EQ(0, sysfs_write(stream, "1.1"));
	rmtty_device_path(path, sizeof(path), older, "migration_version");
	read_attr(_metadata, path, buf, sizeof(buf));
	EXPECT_STREQ(s11, buf);
	accepted(_metadata, self->kmsg, path, s11);
}

TEST_HARNESS_MAIN
