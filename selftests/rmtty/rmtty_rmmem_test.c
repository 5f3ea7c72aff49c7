// SPDX-License-Identifier: GPL-2.0
/*
 * rmmem, the second sample driver of the abstractions (samples/rmmem): an
 * mdev parent with no pool, whose types it builds when it loads (from
 * max_kib) and whose devices are vfio-platform devices of one memory region.
 * Its types, their names and their separate counts of free instances; its
 * device through both VFIO front doors: the info the uAPI defines for a
 * platform device with one region, the region's bytes, accesses past it
 * refused, and each device's memory its own.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "rmtty_util.h"
#include "rmtty_vfio.h"

#define RMMEM_TYPES	"/sys/class/mdev_bus/rmmem/mdev_supported_types"
/* The module's parameters in these tests: types of 4, 8 and 16 KiB, two of each. */
#define MAX_KIB		16
#define INSTANCES	2
#define NR_TYPES	3

static const unsigned int type_kib[NR_TYPES] = { 4, 8, 16 };

/* samples/rmmem/rmmem.ko, beside rmtty's samples/rmtty/rmtty.ko. */
static int rmmem_path(char *buf, size_t size)
{
	const char *ko = rmtty_ko();
	const char *tail = "rmtty/rmtty.ko";
	size_t len = ko ? strlen(ko) : 0;

	if (len < strlen(tail) || strcmp(ko + len - strlen(tail), tail))
		return -ENOENT;
	snprintf(buf, size, "%.*srmmem/rmmem.ko", (int)(len - strlen(tail)), ko);
	return 0;
}

static int rmmem_load(const char *args)
{
	char path[512];
	int fd, ret;

	ret = rmmem_path(path, sizeof(path));
	if (ret)
		return ret;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = syscall(SYS_finit_module, fd, args, 0) ? -errno : 0;
	close(fd);
	return ret;
}

static int rmmem_unload(void)
{
	return syscall(SYS_delete_module, "rmmem", O_NONBLOCK) ? -errno : 0;
}

static void type_path(char *buf, size_t size, unsigned int kib, const char *attr)
{
	snprintf(buf, size, RMMEM_TYPES "/rmmem-%uk/%s", kib, attr);
}

static long type_long(unsigned int kib, const char *attr)
{
	char path[256];

	type_path(path, sizeof(path), kib, attr);
	return sysfs_read_long(path);
}

static int create(unsigned int kib, const char *uuid)
{
	char path[256];

	type_path(path, sizeof(path), kib, "create");
	return sysfs_write(path, uuid);
}

FIXTURE(rmmem) {
	char uuid[INSTANCES + 1][UUID_LEN + 1];
	struct rmtty_vfio v[2];
	int kmsg;
};

FIXTURE_VARIANT(rmmem) {
	bool cdev;
};

FIXTURE_VARIANT_ADD(rmmem, group) { .cdev = false };
FIXTURE_VARIANT_ADD(rmmem, iommufd) { .cdev = true };

FIXTURE_SETUP(rmmem)
{
	char args[64];
	unsigned int i;

	rmtty_require_ko(_metadata);
	for (i = 0; i <= INSTANCES; i++)
		rmtty_uuid(self->uuid[i], 0x4000 + i);
	self->v[0] = (struct rmtty_vfio)RMTTY_VFIO_INIT;
	self->v[1] = (struct rmtty_vfio)RMTTY_VFIO_INIT;
	self->kmsg = kmsg_open();
	ASSERT_LE(0, self->kmsg);
	if (!access("/sys/module/rmmem", F_OK))
		ASSERT_EQ(0, rmmem_unload());
	snprintf(args, sizeof(args), "max_kib=%u instances=%u", MAX_KIB, INSTANCES);
	ASSERT_EQ(0, rmmem_load(args));
}

FIXTURE_TEARDOWN(rmmem)
{
	char path[256];
	unsigned int i;

	rmtty_vfio_close(&self->v[0]);
	rmtty_vfio_close(&self->v[1]);
	for (i = 0; i <= INSTANCES; i++) {
		rmtty_device_path(path, sizeof(path), self->uuid[i], "remove");
		if (!access(path, F_OK))
			EXPECT_EQ(0, sysfs_write(path, "1"));
	}
	EXPECT_EQ(0, rmmem_unload());
	EXPECT_EQ(0, kmsg_splats(self->kmsg));
	close(self->kmsg);
}

/* The types max_kib=16 gives, with the names and counts the README documents. */
TEST_F(rmmem, types_learned_at_load)
{
	char path[256], buf[128], expect[128];
	unsigned int i, found = 0;
	struct dirent *de;
	DIR *dir;

	dir = opendir(RMMEM_TYPES);
	ASSERT_NE(NULL, dir);
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		EXPECT_TRUE(!strcmp(de->d_name, "rmmem-4k") || !strcmp(de->d_name, "rmmem-8k") ||
			    !strcmp(de->d_name, "rmmem-16k")) TH_LOG("unexpected type %s", de->d_name);
		found++;
	}
	closedir(dir);
	EXPECT_EQ(NR_TYPES, found);

	for (i = 0; i < NR_TYPES; i++) {
		type_path(path, sizeof(path), type_kib[i], "name");
		ASSERT_LT(0, sysfs_read(path, buf, sizeof(buf)));
		snprintf(expect, sizeof(expect), "rmmem %u KiB\n", type_kib[i]);
		EXPECT_STREQ(expect, buf);
		type_path(path, sizeof(path), type_kib[i], "description");
		ASSERT_LT(0, sysfs_read(path, buf, sizeof(buf)));
		snprintf(expect, sizeof(expect), "%u KiB of memory in one region\n", type_kib[i]);
		EXPECT_STREQ(expect, buf);
		type_path(path, sizeof(path), type_kib[i], "device_api");
		ASSERT_LT(0, sysfs_read(path, buf, sizeof(buf)));
		EXPECT_STREQ("vfio-platform\n", buf);
		EXPECT_EQ(INSTANCES, type_long(type_kib[i], "available_instances"));
	}
}

