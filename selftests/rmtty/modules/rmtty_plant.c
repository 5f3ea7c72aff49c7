// SPDX-License-Identifier: GPL-2.0
/*
 * rmtty_plant: a memory-safety defect planted on purpose, to show that a test
 * run turns red when the kernel's sanitizers report one. The suite never
 * loads it by itself; `make check RMTTY_PLANT=KIND` loads it in the guest
 * before the tests:
 *
 *   kind=kasan  reads the byte just past a 17-byte kmalloc() object
 *               ("BUG: KASAN: slab-out-of-bounds" from generic KASAN)
 *   kind=ubsan  reads element 4 of a 4-element array
 *               ("UBSAN: array-index-out-of-bounds" from UBSAN_BOUNDS)
 *
 * Either way the module does not stay loaded: its init fails with ECANCELED
 * once the access is done, so that what the run reports is the sanitizer's
 * line and nothing else.
 */
#include <linux/compiler.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/string.h>

static char *kind = "kasan";
module_param(kind, charp, 0444);
MODULE_PARM_DESC(kind, "the defect to plant: kasan or ubsan");

/* Indexes the compiler cannot see through, so that the checks run. */
static size_t past_end = 17;
static unsigned int array_end = 4;

static noinline u8 read_past_kmalloc(void)
{
	u8 *object = kmalloc(17, GFP_KERNEL);
	u8 byte;

	if (!object)
		return 0;
	OPTIMIZER_HIDE_VAR(object);
	byte = READ_ONCE(object[past_end]);
	kfree(object);
	return byte;
}

static noinline int read_past_array(void)
{
	int array[4] = { 1, 2, 3, 4 };

	OPTIMIZER_HIDE_VAR(array_end);
	/* A load, not an address: &array[4] alone is a legal one-past-the-end pointer. */
	return array[array_end];
}

static int __init rmtty_plant_init(void)
{
	if (!strcmp(kind, "kasan"))
		pr_info("rmtty_plant: read %u past a kmalloc() object\n", read_past_kmalloc());
	else if (!strcmp(kind, "ubsan"))
		pr_info("rmtty_plant: read %d past an array\n", read_past_array());
	else
		return -EINVAL;
	return -ECANCELED;
}
module_init(rmtty_plant_init);

MODULE_DESCRIPTION("Test module: a planted out-of-bounds access for the sanitizers");
MODULE_AUTHOR("rmtty developers");
MODULE_LICENSE("GPL");
