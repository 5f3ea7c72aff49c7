// SPDX-License-Identifier: GPL-2.0
/*
 * Allocation failures on demand (fail-nth): every fault site that creating a
 * device, aggregating it, opening it (through the group and a type1
 * container, and through the iommufd cdev), saving and loading reaches fails
 * in turn, one per attempt, until an attempt reaches none. Each failure must
 * fail its request with ENOMEM (EFAULT where a user copy failed) and change
 * nothing: no device left behind, the pool's instances, the aggregation and
 * the migration state as they were; the device works afterwards. The suite's
 * kmemleak scan finds whatever a failure leaked.
 *
 * The injected failures are logged with their stacks (the fault attributes'
 * verbose 2); each test finds the places in rmtty and in the project's
 * abstractions that a failing allocation was called from (each must find one
 * at least, but the open: rmtty allocates nothing to open a device), and the
 * last test of a variant lists and counts them: "allocation sites of rmtty
 * and the abstractions: N".
 *
 * With DEBUG_KOBJECT_RELEASE a removed device's release, which gives its
 * UUID and its units back, runs 1 to 4 s late: so that the test holds there
 * too, each attempt creates a device of its own UUID, and what was given
 * back is waited for.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/vfio.h>

#include "rmtty_mig_fixture.h"

/* More fault sites than any request here has: a load's copy of 1 MiB is 256 pages */
#define MAX_SITES	2000
#define MAX_PLACES	128
#define PLACE_LEN	512

/*
 * The paths of rmtty's code and of the abstractions in the kernel crate, as a
 * Rust v0 symbol begins them after its crate's disambiguator ("Cs<hash>_").
 * Code of the kernel crate's other modules instantiated for rmtty's types
 * (an Arc, a Vec) is not a place of ours: the frame that called it is.
 */
static const char *const our_paths[] = {
	"5rmtty", "6kernel4mdev", "6kernel4vfio", "6kernel10anon_inode", "6kernel7eventfd",
	"6kernel9ratelimit",
};

/* Whether the stack frame @frame ("symbol+0xoff/0xsize [module]") is ours. */
static bool ours(const char *frame)
{
	const char *path;
	unsigned int i;

	if (strncmp(frame, "_R", 2))
		return false;
	path = strstr(frame, "Cs");
	path = path ? strchr(path, '_') : NULL;
	if (!path)
		return false;
	for (i = 0; i < sizeof(our_paths) / sizeof(our_paths[0]); i++) {
		if (!strncmp(path + 1, our_paths[i], strlen(our_paths[i])))
			return true;
	}
	return false;
}

/* The places found, one a line: each test runs in a child of its own. */
#define PLACES_FILE	"/tmp/rmtty_fault_places"

static void __attribute__((constructor)) forget_places(void)
{
	unlink(PLACES_FILE);
}

/*
 * Read the kernel log from @kmsg on: after each "forcing a failure", the
 * first reliable frame of its stack that is ours, appended to PLACES_FILE;
 * how many failures had one.
 */
static unsigned int collect_places(int kmsg)
{
	char record[8192], frame[PLACE_LEN];
	bool in_trace = false, found = false;
	unsigned int count = 0;
	FILE *out;
	ssize_t n;

	out = fopen(PLACES_FILE, "a");
	if (!out)
		return 0;
	while ((n = read(kmsg, record, sizeof(record) - 1)) != 0) {
		char *text, *end;

		if (n < 0) {
			if (errno == EPIPE)
				continue;	/* records overwritten: go on */
			break;
		}
		record[n] = '\0';
		text = strchr(record, ';');
		if (!text)
			continue;
		text++;
		end = strchr(text, '\n');
		if (end)
			*end = '\0';
		if (strstr(text, "FAULT_INJECTION: forcing a failure")) {
			in_trace = true;
			found = false;
			continue;
		}
		if (!in_trace)
			continue;
		if (strstr(text, "</TASK>")) {
			in_trace = false;
			continue;
		}
		/* " symbol+0xoff/0xsize [module]"; "? ..." is not reliable */
		text += strspn(text, " ");
		if (found || !ours(text))
			continue;
		found = true;
		count++;
		/* The place is symbol+offset */
		snprintf(frame, sizeof(frame), "%s", text);
		frame[strcspn(frame, "/ ")] = '\0';
		fprintf(out, "%s\n", frame);
	}
	fclose(out);
	return count;
}