/* Each type counts its own instances: no pool is shared. */
TEST_F(rmmem, instances_per_type)
{
	unsigned int i;

	for (i = 0; i < INSTANCES; i++) {
		ASSERT_EQ(0, create(8, self->uuid[i]));
		EXPECT_EQ(INSTANCES - 1 - i, type_long(8, "available_instances"));
	}
	EXPECT_EQ(-ENOSPC, create(8, self->uuid[INSTANCES]));
	EXPECT_EQ(INSTANCES, type_long(4, "available_instances"));
	EXPECT_EQ(INSTANCES, type_long(16, "available_instances"));
	EXPECT_EQ(0, rmtty_remove(self->uuid[0]));
	EXPECT_EQ(1, type_long(8, "available_instances"));
	/* The one given back is taken again. */
	EXPECT_EQ(0, create(8, self->uuid[INSTANCES]));
	EXPECT_EQ(0, type_long(8, "available_instances"));
}

/* The uAPI's answers for a platform device with one read-write region of 16 KiB. */
TEST_F(rmmem, one_memory_region)
{
	struct vfio_device_info info = { .argsz = sizeof(info) };
	struct vfio_region_info region = { .argsz = sizeof(region) };
	static unsigned char out[16384], in[16384];
	int device, other;
	unsigned int i;

	ASSERT_EQ(0, create(16, self->uuid[0]));
	ASSERT_EQ(0, create(16, self->uuid[1]));
	ASSERT_EQ(0, rmtty_vfio_open(&self->v[0], self->uuid[0], variant->cdev));
	ASSERT_EQ(0, rmtty_vfio_open(&self->v[1], self->uuid[1], variant->cdev));
	device = self->v[0].device;
	other = self->v[1].device;

	ASSERT_EQ(0, ioctl(device, VFIO_DEVICE_GET_INFO, &info));
	EXPECT_EQ(VFIO_DEVICE_FLAGS_PLATFORM, info.flags);
	EXPECT_EQ(1, info.num_regions);
	EXPECT_EQ(0, info.num_irqs);

	region.index = 0;
	ASSERT_EQ(0, ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &region));
	EXPECT_EQ(16384, region.size);
	EXPECT_EQ(0, region.offset);
	EXPECT_EQ(VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE, region.flags);
	region = (struct vfio_region_info){ .argsz = sizeof(region), .index = 1 };
	EXPECT_EQ(-1, ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &region));
	EXPECT_EQ(EINVAL, errno);

	/* Zeroed at creation; then what is written reads back, in pieces of any size. */
	ASSERT_EQ(sizeof(in), pread(device, in, sizeof(in), 0));
	for (i = 0; i < sizeof(in); i++)
		ASSERT_EQ(0, in[i]) TH_LOG("byte %u of a new device", i);
	for (i = 0; i < sizeof(out); i++)
		out[i] = i * 7 + (i >> 8);
	ASSERT_EQ(4093, pwrite(device, out, 4093, 0));
	ASSERT_EQ(sizeof(out) - 4093, pwrite(device, out + 4093, sizeof(out) - 4093, 4093));
	ASSERT_EQ(sizeof(in), pread(device, in, sizeof(in), 0));
	EXPECT_EQ(0, memcmp(out, in, sizeof(in)));
	ASSERT_EQ(1, pread(device, in, 1, sizeof(in) - 1));
	EXPECT_EQ(out[sizeof(out) - 1], in[0]);

	/* The other device's memory is its own. */
	ASSERT_EQ(sizeof(in), pread(other, in, sizeof(in), 0));
	for (i = 0; i < sizeof(in); i++)
		ASSERT_EQ(0, in[i]) TH_LOG("byte %u of the other device", i);

	/* Past the region, or in a region it does not have: EINVAL, nothing written. */
	EXPECT_EQ(-1, pread(device, in, 2, sizeof(in) - 1));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, pwrite(device, out, 1, sizeof(out)));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, pwrite(device, out, 1, REGION_OFFSET(1)));
	EXPECT_EQ(EINVAL, errno);
	ASSERT_EQ(sizeof(in), pread(device, in, sizeof(in), 0));
	EXPECT_EQ(0, memcmp(out, in, sizeof(in)));
}

/* Parameters it cannot build types from: EINVAL, and it does not load. */
TEST(rmmem_refuses_bad_parameters)
{
	static const char *const bad[] = { "max_kib=2", "max_kib=12", "max_kib=2048",
					   "instances=0", "instances=65" };
	unsigned int i;

	rmtty_require_ko(_metadata);
	if (!access("/sys/module/rmmem", F_OK))
		ASSERT_EQ(0, rmmem_unload());
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		EXPECT_EQ(-EINVAL, rmmem_load(bad[i])) TH_LOG("%s", bad[i]);
		EXPECT_NE(0, access("/sys/module/rmmem", F_OK)) TH_LOG("%s", bad[i]);
	}
}

TEST_HARNESS_MAIN
