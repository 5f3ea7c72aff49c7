// SPDX-License-Identifier: GPL-2.0
/*
 * A removed VFIO device is gone when its removal returns, whichever front
 * door userspace used: the driver's release has run, so what the device
 * held is back and the driver's module may go at once. Through the iommufd
 * cdev this needs the VFIO core's wait for the cdev's last file
 * (tools/kernel/patches/0007): the VFS drops the file's reference to the
 * cdev after the file's release, which is what ends the removal's wait for
 * the device's users. The tests force the removing task to run right in
 * between, as a SCHED_FIFO task on the closing task's CPU that the release
 * wakes, and have it take back what the device held, or unload the driver,
 * the moment the removal returns.
 *
 * Against rmtty (its units: the device takes the whole pool, which is then
 * taken again by a new device) and against the kernel's C mtty sample (its
 * ports: a device of mtty-2 takes two of them, which are back in mtty-1's
 * available_instances), so that the core's fix is seen to hold for a C
 * driver, which has no wait of its own, as well as for the Rust
 * abstractions. Those wait for the release themselves, so rmtty's rounds
 * find what they reuse in any case: what fails them without the fix is the
 * line the abstraction logs when the release had not run yet.
 *
 * The interleaving needs a kernel that preempts in the kernel (the test
 * kernel's PREEMPT_LAZY preempts at once for a real-time task): without,
 * the closer would finish its close before the remover runs.
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

/*
 * Each round forces the interleaving it tests: a few rounds prove it, more
 * only cost time (a round takes 0.5 to 1 s on the KASAN kernel under TCG).
 */
#define ROUNDS		8
/* The VFIO core's wait for the users of a device that is being removed. */
#define REMOVAL_WAIT	"vfio_unregister_group_dev"

#define MTTY_TYPES	"/sys/class/mdev_bus/mtty/mdev_supported_types"
/* A device of mtty-2 takes two of mtty's ports, which mtty-1 counts one by one. */
#define MTTY_PORTS	MTTY_TYPES "/mtty-1/available_instances"
#define MTTY_CREATE	MTTY_TYPES "/mtty-2/create"
/* What the Rust VFIO abstraction logs when a device's release ran late. */
#define LATE_RELEASE	"release runs after its unregistration returned"

struct remover {
	const char *uuid;
	bool mtty;
	bool unload;
	const char *recreate;	/* rmtty: the UUID to take the whole pool with */
	unsigned int units;
	pid_t tid;
	int removed, recreated, aggregated, unloaded;
	long ports;		/* mtty: its free ports right after the removal */
};

static int pin_to_cpu0(void)
{
	cpu_set_t cpus;

	CPU_ZERO(&cpus);
	CPU_SET(0, &cpus);
	return sched_setaffinity(0, sizeof(cpus), &cpus) ? -errno : 0;
}

static int mtty_unload(void)
{
	return syscall(SYS_delete_module, "mtty", O_NONBLOCK) ? -errno : 0;
}

/* rmtty: take the whole pool again, with a new device. */
static void rmtty_take_the_pool(struct remover *r)
{
	char path[256], units[16];

	r->recreated = rmtty_create(1, r->recreate);
	if (r->recreated)
		return;
	rmtty_device_path(path, sizeof(path), r->recreate, "mdev/aggregated_instances");
	snprintf(units, sizeof(units), "%u", r->units);
	r->aggregated = sysfs_write(path, units);
}

/*
 * Removes the device, then at once takes back what it held or unloads its
 * driver, recording each result. Runs as SCHED_FIFO on CPU 0.
 */
