/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The fixture of the migration tests, with a variant per VFIO front door, and
 * what they share: devices given a state, read back and compared, and saved
 * and loaded through the v2 data fds.
 */
#ifndef RMTTY_MIG_FIXTURE_H
#define RMTTY_MIG_FIXTURE_H

#include <dirent.h>
#include <stddef.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/serial_reg.h>
#include <linux/vfio.h>

#include "kselftest_harness.h"
#include "rmtty_util.h"
#include "rmtty_vfio.h"

#define STOP		VFIO_DEVICE_STATE_STOP
#define RUNNING		VFIO_DEVICE_STATE_RUNNING
#define STOP_COPY	VFIO_DEVICE_STATE_STOP_COPY
#define RESUMING	VFIO_DEVICE_STATE_RESUMING
#define RUNNING_P2P	VFIO_DEVICE_STATE_RUNNING_P2P
#define PRE_COPY	VFIO_DEVICE_STATE_PRE_COPY
#define PRE_COPY_P2P	VFIO_DEVICE_STATE_PRE_COPY_P2P

static const char *const state_name[] = {
	"ERROR", "STOP", "RUNNING", "STOP_COPY", "RESUMING", "RUNNING_P2P", "PRE_COPY",
	"PRE_COPY_P2P",
};

#define CHUNK		65536
#define MAX_DEVICES	4

FIXTURE(mig) {
	unsigned int units, unit_mib;
	char uuid[MAX_DEVICES][UUID_LEN + 1];
	struct rmtty_vfio v[MAX_DEVICES];
	size_t memory[MAX_DEVICES];
	int kmsg;
	__u8 *snapshot;
	/* The refusals a test caused in the rate limit's current window (stream_refusal()) */
	unsigned int window_lines;
};

FIXTURE_VARIANT(mig) {
	bool cdev;
};

FIXTURE_VARIANT_ADD(mig, group) { .cdev = false };
FIXTURE_VARIANT_ADD(mig, iommufd) { .cdev = true };

FIXTURE_SETUP(mig)
{
	struct rmtty_params p = { 0, 0 };
	int i;

	for (i = 0; i < MAX_DEVICES; i++)
		self->v[i] = (struct rmtty_vfio)RMTTY_VFIO_INIT;
	self->kmsg = -1;
	rmtty_require_reload(_metadata, &p, &self->units, &self->unit_mib);
	self->kmsg = kmsg_open();
	ASSERT_LE(0, self->kmsg);
}