/* A failure's errno: ENOMEM, or EFAULT where a user copy failed. */
#define EXPECT_CLEAN(ret) EXPECT_TRUE((ret) == -ENOMEM || (ret) == -EFAULT)

/* For rmtty_vfio_before_device: arm fail-nth for the device's opening. */
static unsigned int next_nth;
static int next_fd = -1;

static int arm_next(void)
{
	return fail_nth_arm(next_fd, next_nth);
}

/* A test's fault injection: its fail-nth file, its log reader, its counts. */
struct injection {
	int nth, sites;
	/* Failures that changed nothing, and those the kernel recovered from */
	unsigned int clean, recovered;
};

/*
 * Arm fault injection for a test of the mig fixture (SKIP without it), whose
 * device is the fixture's first.
 */
#define INJECTION_BEGIN(inj)							\
	do {									\
		int __ret = fault_injection_setup(true);					\
										\
		if (__ret == -ENOENT)						\
			SKIP(return, "no fault injection in this kernel");	\
		ASSERT_EQ(0, __ret);						\
		(inj)->clean = (inj)->recovered = 0;				\
		(inj)->sites = kmsg_open();					\
		ASSERT_LE(0, (inj)->sites);					\
		(inj)->nth = fail_nth_open();					\
		ASSERT_LE(0, (inj)->nth);					\
		rmtty_uuid(self->uuid[0], 1);					\
	} while (0)

/*
 * Disarm and count the places of ours the failures were in; with @reached,
 * expect one at least.
 */
static void injection_end(struct __test_metadata *_metadata, struct injection *inj, bool reached)
{
	unsigned int ours;

	fault_injection_restore();
	close(inj->nth);
	ours = collect_places(inj->sites);
	close(inj->sites);
	TH_LOG("failures that changed nothing: %u; recovered by the kernel: %u; "
	       "failures in rmtty or the abstractions: %u", inj->clean, inj->recovered, ours);
	if (reached)
		EXPECT_LE(1, ours) TH_LOG("no failure reached rmtty or the abstractions");
}

/* What an attempt with the Nth fault site failing came to. */
enum attempt {
	PASSED,		/* it reached no Nth site: the request went through */
	RECOVERED,	/* the site failed, and the kernel did without it */
	FAILED,		/* the request failed, with ENOMEM or EFAULT */
};

/* The attempt at fault site @nth of @what, which returned @ret: counted. */
static enum attempt attempt(struct __test_metadata *_metadata, struct injection *inj,
			    const char *what, unsigned int nth, bool hit, int ret)
{
	if (!hit) {
		EXPECT_EQ(0, ret) TH_LOG("%s: %s", what, strerror(-ret));
		return PASSED;
	}
	if (!ret) {
		inj->recovered++;
		return RECOVERED;
	}
	inj->clean++;
	EXPECT_CLEAN(ret) TH_LOG("%s, fault site %u: %s", what, nth, strerror(-ret));
	return FAILED;
}

/*
 * Whether a transition to @to that failed with @ret after fault site @hit
 * fired was the VFIO core's, after the driver's part: the core copies the
 * request's result (and the data fd) out to userspace once the device has
 * moved, so a failing user copy there fails the ioctl with EFAULT and the
 * device in @to. No driver can undo that.
 */
static bool cores_copy_out(int device, bool hit, int ret, __u32 to)
{
	return hit && ret == -EFAULT && (__u32)mig_get_state(device) == to;
}

/*
 * Writes @value to the sysfs attribute @path with the @nth fault site failing;
 * the write's result (0 or -errno), and in *@hit whether the fault fired.
 */
static int write_failing(struct injection *inj, const char *path, const char *value,
			 unsigned int nth, bool *hit)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), ret;

	if (fd < 0)
		return -errno;
	ret = fail_nth_arm(inj->nth, nth);
	if (!ret)
		ret = write(fd, value, strlen(value)) < 0 ? -errno : 0;
	*hit = fail_nth_fired(inj->nth);
	close(fd);
	return ret;
}

/*
 * Whether rmtty-@type's available_instances comes back to @available within
 * 6 s (a removed device's release may run 4 s late).
 */
