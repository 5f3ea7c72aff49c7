// SPDX-License-Identifier: GPL-2.0

#include <linux/sysfs.h>

/*
 * Attributes that Rust builds at run time share this one lockdep class for
 * their kernfs active references.
 */
__rust_helper void rust_helper_sysfs_attr_init(struct attribute *attr)
{
	sysfs_attr_init(attr);
}
