// SPDX-License-Identifier: GPL-2.0
/*
 * rmtty VFIO tests, through both front doors: the group with a type1
 * container, and the iommufd character device.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/vfio.h>

#include "kselftest_harness.h"
#include "rmtty_util.h"
#include "rmtty_vfio.h"

/* The fixture's device: rmtty-1 aggregated 3 times, 1 MiB units */
#define AGGREGATION	3
#define BACKED		(3u << 20)
#define BAR2_SIZE	(4u << 20)

FIXTURE(vfio) {
	unsigned int units, unit_mib;
	char uuid[UUID_LEN + 1];
	struct rmtty_vfio v;
};

FIXTURE_VARIANT(vfio) {
	bool cdev;
};

FIXTURE_VARIANT_ADD(vfio, group) { .cdev = false };
FIXTURE_VARIANT_ADD(vfio, iommufd) { .cdev = true };

FIXTURE_SETUP(vfio)
{
	struct rmtty_params p = { 0, 0 };
	char path[256];

	self->v = (struct rmtty_vfio)RMTTY_VFIO_INIT;
	rmtty_require_reload(_metadata, &p, &self->units, &self->unit_mib);
	rmtty_uuid(self->uuid, 1);
	ASSERT_EQ(0, rmtty_create(1, self->uuid));
	rmtty_device_path(path, sizeof(path), self->uuid, "mdev/aggregated_instances");
	ASSERT_EQ(0, sysfs_write(path, "3"));
	ASSERT_EQ(0, rmtty_vfio_open(&self->v, self->uuid, variant->cdev));
}

FIXTURE_TEARDOWN(vfio)
{
	rmtty_vfio_close(&self->v);
	rmtty_expect_cleanup(_metadata);
}

