// SPDX-License-Identifier: GPL-2.0
/*
 * Opening an rmtty device through either VFIO front door, and what the tests
 * ask of it: region accesses, interrupt set-up, the log of its refusals.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/iommufd.h>

#include "kselftest.h"
#include "rmtty_util.h"
#include "rmtty_vfio.h"

/* Log what failed and return -errno. */
static int failed(const char *what)
{
	int err = errno;

	ksft_print_msg("%s: %s\n", what, strerror(err));
	return -err;
}

/* The number at the end of the link @path. */
static int trailing_number(const char *path)
{
	char buf[256];
	ssize_t len = readlink(path, buf, sizeof(buf) - 1);
	const char *p;

	if (len < 0)
		return -errno;
	buf[len] = '\0';
	p = strrchr(buf, '/');
	return atoi(p ? p + 1 : buf);
}

static int open_group(struct rmtty_vfio *v, const char *uuid)
{
	struct vfio_group_status status = { .argsz = sizeof(status) };
	char path[256];
	int group;

	rmtty_device_path(path, sizeof(path), uuid, "iommu_group");
	group = trailing_number(path);
	if (group < 0)
		return failed(path);
	snprintf(path, sizeof(path), "/dev/vfio/%d", group);
	v->group = open(path, O_RDWR);
	if (v->group < 0)
		return failed(path);
	if (ioctl(v->group, VFIO_GROUP_GET_STATUS, &status))
		return failed("VFIO_GROUP_GET_STATUS");
	if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		errno = EBUSY;
		return failed("group not viable");
	}
	v->container = open("/dev/vfio/vfio", O_RDWR);
	if (v->container < 0)
		return failed("/dev/vfio/vfio");
	if (ioctl(v->group, VFIO_GROUP_SET_CONTAINER, &v->container))
		return failed("VFIO_GROUP_SET_CONTAINER");
	if (ioctl(v->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))
		return failed("VFIO_SET_IOMMU");
	v->device = ioctl(v->group, VFIO_GROUP_GET_DEVICE_FD, uuid);
	if (v->device < 0)
		return failed("VFIO_GROUP_GET_DEVICE_FD");
	return 0;
}

static int open_cdev(struct rmtty_vfio *v, const char *uuid)
{
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
	struct vfio_device_attach_iommufd_pt attach = { .argsz = sizeof(attach) };
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	char path[256], name[64];
	FILE *list;

	snprintf(path, sizeof(path), "ls %s/%s/vfio-dev", MDEV_DEVICES, uuid);
	list = popen(path, "r");
	if (!list)
		return failed(path);
	if (!fgets(name, sizeof(name), list))
		name[0] = '\0';
	pclose(list);
	name[strcspn(name, "\n")] = '\0';
	snprintf(path, sizeof(path), "/dev/vfio/devices/%s", name);
	v->device = open(path, O_RDWR);
	if (v->device < 0)
		return failed(path);

	v->iommufd = open("/dev/iommu", O_RDWR);
	if (v->iommufd < 0)
		return failed("/dev/iommu");
	bind.iommufd = v->iommufd;
	if (ioctl(v->device, VFIO_DEVICE_BIND_IOMMUFD, &bind))
		return failed("VFIO_DEVICE_BIND_IOMMUFD");
	if (ioctl(v->iommufd, IOMMU_IOAS_ALLOC, &alloc))
		return failed("IOMMU_IOAS_ALLOC");
	attach.pt_id = alloc.out_ioas_id;
	if (ioctl(v->device, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach))
		return failed("VFIO_DEVICE_ATTACH_IOMMUFD_PT");
	return 0;
}

int rmtty_vfio_open(struct rmtty_vfio *v, const char *uuid, bool cdev)
{
	int ret;

	*v = (struct rmtty_vfio)RMTTY_VFIO_INIT;
	ret = cdev ? open_cdev(v, uuid) : open_group(v, uuid);
	if (ret)
		rmtty_vfio_close(v);
	return ret;
}

void rmtty_vfio_close(struct rmtty_vfio *v)
{
	int *fds[] = { &v->device, &v->group, &v->container, &v->iommufd };
	unsigned int i;

	for (i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

int bar0_read(int device, unsigned int reg)
{
	__u8 value;

	if (pread(device, &value, 1, BAR0_OFFSET + reg) != 1)
		return -errno;
	return value;
}

int bar0_write(int device, unsigned int reg, __u8 value)
{
	if (pwrite(device, &value, 1, BAR0_OFFSET + reg) != 1)
		return -errno;
	return 0;
}

int set_irqs(int device, __u32 flags, __u32 index, __u32 start, __u32 count,
	     const void *data, size_t size)
{
	__u64 buf[(sizeof(struct vfio_irq_set) + SET_IRQS_DATA_MAX + 7) / sizeof(__u64)] = { 0 };
	struct vfio_irq_set *set = (struct vfio_irq_set *)buf;

	if (size > SET_IRQS_DATA_MAX)
		return -E2BIG;
	set->argsz = sizeof(*set) + size;
	set->flags = flags;
	set->index = index;
	set->start = start;
	set->count = count;
	if (size)
		memcpy(set->data, data, size);
	return ioctl(device, VFIO_DEVICE_SET_IRQS, set) ? -errno : 0;
}

int set_eventfd(int device, __u32 index, __s32 fd)
{
	return set_irqs(device, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
			index, 0, 1, &fd, sizeof(fd));
}

int irq_action(int device, __u32 index, __u32 action)
{
	return set_irqs(device, VFIO_IRQ_SET_DATA_NONE | action, index, 0, 1, NULL, 0);
}

int refusals_logged(int kmsg, const char *uuid, const char *refusal)
{
	char needle[256];

	snprintf(needle, sizeof(needle), "%s: %s", uuid, refusal);
	return kmsg_count(kmsg, needle);
}
