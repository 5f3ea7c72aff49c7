/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Opening an rmtty device through either VFIO front door, and what the tests
 * ask of it: region accesses, interrupt set-up, the log of its refusals, its
 * migration and the stream that carries it.
 */
#ifndef RMTTY_VFIO_H
#define RMTTY_VFIO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
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
/*
 * If set, rmtty_vfio_open() calls it right before the requests that open the
 * device itself (VFIO_GROUP_GET_DEVICE_FD after the group's setup; the cdev's
 * open, binding and attaching), and fails with its error if it fails: the
 * fault-injection test arms fail-nth there.
 */
extern int (*rmtty_vfio_before_device)(void);
/*
 * If set, rmtty_vfio_open() does not log what failed: for tests that expect
 * refusals by the thousand.
 */
extern bool rmtty_vfio_quiet;
/* Close whatever of @v is open. */
void rmtty_vfio_close(struct rmtty_vfio *v);

/*
 * README's BAR2 size for @memory bytes of device memory: the next power of
 * two at or above it.
 */
__u64 bar2_size_for(__u64 memory);
/*
 * Whether the configuration space of @device reads README's identity:
 * vendor 0x4348, device 0x3253, and at 0x09 the class code of a
 * 16550-compatible (0x02) serial (0x00) communication controller (0x07).
 */
bool config_identity_ok(int device);

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

/*
 * VFIO_DEVICE_FEATURE of @feature with @flags (VFIO_DEVICE_FEATURE_GET, _SET,
 * _PROBE) and @size bytes of @data (at most 16), which a GET fills in; 0 or
 * -errno.
 */
int device_feature(int device, __u32 flags, __u32 feature, void *data, size_t size);
/* The device's migration features (VFIO_MIGRATION_*) into @flags; 0 or -errno. */
int mig_features(int device, __u64 *flags);
/* The device's migration state (enum vfio_device_mig_state), or -errno. */
int mig_get_state(int device);
/*
 * Request migration state @state; 0 or -errno. The data fd of a transfer the
 * request started, or -1, goes to @data_fd (unless NULL: none can start).
 */
int mig_set_state(int device, __u32 state, int *data_fd);
/* VFIO_DEVICE_FEATURE_MIG_DATA_SIZE into @size; 0 or -errno. */
int mig_data_size(int device, __u64 *size);
/*
 * VFIO_MIG_GET_PRECOPY_INFO on @data_fd with @flags in and out; the sizes go to
 * @initial and @dirty. 0 or -errno.
 */
int mig_precopy_info_flags(int data_fd, __u32 *flags, __u64 *initial, __u64 *dirty);
int mig_precopy_info(int data_fd, __u64 *initial, __u64 *dirty);

/*
 * A known state for a device, by seed: what uart_give_state() gives a UART at
 * power-on, and what its registers then hold.
 */
struct uart_state {
	__u8 lcr, fcr, mcr, scr, ier;
	__u16 divisor;
	unsigned int sent;	/* bytes transmitted: they wait in the receive FIFO */
};

#define UART_FIFO_SIZE	16
/* The most bytes uart_read_all() reads */
#define UART_READS_MAX	64

struct uart_state uart_state_of(unsigned int seed);
/* The @i-th byte uart_give_state() transmits for @seed */
__u8 uart_sent_byte(unsigned int seed, unsigned int i);
/*
 * Give the UART of @device, at power-on, the state of @seed: divisor, LCR,
 * FCR with the FIFO on, MCR, SCR, bytes in the receive FIFO (odd seeds
 * overrun it), all interrupts enabled and some pending. 0 or -errno.
 */
int uart_give_state(int device, unsigned int seed);
/*
 * Read all the UART of @device shows, in one fixed order, read side effects
 * and all, into @out (UART_READS_MAX bytes): two ports in the same state read
 * the same. How many bytes, or -errno.
 */
int uart_read_all(int device, __u8 *out);
/* Give the config space of @device writable values of @seed; 0 or -errno. */
int config_give_state(int device, unsigned int seed);
/*
 * Fill the first, the last and six other pages of @device's @memory bytes, and
 * 3 bytes somewhere, with a pattern of @seed; 0 or -errno.
 */
int memory_give_state(int device, size_t memory, unsigned int seed);
/* The @memory bytes of @device's memory, malloc'ed; NULL on failure. */
__u8 *memory_read_all(int device, size_t memory);

/* The migration stream's pieces (samples/rmtty/migration-stream.md) */
#define MIG_HEADER	32
#define MIG_REC_HEADER	12
#define MIG_PAGE	4096
#define MIG_PAGE_REC	(MIG_REC_HEADER + 8 + MIG_PAGE)
#define MIG_CONFIG_SIZE	256
#define MIG_UART_SIZE	28
#define MIG_SUMMARY_SIZE 16
/* What follows the pages: config, UART, (1.1) summary and end records */
#define MIG_TAIL_1_0	(3 * MIG_REC_HEADER + MIG_CONFIG_SIZE + MIG_UART_SIZE)
#define MIG_TAIL	(MIG_TAIL_1_0 + MIG_REC_HEADER + MIG_SUMMARY_SIZE)
#define MIG_REQUIRED	1
enum {
	MIG_REC_CONFIG = 1, MIG_REC_UART = 2, MIG_REC_PAGE = 3, MIG_REC_SUMMARY = 4,
	MIG_REC_END = 0xffff,
};

static inline __u16 get_le16(const __u8 *p)
{
	return p[0] | p[1] << 8;
}

static inline __u32 get_le32(const __u8 *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (__u32)p[3] << 24;
}

