// SPDX-License-Identifier: GPL-2.0
/*
 * Guarantees of the Rust VFIO and mdev abstractions that drivers rely on
 * without seeing them:
 *
 * - A removed VFIO device is gone when the removal returns: its data is
 *   dropped (rmtty's units are back) and its release has run, so the module
 *   may go at once. Through the iommufd cdev the VFS drops the character
 *   device's reference to the device after the file's release, which is what
 *   lets the removal proceed; the tests force the removing task to run right
 *   in between, as a SCHED_FIFO task on the closing task's CPU that the
 *   release wakes, and have it re-create the whole pool or unload the module
 *   the moment the removal returns.
 * - An attribute whose show formats more than a page fails with EFBIG
 *   instead of overrunning the page or making sysfs warn, even if the driver
 *   ignored the formatter's error.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "rmtty_util.h"
#include "rmtty_vfio.h"

#define ROUNDS		30
/* The VFIO core's wait for the users of a device that is being removed. */
#define REMOVAL_WAIT	"vfio_unregister_group_dev"

struct remover {
	const char *uuid;
	const char *recreate;	/* the UUID to create the whole pool with, or NULL to unload */
	unsigned int units;
	pid_t tid;
	int removed, recreated, aggregated, unloaded;
};

static int pin_to_cpu0(void)
{
	cpu_set_t cpus;

	CPU_ZERO(&cpus);
	CPU_SET(0, &cpus);
	return sched_setaffinity(0, sizeof(cpus), &cpus) ? -errno : 0;
}

/*
 * Removes the device, then at once takes the whole pool again or unloads
 * rmtty, recording each result. Runs as SCHED_FIFO on CPU 0.
 */
static void *remove_then_reuse(void *arg)
{
	struct sched_param param = { .sched_priority = 50 };
	struct remover *r = arg;
	char path[256], units[16];

	__atomic_store_n(&r->tid, syscall(SYS_gettid), __ATOMIC_RELEASE);
	if (pin_to_cpu0() || sched_setscheduler(0, SCHED_FIFO, &param)) {
		r->removed = -errno;
		return NULL;
	}
	r->removed = rmtty_remove(r->uuid);
	if (r->removed)
		return NULL;
	if (!r->recreate) {
		r->unloaded = rmtty_unload();
		return NULL;
	}
	r->recreated = rmtty_create(1, r->recreate);
	if (r->recreated)
		return NULL;
	rmtty_device_path(path, sizeof(path), r->recreate, "mdev/aggregated_instances");
	snprintf(units, sizeof(units), "%u", r->units);
	r->aggregated = sysfs_write(path, units);
	return NULL;
}

/* Whether task @tid waits in @wchan; polls for up to @seconds. */
static bool task_waits_in(pid_t tid, const char *wchan, unsigned int seconds, char *seen,
			  size_t size)
{
	struct timespec pause = { 0, 20 * 1000 * 1000 };
	unsigned int tries = seconds * 50;
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/task/%d/wchan", tid);
	while (tries--) {
		if (sysfs_read(path, seen, size) > 0 && !strcmp(seen, wchan))
			return true;
		nanosleep(&pause, NULL);
	}
	return false;
}

FIXTURE(release) {
	unsigned int units, unit_mib;
	char uuid[UUID_LEN + 1], pool_uuid[UUID_LEN + 1];
	struct rmtty_vfio v;
	int kmsg;
};

FIXTURE_VARIANT(release) {
	bool cdev;
	bool unload;
};

FIXTURE_VARIANT_ADD(release, group_recreate) { .cdev = false, .unload = false };
FIXTURE_VARIANT_ADD(release, iommufd_recreate) { .cdev = true, .unload = false };
FIXTURE_VARIANT_ADD(release, group_unload) { .cdev = false, .unload = true };
FIXTURE_VARIANT_ADD(release, iommufd_unload) { .cdev = true, .unload = true };

FIXTURE_SETUP(release)
{
	rmtty_require_ko(_metadata);
	self->v = (struct rmtty_vfio)RMTTY_VFIO_INIT;
	rmtty_uuid(self->uuid, 1);
	rmtty_uuid(self->pool_uuid, 2);
	self->kmsg = kmsg_open();
	ASSERT_LE(0, self->kmsg);
	ASSERT_EQ(0, pin_to_cpu0());
}

FIXTURE_TEARDOWN(release)
{
	rmtty_vfio_close(&self->v);
	EXPECT_EQ(0, kmsg_splats(self->kmsg));
	close(self->kmsg);
	EXPECT_EQ(0, rmtty_cleanup());
}

