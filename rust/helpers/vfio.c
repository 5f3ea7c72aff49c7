// SPDX-License-Identifier: GPL-2.0

#include <linux/vfio.h>

__rust_helper void rust_helper_vfio_put_device(struct vfio_device *device)
{
	vfio_put_device(device);
}

__rust_helper int
rust_helper_vfio_check_precopy_ioctl(struct vfio_device *vdev, unsigned int cmd,
				     unsigned long arg, struct vfio_precopy_info *info)
{
	return vfio_check_precopy_ioctl(vdev, cmd, arg, info);
}
