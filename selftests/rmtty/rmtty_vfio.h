/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Opening an rmtty device through either VFIO front door, and what the tests
 * ask of it: region accesses, interrupt set-up, the log of its refusals.
 */
#ifndef RMTTY_VFIO_H
#define RMTTY_VFIO_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include <linux/vfio.h>

#define REGION_OFFSET(index)	((__u64)(index) << 40)
#define CONFIG_OFFSET	REGION_OFFSET(VFIO_PCI_CONFIG_REGION_INDEX)
#define BAR0_OFFSET	REGION_OFFSET(VFIO_PCI_BAR0_REGION_INDEX)
#define BAR2_OFFSET	REGION_OFFSET(VFIO_PCI_BAR2_REGION_INDEX)

/* An open device and what holds it: a group and container, or an iommufd. */
struct rmtty_vfio {
	int container, group, iommufd, device;
};

#define RMTTY_VFIO_INIT { -1, -1, -1, -1 }

/*
 * Open device @uuid through the iommufd cdev (@cdev) or its group with a
 * type1 container; 0 or -errno, with what failed logged.
 */
int rmtty_vfio_open(struct rmtty_vfio *v, const char *uuid, bool cdev);
/* Close whatever of @v is open. */
void rmtty_vfio_close(struct rmtty_vfio *v);

/* One UART register at BAR0: the value read, or -errno. */
int bar0_read(int device, unsigned int reg);
/* Write one UART register; 0 or -errno. */
int bar0_write(int device, unsigned int reg, __u8 value);

/* The most data set_irqs() sends: four eventfds. */
#define SET_IRQS_DATA_MAX	16

/* VFIO_DEVICE_SET_IRQS with @size bytes (at most SET_IRQS_DATA_MAX) of @data; 0 or -errno. */
int set_irqs(int device, __u32 flags, __u32 index, __u32 start, __u32 count,
	     const void *data, size_t size);
/* Signal vector 0 of @index through eventfd @fd (-1: stop). */
int set_eventfd(int device, __u32 index, __s32 fd);
/* @action on vector 0 of @index, with no data. */
int irq_action(int device, __u32 index, __u32 action);

/*
 * The kernel log records since the last look at @kmsg in which device @uuid
 * logs @refusal ("<request> refused: <errno name>").
 */
int refusals_logged(int kmsg, const char *uuid, const char *refusal);

#endif /* RMTTY_VFIO_H */