TEST_F_TIMEOUT(release, removal_returns_after_the_final_release, 900)
{
	struct rmtty_params p = { 0, 0 };
	struct remover r;
	unsigned int round;
	pthread_t thread;
	char path[256], units[16], wchan[128];

	for (round = 0; round < ROUNDS; round++) {
		if (!rmtty_loaded())
			ASSERT_EQ(0, rmtty_reload(&p, &self->units, &self->unit_mib));
		/* One device holding every unit of the pool. */
		ASSERT_EQ(0, rmtty_create(1, self->uuid));
		rmtty_device_path(path, sizeof(path), self->uuid, "mdev/aggregated_instances");
		snprintf(units, sizeof(units), "%u", self->units);
		ASSERT_EQ(0, sysfs_write(path, units));
		ASSERT_EQ(0, rmtty_vfio_open(&self->v, self->uuid, variant->cdev));

		r = (struct remover){
			.uuid = self->uuid,
			.recreate = variant->unload ? NULL : self->pool_uuid,
			.units = self->units,
		};
		ASSERT_EQ(0, pthread_create(&thread, NULL, remove_then_reuse, &r));
		while (!__atomic_load_n(&r.tid, __ATOMIC_ACQUIRE))
			sched_yield();
		EXPECT_TRUE(task_waits_in(r.tid, REMOVAL_WAIT, 60, wchan, sizeof(wchan)))
			TH_LOG("round %u: the removal does not wait for the device (wchan %s)",
			       round, wchan);

		/* The last close, on the CPU the remover preempts it on. */
		rmtty_vfio_close(&self->v);
		ASSERT_EQ(0, pthread_join(thread, NULL));

		ASSERT_EQ(0, r.removed) TH_LOG("round %u: remove: %s", round, strerror(-r.removed));
		if (variant->unload) {
			ASSERT_EQ(0, r.unloaded)
				TH_LOG("round %u: unload right after the removal: %s", round,
				       strerror(-r.unloaded));
			continue;
		}
		ASSERT_EQ(0, r.recreated)
			TH_LOG("round %u: creating right after the removal: %s", round,
			       strerror(-r.recreated));
		ASSERT_EQ(0, r.aggregated)
			TH_LOG("round %u: taking the whole pool right after the removal: %s",
			       round, strerror(-r.aggregated));
		ASSERT_EQ(0, rmtty_remove(self->pool_uuid));
	}
}

#define OVERFLOW_PARENT	"/sys/class/mdev_bus/mdev_attr_overflow"
#define OVERFLOW_TYPE	OVERFLOW_PARENT "/mdev_supported_types/mdev_attr_overflow-1"
#define OVERFLOW_REFUSAL	"does not fit in 4095"

static int module_load(const char *path)
{
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = syscall(SYS_finit_module, fd, "", 0) ? -errno : 0;
	close(fd);
	return ret;
}

static int module_unload(const char *name)
{
	return syscall(SYS_delete_module, name, O_NONBLOCK) ? -errno : 0;
}

/* Reads @path in one read() of a page and more; the length read or -errno. */
static ssize_t read_attr(const char *path)
{
	static char buf[3 * 4096];
	ssize_t len;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	len = read(fd, buf, sizeof(buf));
	if (len < 0)
		len = -errno;
	close(fd);
	return len;
}

FIXTURE(overflow) {
	char ko[512], uuid[UUID_LEN + 1];
	int kmsg;
};

FIXTURE_SETUP(overflow)
{
	const char *dir = getenv("RMTTY_TEST_MODULES");

	ASSERT_NE(NULL, dir) TH_LOG("RMTTY_TEST_MODULES is not set");
	snprintf(self->ko, sizeof(self->ko), "%s/mdev_attr_overflow.ko", dir);
	rmtty_uuid(self->uuid, 3);
	self->kmsg = kmsg_open();
	ASSERT_LE(0, self->kmsg);
	ASSERT_EQ(0, module_load(self->ko)) TH_LOG("loading %s failed", self->ko);
}

FIXTURE_TEARDOWN(overflow)
{
	char path[256];

	rmtty_device_path(path, sizeof(path), self->uuid, "remove");
	if (!access(path, F_OK))
		EXPECT_EQ(0, sysfs_write(path, "1"));
	EXPECT_EQ(0, module_unload("mdev_attr_overflow"));
	EXPECT_EQ(0, kmsg_splats(self->kmsg));
	close(self->kmsg);
}

TEST_F(overflow, type_attributes_refused)
{
	EXPECT_EQ(-EFBIG, read_attr(OVERFLOW_TYPE "/overflow"));
	EXPECT_EQ(-EFBIG, read_attr(OVERFLOW_TYPE "/description"));
	EXPECT_EQ(4095, read_attr(OVERFLOW_TYPE "/fits"));
	EXPECT_EQ(2, kmsg_count(self->kmsg, OVERFLOW_REFUSAL));
}

TEST_F(overflow, device_attributes_refused)
{
	char path[256];

	ASSERT_EQ(0, sysfs_write(OVERFLOW_TYPE "/create", self->uuid));
	rmtty_device_path(path, sizeof(path), self->uuid, "overflow");
	EXPECT_EQ(-EFBIG, read_attr(path));
	rmtty_device_path(path, sizeof(path), self->uuid, "fits");
	EXPECT_EQ(4095, read_attr(path));
	EXPECT_EQ(1, kmsg_count(self->kmsg, OVERFLOW_REFUSAL));
}

TEST_HARNESS_MAIN