static bool instances_back(unsigned int type, long available)
{
	int i;

	for (i = 0; i < 60; i++) {
		if (rmtty_type_long(type, "available_instances") == available)
			return true;
		usleep(100000);
	}
	return false;
}

/* The device works: its scratch register keeps what is written. */
static void expect_working(struct __test_metadata *_metadata, const char *uuid, bool cdev)
{
	struct rmtty_vfio v;

	ASSERT_EQ(0, rmtty_vfio_open(&v, uuid, cdev));
	EXPECT_EQ(0, bar0_write(v.device, 7, 0x5a));
	EXPECT_EQ(0x5a, bar0_read(v.device, 7));
	rmtty_vfio_close(&v);
}

/*
 * Creating and aggregating go through sysfs alone: their fault sites are the
 * same whichever door opens the device afterwards (the group and the iommufd
 * variants' runs failed the same 98 and 84 sites). The group variant fails
 * them and then checks the device through both doors; the iommufd variant
 * would repeat it (55 s of the suite).
 */
#define SYSFS_ONLY(variant)							\
	do {									\
		if ((variant)->cdev)						\
			SKIP(return, "a sysfs request: the group variant "	\
			     "fails its sites, then opens through both doors");	\
	} while (0)

TEST_F_TIMEOUT(mig, fault_create, 600)
{
	struct injection injection, *inj = &injection;
	long available = rmtty_type_long(1, "available_instances");
	enum attempt result;
	unsigned int nth;
	char path[256];
	bool hit;
	int ret;

	SYSFS_ONLY(variant);
	INJECTION_BEGIN(inj);
	rmtty_type_path(path, sizeof(path), 1, "create");
	for (nth = 1; nth < MAX_SITES; nth++) {
		rmtty_uuid(self->uuid[0], 1000 + nth);
		ret = write_failing(inj, path, self->uuid[0], nth, &hit);
		result = attempt(_metadata, inj, "create", nth, hit, ret);
		if (result == PASSED)
			break;
		if (result == RECOVERED) {
			ASSERT_EQ(0, rmtty_remove(self->uuid[0]));
			EXPECT_TRUE(instances_back(1, available));
			continue;
		}
		EXPECT_FALSE(rmtty_device_exists(self->uuid[0])) TH_LOG("fault site %u", nth);
		EXPECT_TRUE(instances_back(1, available)) TH_LOG("fault site %u", nth);
	}
	EXPECT_GT(MAX_SITES, nth);
	EXPECT_LE(1, inj->clean);
	expect_working(_metadata, self->uuid[0], false);
	expect_working(_metadata, self->uuid[0], true);
	EXPECT_EQ(0, rmtty_remove(self->uuid[0]));
	injection_end(_metadata, inj, true);
}

TEST_F_TIMEOUT(mig, fault_aggregation, 600)
{
	struct injection injection, *inj = &injection;
	long available;
	enum attempt result;
	unsigned int nth;
	char path[256];
	bool hit;
	int ret;

	SYSFS_ONLY(variant);
	INJECTION_BEGIN(inj);
	ASSERT_EQ(0, rmtty_create(1, self->uuid[0]));
	available = rmtty_type_long(1, "available_instances");
	rmtty_device_path(path, sizeof(path), self->uuid[0], "mdev/aggregated_instances");
	for (nth = 1; nth < MAX_SITES; nth++) {
		ret = write_failing(inj, path, "3", nth, &hit);
		result = attempt(_metadata, inj, "aggregation", nth, hit, ret);
		if (result == PASSED)
			break;
		if (result == RECOVERED) {
			ASSERT_EQ(0, sysfs_write(path, "1"));
			continue;
		}
		EXPECT_EQ(1, sysfs_read_long(path)) TH_LOG("fault site %u", nth);
		EXPECT_TRUE(instances_back(1, available)) TH_LOG("fault site %u", nth);
	}
	EXPECT_GT(MAX_SITES, nth);
	EXPECT_LE(1, inj->clean);
	EXPECT_EQ(3, sysfs_read_long(path));
	EXPECT_EQ(available - 2, rmtty_type_long(1, "available_instances"));
	expect_working(_metadata, self->uuid[0], false);
	expect_working(_metadata, self->uuid[0], true);
	EXPECT_EQ(0, rmtty_remove(self->uuid[0]));
	injection_end(_metadata, inj, true);
}