TEST_F(vfio, device_info)
{
	struct vfio_device_info info = { .argsz = sizeof(info) };

	ASSERT_EQ(0, ioctl(self->v.device, VFIO_DEVICE_GET_INFO, &info));
	EXPECT_EQ(VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET, info.flags);
	EXPECT_EQ(VFIO_PCI_NUM_REGIONS + 1, info.num_regions);
	EXPECT_EQ(VFIO_PCI_NUM_IRQS, info.num_irqs);

	info.argsz = 12;	/* up to num_irqs is required */
	EXPECT_EQ(-1, ioctl(self->v.device, VFIO_DEVICE_GET_INFO, &info));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(vfio, region_info)
{
	const __u32 rw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
	__u64 sizes[VFIO_PCI_NUM_REGIONS + 1] = {
		[VFIO_PCI_BAR0_REGION_INDEX] = 8,
		[VFIO_PCI_BAR2_REGION_INDEX] = BAR2_SIZE,
		[VFIO_PCI_CONFIG_REGION_INDEX] = 256,
		[MIG1_INDEX] = MIG1_SIZE,
	};
	/* The migration region's answer: its type, then its one mappable area */
	struct {
		struct vfio_region_info info;
		struct vfio_region_info_cap_type type;
		struct vfio_region_info_cap_sparse_mmap sparse;
		struct vfio_region_sparse_mmap_area area;
	} full = { .info = { .argsz = sizeof(full), .index = MIG1_INDEX } };
	struct vfio_region_info info;
	__u32 i;

	for (i = 0; i <= VFIO_PCI_NUM_REGIONS; i++) {
		memset(&info, 0, sizeof(info));
		info.argsz = sizeof(info);
		info.index = i;
		ASSERT_EQ(0, ioctl(self->v.device, VFIO_DEVICE_GET_REGION_INFO, &info))
			TH_LOG("region %u: %s", i, strerror(errno));
		EXPECT_EQ(sizes[i], info.size) TH_LOG("region %u", i);
		EXPECT_EQ((__u64)i << 40, info.offset) TH_LOG("region %u", i);
		EXPECT_EQ(i == MIG1_INDEX ? rw | VFIO_REGION_INFO_FLAG_MMAP |
			  VFIO_REGION_INFO_FLAG_CAPS : sizes[i] ? rw : 0,
			  info.flags) TH_LOG("region %u", i);
	}

	/* With room for the region info alone, the size needed comes back. */
	memset(&info, 0, sizeof(info));
	info.argsz = sizeof(info);
	info.index = MIG1_INDEX;
	ASSERT_EQ(0, ioctl(self->v.device, VFIO_DEVICE_GET_REGION_INFO, &info));
	EXPECT_EQ(sizeof(full), info.argsz);
	EXPECT_EQ(0, info.cap_offset);
	ASSERT_EQ(0, ioctl(self->v.device, VFIO_DEVICE_GET_REGION_INFO, &full));
	EXPECT_EQ(offsetof(typeof(full), type), full.info.cap_offset);
	EXPECT_EQ(VFIO_REGION_INFO_CAP_TYPE, full.type.header.id);
	EXPECT_EQ(1, full.type.header.version);
	EXPECT_EQ(offsetof(typeof(full), sparse), full.type.header.next);
	EXPECT_EQ(VFIO_REGION_TYPE_MIGRATION_DEPRECATED, full.type.type);
	EXPECT_EQ(VFIO_REGION_SUBTYPE_MIGRATION_DEPRECATED, full.type.subtype);
	EXPECT_EQ(VFIO_REGION_INFO_CAP_SPARSE_MMAP, full.sparse.header.id);
	EXPECT_EQ(0, full.sparse.header.next);
	EXPECT_EQ(1, full.sparse.nr_areas);
	EXPECT_EQ(MIG1_DATA, full.area.offset);
	EXPECT_EQ(MIG1_CAPACITY, full.area.size);

	memset(&info, 0, sizeof(info));
	info.argsz = sizeof(info);
	info.index = VFIO_PCI_NUM_REGIONS + 1;
	EXPECT_EQ(-1, ioctl(self->v.device, VFIO_DEVICE_GET_REGION_INFO, &info));
	EXPECT_EQ(EINVAL, errno);
	info.index = 0;
	info.argsz = 16;
	EXPECT_EQ(-1, ioctl(self->v.device, VFIO_DEVICE_GET_REGION_INFO, &info));
	EXPECT_EQ(EINVAL, errno);
}

static __u32 config_read32(struct __test_metadata *_metadata, int fd, unsigned int offset)
{
	__u32 value = 0;

	EXPECT_EQ(4, pread(fd, &value, 4, CONFIG_OFFSET + offset));
	return value;
}

static void config_write32(struct __test_metadata *_metadata, int fd, unsigned int offset,
			   __u32 value)
{
	EXPECT_EQ(4, pwrite(fd, &value, 4, CONFIG_OFFSET + offset));
}

TEST_F(vfio, config_space)
{
	__u32 word = 0;
	__u8 byte;

	EXPECT_EQ(0x32534348, config_read32(_metadata, self->v.device, 0x00));
	EXPECT_EQ(0x07000210, config_read32(_metadata, self->v.device, 0x08));
	EXPECT_EQ(0x32534348, config_read32(_metadata, self->v.device, 0x2c));
	EXPECT_EQ(1, pread(self->v.device, &byte, 1, CONFIG_OFFSET + 0x3d));
	EXPECT_EQ(1, byte);

	/* Read-only fields stay; the interrupt line is writable. */
	config_write32(_metadata, self->v.device, 0x00, 0);
	EXPECT_EQ(0x32534348, config_read32(_metadata, self->v.device, 0x00));
	byte = 11;
	EXPECT_EQ(1, pwrite(self->v.device, &byte, 1, CONFIG_OFFSET + 0x3c));
	EXPECT_EQ(0x010b, config_read32(_metadata, self->v.device, 0x3c) & 0xffff);

	/* Past the end, or straddling it */
	EXPECT_EQ(-1, pread(self->v.device, &byte, 1, CONFIG_OFFSET + 256));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, pwrite(self->v.device, &word, 4, CONFIG_OFFSET + 254));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(vfio, bar_sizing_and_reset)
{
	config_write32(_metadata, self->v.device, 0x10, 0xffffffff);
	EXPECT_EQ(0xfffffff9, config_read32(_metadata, self->v.device, 0x10));
	config_write32(_metadata, self->v.device, 0x18, 0xffffffff);
	EXPECT_EQ(~(BAR2_SIZE - 1), config_read32(_metadata, self->v.device, 0x18));
	/* Unimplemented BARs read 0 whatever is written */
	config_write32(_metadata, self->v.device, 0x14, 0xffffffff);
	EXPECT_EQ(0, config_read32(_metadata, self->v.device, 0x14));
	config_write32(_metadata, self->v.device, 0x10, 0xc000);
	EXPECT_EQ(0xc001, config_read32(_metadata, self->v.device, 0x10));

	ASSERT_EQ(0, ioctl(self->v.device, VFIO_DEVICE_RESET));
	EXPECT_EQ(1, config_read32(_metadata, self->v.device, 0x10));
	EXPECT_EQ(0, config_read32(_metadata, self->v.device, 0x18));
}

/* The aggregation cannot change while a VFIO user holds the device. */
TEST_F(vfio, aggregation_busy_while_open)
{
	char path[256], reason[128];
	int kmsg = kmsg_open();

	ASSERT_LE(0, kmsg);
	rmtty_device_path(path, sizeof(path), self->uuid, "mdev/aggregated_instances");
	EXPECT_EQ(-EBUSY, sysfs_write(path, "2"));
	snprintf(reason, sizeof(reason), "%s: aggregated_instances: the device is open",
		 self->uuid);
	expect_logged_once(_metadata, kmsg, self->uuid, reason);
	EXPECT_EQ(0, sysfs_write(path, "3"));	/* the same value is no change */
	EXPECT_EQ(self->units - AGGREGATION, rmtty_type_long(1, "available_instances"));

	close(self->v.device);
	self->v.device = -1;
	EXPECT_EQ(0, sysfs_write(path, "2"));
	EXPECT_EQ(self->units - 2, rmtty_type_long(1, "available_instances"));
	close(kmsg);
}

/* Write @width bytes of @value at @offset of BAR2 and read them back. */
static void memory_round_trip(struct __test_metadata *_metadata, int fd, __u64 offset,
			      unsigned int width, __u64 value)
{
	__u64 back = 0;

	ASSERT_EQ(width, pwrite(fd, &value, width, BAR2_OFFSET + offset));
	ASSERT_EQ(width, pread(fd, &back, width, BAR2_OFFSET + offset));
	EXPECT_EQ(0, memcmp(&value, &back, width)) TH_LOG("%u bytes at %#llx", width, offset);
}

TEST_F(vfio, device_memory)
{
	static __u8 bulk[64 << 10], back[64 << 10];
	const __u64 offsets[] = { 0, 1, 0x1000, 0x123457, BACKED - 8 };
	const unsigned int widths[] = { 1, 2, 4, 8 };
	unsigned int i, j;
	__u64 word;
	__u8 byte;

	for (i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++)
		for (j = 0; j < sizeof(widths) / sizeof(widths[0]); j++)
			memory_round_trip(_metadata, self->v.device, offsets[i], widths[j],
					  0x0123456789abcdefull ^ (i << 8 | j));
	memory_round_trip(_metadata, self->v.device, BACKED - 1, 1, 0x5a);

	for (i = 0; i < sizeof(bulk); i++)
		bulk[i] = i * 7 + (i >> 8);
	ASSERT_EQ(sizeof(bulk), pwrite(self->v.device, bulk, sizeof(bulk), BAR2_OFFSET + (1 << 20)));
	ASSERT_EQ(sizeof(back), pread(self->v.device, back, sizeof(back), BAR2_OFFSET + (1 << 20)));
	EXPECT_EQ(0, memcmp(bulk, back, sizeof(bulk)));

	/* Past the backed 3 MiB, up to the 4 MiB BAR: all-ones, writes ignored */
	word = 0;
	ASSERT_EQ(8, pwrite(self->v.device, &word, 8, BAR2_OFFSET + BACKED));
	ASSERT_EQ(8, pread(self->v.device, &word, 8, BAR2_OFFSET + BACKED));
	EXPECT_EQ(~0ull, word);
	ASSERT_EQ(1, pread(self->v.device, &byte, 1, BAR2_OFFSET + BAR2_SIZE - 1));
	EXPECT_EQ(0xff, byte);
	/* Straddling the backed end: memory, then all-ones */
	ASSERT_EQ(8, pread(self->v.device, &word, 8, BAR2_OFFSET + BACKED - 4));
	EXPECT_EQ(0xffffffff, word >> 32);

	/* Outside the BAR, or straddling its end: refused */
	EXPECT_EQ(-1, pread(self->v.device, &byte, 1, BAR2_OFFSET + BAR2_SIZE));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, pwrite(self->v.device, &word, 8, BAR2_OFFSET + BAR2_SIZE - 4));
	EXPECT_EQ(EINVAL, errno);

	/* A reset keeps the memory */
	ASSERT_EQ(0, ioctl(self->v.device, VFIO_DEVICE_RESET));
	ASSERT_EQ(sizeof(back), pread(self->v.device, back, sizeof(back), BAR2_OFFSET + (1 << 20)));
	EXPECT_EQ(0, memcmp(bulk, back, sizeof(bulk)));
}