/* Close the data fds left open, which hold the module; how many there were. */
static inline int close_data_fds(void)
{
	char path[300], target[64];
	struct dirent *entry;
	DIR *dir = opendir("/proc/self/fd");
	int closed = 0;
	ssize_t len;

	while (dir && (entry = readdir(dir))) {
		snprintf(path, sizeof(path), "/proc/self/fd/%s", entry->d_name);
		len = readlink(path, target, sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = '\0';
		if (!strcmp(target, "anon_inode:rmtty_mig") && !close(atoi(entry->d_name)))
			closed++;
	}
	if (dir)
		closedir(dir);
	return closed;
}

FIXTURE_TEARDOWN(mig)
{
	bool passed = _metadata->exit_code == KSFT_PASS;
	int i, left = close_data_fds();

	/* A test that armed fault injection and ended in an ASSERT */
	fault_injection_restore();

	/* A test that ends in an ASSERT may leave its data fds open. */
	if (passed)
		EXPECT_EQ(0, left) TH_LOG("the test left %d data fds open", left);
	for (i = 0; i < MAX_DEVICES; i++)
		rmtty_vfio_close(&self->v[i]);
	if (self->kmsg >= 0) {
		EXPECT_EQ(0, kmsg_splats(self->kmsg));
		close(self->kmsg);
	}
	free(self->snapshot);
	rmtty_expect_cleanup(_metadata);
}

/* Create device @slot, rmtty-@type aggregated @aggr times, and open it. */
static inline int add_device(struct __test_metadata *_metadata, FIXTURE_DATA(mig) *self, bool cdev,
			     unsigned int slot, unsigned int type, unsigned int aggr)
{
	char path[256], value[16];

	rmtty_uuid(self->uuid[slot], slot + 1);
	ASSERT_EQ(0, rmtty_create(type, self->uuid[slot]));
	if (aggr > 1) {
		rmtty_device_path(path, sizeof(path), self->uuid[slot],
				  "mdev/aggregated_instances");
		snprintf(value, sizeof(value), "%u", aggr);
		ASSERT_EQ(0, sysfs_write(path, value));
	}
	ASSERT_EQ(0, rmtty_vfio_open(&self->v[slot], self->uuid[slot], cdev));
	self->memory[slot] = (size_t)type * aggr * self->unit_mib << 20;
	return self->v[slot].device;
}

static inline void drop_device(struct __test_metadata *_metadata, FIXTURE_DATA(mig) *self,
			       unsigned int slot)
{
	rmtty_vfio_close(&self->v[slot]);
	EXPECT_EQ(0, rmtty_remove(self->uuid[slot]));
}

/* MSR after MCR gets DTR|RTS|OUT2 on a port at power-on: the plug's inputs, and their deltas */
#define MSR_SET		(UART_MSR_CTS | UART_MSR_DSR | UART_MSR_DCD)
#define MSR_GIVEN	(MSR_SET | UART_MSR_DCTS | UART_MSR_DDSR | UART_MSR_DDCD)

/* Expect what uart_read_all() read of a port given @seed. */
static inline void uart_expect(struct __test_metadata *_metadata, const __u8 *seq, unsigned int n,
			       unsigned int seed)
{
	struct uart_state u = uart_state_of(seed);
	unsigned int i, held = u.sent < UART_FIFO_SIZE ? u.sent : UART_FIFO_SIZE;

	EXPECT_EQ(u.sent > UART_FIFO_SIZE, !!(seq[1] & UART_LSR_OE));
	EXPECT_EQ(u.lcr, seq[3]);
	EXPECT_EQ(u.ier, seq[4]);
	EXPECT_EQ(u.mcr, seq[5]);
	EXPECT_EQ(u.scr, seq[6]);
	EXPECT_EQ(MSR_GIVEN, seq[7]);
	EXPECT_EQ(MSR_SET, seq[8]);
	for (i = 0; i < held; i++) {
		EXPECT_TRUE(seq[10 + 2 * i] & UART_LSR_DR) TH_LOG("byte %u", i);
		EXPECT_EQ(uart_sent_byte(seed, i), seq[11 + 2 * i]) TH_LOG("byte %u", i);
	}
	EXPECT_FALSE(seq[10 + 2 * held] & UART_LSR_DR);
	EXPECT_EQ(u.divisor, seq[n - 2] | seq[n - 1] << 8);
}

static inline void config_read(struct __test_metadata *_metadata, int device, __u8 *out)
{
	ASSERT_EQ(MIG_CONFIG_SIZE, pread(device, out, MIG_CONFIG_SIZE, CONFIG_OFFSET));
}

/* Give @device the config space, UART and (with @memory) memory of @seed. */
static inline void give_state(struct __test_metadata *_metadata, int device, size_t memory,
			      unsigned int seed)
{
	ASSERT_EQ(0, config_give_state(device, seed));
	ASSERT_EQ(0, uart_give_state(device, seed));
	if (memory)
		ASSERT_EQ(0, memory_give_state(device, memory, seed));
}

static inline unsigned int uart_reads(struct __test_metadata *_metadata, int device, __u8 *out)
{
	int n = uart_read_all(device, out);

	ASSERT_LT(0, n) TH_LOG("reading the UART: %s", strerror(-n));
	return n;
}

static inline __u8 *memory_read(struct __test_metadata *_metadata, int device, size_t memory)
{
	__u8 *buf = memory_read_all(device, memory);

	ASSERT_TRUE(buf != NULL) TH_LOG("reading %zu bytes of memory", memory);
	return buf;
}

static inline void expect_same(struct __test_metadata *_metadata, const void *seen,
			       const void *expected, size_t size, const char *what)
{
	const __u8 *a = seen, *b = expected;
	size_t i = 0;

	while (i < size && a[i] == b[i])
		i++;
	EXPECT_EQ(size, i) TH_LOG("%s: byte %#zx is %#x, expected %#x", what, i, a[i], b[i]);
}

/* Expect device @b's memory (@memory bytes) to read like device @a's. */
static inline void expect_same_memory(struct __test_metadata *_metadata, int a, int b,
				      size_t memory, const char *what)
{
	__u8 *ma = memory_read(_metadata, a, memory);
	__u8 *mb = memory_read(_metadata, b, memory);

	expect_same(_metadata, mb, ma, memory, what);
	free(ma);
	free(mb);
}

/*
 * Expect @b's config space and UART to read like @a's (the UART's reads
 * change it), and @a's UART to have the state of @seed.
 */
static inline void expect_same_regs(struct __test_metadata *_metadata, int a, int b,
				    const char *what, unsigned int seed)
{
	__u8 ca[MIG_CONFIG_SIZE], cb[MIG_CONFIG_SIZE], ua[UART_READS_MAX], ub[UART_READS_MAX];
	unsigned int na, nb;
	char label[128];

	config_read(_metadata, a, ca);
	config_read(_metadata, b, cb);
	snprintf(label, sizeof(label), "%s: config space", what);
	expect_same(_metadata, cb, ca, MIG_CONFIG_SIZE, label);
	na = uart_reads(_metadata, a, ua);
	nb = uart_reads(_metadata, b, ub);
	ASSERT_EQ(na, nb);
	snprintf(label, sizeof(label), "%s: UART reads", what);
	expect_same(_metadata, ub, ua, na, label);
	uart_expect(_metadata, ua, na, seed);
}

/*
 * Expect stopped devices @a and @b (STOP, STOP_COPY or RESUMING), whose UARTs
 * were given the state of @seed, to read alike: config space, and each UART
 * register read once, which a stopped device answers without side effects
 * (nor can the divisor latch be switched in: BAR writes are refused).
 */
static inline void expect_same_stopped_regs(struct __test_metadata *_metadata, int a, int b,
					    const char *what, unsigned int seed)
{
	struct uart_state u = uart_state_of(seed);
	__u8 ca[MIG_CONFIG_SIZE], cb[MIG_CONFIG_SIZE], ua[8], ub[8];
	char label[128];
	unsigned int reg;
	int va, vb;

	config_read(_metadata, a, ca);
	config_read(_metadata, b, cb);
	snprintf(label, sizeof(label), "%s: config space", what);
	expect_same(_metadata, cb, ca, MIG_CONFIG_SIZE, label);
	for (reg = 0; reg < 8; reg++) {
		va = bar0_read(a, reg);
		vb = bar0_read(b, reg);
		ASSERT_LE(0, va);
		ASSERT_LE(0, vb);
		ua[reg] = va;
		ub[reg] = vb;
	}
	snprintf(label, sizeof(label), "%s: UART registers", what);
	expect_same(_metadata, ub, ua, sizeof(ua), label);
	EXPECT_EQ(u.lcr, ua[UART_LCR]);
	EXPECT_EQ(u.ier, ua[UART_IER]);
	EXPECT_EQ(u.mcr, ua[UART_MCR]);
	EXPECT_EQ(u.scr, ua[UART_SCR]);
	EXPECT_TRUE(ua[UART_LSR] & UART_LSR_DR);
	EXPECT_EQ(uart_sent_byte(seed, 0), ua[UART_RX]);
}

/*
 * Before a request that a device refuses with one log line: if the lines
 * before it filled the rate limit's window (10 in 5 s), wait for a new one,
 * so that the line is logged and can be checked.
 */
static inline void stream_refusal(FIXTURE_DATA(mig) *self)
{
	if (self->window_lines == LOG_BURST) {
		sleep(LOG_WINDOW + 1);
		self->window_lines = 0;
	}
	self->window_lines++;
}

/* The v1 migration region's header fields */
#define FIELD(name)	offsetof(struct vfio_device_migration_info, name)
#define PENDING		FIELD(pending_bytes)
#define DATA_OFFSET	FIELD(data_offset)
#define DATA_SIZE	FIELD(data_size)

/* The v1 header field at @off, read at its width of 8 bytes */
static inline __u64 field(struct __test_metadata *_metadata, int device, unsigned int off)
{
	__u64 val = 0;

	EXPECT_EQ(0, mig1_read(device, off, 8, &val)) TH_LOG("field at %u", off);
	return val;
}

/* A v1 state change as QEMU 7.2 makes it, with the state read back */
static inline void set_v1(struct __test_metadata *_metadata, int device, __u32 bits)
{
	ASSERT_EQ(0, mig1_set_state(device, bits)) TH_LOG("to %#x", bits);
	ASSERT_EQ(bits, mig1_state(device));
}

/* What VFIO_MIG_GET_PRECOPY_INFO on @fd says: 0 in pre-copy, -EINVAL, -ENODEV once ended */
static inline int probe(int fd)
{
	__u64 initial, dirty;

	return mig_precopy_info(fd, &initial, &dirty);
}

/* Expect data fd @fd to be of an ended transfer; close it. */
static inline void expect_stale(struct __test_metadata *_metadata, int fd, bool saving)
{
	__u8 byte = 0;

	errno = 0;
	EXPECT_EQ(-1, saving ? read(fd, &byte, 1) : write(fd, &byte, 1));
	EXPECT_EQ(ENODEV, errno);
	EXPECT_EQ(-ENODEV, probe(fd));
	close(fd);
}

/* Write plans: sizes of the writes, in turn */
static const unsigned int by_rotation[] = { 1, 7, 4093 }, by_sevens[] = { 7 },
			  by_pages[] = { 4093 };

/*
 * Save @device, which writes stream version 1.@minor, by stop-and-copy, then
 * let it run again: the stream, malloc'ed.
 */
static inline __u8 *save_minor(struct __test_metadata *_metadata, int device, size_t memory,
			       unsigned int minor, size_t *len)
{
	size_t size = mig_stream_size_minor(memory, minor);
	__u8 *buf = malloc(size + MIG_PAGE_REC);
	__u64 data_size = 0;
	ssize_t got;
	int fd, fd2;

	ASSERT_TRUE(buf != NULL);
	ASSERT_EQ(0, mig_set_state(device, STOP_COPY, &fd));
	ASSERT_LE(0, fd);
	EXPECT_EQ(0, mig_data_size(device, &data_size));
	EXPECT_EQ(size, data_size);
	got = mig_read_to_end(fd, buf, size + MIG_PAGE_REC);
	EXPECT_EQ((ssize_t)size, got);
	ASSERT_LE(0, got);
	EXPECT_EQ(0, mig_data_size(device, &data_size));
	EXPECT_EQ(0, data_size);
	ASSERT_EQ(0, mig_set_state(device, RUNNING, &fd2));
	EXPECT_EQ(-1, fd2);
	expect_stale(_metadata, fd, true);
	*len = got;
	return buf;
}

/* Save @device, which writes the default stream version 1.1. */
static inline __u8 *save(struct __test_metadata *_metadata, int device, size_t memory, size_t *len)
{
	return save_minor(_metadata, device, memory, 1, len);
}

/* Load @len bytes of @s into @device in writes of @plan, and let it run. */
static inline void load(struct __test_metadata *_metadata, int device, const __u8 *s, size_t len,
			const unsigned int *plan, unsigned int steps)
{
	size_t done;
	int fd, fd2;

	ASSERT_EQ(0, mig_set_state(device, RESUMING, &fd));
	ASSERT_LE(0, fd);
	EXPECT_EQ(-EINVAL, probe(fd));
	ASSERT_EQ(0, mig_write_plan(fd, s, len, plan, steps, &done)) TH_LOG("at byte %zu", done);
	ASSERT_EQ(0, mig_set_state(device, RUNNING, &fd2));
	EXPECT_EQ(-1, fd2);
	EXPECT_EQ(RUNNING, mig_get_state(device));
	expect_stale(_metadata, fd, false);
}

#endif /* RMTTY_MIG_FIXTURE_H */