static inline void put_le32(__u8 *p, __u32 v)
{
	p[0] = v;
	p[1] = v >> 8;
	p[2] = v >> 16;
	p[3] = v >> 24;
}

/* CRC-32C of @len bytes: the raw register in and out, and with ~0 in and ~ out */
__u32 crc32c_update(__u32 crc, const void *buf, size_t len);
__u32 crc32c(const void *buf, size_t len);
/* The CRC a record must have: of its type, flags and length, then its payload */
__u32 mig_record_crc(const __u8 *rec);
/*
 * The size of the stream of a device of @memory bytes saved by stop-and-copy
 * alone: of version 1.1, the default, or of 1.@minor.
 */
size_t mig_stream_size(size_t memory);
size_t mig_stream_size_minor(size_t memory, unsigned int minor);

/* Where the pieces of a well-formed stream are */
struct mig_stream_map {
	unsigned int minor;	/* the header's */
	size_t first_page, config, uart, summary, end;	/* summary: 0 in a 1.0 stream */
	unsigned int page_records;
	unsigned int resent[16], nr_resent;	/* pages after the first pass, in order */
};

/*
 * Check that @s is a stream as an rmtty device of @memory bytes writes it: the
 * header (version 1.1 or 1.0), a first pass over the pages in order, maybe
 * pages again, the config and UART records, in 1.1 the summary record with
 * the right counts, and the end record, every CRC right. The pages go to
 * @pages (if not NULL), the last of each counting. NULL if it is one, else
 * what is wrong.
 */
const char *mig_stream_parse(const __u8 *s, size_t len, size_t memory,
			     struct mig_stream_map *map, __u8 *pages);
/*
 * @s with a record of @type, @flags and @plen payload bytes (with its CRC)
 * inserted at @at, malloc'ed; its length goes to @new_len.
 */
__u8 *mig_insert_record(const __u8 *s, size_t len, size_t at, __u16 type, __u16 flags,
			__u32 plen, size_t *new_len);
/*
 * Rewrite the summary record of the @len bytes of @s to count what is before
 * it, its CRC too, as a writer of that stream would have; 0, or -1 if @s has
 * no summary record.
 */
int mig_fix_summary(__u8 *s, size_t len);
/* Give the header of @s minor version @minor, and the CRC that goes with it. */
void mig_set_minor(__u8 *s, unsigned int minor);
/* Read a data fd until read() returns 0, at most @size bytes: how many, or -errno. */
ssize_t mig_read_to_end(int fd, __u8 *buf, size_t size);
/*
 * Write @len bytes of @s to data fd @fd, in writes of the sizes @plan gives in
 * turn; 0 or -errno, with the bytes written before a failure in @done.
 */
int mig_write_plan(int fd, const __u8 *s, size_t len, const unsigned int *plan,
		   unsigned int steps, size_t *done);

/*
 * The v1 migration region (index 9, samples/rmtty/migration/region.rs): its
 * header, struct vfio_device_migration_info, and its data section, which holds
 * one buffer of the stream at a time and can be mapped.
 */
#define MIG1_INDEX	VFIO_PCI_NUM_REGIONS
#define MIG1_OFFSET	REGION_OFFSET(MIG1_INDEX)
#define MIG1_DATA	4096
#define MIG1_CAPACITY	(1 << 20)
#define MIG1_SIZE	(MIG1_DATA + MIG1_CAPACITY)
#define V1_STOP		VFIO_DEVICE_STATE_V1_STOP
#define V1_RUNNING	VFIO_DEVICE_STATE_V1_RUNNING
#define V1_SAVING	VFIO_DEVICE_STATE_V1_SAVING
#define V1_RESUMING	VFIO_DEVICE_STATE_V1_RESUMING
#define V1_PRECOPY	(V1_RUNNING | V1_SAVING)

/* The header field at @off, read with one pread of its @width (4 or 8) bytes; 0 or -errno. */
int mig1_read(int device, unsigned int off, unsigned int width, __u64 *val);
/* Write @val to the header field at @off with one pwrite of @width bytes; 0 or -errno. */
int mig1_write(int device, unsigned int off, unsigned int width, __u64 val);
/* device_state, or -errno */
int mig1_state(int device);
/*
 * device_state <- @bits, as QEMU 7.2 does it: read it, then write; 0 or
 * -errno.
 */
int mig1_set_state(int device, __u32 bits);
/* The data section mapped read-write, or MAP_FAILED. */
__u8 *mig1_map(int device);

/* How a saving or resuming sequence moves the data section's bytes */
struct mig1_access {
	size_t piece;	/* bytes per pread/pwrite: 8 is QEMU 7.2's */
	__u8 *map;	/* or through this mapping, if not NULL */
	size_t chunk;	/* resuming: bytes per data_size write */
};

/*
 * QEMU 7.2's saving loop: while pending_bytes > 0, read data_offset, data_size
 * and the buffer, appending it to @buf (@size bytes). The bytes read, or
 * -errno; -EPROTO if a buffer is empty or larger than pending_bytes said, or
 * data_offset is not the data section. @buffers counts the buffers.
 */
ssize_t mig1_drain(int device, __u8 *buf, size_t size, const struct mig1_access *a,
		   unsigned int *buffers);
/*
 * QEMU 7.2's resuming loop for @len bytes of @s: read data_offset, write a
 * chunk there, write data_size. 0 or -errno, with the bytes the device took
 * in @done.
 */
int mig1_fill(int device, const __u8 *s, size_t len, const struct mig1_access *a, size_t *done);

#endif /* RMTTY_VFIO_H */
