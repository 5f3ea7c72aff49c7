// SPDX-License-Identifier: GPL-2.0
/*
 * Guarantees of the Rust VFIO and mdev abstractions that drivers rely on
 * without seeing them (a removed device's release: rmtty_release_test):
 *
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