static void *remove_then_reuse(void *arg)
{
	struct sched_param param = { .sched_priority = 50 };
	struct remover *r = arg;

	__atomic_store_n(&r->tid, syscall(SYS_gettid), __ATOMIC_RELEASE);
	if (pin_to_cpu0() || sched_setscheduler(0, SCHED_FIFO, &param)) {
		r->removed = -errno;
		return NULL;
	}
	r->removed = rmtty_remove(r->uuid);
	if (r->removed)
		return NULL;
	if (r->unload)
		r->unloaded = r->mtty ? mtty_unload() : rmtty_unload();
	else if (r->mtty)
		r->ports = sysfs_read_long(MTTY_PORTS);
	else
		rmtty_take_the_pool(r);
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

static bool mtty_loaded(void)
{
	return access("/sys/module/mtty", F_OK) == 0;
}

FIXTURE(release) {
	unsigned int units, unit_mib;
	long mtty_ports;	/* mtty's free ports with no device */
	char uuid[UUID_LEN + 1], pool_uuid[UUID_LEN + 1];
	struct rmtty_vfio v;
	int kmsg;
};

FIXTURE_VARIANT(release) {
	bool mtty;
	bool cdev;
	bool unload;
};

FIXTURE_VARIANT_ADD(release, rmtty_group_reuse) { .cdev = false, .unload = false };
FIXTURE_VARIANT_ADD(release, rmtty_iommufd_reuse) { .cdev = true, .unload = false };
FIXTURE_VARIANT_ADD(release, rmtty_group_unload) { .cdev = false, .unload = true };
FIXTURE_VARIANT_ADD(release, rmtty_iommufd_unload) { .cdev = true, .unload = true };
FIXTURE_VARIANT_ADD(release, mtty_group_reuse) { .mtty = true, .cdev = false, .unload = false };
FIXTURE_VARIANT_ADD(release, mtty_iommufd_reuse) { .mtty = true, .cdev = true, .unload = false };
FIXTURE_VARIANT_ADD(release, mtty_group_unload) { .mtty = true, .cdev = false, .unload = true };
FIXTURE_VARIANT_ADD(release, mtty_iommufd_unload) { .mtty = true, .cdev = true, .unload = true };

/* Loads mtty unless it is loaded; 0 or what failed. */
static int mtty_load(void)
{
	if (mtty_loaded())
		return 0;
	return system("modprobe mtty") == 0 ? 0 : -ENOENT;
}

FIXTURE_SETUP(release)
{
	rmtty_require_ko(_metadata);
	self->v = (struct rmtty_vfio)RMTTY_VFIO_INIT;
	rmtty_uuid(self->uuid, 1);
	rmtty_uuid(self->pool_uuid, 2);
	self->kmsg = kmsg_open();
	ASSERT_LE(0, self->kmsg);
	ASSERT_EQ(0, pin_to_cpu0());
	if (variant->mtty) {
		ASSERT_EQ(0, mtty_load()) TH_LOG("modprobe mtty failed");
		/* Before any device: all of mtty's ports (24 in the sample). */
		self->mtty_ports = sysfs_read_long(MTTY_PORTS);
		ASSERT_LT(1, self->mtty_ports);
	}
}

FIXTURE_TEARDOWN(release)
{
	rmtty_vfio_close(&self->v);
	EXPECT_EQ(0, kmsg_splats(self->kmsg));
	close(self->kmsg);
	if (variant->mtty && mtty_loaded())
		EXPECT_EQ(0, mtty_unload());
	EXPECT_EQ(0, rmtty_cleanup());
}

/* Creates the round's device: rmtty's holding the whole pool, or mtty-2's. */
static int create_device(FIXTURE_DATA(release) *self, bool mtty)
{
	struct rmtty_params p = { 0, 0 };
	char path[256], units[16];
	int ret;

	if (mtty) {
		ret = mtty_load();
		return ret ?: sysfs_write(MTTY_CREATE, self->uuid);
	}
	if (!rmtty_loaded()) {
		ret = rmtty_reload(&p, &self->units, &self->unit_mib);
		if (ret)
			return ret;
	}
	ret = rmtty_create(1, self->uuid);
	if (ret)
		return ret;
	rmtty_device_path(path, sizeof(path), self->uuid, "mdev/aggregated_instances");
	snprintf(units, sizeof(units), "%u", self->units);
	return sysfs_write(path, units);
}

TEST_F_TIMEOUT(release, removal_returns_after_the_final_release, 900)
{
	struct remover r;
	unsigned int round;
	pthread_t thread;
	char wchan[128];

	for (round = 0; round < ROUNDS; round++) {
		ASSERT_EQ(0, create_device(self, variant->mtty)) TH_LOG("round %u", round);
		ASSERT_EQ(0, rmtty_vfio_open(&self->v, self->uuid, variant->cdev));

		r = (struct remover){
			.uuid = self->uuid,
			.mtty = variant->mtty,
			.unload = variant->unload,
			.recreate = self->pool_uuid,
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
		EXPECT_EQ(0, kmsg_count(self->kmsg, LATE_RELEASE)) TH_LOG("round %u", round);
		if (variant->unload) {
			ASSERT_EQ(0, r.unloaded)
				TH_LOG("round %u: unload right after the removal: %s", round,
				       strerror(-r.unloaded));
			continue;
		}
		if (variant->mtty) {
			ASSERT_EQ(self->mtty_ports, r.ports)
				TH_LOG("round %u: mtty's ports right after the removal", round);
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

TEST_HARNESS_MAIN