/* The kernel log of one device's refusals, and how many were logged so far. */
struct refusal_log {
	int kmsg;
	const char *uuid;
	int logged;
};

/* Expect one kernel log record, since the last look, of the refusal @fmt says. */
static void __printf(3, 4)
expect_refusal_logged(struct __test_metadata *_metadata, struct refusal_log *log,
		      const char *fmt, ...)
{
	char refusal[128];
	va_list args;

	va_start(args, fmt);
	vsnprintf(refusal, sizeof(refusal), fmt, args);
	va_end(args);
	EXPECT_EQ(1, refusals_logged(log->kmsg, log->uuid, refusal)) TH_LOG("%s", refusal);
	log->logged++;
}

/*
 * Requests that work log nothing; each refused one is logged once, naming the
 * device, the request and the errno; a flood of them is rate limited.
 */
TEST_F(vfio, refusals_logged)
{
	const __u32 unknown_ioctl = _IO(VFIO_TYPE, VFIO_BASE + 99);
	struct vfio_region_info region = { .argsz = sizeof(region) };
	struct vfio_irq_info irq = { .argsz = sizeof(irq) };
	struct vfio_device_info info = { .argsz = sizeof(info) };
	struct refusal_log log = { .uuid = self->uuid };
	int device = self->v.device, i;
	char refusal[128];
	__u64 word = 0;

	log.kmsg = kmsg_open();
	ASSERT_LE(0, log.kmsg);
	ASSERT_EQ(0, ioctl(device, VFIO_DEVICE_GET_INFO, &info));
	ASSERT_EQ(0, ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &region));
	ASSERT_EQ(0, ioctl(device, VFIO_DEVICE_GET_IRQ_INFO, &irq));
	ASSERT_EQ(8, pread(device, &word, 8, CONFIG_OFFSET));
	ASSERT_EQ(8, pwrite(device, &word, 8, BAR2_OFFSET));
	EXPECT_EQ(0, kmsg_count(log.kmsg, self->uuid));

	EXPECT_EQ(-1, pread(device, &word, 8, BAR0_OFFSET + 4));
	expect_refusal_logged(_metadata, &log, "8-byte read at %#llx refused: EINVAL",
			      BAR0_OFFSET + 4);
	EXPECT_EQ(-1, pwrite(device, &word, 4, BAR2_OFFSET + BAR2_SIZE - 2));
	expect_refusal_logged(_metadata, &log, "4-byte write at %#llx refused: EINVAL",
			      BAR2_OFFSET + BAR2_SIZE - 2);
	region.index = VFIO_PCI_NUM_REGIONS + 1;
	EXPECT_EQ(-1, ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &region));
	expect_refusal_logged(_metadata, &log,
			      "VFIO_DEVICE_GET_REGION_INFO of index %u refused: EINVAL",
			      region.index);
	irq.index = VFIO_PCI_NUM_IRQS;
	EXPECT_EQ(-1, ioctl(device, VFIO_DEVICE_GET_IRQ_INFO, &irq));
	expect_refusal_logged(_metadata, &log,
			      "VFIO_DEVICE_GET_IRQ_INFO of index %u refused: EINVAL", irq.index);
	EXPECT_EQ(-ENOTTY, irq_action(device, VFIO_PCI_MSI_IRQ_INDEX, VFIO_IRQ_SET_ACTION_MASK));
	expect_refusal_logged(_metadata, &log,
			      "VFIO_DEVICE_SET_IRQS of index %u, start 0, count 1, flags %#x refused: ENOTTY",
			      VFIO_PCI_MSI_IRQ_INDEX, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK);
	EXPECT_EQ(-1, ioctl(device, unknown_ioctl, NULL));
	EXPECT_EQ(ENOTTY, errno);
	expect_refusal_logged(_metadata, &log, "ioctl %#x refused: ENOTTY", unknown_ioctl);

	/* Of many more refusals, the rest of the burst is logged. */
	for (i = 0; i < 2 * LOG_BURST; i++)
		EXPECT_EQ(-1, pread(device, &word, 1, BAR2_OFFSET + BAR2_SIZE));
	snprintf(refusal, sizeof(refusal), "1-byte read at %#llx refused: EINVAL",
		 BAR2_OFFSET + BAR2_SIZE);
	EXPECT_EQ(LOG_BURST - log.logged, refusals_logged(log.kmsg, self->uuid, refusal));
	close(log.kmsg);
}

