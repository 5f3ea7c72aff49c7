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
 * - The last close of a migration data file may be what lets the module
 *   go: the file drops its module reference last, and the VFS then finishes
 *   the close with the file's file_operations (fops_put()), which must be
 *   the kernel's, not the module's. The test preempts the closer right after
 *   that module_put() (a SCHED_FIFO task on its CPU, woken by the
 *   module:module_put trace event through trace_pipe) while another CPU
 *   unloads rmtty, and checks the unload finished inside the close.
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
#include <sys/ioctl.h>
#include <sys/mount.h>
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
#define ROUNDS		15
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

#define TRACING		"/sys/kernel/tracing"
/*
 * At least ROUNDS_UNLOAD rounds, half of them saving, half resuming, and on
 * until the unload has ended inside the close once (ROUNDS_UNLOAD_MAX at
 * most): the scheduler decides whether it does, in 12 to 23 of 30 rounds a
 * variant on a quiet machine, 2 or 3 of 10 on a busy one.
 */
#define ROUNDS_UNLOAD		16
#define ROUNDS_UNLOAD_MAX	40
#define MODULE_PUT	TRACING "/events/module/module_put"

static __u64 now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (__u64)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* The order of what the three tasks saw, in ns of CLOCK_MONOTONIC (0: never) */
struct interleaving {
	int pipe;
	__u64 close_started, close_returned, woken, unloaded;
	int unload_error;
};

static int run_on(int cpu, int priority)
{
	struct sched_param param = { .sched_priority = priority };
	cpu_set_t cpus;

	CPU_ZERO(&cpus);
	CPU_SET(cpu, &cpus);
	if (sched_setaffinity(0, sizeof(cpus), &cpus))
		return -errno;
	if (priority && sched_setscheduler(0, SCHED_FIFO, &param))
		return -errno;
	return 0;
}

/*
 * On the closer's CPU, above it: woken by the first module_put event of
 * rmtty, which preempts the closer right after that module_put(), keep the
 * CPU busy until the module is gone (5 s at most). It does so as an ordinary
 * task, so that the kernel's threads on the CPU, which the unload waits for
 * (RCU), still run; the closer, a SCHED_IDLE task, waits behind all of them.
 */
static void *preempt_the_closer(void *arg)
{
	struct sched_param normal = { .sched_priority = 0 };
	struct interleaving *i = arg;
	char buf[4096];
	__u64 until;

	if (run_on(0, 60) || read(i->pipe, buf, sizeof(buf)) <= 0)
		return NULL;
	__atomic_store_n(&i->woken, now_ns(), __ATOMIC_RELEASE);
	sched_setscheduler(0, SCHED_OTHER, &normal);
	until = now_ns() + 5000000000ULL;
	while (!__atomic_load_n(&i->unloaded, __ATOMIC_ACQUIRE) && now_ns() < until)
		;
	return NULL;
}

/* On the other CPU: unload rmtty as soon as nothing holds it (10 s at most). */
static void *unload_when_free(void *arg)
{
	struct timespec pause = { 0, 100 * 1000 };
	struct interleaving *i = arg;
	__u64 until = now_ns() + 10000000000ULL;
	int ret;

	ret = run_on(1, 0);
	if (!ret) {
		while ((ret = rmtty_unload()) == -EWOULDBLOCK && now_ns() < until)
			nanosleep(&pause, NULL);
	}
	if (!ret)
		__atomic_store_n(&i->unloaded, now_ns(), __ATOMIC_RELEASE);
	i->unload_error = ret;
	return NULL;
}

FIXTURE(data_file) {
	struct rmtty_vfio v;
	char uuid[UUID_LEN + 1];
	int kmsg, pipe;
	bool traced;
};

FIXTURE_VARIANT(data_file) {
	bool cdev;
};

FIXTURE_VARIANT_ADD(data_file, group) { .cdev = false };
FIXTURE_VARIANT_ADD(data_file, iommufd) { .cdev = true };

FIXTURE_SETUP(data_file)
{
	struct rmtty_params p = { 0, 0 };
	unsigned int units, unit_mib;

	self->v = (struct rmtty_vfio)RMTTY_VFIO_INIT;
	self->pipe = -1;
	rmtty_uuid(self->uuid, 1);
	rmtty_require_reload(_metadata, &p, &units, &unit_mib);
	self->kmsg = kmsg_open();
	ASSERT_LE(0, self->kmsg);
	if (access(TRACING "/trace_pipe", F_OK))
		mount("tracefs", TRACING, "tracefs", 0, NULL);
	ASSERT_EQ(0, access(MODULE_PUT "/enable", F_OK)) TH_LOG("no module_put trace event");
	ASSERT_EQ(0, sysfs_write(TRACING "/tracing_on", "1"));
	ASSERT_EQ(0, sysfs_write(MODULE_PUT "/filter", "name == \"rmtty\""));
	self->traced = true;
}