TEST_F_TIMEOUT(mig, fault_open, 600)
{
	struct injection injection, *inj = &injection;
	enum attempt result;
	unsigned int nth;
	bool hit;
	int ret;

	INJECTION_BEGIN(inj);
	ASSERT_EQ(0, rmtty_create(1, self->uuid[0]));
	rmtty_vfio_before_device = arm_next;
	next_fd = inj->nth;
	for (nth = 1; nth < MAX_SITES; nth++) {
		next_nth = nth;
		ret = rmtty_vfio_open(&self->v[0], self->uuid[0], variant->cdev);
		hit = fail_nth_fired(inj->nth);
		result = attempt(_metadata, inj, "open", nth, hit, ret);
		if (result == PASSED)
			break;
		if (result == RECOVERED) {
			rmtty_vfio_close(&self->v[0]);
			continue;
		}
	}
	rmtty_vfio_before_device = NULL;
	EXPECT_GT(MAX_SITES, nth);
	EXPECT_LE(1, inj->clean);
	EXPECT_EQ(0, bar0_write(self->v[0].device, 7, 0xa5));
	EXPECT_EQ(0xa5, bar0_read(self->v[0].device, 7));
	rmtty_vfio_close(&self->v[0]);
	expect_working(_metadata, self->uuid[0], variant->cdev);
	EXPECT_EQ(0, rmtty_remove(self->uuid[0]));
	/* rmtty allocates nothing to open a device: the failures are the core's */
	injection_end(_metadata, inj, false);
}

/*
 * A transition under fail-nth, from @from to @to, until one passes its last
 * fault site; a failure leaves the device in @from with no data fd. Over v2
 * the VFIO core installs the data fd after the driver moved the device, and
 * fails the ioctl if it cannot: the device is then in @to with no fd, which
 * a reset recovers (those are counted apart, as the core's).
 */
static void transitions(struct __test_metadata *_metadata, struct injection *inj, int device,
			__u32 from, __u32 to, const __u8 *stream, size_t len)
{
	unsigned int nth, core = 0;
	enum attempt result;
	char label[64];
	int fd, ret;
	bool hit;

	snprintf(label, sizeof(label), "%s -> %s", state_name[from], state_name[to]);
	for (nth = 1; nth < MAX_SITES; nth++) {
		ASSERT_EQ(0, ioctl(device, VFIO_DEVICE_RESET));
		if (from != RUNNING)
			ASSERT_EQ(0, mig_set_state(device, from, NULL));
		fd = -1;
		ASSERT_EQ(0, fail_nth_arm(inj->nth, nth));
		ret = mig_set_state(device, to, &fd);
		hit = fail_nth_fired(inj->nth);
		if (fd >= 0 && stream)
			EXPECT_EQ((ssize_t)len, write(fd, stream, len));
		if (fd >= 0)
			close(fd);
		if (cores_copy_out(device, hit, ret, to)) {
			core++;
			continue;
		}
		result = attempt(_metadata, inj, label, nth, hit, ret);
		if (result == PASSED)
			break;
		if (result == RECOVERED)
			continue;
		EXPECT_EQ(from, (__u32)mig_get_state(device));
		EXPECT_GT(0, fd);
	}
	EXPECT_GT(MAX_SITES, nth) TH_LOG("%s kept failing", label);
	TH_LOG("%s -> %s: %u fault sites, %u of them the core's fd installation",
	       state_name[from], state_name[to], nth - 1, core);
}

TEST_F_TIMEOUT(mig, fault_save, 900)
{
	struct injection injection, *inj = &injection;

	INJECTION_BEGIN(inj);
	ASSERT_EQ(0, rmtty_create(1, self->uuid[0]));
	ASSERT_EQ(0, rmtty_vfio_open(&self->v[0], self->uuid[0], variant->cdev));
	transitions(_metadata, inj, self->v[0].device, RUNNING, PRE_COPY, NULL, 0);
	transitions(_metadata, inj, self->v[0].device, STOP, STOP_COPY, NULL, 0);
	EXPECT_LE(2, inj->clean);
	ASSERT_EQ(0, ioctl(self->v[0].device, VFIO_DEVICE_RESET));
	give_state(_metadata, self->v[0].device, (size_t)self->unit_mib << 20, 29);
	injection_end(_metadata, inj, true);
}