/* The VFIO core's wait, in a removal, for the users of the device to close it */
#define REMOVAL_WAIT	"vfio_unregister_group_dev"
/* Under TCG emulation everything is slow: how long a task may take to get somewhere */
#define SLOW_SECONDS	30

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Whether task @pid sleeps in kernel function @func: its wchan names it, or
 * else its kernel stack has it. What wchan said goes to @seen.
 */
static bool sleeps_in(pid_t pid, const char *func, char *seen, size_t size)
{
	char path[64], stack[4096], frame[128];

	snprintf(path, sizeof(path), "/proc/%d/wchan", pid);
	if (sysfs_read(path, seen, size) < 0)
		snprintf(seen, size, "(no wchan)");
	if (!strcmp(seen, func))
		return true;
	snprintf(path, sizeof(path), "/proc/%d/stack", pid);
	snprintf(frame, sizeof(frame), "] %s+", func);
	return sysfs_read(path, stack, sizeof(stack)) > 0 && strstr(stack, frame);
}

/*
 * Wait up to @seconds for child @pid to sleep in @func: 1 when it does, 0 if
 * it did not in time (@seen has its last wchan), -1 if it exited (reaped,
 * with its status in @status).
 */
static int wait_sleeping_in(pid_t pid, const char *func, unsigned int seconds, char *seen,
			    size_t size, int *status)
{
	const struct timespec pause = { .tv_nsec = 50 * 1000 * 1000 };
	double end = now() + seconds;

	do {
		if (sleeps_in(pid, func, seen, size))
			return 1;
		if (waitpid(pid, status, WNOHANG) == pid)
			return -1;
		nanosleep(&pause, NULL);
	} while (now() < end);
	return 0;
}

