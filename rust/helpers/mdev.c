// SPDX-License-Identifier: GPL-2.0

#include <linux/mdev.h>

struct mdev_device *rust_helper_to_mdev_device(struct device *dev)
{
	return to_mdev_device(dev);
}