FIXTURE_TEARDOWN(data_file)
{
	if (self->traced) {
		EXPECT_EQ(0, sysfs_write(MODULE_PUT "/enable", "0"));
		EXPECT_EQ(0, sysfs_write(MODULE_PUT "/filter", "0"));
	}
	if (self->pipe >= 0)
		close(self->pipe);
	rmtty_vfio_close(&self->v);
	EXPECT_EQ(0, kmsg_splats(self->kmsg));
	close(self->kmsg);
	EXPECT_EQ(0, rmtty_cleanup());
}

/*
 * The last close of a data file, the only thing that holds rmtty, preempted
 * right after the file's module_put() while rmtty is unloaded on the other
 * CPU: the unload finishes inside the close, and the close then finishes
 * without touching the module (a use after free would oops, or be reported
 * by KASAN). Rounds with a data file of a saving and of a resuming transfer.
 */
TEST_F_TIMEOUT(data_file, unloaded_while_the_last_close_finishes, 300)
{
	struct sched_param idle = { .sched_priority = 0 };
	struct rmtty_params p = { 0, 0 };
	unsigned int round, units, unit_mib, forced = 0;

	ASSERT_EQ(0, run_on(0, 0));
	for (round = 0; round < ROUNDS_UNLOAD_MAX && (round < ROUNDS_UNLOAD || !forced); round++) {
		struct interleaving i = { 0 };
		pthread_t preempter, unloader;
		int device, fd, none;

		if (!rmtty_loaded())
			ASSERT_EQ(0, rmtty_reload(&p, &units, &unit_mib));
		ASSERT_EQ(0, rmtty_create(1, self->uuid));
		ASSERT_EQ(0, rmtty_vfio_open(&self->v, self->uuid, variant->cdev));
		device = self->v.device;
		ASSERT_EQ(0, mig_set_state(device, round % 2 ? VFIO_DEVICE_STATE_RESUMING :
						     VFIO_DEVICE_STATE_PRE_COPY, &fd));
		ASSERT_LE(0, fd);
		/* The transfer ends; its file stays open, and then holds rmtty alone */
		if (round % 2) {
			ASSERT_EQ(0, ioctl(device, VFIO_DEVICE_RESET));
		} else {
			ASSERT_EQ(0, mig_set_state(device, VFIO_DEVICE_STATE_RUNNING, &none));
		}
		rmtty_vfio_close(&self->v);
		ASSERT_EQ(0, rmtty_remove(self->uuid));
		EXPECT_EQ(-EWOULDBLOCK, rmtty_unload());

		/* The trace of rmtty's module_put events, from now on */
		ASSERT_EQ(0, sysfs_write(TRACING "/trace", ""));
		self->pipe = open(TRACING "/trace_pipe", O_RDONLY | O_CLOEXEC);
		ASSERT_LE(0, self->pipe);
		i.pipe = self->pipe;
		ASSERT_EQ(0, sysfs_write(MODULE_PUT "/enable", "1"));
		ASSERT_EQ(0, pthread_create(&preempter, NULL, preempt_the_closer, &i));
		ASSERT_EQ(0, pthread_create(&unloader, NULL, unload_when_free, &i));
		usleep(100 * 1000);	/* both waiting: one in read(), one in its retries */

		ASSERT_EQ(0, sched_setscheduler(0, SCHED_IDLE, &idle));
		i.close_started = now_ns();
		EXPECT_EQ(0, close(fd));
		i.close_returned = now_ns();
		ASSERT_EQ(0, sched_setscheduler(0, SCHED_OTHER, &idle));
		ASSERT_EQ(0, pthread_join(unloader, NULL));
		ASSERT_EQ(0, sysfs_write(MODULE_PUT "/enable", "0"));
		if (!i.woken)
			pthread_cancel(preempter);
		ASSERT_EQ(0, pthread_join(preempter, NULL));
		close(self->pipe);
		self->pipe = -1;

		TH_LOG("round %u: close %llu us, woken at %lld us, unloaded at %lld us", round,
		       (unsigned long long)(i.close_returned - i.close_started) / 1000,
		       i.woken ? (long long)(i.woken - i.close_started) / 1000 : -1LL,
		       i.unloaded ? (long long)(i.unloaded - i.close_started) / 1000 : -1LL);
		ASSERT_EQ(0, i.unload_error) TH_LOG("round %u: unload: %s", round,
						    strerror(-i.unload_error));
		EXPECT_NE(0, i.woken) TH_LOG("round %u: the module_put event woke no one", round);
		EXPECT_LT(i.close_started, i.woken) TH_LOG("round %u", round);
		/* The interleaving: unloaded before the close returned */
		if (i.unloaded < i.close_returned)
			forced++;
		EXPECT_EQ(0, kmsg_splats(self->kmsg)) TH_LOG("round %u", round);
	}
	/*
	 * The closer is preempted in every round; whether the unload is done
	 * before it runs again depends on the scheduler: most rounds, not all.
	 */
	EXPECT_LE(1, forced) TH_LOG("in none of %u rounds did the unload end inside the close",
				    round);
	TH_LOG("the unload ended inside the close in %u of %u rounds", forced, round);
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