/* Wait up to @seconds for child @pid to exit; whether it did, with its status in @status. */
static bool wait_exit(pid_t pid, unsigned int seconds, int *status)
{
	const struct timespec pause = { .tv_nsec = 50 * 1000 * 1000 };
	double end = now() + seconds;

	do {
		if (waitpid(pid, status, WNOHANG) == pid)
			return true;
		nanosleep(&pause, NULL);
	} while (now() < end);
	return false;
}

/*
 * Removing a device that userspace holds open waits, in the VFIO core, until
 * it is closed; then the removal completes and the units come back. What the
 * fixture holds open is the device fd: the group's or the iommufd cdev.
 */
TEST_F_TIMEOUT(vfio, remove_while_open, 2 * SLOW_SECONDS + 60)
{
	int status, fds[] = { self->v.device, self->v.group, self->v.container, self->v.iommufd };
	unsigned int i;
	char seen[128];
	int waiting;
	pid_t child;

	child = fork();
	ASSERT_LE(0, child);
	if (!child) {
		for (i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
			if (fds[i] >= 0)
				close(fds[i]);
		_exit(rmtty_remove(self->uuid) ? 1 : 0);
	}

	/*
	 * The removal really waits for the device to be closed, not on its way
	 * there: it sleeps where the VFIO core waits, and stays there.
	 */
	waiting = wait_sleeping_in(child, REMOVAL_WAIT, SLOW_SECONDS, seen, sizeof(seen), &status);
	if (waiting > 0 && waitpid(child, &status, WNOHANG) == child)
		waiting = -1;
	if (waiting < 0)
		TH_LOG("the removal returned while the device was open");
	else if (!waiting)
		TH_LOG("after %d s the removal sleeps in '%s', not in " REMOVAL_WAIT,
		       SLOW_SECONDS, seen);
	EXPECT_EQ(1, waiting);
	EXPECT_EQ(self->units - AGGREGATION, rmtty_type_long(1, "available_instances"));

	close(self->v.device);
	self->v.device = -1;
	if (waiting >= 0) {
		ASSERT_TRUE(wait_exit(child, SLOW_SECONDS, &status))
			TH_LOG("the removal still waits %d s after the device was closed",
			       SLOW_SECONDS);
	}
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	EXPECT_FALSE(rmtty_device_exists(self->uuid));
	EXPECT_EQ(self->units, rmtty_type_long(1, "available_instances"));
}

TEST_HARNESS_MAIN