/*
 * A load: the stream of another device, written whole; then the commit
 * (RESUMING -> STOP) under fail-nth. A failed commit leaves the device in
 * RESUMING with nothing of the stream applied (its memory as before), but
 * for the core's copy-out of the result (counted apart); the last commit
 * applies the source's state.
 */
TEST_F_TIMEOUT(mig, fault_load, 900)
{
	struct injection injection, *inj = &injection;
	size_t memory = (size_t)self->unit_mib << 20, full = mig_stream_size(memory);
	__u8 *stream = malloc(full + MIG_PAGE), *before, *now;
	unsigned int core = 0;
	int source, target;
	enum attempt result;
	unsigned int nth;
	int fd, ret;
	ssize_t len;
	bool hit;

	INJECTION_BEGIN(inj);
	ASSERT_TRUE(stream != NULL);
	source = add_device(_metadata, self, variant->cdev, 1, 1, 1);
	give_state(_metadata, source, memory, 31);
	ASSERT_EQ(0, mig_set_state(source, STOP_COPY, &fd));
	len = mig_read_to_end(fd, stream, full + MIG_PAGE);
	close(fd);
	ASSERT_EQ((ssize_t)full, len);

	target = add_device(_metadata, self, variant->cdev, 0, 1, 1);
	before = memory_read(_metadata, target, memory);
	transitions(_metadata, inj, target, STOP, RESUMING, stream, full);
	for (nth = 1; nth < MAX_SITES; nth++) {
		ASSERT_EQ(0, ioctl(target, VFIO_DEVICE_RESET));
		ASSERT_EQ(0, mig_set_state(target, RESUMING, &fd));
		ASSERT_EQ((ssize_t)full, write(fd, stream, full));
		ASSERT_EQ(0, fail_nth_arm(inj->nth, nth));
		ret = mig_set_state(target, STOP, NULL);
		hit = fail_nth_fired(inj->nth);
		if (cores_copy_out(target, hit, ret, STOP)) {
			core++;
			close(fd);
			continue;
		}
		result = attempt(_metadata, inj, "commit", nth, hit, ret);
		if (result == FAILED) {
			EXPECT_EQ(RESUMING, mig_get_state(target)) TH_LOG("fault site %u", nth);
			now = memory_read(_metadata, target, memory);
			expect_same(_metadata, now, before, memory, "memory after a failed commit");
			free(now);
		}
		close(fd);
		if (result == PASSED)
			break;
	}
	EXPECT_GT(MAX_SITES, nth);
	TH_LOG("commit: %u fault sites, %u of them the core's copy-out", nth - 1, core);
	/* The last commit applied the source's state */
	expect_same_stopped_regs(_metadata, source, target, "load", 31);
	free(before);
	expect_same_memory(_metadata, source, target, memory, "memory");
	drop_device(_metadata, self, 1);
	free(stream);
	injection_end(_metadata, inj, true);
}

/*
 * The last test of each variant: the places the tests so far found (the
 * iommufd variant's list holds the group variant's, whose create and
 * aggregation tests it does not repeat).
 */
TEST_F(mig, fault_places)
{
	static char places[MAX_PLACES][PLACE_LEN];
	char line[PLACE_LEN];
	unsigned int n = 0, i;
	FILE *in = fopen(PLACES_FILE, "r");

	ASSERT_TRUE(in != NULL) TH_LOG("no test found a place");
	(void)variant;
	while (fgets(line, sizeof(line), in)) {
		line[strcspn(line, "\n")] = '\0';
		if (!line[0])
			continue;
		for (i = 0; i < n && strcmp(places[i], line); i++)
			;
		if (i == n && n < MAX_PLACES)
			strcpy(places[n++], line);
	}
	fclose(in);
	for (i = 0; i < n; i++)
		TH_LOG("place: %s", places[i]);
	TH_LOG("allocation sites of rmtty and the abstractions: %u", n);
	EXPECT_LE(1, n);
}

TEST_HARNESS_MAIN
