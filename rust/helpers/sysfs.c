// SPDX-License-Identifier: GPL-2.0

#include <linux/sysfs.h>

/*
 * Gives an attribute that Rust builds at run time the lockdep class of @key
 * (registered with lockdep_register_key()) for its kernfs active references,
 * as sysfs_attr_init() gives a static one of its own.
 */
__rust_helper void rust_helper_sysfs_attr_set_lock_class(struct attribute *attr,
							 struct lock_class_key *key)
{
#ifdef CONFIG_DEBUG_LOCK_ALLOC
	attr->key = key;
#endif
}
