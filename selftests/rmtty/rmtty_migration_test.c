// SPDX-License-Identifier: GPL-2.0
/*
 * rmtty's VFIO v2 migration, through both front doors: the state machine and
 * its data fds, the sizes it reports, pre-copy and dirty pages, save and load
 * round trips, and the streams a target refuses (samples/rmtty/
 * migration-stream.md).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/pci_regs.h>
#include <linux/serial_reg.h>
#include <linux/vfio.h>

#include "kselftest_harness.h"
#include "rmtty_util.h"
#include "rmtty_vfio.h"

#include "rmtty_mig_fixture.h"

TEST_F_TIMEOUT(mig, features_and_sizes, 120)
{
	const __u32 get = VFIO_DEVICE_FEATURE_GET, probe_get = get | VFIO_DEVICE_FEATURE_PROBE;
	int device = add_device(_metadata, self, variant->cdev, 0, 1, 1), other, fd;
	__u64 flags = 0, size = 0, initial, dirty;
	__u32 info_flags = 0x5a;

	EXPECT_EQ(0xe3069283, crc32c("123456789", 9));	/* the test's own CRC-32C */
	ASSERT_EQ(0, mig_features(device, &flags));
	EXPECT_EQ(VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P | VFIO_MIGRATION_PRE_COPY, flags);
	EXPECT_EQ(0, device_feature(device, probe_get, VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, NULL, 0));
	EXPECT_EQ(0, device_feature(device, probe_get | VFIO_DEVICE_FEATURE_SET,
				    VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, NULL, 0));
	EXPECT_EQ(RUNNING, mig_get_state(device));
	EXPECT_EQ(0, mig_data_size(device, &size));
	EXPECT_EQ(mig_stream_size(self->memory[0]), size);
	EXPECT_EQ(MIG_HEADER + 256 * MIG_PAGE_REC + MIG_TAIL, size);

	/* Every type's size, aggregated or not */
	other = add_device(_metadata, self, variant->cdev, 1, 2, 1);
	EXPECT_EQ(0, mig_data_size(other, &size));
	EXPECT_EQ(mig_stream_size(self->memory[1]), size);
	other = add_device(_metadata, self, variant->cdev, 2, 4, 2);
	EXPECT_EQ(0, mig_data_size(other, &size));
	EXPECT_EQ(MIG_HEADER + 8 * 256 * MIG_PAGE_REC + MIG_TAIL, size);

	/* With the second version of PRECOPY_INFO the flags are output: none */
	ASSERT_EQ(0, device_feature(device, VFIO_DEVICE_FEATURE_SET,
				    VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2, NULL, 0));
	ASSERT_EQ(0, mig_set_state(device, PRE_COPY, &fd));
	ASSERT_LE(0, fd);
	EXPECT_EQ(0, mig_precopy_info_flags(fd, &info_flags, &initial, &dirty));
	EXPECT_EQ(0, info_flags);
	EXPECT_EQ(MIG_HEADER + 256 * MIG_PAGE_REC, initial);
	close(fd);
}

static bool saving(__u32 state)
{
	return state == STOP_COPY || state == PRE_COPY || state == PRE_COPY_P2P;
}

static bool precopy(__u32 state)
{
	return state == PRE_COPY || state == PRE_COPY_P2P;
}

/* Reset @device and request @state from RUNNING; the data fd, if it has one. */
static int enter(struct __test_metadata *_metadata, int device, __u32 state)
{
	int fd;

	ASSERT_EQ(0, ioctl(device, VFIO_DEVICE_RESET));
	ASSERT_EQ(RUNNING, mig_get_state(device));
	ASSERT_EQ(0, mig_set_state(device, state, &fd)) TH_LOG("RUNNING -> %s", state_name[state]);
	ASSERT_EQ(state, mig_get_state(device));
	ASSERT_EQ(saving(state) || state == RESUMING, fd >= 0)
		TH_LOG("RUNNING -> %s: fd %d", state_name[state], fd);
	ASSERT_LE(-1, fd);
	return fd;
}

/*
 * From each state to each: the state reached, the data fds returned, which
 * sessions go on, and the requests refused with the state unchanged.
 */
TEST_F_TIMEOUT(mig, every_transition, 180)
{
	static const __u32 states[] = {
		STOP, RUNNING, STOP_COPY, RESUMING, RUNNING_P2P, PRE_COPY, PRE_COPY_P2P,
	};
	static const __u32 invalid[] = { VFIO_DEVICE_STATE_ERROR, 8, 0xffff };
	int device = add_device(_metadata, self, variant->cdev, 0, 1, 1), fd, nfd, ret, state;
	const size_t full = mig_stream_size(self->memory[0]);
	__u8 *buf = malloc(full + MIG_PAGE_REC);
	bool refused, starts, kept;
	struct mig_stream_map map;
	unsigned int i, j, k;
	__u32 from, to;
	__u64 size;

	ASSERT_TRUE(buf != NULL);
	for (i = 0; i < ARRAY_SIZE(states); i++) {
		from = states[i];
		for (j = 0; j < ARRAY_SIZE(states); j++) {
			to = states[j];
			fd = enter(_metadata, device, from);
			refused = (from == STOP_COPY && precopy(to)) ||
				  (from == RESUMING && to != RESUMING);
			ret = mig_set_state(device, to, &nfd);
			state = mig_get_state(device);
			EXPECT_EQ(refused ? -EINVAL : 0, ret)
				TH_LOG("%s -> %s", state_name[from], state_name[to]);
			EXPECT_EQ(refused ? from : to, state)
				TH_LOG("%s -> %s", state_name[from], state_name[to]);
			starts = !refused && to != from &&
				 ((saving(to) && !saving(from)) || to == RESUMING);
			EXPECT_EQ(starts, nfd >= 0) TH_LOG("%s -> %s: fd %d", state_name[from],
							   state_name[to], nfd);
			EXPECT_LE(-1, nfd);
			if (nfd >= 0)
				EXPECT_EQ(precopy(to) ? 0 : -EINVAL, probe(nfd));
			/* A session goes on within the saving states, else it ends */
			kept = refused || from == to || (saving(from) && saving(to));
			if (fd >= 0)
				EXPECT_EQ(!kept ? -ENODEV : precopy(state) ? 0 : -EINVAL, probe(fd))
					TH_LOG("%s -> %s", state_name[from], state_name[to]);
			/* Nothing read: the whole stream, in a session or not */
			EXPECT_EQ(0, mig_data_size(device, &size));
			EXPECT_EQ(full, size) TH_LOG("%s -> %s", state_name[from], state_name[to]);
			if (precopy(from) && to == STOP_COPY) {
				EXPECT_EQ(full, mig_read_to_end(fd, buf, full + MIG_PAGE_REC));
				EXPECT_EQ(NULL, mig_stream_parse(buf, full, self->memory[0], &map,
								 NULL));
			}
			ASSERT_EQ(0, ioctl(device, VFIO_DEVICE_RESET));
			EXPECT_EQ(RUNNING, mig_get_state(device));
			if (fd >= 0)
				expect_stale(_metadata, fd, from != RESUMING);
			if (nfd >= 0)
				expect_stale(_metadata, nfd, to != RESUMING);
		}

		fd = enter(_metadata, device, from);
		for (k = 0; k < ARRAY_SIZE(invalid); k++) {
			EXPECT_EQ(-EINVAL, mig_set_state(device, invalid[k], &nfd))
				TH_LOG("%s -> %#x", state_name[from], invalid[k]);
			EXPECT_EQ(-1, nfd);
			EXPECT_EQ(from, mig_get_state(device));
		}
		if (fd >= 0) {
			EXPECT_EQ(precopy(from) ? 0 : -EINVAL, probe(fd));
			close(fd);
		}
	}
	free(buf);
}

/* Expect PRECOPY_INFO to give @initial and @dirty, and MIG_DATA_SIZE them and the tail. */
static void expect_precopy(struct __test_metadata *_metadata, int device, int fd,
			   __u64 initial, __u64 dirty, unsigned int line)
{
	__u64 i = ~0ull, d = ~0ull, size = 0;

	EXPECT_EQ(0, probe(fd)) TH_LOG("line %u", line);
	EXPECT_EQ(0, mig_precopy_info(fd, &i, &d));
	EXPECT_EQ(initial, i) TH_LOG("initial_bytes, line %u", line);
	EXPECT_EQ(dirty, d) TH_LOG("dirty_bytes, line %u", line);
	EXPECT_EQ(0, mig_data_size(device, &size));
	EXPECT_EQ(initial + dirty + MIG_TAIL, size) TH_LOG("MIG_DATA_SIZE, line %u", line);
}

#define EXPECT_PRECOPY(initial, dirty) \
	expect_precopy(_metadata, device, fd, initial, dirty, __LINE__)

/* Read exactly @len more bytes of the stream, in one read(), to @buf at *@got. */
#define READ_EXACT(len) do { \
	size_t __len = (len); \
	ASSERT_EQ(__len, read(fd, buf + got, __len)) TH_LOG("line %d", __LINE__); \
	got += __len; \
} while (0)

static void poke(struct __test_metadata *_metadata, int device, size_t offset, size_t len,
		 __u8 value)
{
	__u8 bytes[16];

	memset(bytes, value, len);
	ASSERT_EQ((ssize_t)len, pwrite(device, bytes, len, BAR2_OFFSET + offset));
}

/*
 * Pre-copy of rmtty-1: PRECOPY_INFO and MIG_DATA_SIZE as the stream is read,
 * pages written after the first pass sent them (not before) are sent again,
 * the temporary end, and stop-and-copy; a target loads it all.
 */
TEST_F_TIMEOUT(mig, precopy_and_dirty_pages, 180)
{
	static const unsigned int resent[] = { 1, 3, 4, 0, 7 };
	int device = add_device(_metadata, self, variant->cdev, 0, 1, 1), fd, fd2, target;
	const size_t memory = self->memory[0], R = MIG_PAGE_REC;
	const size_t first = MIG_HEADER + memory / MIG_PAGE * R;
	__u8 *buf = malloc(first + 8 * R + MIG_TAIL + CHUNK), *held = malloc(memory), *ms, *mt;
	struct vfio_precopy_info info;
	__u32 flags = 0x5a;
	struct mig_stream_map map;
	__u64 initial, dirty;
	size_t got = 0, left;
	const char *why;
	unsigned int i;

	ASSERT_TRUE(buf && held);
	ASSERT_EQ(0, memory_give_state(device, memory, 7));
	ASSERT_EQ(0, mig_set_state(device, PRE_COPY, &fd));
	ASSERT_LE(0, fd);
	EXPECT_PRECOPY(first, 0);
	EXPECT_EQ(-1, pread(fd, buf, 1, 0));
	EXPECT_EQ(ESPIPE, errno);
	EXPECT_EQ(-1, write(fd, buf, 1));	/* a saving fd is read-only */
	EXPECT_EQ(EBADF, errno);
	info = (struct vfio_precopy_info){ .argsz = sizeof(info) - 1 };
	EXPECT_EQ(-1, ioctl(fd, VFIO_MIG_GET_PRECOPY_INFO, &info));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, ioctl(fd, _IO(VFIO_TYPE, VFIO_BASE + 22), &info));
	EXPECT_EQ(ENOTTY, errno);
	/* Without the v2 opt-in, the flags are left as the user put them */
	EXPECT_EQ(0, mig_precopy_info_flags(fd, &flags, &initial, &dirty));
	EXPECT_EQ(0x5a, flags);

	READ_EXACT(10);
	EXPECT_PRECOPY(first - 10, 0);
	READ_EXACT(MIG_HEADER + 4 * R - 10);		/* the header and pages 0-3 */
	left = first - MIG_HEADER - 4 * R;
	EXPECT_PRECOPY(left, 0);
	/* Sent pages 1 and 3 are dirty, once however often written; pages 4 and 200 are not sent */
	poke(_metadata, device, 1 * MIG_PAGE + 5, 1, 0x11);
	poke(_metadata, device, 3 * MIG_PAGE, 4, 0x33);
	poke(_metadata, device, 1 * MIG_PAGE + 9, 2, 0x12);
	poke(_metadata, device, 200 * MIG_PAGE + 1, 1, 0x20);
	poke(_metadata, device, 4 * MIG_PAGE - 4, 8, 0x34);
	EXPECT_PRECOPY(left, 2 * R);
	/* Page 4's record is being read: it was sent as it was */
	READ_EXACT(100);
	left -= 100;
	poke(_metadata, device, 4 * MIG_PAGE + 8, 1, 0x44);
	EXPECT_PRECOPY(left, 3 * R);
	/* initial_bytes reaches 0 with the last byte of the first pass */
	READ_EXACT(left - 1);
	EXPECT_PRECOPY(1, 3 * R);
	READ_EXACT(1);
	EXPECT_PRECOPY(0, 3 * R);
	READ_EXACT(10);
	EXPECT_PRECOPY(0, 3 * R - 10);
	READ_EXACT(3 * R - 10);
	EXPECT_PRECOPY(0, 0);
	EXPECT_EQ(-1, read(fd, buf + got, CHUNK));
	EXPECT_EQ(ENOMSG, errno);

	/* Dirty again after it converged */
	poke(_metadata, device, 100, 2, 0x55);
	EXPECT_PRECOPY(0, R);
	EXPECT_EQ((ssize_t)R, read(fd, buf + got, CHUNK));
	got += R;
	EXPECT_PRECOPY(0, 0);
	EXPECT_EQ(-1, read(fd, buf + got, CHUNK));
	EXPECT_EQ(ENOMSG, errno);

	/* PRE_COPY_P2P goes on with the session and its tracking */
	ASSERT_EQ(0, mig_set_state(device, PRE_COPY_P2P, &fd2));
	EXPECT_EQ(-1, fd2);
	EXPECT_PRECOPY(0, 0);
	poke(_metadata, device, 7 * MIG_PAGE + 4095, 1, 0x77);
	EXPECT_PRECOPY(0, R);

	/* Stop-and-copy: the dirty page, the tail, the end */
	ASSERT_EQ(0, mig_set_state(device, STOP_COPY, &fd2));
	EXPECT_EQ(-1, fd2);
	EXPECT_EQ(-EINVAL, probe(fd));
	EXPECT_EQ(0, mig_data_size(device, &initial));
	EXPECT_EQ(R + MIG_TAIL, initial);
	EXPECT_EQ((ssize_t)(R + MIG_TAIL), read(fd, buf + got, CHUNK));
	got += R + MIG_TAIL;
	EXPECT_EQ(0, read(fd, buf + got, CHUNK));
	EXPECT_EQ(0, mig_data_size(device, &initial));
	EXPECT_EQ(0, initial);
	EXPECT_EQ(0, read(fd, buf + got, CHUNK));

	/* Every page, then the dirty ones, lowest first, with what was written last */
	why = mig_stream_parse(buf, got, memory, &map, held);
	ASSERT_EQ(NULL, why) TH_LOG("%s", why);
	EXPECT_EQ(memory / MIG_PAGE + ARRAY_SIZE(resent), map.page_records);
	ASSERT_EQ(ARRAY_SIZE(resent), map.nr_resent);
	for (i = 0; i < ARRAY_SIZE(resent); i++)
		EXPECT_EQ(resent[i], map.resent[i]);
	ms = memory_read(_metadata, device, memory);
	expect_same(_metadata, held, ms, memory, "the memory the stream holds");

	target = add_device(_metadata, self, variant->cdev, 1, 1, 1);
	load(_metadata, target, buf, got, by_rotation, ARRAY_SIZE(by_rotation));
	mt = memory_read(_metadata, target, memory);
	expect_same(_metadata, mt, ms, memory, "target memory");
	ASSERT_EQ(0, mig_set_state(device, RUNNING, &fd2));
	expect_stale(_metadata, fd, true);
	free(buf);
	free(held);
	free(ms);
	free(mt);
}

/* Pre-copy of an idle device to its end; stop-and-copy then sends the tail alone. */
TEST_F_TIMEOUT(mig, converged_precopy_sends_the_tail, 180)
{
	int device = add_device(_metadata, self, variant->cdev, 0, 1, 2), fd, fd2;
	const size_t memory = self->memory[0];
	const size_t first = MIG_HEADER + memory / MIG_PAGE * MIG_PAGE_REC;
	__u8 *buf = malloc(first + MIG_TAIL + CHUNK), *held = malloc(memory), *ms, *uart;
	struct uart_state u = uart_state_of(4);
	__u8 config[MIG_CONFIG_SIZE], seq[UART_READS_MAX];
	struct mig_stream_map map;
	size_t got = 0;
	const char *why;
	unsigned int i;
	__u64 size;
	ssize_t n;

	ASSERT_TRUE(buf && held);
	give_state(_metadata, device, memory, 4);
	ASSERT_EQ(0, mig_set_state(device, PRE_COPY, &fd));
	ASSERT_LE(0, fd);
	while ((n = read(fd, buf + got, CHUNK)) > 0 && got + n <= first)
		got += n;
	EXPECT_EQ(-1, n);
	EXPECT_EQ(ENOMSG, errno);
	EXPECT_EQ(first, got);
	expect_precopy(_metadata, device, fd, 0, 0, __LINE__);

	ASSERT_EQ(0, mig_set_state(device, STOP_COPY, &fd2));
	EXPECT_EQ(-1, fd2);
	EXPECT_EQ(0, mig_data_size(device, &size));
	EXPECT_EQ(MIG_TAIL, size);
	EXPECT_EQ(MIG_TAIL, read(fd, buf + got, CHUNK));
	got += MIG_TAIL;
	EXPECT_EQ(0, read(fd, buf + got, CHUNK));
	EXPECT_EQ(0, mig_data_size(device, &size));
	EXPECT_EQ(0, size);

	why = mig_stream_parse(buf, got, memory, &map, held);
	ASSERT_EQ(NULL, why) TH_LOG("%s", why);
	EXPECT_EQ(first, map.config);
	ms = memory_read(_metadata, device, memory);
	expect_same(_metadata, held, ms, memory, "the memory the stream holds");
	config_read(_metadata, device, config);
	expect_same(_metadata, buf + map.config + MIG_REC_HEADER, config, MIG_CONFIG_SIZE,
		    "config record");

	/* The UART record's layout */
	uart = buf + map.uart + MIG_REC_HEADER;
	EXPECT_EQ(u.sent, uart[0]);
	for (i = 0; i < UART_FIFO_SIZE; i++)
		EXPECT_EQ(i < u.sent ? uart_sent_byte(4, i) : 0, uart[1 + i]) TH_LOG("byte %u", i);
	EXPECT_EQ(0, uart[17]);			/* no overrun */
	EXPECT_EQ(1, uart[18]);			/* transmitter empty, not yet reported */
	EXPECT_EQ(u.ier, uart[19]);
	EXPECT_EQ(u.fcr, uart[20]);
	EXPECT_EQ(u.lcr, uart[21]);
	EXPECT_EQ(u.mcr, uart[22]);
	EXPECT_EQ(MSR_GIVEN, uart[23]);
	EXPECT_EQ(u.scr, uart[24]);
	EXPECT_EQ(0, uart[25]);
	EXPECT_EQ(u.divisor, get_le16(uart + 26));
	/* Saving read nothing of the port (read once the device runs again) */
	ASSERT_EQ(0, mig_set_state(device, RUNNING, &fd2));
	uart_expect(_metadata, seq, uart_reads(_metadata, device, seq), 4);
	close(fd);
	free(buf);
	free(held);
	free(ms);
}

/*
 * Save a device of @src with a state and load it into a device of @dst,
 * which then reads like the source: config space, UART and memory.
 */
static void round_trip(struct __test_metadata *_metadata, FIXTURE_DATA(mig) *self, bool cdev,
		       const unsigned int src[2], const unsigned int dst[2],
		       const unsigned int *plan, unsigned int steps, unsigned int seed)
{
	int s = add_device(_metadata, self, cdev, 0, src[0], src[1]);
	int t = add_device(_metadata, self, cdev, 1, dst[0], dst[1]);
	const size_t memory = self->memory[0];
	size_t bar2 = MIG_PAGE;
	__u8 cs[MIG_CONFIG_SIZE], ct[MIG_CONFIG_SIZE], *stream, *ms, *mt;
	struct mig_stream_map map;
	const char *why;
	char what[64];
	size_t len;

	snprintf(what, sizeof(what), "rmtty-%u x%u -> rmtty-%u x%u", src[0], src[1], dst[0],
		 dst[1]);
	ASSERT_EQ(memory, self->memory[1]);
	give_state(_metadata, s, memory, seed);
	give_state(_metadata, t, memory, seed + 1);
	config_read(_metadata, s, cs);
	config_read(_metadata, t, ct);
	EXPECT_NE(0, memcmp(cs, ct, MIG_CONFIG_SIZE));

	stream = save(_metadata, s, memory, &len);
	why = mig_stream_parse(stream, len, memory, &map, NULL);
	EXPECT_EQ(NULL, why) TH_LOG("%s: %s", what, why);
	load(_metadata, t, stream, len, plan, steps);

	/* The whole BAR, past the memory too */
	while (bar2 < memory)
		bar2 *= 2;
	ms = memory_read(_metadata, s, bar2);
	mt = memory_read(_metadata, t, bar2);
	expect_same(_metadata, mt, ms, bar2, what);
	expect_same_regs(_metadata, s, t, what, seed);
	free(stream);
	free(ms);
	free(mt);
	drop_device(_metadata, self, 0);
	drop_device(_metadata, self, 1);
}

TEST_F_TIMEOUT(mig, round_trip_every_type, 240)
{
	static const unsigned int t1[2] = { 1, 1 }, t2[2] = { 2, 1 }, t4[2] = { 4, 1 };

	round_trip(_metadata, self, variant->cdev, t1, t1, by_sevens, 1, 1);
	round_trip(_metadata, self, variant->cdev, t2, t2, by_rotation, 3, 2);
	round_trip(_metadata, self, variant->cdev, t4, t4, by_pages, 1, 3);
}

TEST_F_TIMEOUT(mig, round_trip_aggregations, 240)
{
	static const unsigned int a13[2] = { 1, 3 }, a22[2] = { 2, 2 };
	static const unsigned int a14[2] = { 1, 4 }, a41[2] = { 4, 1 };

	round_trip(_metadata, self, variant->cdev, a13, a13, by_pages, 1, 4);
	round_trip(_metadata, self, variant->cdev, a22, a22, by_rotation, 3, 5);
	round_trip(_metadata, self, variant->cdev, a14, a41, by_rotation, 3, 6);
}

/* Data fds of transfers that ended, however they ended, fail with ENODEV. */
TEST_F_TIMEOUT(mig, stale_data_fd, 120)
{
	int device = add_device(_metadata, self, variant->cdev, 0, 1, 1), fd, other, none;
	__u8 byte = 0;

	/* PRE_COPY -> RUNNING */
	ASSERT_EQ(0, mig_set_state(device, PRE_COPY, &fd));
	EXPECT_EQ(1, read(fd, &byte, 1));
	EXPECT_EQ('R', byte);
	ASSERT_EQ(0, mig_set_state(device, RUNNING, &none));
	expect_stale(_metadata, fd, true);
	/* STOP_COPY -> STOP */
	ASSERT_EQ(0, mig_set_state(device, STOP_COPY, &fd));
	EXPECT_EQ(1, read(fd, &byte, 1));
	ASSERT_EQ(0, mig_set_state(device, STOP, &none));
	expect_stale(_metadata, fd, true);
	/* A new session */
	ASSERT_EQ(0, mig_set_state(device, PRE_COPY, &fd));
	ASSERT_EQ(0, mig_set_state(device, RUNNING, &none));
	ASSERT_EQ(0, mig_set_state(device, PRE_COPY, &other));
	expect_stale(_metadata, fd, true);
	EXPECT_EQ(0, probe(other));
	/* VFIO_DEVICE_RESET, of a saving and of a resuming session */
	ASSERT_EQ(0, ioctl(device, VFIO_DEVICE_RESET));
	expect_stale(_metadata, other, true);
	ASSERT_EQ(0, mig_set_state(device, RESUMING, &fd));
	EXPECT_EQ(-1, pwrite(fd, "R", 1, 0));
	EXPECT_EQ(ESPIPE, errno);
	EXPECT_EQ(-1, read(fd, &byte, 1));	/* a resuming fd is write-only */
	EXPECT_EQ(EBADF, errno);
	EXPECT_EQ(1, write(fd, "R", 1));
	ASSERT_EQ(0, ioctl(device, VFIO_DEVICE_RESET));
	expect_stale(_metadata, fd, false);

	/* Closing the device, saving or resuming; opened again it runs */
	ASSERT_EQ(0, mig_set_state(device, PRE_COPY_P2P, &fd));
	rmtty_vfio_close(&self->v[0]);
	expect_stale(_metadata, fd, true);
	ASSERT_EQ(0, rmtty_vfio_open(&self->v[0], self->uuid[0], variant->cdev));
	device = self->v[0].device;
	EXPECT_EQ(RUNNING, mig_get_state(device));
	ASSERT_EQ(0, mig_set_state(device, RESUMING, &fd));
	rmtty_vfio_close(&self->v[0]);
	expect_stale(_metadata, fd, false);
	ASSERT_EQ(0, rmtty_vfio_open(&self->v[0], self->uuid[0], variant->cdev));
	EXPECT_EQ(RUNNING, mig_get_state(self->v[0].device));
}

/* The aggregation of a device in a migration cannot change, as of any open device. */
TEST_F_TIMEOUT(mig, aggregation_busy_while_migrating, 120)
{
	static const __u32 sessions[] = { PRE_COPY, STOP_COPY, RESUMING };
	int device = add_device(_metadata, self, variant->cdev, 0, 1, 1), fd, none;
	const size_t first = MIG_HEADER + 256 * MIG_PAGE_REC;
	char path[256], about[128];
	__u64 size, initial, dirty;
	unsigned int i;
	__u8 byte;

	rmtty_device_path(path, sizeof(path), self->uuid[0], "mdev/aggregated_instances");
	snprintf(about, sizeof(about), "%s: aggregated_instances", self->uuid[0]);
	for (i = 0; i < ARRAY_SIZE(sessions); i++) {
		ASSERT_EQ(0, mig_set_state(device, sessions[i], &fd));
		ASSERT_LE(0, fd);
		EXPECT_EQ(-EBUSY, sysfs_write(path, "2")) TH_LOG("in %s", state_name[sessions[i]]);
		expect_logged_once(_metadata, self->kmsg, about, "the device is open");
		EXPECT_EQ(1, rmtty_device_long(self->uuid[0], "mdev/aggregated_instances"));
		EXPECT_EQ(sessions[i], mig_get_state(device));
		EXPECT_EQ(0, mig_data_size(device, &size));
		EXPECT_EQ(first + MIG_TAIL, size);
		if (sessions[i] != RESUMING)
			EXPECT_EQ(1, read(fd, &byte, 1));
		if (sessions[i] == PRE_COPY) {
			EXPECT_EQ(0, mig_precopy_info(fd, &initial, &dirty));
			EXPECT_EQ(first - 1, initial);
		}
		ASSERT_EQ(0, ioctl(device, VFIO_DEVICE_RESET));
		close(fd);
	}

	/* Closed, the device is in no migration: its aggregation changes */
	ASSERT_EQ(0, mig_set_state(device, PRE_COPY, &fd));
	rmtty_vfio_close(&self->v[0]);
	EXPECT_EQ(0, sysfs_write(path, "2"));
	expect_stale(_metadata, fd, true);
	ASSERT_EQ(0, rmtty_vfio_open(&self->v[0], self->uuid[0], variant->cdev));
	device = self->v[0].device;
	EXPECT_EQ(RUNNING, mig_get_state(device));
	EXPECT_EQ(0, mig_data_size(device, &size));
	EXPECT_EQ(mig_stream_size(2 << 20), size);
	ASSERT_EQ(0, mig_set_state(device, PRE_COPY, &fd));
	EXPECT_EQ(0, mig_precopy_info(fd, &initial, &dirty));
	EXPECT_EQ(MIG_HEADER + 512 * MIG_PAGE_REC, initial);
	ASSERT_EQ(0, mig_set_state(device, RUNNING, &none));
	close(fd);
}

/* A stream for the refusal tests' target, and where and why the target refuses it */
struct bad_stream {
	const char *what;
	const __u8 *s;
	size_t len;
	/* The write of @count bytes at @at is refused; with @count 0, leaving RESUMING is. */
	size_t at, count;
	char reason[160];
};

/* Slots of the refusal tests: the source, the target, its twin, a source of another shape */
enum { SOURCE, TARGET, TWIN, OTHER };
#define SOURCE_SEED	11

/* rmtty-1 devices: a source with a state, its saved stream, a target and its twin. */
static __u8 *refusal_setup(struct __test_metadata *_metadata, FIXTURE_DATA(mig) *self,
			   bool cdev, size_t *len, struct mig_stream_map *map)
{
	int source = add_device(_metadata, self, cdev, SOURCE, 1, 1);
	int target = add_device(_metadata, self, cdev, TARGET, 1, 1);
	const size_t memory = self->memory[SOURCE];
	__u8 *stream;
	const char *why;

	add_device(_metadata, self, cdev, TWIN, 1, 1);
	give_state(_metadata, source, memory, SOURCE_SEED);
	ASSERT_EQ(0, memory_give_state(target, memory, SOURCE_SEED + 1));
	self->snapshot = memory_read(_metadata, target, memory);
	stream = save(_metadata, source, memory, len);
	why = mig_stream_parse(stream, *len, memory, map, NULL);
	ASSERT_EQ(NULL, why) TH_LOG("%s", why);
	return stream;
}

/*
 * Feed @b to the target, refused where @b says with one log line of its
 * reason; then the target reads as before (its twin got the same state),
 * and a reset brings it back to RUNNING.
 */
static void expect_refused(struct __test_metadata *_metadata, FIXTURE_DATA(mig) *self,
			   const struct bad_stream *b, unsigned int seed)
{
	const int target = self->v[TARGET].device, twin = self->v[TWIN].device;
	char about[128], seen[512], what[128];
	size_t done;
	int fd, none, lines;
	__u8 *mem;

	ASSERT_EQ(0, ioctl(target, VFIO_DEVICE_RESET));
	ASSERT_EQ(0, ioctl(twin, VFIO_DEVICE_RESET));
	give_state(_metadata, target, 0, seed);
	give_state(_metadata, twin, 0, seed);
	ASSERT_EQ(0, mig_set_state(target, RESUMING, &fd));
	ASSERT_LE(0, fd);
	/* What was logged before (the device's creation): no splat, and not counted below */
	EXPECT_EQ(0, kmsg_splats(self->kmsg));
	stream_refusal(self);
	if (b->count) {
		EXPECT_EQ(0, mig_write_plan(fd, b->s, b->at, by_rotation, 3, &done))
			TH_LOG("%s: the write at byte %zu", b->what, done);
		EXPECT_EQ(-1, write(fd, b->s + b->at, b->count))
			TH_LOG("%s: the write of bytes %zu-%zu", b->what, b->at, b->at + b->count);
		EXPECT_EQ(EINVAL, errno);
	} else {
		EXPECT_EQ(0, mig_write_plan(fd, b->s, b->len, by_pages, 1, &done))
			TH_LOG("%s: the write at byte %zu", b->what, done);
		EXPECT_EQ(-EINVAL, mig_set_state(target, seed % 2 ? STOP : RUNNING, &none))
			TH_LOG("%s", b->what);
		EXPECT_EQ(-1, none);
	}
	EXPECT_EQ(RESUMING, mig_get_state(target)) TH_LOG("%s", b->what);
	/* One line about the device, the refusal's reason: nothing about the refused request */
	snprintf(about, sizeof(about), "%s: ", self->uuid[TARGET]);
	lines = kmsg_find(self->kmsg, about, seen, sizeof(seen));
	EXPECT_EQ(1, lines) TH_LOG("%s: %d lines, the last '%s'", b->what, lines, seen);
	EXPECT_TRUE(strstr(seen, "migration stream refused: ") && strstr(seen, b->reason))
		TH_LOG("%s: logged '%s', expected '%s'", b->what, seen, b->reason);

	/* Nothing of the stream reached the target */
	mem = memory_read(_metadata, target, self->memory[TARGET]);
	snprintf(what, sizeof(what), "%s: memory", b->what);
	expect_same(_metadata, mem, self->snapshot, self->memory[TARGET], what);
	free(mem);
	/* The twin stopped too: a stopped device's UART reads without side effects */
	ASSERT_EQ(0, mig_set_state(twin, STOP, &none));
	expect_same_stopped_regs(_metadata, twin, target, b->what, seed);
	ASSERT_EQ(0, mig_set_state(twin, RUNNING, &none));
	ASSERT_EQ(0, ioctl(target, VFIO_DEVICE_RESET));
	EXPECT_EQ(RUNNING, mig_get_state(target));
	expect_stale(_metadata, fd, false);
}

/* Expect the target to read like the source it loaded the stream of. */
static void expect_loaded(struct __test_metadata *_metadata, FIXTURE_DATA(mig) *self,
			  const char *what)
{
	__u8 *ms = memory_read(_metadata, self->v[SOURCE].device, self->memory[SOURCE]);
	__u8 *mt = memory_read(_metadata, self->v[TARGET].device, self->memory[TARGET]);

	expect_same(_metadata, mt, ms, self->memory[SOURCE], what);
	free(ms);
	free(mt);
	expect_same_regs(_metadata, self->v[SOURCE].device, self->v[TARGET].device, what,
			 SOURCE_SEED);
}

/*
 * Expect device @slot to hold what the source gave its stream, without
 * reading the source's UART (reads change it): memory and config space as
 * the source's, and the UART of SOURCE_SEED.
 */
static void expect_holds_source(struct __test_metadata *_metadata, FIXTURE_DATA(mig) *self,
				unsigned int slot, const char *what)
{
	__u8 cs[MIG_CONFIG_SIZE], ct[MIG_CONFIG_SIZE], seq[UART_READS_MAX], *ms, *mt;
	char label[128];

	ms = memory_read(_metadata, self->v[SOURCE].device, self->memory[SOURCE]);
	mt = memory_read(_metadata, self->v[slot].device, self->memory[SOURCE]);
	snprintf(label, sizeof(label), "%s: memory", what);
	expect_same(_metadata, mt, ms, self->memory[SOURCE], label);
	free(ms);
	free(mt);
	config_read(_metadata, self->v[SOURCE].device, cs);
	config_read(_metadata, self->v[slot].device, ct);
	snprintf(label, sizeof(label), "%s: config space", what);
	expect_same(_metadata, ct, cs, MIG_CONFIG_SIZE, label);
	uart_expect(_metadata, seq, uart_reads(_metadata, self->v[slot].device, seq), SOURCE_SEED);
}

/* Each header field wrong, and a stream of another shape: refused with byte 32. */
TEST_F_TIMEOUT(mig, refused_headers, 180)
{
	static const struct {
		const char *what;
		unsigned int offset;
		__u8 xor;
		const char *reason;
	} fields[] = {
		{ "magic", 3, 0x20, "bad magic" },
		{ "major", 8, 0x03, "major version 2, this device reads 1" },
		{ "minor + 1", 10, 0x03, "minor version 2 is newer than 1" },
		{ "flags", 12, 0x01, "unknown header flags 0x1" },
		{ "memory_mib", 16, 0x03, "shape 1 port(s) and 2 MiB, this device has 1 port(s)" },
		{ "ports", 20, 0x03, "shape 2 port(s) and 1 MiB, this device has 1 port(s)" },
		{ "header crc", 25, 0x10, "header CRC" },
		{ "reserved", 28, 0x80, "reserved header word 0x80" },
	};
	struct bad_stream b = { .at = MIG_HEADER - 1 };
	__u8 head[MIG_HEADER + 64], *stream;
	struct mig_stream_map map;
	int other, fd, none;
	unsigned int i;
	size_t len;

	ASSERT_EQ(1, self->unit_mib);
	stream = refusal_setup(_metadata, self, variant->cdev, &len, &map);
	b.s = head;
	b.len = sizeof(head);
	b.count = sizeof(head) - b.at;
	for (i = 0; i < ARRAY_SIZE(fields); i++) {
		memcpy(head, stream, sizeof(head));
		head[fields[i].offset] ^= fields[i].xor;
		b.what = fields[i].what;
		snprintf(b.reason, sizeof(b.reason), "%s", fields[i].reason);
		expect_refused(_metadata, self, &b, i);
	}

	/* The start of an rmtty-2's stream */
	other = add_device(_metadata, self, variant->cdev, OTHER, 2, 1);
	ASSERT_EQ(0, mig_set_state(other, PRE_COPY, &fd));
	ASSERT_EQ(sizeof(head), read(fd, head, sizeof(head)));
	ASSERT_EQ(0, mig_set_state(other, RUNNING, &none));
	close(fd);
	b.what = "rmtty-2's stream";
	snprintf(b.reason, sizeof(b.reason),
		 "shape 1 port(s) and 2 MiB, this device has 1 port(s) and 1 MiB");
	expect_refused(_metadata, self, &b, 20);
	free(stream);
}

/*
 * A changed byte in each kind of record, its CRC fixed or not, records the
 * reader does not know, bytes after the end: refused with the record's last
 * byte (or its header's); a record it may skip is skipped.
 */
TEST_F_TIMEOUT(mig, refused_records, 240)
{
	enum piece { PAGE0, CONFIG, UART, END };
	static const struct {
		const char *what;
		enum piece piece;
		unsigned int offset;
		__u8 value;
		bool set, fix_crc, at_header;
		const char *reason;
	} changes[] = {
		{ "page payload", PAGE0, MIG_REC_HEADER + 2000, 0x01,
		  .reason = "type 0x3 at byte %zu: CRC" },
		{ "page flags", PAGE0, 2, 0x02, .at_header = true,
		  .reason = "type 0x3 at byte %zu has unknown flags 0x3" },
		{ "page CRC", PAGE0, 8, 0x01, .reason = "type 0x3 at byte %zu: CRC" },
		{ "page length", PAGE0, 4, 0x01, .at_header = true,
		  .reason = "type 0x3 at byte %zu has length 4105" },
		{ "page index", PAGE0, MIG_REC_HEADER + 1, 0x01, .fix_crc = true,
		  .reason = "page 256 at byte %zu is out of range" },
		{ "page reserved", PAGE0, MIG_REC_HEADER + 4, 0x01, .fix_crc = true,
		  .reason = "page record at byte %zu: reserved word" },
		{ "config payload", CONFIG, MIG_REC_HEADER + 0x3c, 0x01,
		  .reason = "type 0x1 at byte %zu: CRC" },
		{ "config CRC", CONFIG, 10, 0x04, .reason = "type 0x1 at byte %zu: CRC" },
		{ "config read-only bit", CONFIG, MIG_REC_HEADER + 8, 0x01, .fix_crc = true,
		  .reason = "config record at byte %zu: read-only bits of byte 0x8 differ" },
		{ "UART payload", UART, MIG_REC_HEADER + 24, 0x01,
		  .reason = "type 0x2 at byte %zu: CRC" },
		{ "UART CRC", UART, 11, 0x80, .reason = "type 0x2 at byte %zu: CRC" },
		{ "UART FIFO length", UART, MIG_REC_HEADER, 17, true, true,
		  .reason = "UART record at byte %zu: 17 bytes in the FIFO, more than it holds" },
		{ "UART overrun flag", UART, MIG_REC_HEADER + 17, 2, true, true,
		  .reason = "UART record at byte %zu: overrun is 2, not 0 or 1" },
		{ "UART IER", UART, MIG_REC_HEADER + 19, 0x10, true, true,
		  .reason = "UART record at byte %zu: IER 0x10 has undefined bits" },
		{ "UART reserved", UART, MIG_REC_HEADER + 25, 1, true, true,
		  .reason = "UART record at byte %zu: reserved byte 0x01 has undefined bits" },
		{ "UART FIFO past its count", UART, MIG_REC_HEADER, 0, true, true,
		  .reason = "UART record at byte %zu: bytes past the FIFO's count are not 0" },
		{ "UART MSR inputs", UART, MIG_REC_HEADER + 23, 0x10, false, true,
		  .reason = "does not follow MCR's outputs" },
		{ "end type", END, 0, 0x01,
		  .reason = "record type 0xfffe at byte %zu follows the summary record" },
		{ "end CRC", END, 8, 0x01, .reason = "type 0xffff at byte %zu: CRC" },
	};
	struct bad_stream b = { 0 };
	struct mig_stream_map map;
	__u8 *stream, *bad;
	size_t len, start[4], end, bad_len;
	unsigned int i;

	stream = refusal_setup(_metadata, self, variant->cdev, &len, &map);
	start[PAGE0] = map.first_page;
	start[CONFIG] = map.config;
	start[UART] = map.uart;
	start[END] = map.end;
	bad = malloc(len + 8);
	ASSERT_TRUE(bad != NULL);
	b.s = bad;
	for (i = 0; i < ARRAY_SIZE(changes); i++) {
		__u8 *rec = bad + start[changes[i].piece];

		memcpy(bad, stream, len);
		end = start[changes[i].piece] + MIG_REC_HEADER +
		      (changes[i].at_header ? 0 : get_le32(rec + 4));
		if (changes[i].set)
			rec[changes[i].offset] = changes[i].value;
		else
			rec[changes[i].offset] ^= changes[i].value;
		if (changes[i].fix_crc)
			put_le32(rec + 8, mig_record_crc(rec));
		b.what = changes[i].what;
		b.len = len;
		b.at = end - 1;
		b.count = len - b.at < 64 ? len - b.at : 64;
		snprintf(b.reason, sizeof(b.reason), changes[i].reason, start[changes[i].piece]);
		expect_refused(_metadata, self, &b, i);
	}

	/* Bytes after the end record, in the write of its last byte or after it */
	memcpy(bad, stream, len);
	memcpy(bad + len, "more", 4);
	b = (struct bad_stream){ "trailing bytes", bad, len + 4, len - 1, 5 };
	snprintf(b.reason, sizeof(b.reason), "bytes after the end record, at byte %zu", len);
	expect_refused(_metadata, self, &b, 30);
	b.what = "a trailing byte";
	b.at = len;
	b.count = 1;
	expect_refused(_metadata, self, &b, 31);
	free(bad);

	/* Records of a type the reader does not know */
	bad = mig_insert_record(stream, len, map.config, 7, MIG_REQUIRED, 16, &bad_len);
	ASSERT_TRUE(bad != NULL);
	b = (struct bad_stream){ "unknown required record", bad, bad_len,
				 map.config + MIG_REC_HEADER + 16 - 1, 64 };
	snprintf(b.reason, sizeof(b.reason), "unknown required record type 0x7 at byte %zu",
		 map.config);
	expect_refused(_metadata, self, &b, 32);
	free(bad);
	bad = mig_insert_record(stream, len, map.config, 7, 0, 65537, &bad_len);
	ASSERT_TRUE(bad != NULL);
	b = (struct bad_stream){ "unknown record over 64 KiB", bad, bad_len,
				 map.config + MIG_REC_HEADER - 1, 64 };
	snprintf(b.reason, sizeof(b.reason), "record type 0x7 at byte %zu has length 65537",
		 map.config);
	expect_refused(_metadata, self, &b, 33);
	free(bad);
	/* One of 64 KiB without MIG_REQUIRED is skipped: the stream (its summary counting it) loads */
	bad = mig_insert_record(stream, len, map.config, 7, 0, 65536, &bad_len);
	ASSERT_TRUE(bad != NULL);
	ASSERT_EQ(0, mig_fix_summary(bad, bad_len));
	load(_metadata, self->v[TARGET].device, bad, bad_len, by_pages, 1);
	EXPECT_EQ(0, kmsg_count(self->kmsg, "migration stream refused"));
	free(bad);
	expect_loaded(_metadata, self, "with an optional record");
	free(stream);
}

/*
 * Streams that are short or lack a record: every write succeeds, leaving
 * RESUMING fails and the device stays there.
 */
TEST_F_TIMEOUT(mig, refused_short_streams, 240)
{
	struct bad_stream b = { 0 };
	struct mig_stream_map map;
	__u8 *stream, *bad;
	size_t len, i, cut[12];

	stream = refusal_setup(_metadata, self, variant->cdev, &len, &map);
	b.s = stream;
	/* In the header, in a page record, between pages, in the tail */
	memcpy(cut, (size_t[]){
		0, 1, MIG_HEADER - 1, MIG_HEADER, MIG_HEADER + 1, MIG_HEADER + MIG_REC_HEADER,
		MIG_HEADER + MIG_PAGE_REC + MIG_PAGE_REC / 2, MIG_HEADER + 100 * MIG_PAGE_REC,
		map.config, map.uart + 20, map.end, len - 1,
	}, sizeof(cut));
	for (i = 0; i < ARRAY_SIZE(cut); i++) {
		b.what = "a truncated stream";
		b.len = cut[i];
		snprintf(b.reason, sizeof(b.reason), "the stream ended without %s",
			 cut[i] ? "an end record" : "a header");
		expect_refused(_metadata, self, &b, 40 + i);
	}

	bad = malloc(len);
	ASSERT_TRUE(bad != NULL);
	b.s = bad;
	/* No pages at all: the header and the tail */
	memcpy(bad, stream, MIG_HEADER);
	memcpy(bad + MIG_HEADER, stream + map.config, len - map.config);
	b.what = "no pages";
	b.len = MIG_HEADER + len - map.config;
	/* The summary says what the stream holds: the check of the end does the refusing */
	ASSERT_EQ(0, mig_fix_summary(bad, b.len));
	snprintf(b.reason, sizeof(b.reason), "the stream ended without %zu page(s)",
		 self->memory[TARGET] / MIG_PAGE);
	expect_refused(_metadata, self, &b, 60);
	/* Without page 100 */
	memcpy(bad, stream, MIG_HEADER + 100 * MIG_PAGE_REC);
	memcpy(bad + MIG_HEADER + 100 * MIG_PAGE_REC, stream + MIG_HEADER + 101 * MIG_PAGE_REC,
	       len - MIG_HEADER - 101 * MIG_PAGE_REC);
	b.what = "a page missing";
	b.len = len - MIG_PAGE_REC;
	ASSERT_EQ(0, mig_fix_summary(bad, b.len));
	snprintf(b.reason, sizeof(b.reason), "the stream ended without 1 page(s)");
	expect_refused(_metadata, self, &b, 61);
	/* Without the config record, or the UART record */
	memcpy(bad, stream, map.config);
	memcpy(bad + map.config, stream + map.uart, len - map.uart);
	b.what = "no config record";
	b.len = len - (map.uart - map.config);
	ASSERT_EQ(0, mig_fix_summary(bad, b.len));
	snprintf(b.reason, sizeof(b.reason), "the stream ended without a config record");
	expect_refused(_metadata, self, &b, 62);
	memcpy(bad, stream, map.uart);
	memcpy(bad + map.uart, stream + map.summary, len - map.summary);
	b.what = "no UART record";
	b.len = len - (map.summary - map.uart);
	ASSERT_EQ(0, mig_fix_summary(bad, b.len));
	snprintf(b.reason, sizeof(b.reason), "the stream ended without a UART record");
	expect_refused(_metadata, self, &b, 63);
	free(bad);

	/* The target still takes a good stream */
	load(_metadata, self->v[TARGET].device, stream, len, by_pages, 1);
	expect_loaded(_metadata, self, "a good stream");
	free(stream);
}

/* A refused stream stays refused: later writes fail, and it cannot be loaded. */
TEST_F_TIMEOUT(mig, refused_stream_stays_refused, 180)
{
	struct mig_stream_map map;
	__u8 *stream, *mem;
	char about[128];
	size_t len, done;
	int target, fd, none, i;

	stream = refusal_setup(_metadata, self, variant->cdev, &len, &map);
	target = self->v[TARGET].device;
	snprintf(about, sizeof(about), "%s: migration stream refused: ", self->uuid[TARGET]);
	stream[map.first_page + MIG_REC_HEADER + 8 + 17] ^= 0x40;
	ASSERT_EQ(0, mig_set_state(target, RESUMING, &fd));
	EXPECT_EQ(0, mig_write_plan(fd, stream, MIG_HEADER + MIG_PAGE_REC - 1, by_pages, 1,
				    &done));
	EXPECT_EQ(-1, write(fd, stream + MIG_HEADER + MIG_PAGE_REC - 1, 1));
	EXPECT_EQ(EINVAL, errno);
	expect_logged_once(_metadata, self->kmsg, about, "type 0x3 at byte 32: CRC");
	stream[map.first_page + MIG_REC_HEADER + 8 + 17] ^= 0x40;
	/* The rest of the stream, however good, is refused; so is loading it */
	for (i = 0; i < 3; i++) {
		EXPECT_EQ(-1, write(fd, stream + MIG_HEADER + (i + 1) * MIG_PAGE_REC,
				    MIG_PAGE_REC));
		EXPECT_EQ(EINVAL, errno);
	}
	EXPECT_EQ(-EINVAL, mig_set_state(target, RUNNING, &none));
	EXPECT_EQ(RESUMING, mig_get_state(target));
	/* The refusal was logged once: no further line about the stream */
	EXPECT_EQ(0, kmsg_count(self->kmsg, "migration stream refused"));
	mem = memory_read(_metadata, target, self->memory[TARGET]);
	expect_same(_metadata, mem, self->snapshot, self->memory[TARGET], "memory");
	free(mem);
	ASSERT_EQ(0, ioctl(target, VFIO_DEVICE_RESET));
	expect_stale(_metadata, fd, false);

	/* After the reset, a new session loads the stream */
	load(_metadata, target, stream, len, by_rotation, 3);
	expect_loaded(_metadata, self, "a good stream after a reset");
	free(stream);
}

/*
 * Versions in both directions: a device's stream_version (1.1 by default, or
 * 1.0) is the stream version it writes and reads.
 */

/* Close device @slot, set its stream_version to @version ("1.0", "1.1") and open it again. */
static int reopen_as(struct __test_metadata *_metadata, FIXTURE_DATA(mig) *self, bool cdev,
		     unsigned int slot, const char *version)
{
	char path[256], buf[16];

	rmtty_vfio_close(&self->v[slot]);
	rmtty_device_path(path, sizeof(path), self->uuid[slot], "stream_version");
	ASSERT_EQ(0, sysfs_write(path, version));
	ASSERT_LT(0, sysfs_read(path, buf, sizeof(buf)));
	EXPECT_EQ(0, strncmp(buf, version, 3)) TH_LOG("stream_version reads '%s'", buf);
	ASSERT_EQ(0, rmtty_vfio_open(&self->v[slot], self->uuid[slot], cdev));
	return self->v[slot].device;
}

/*
 * stream_version cannot change while the device is open, in a migration or
 * not; closed, it can, and the sizes the device reports follow it exactly.
 */
TEST_F_TIMEOUT(mig, stream_version_busy_while_open, 120)
{
	static const __u32 sessions[] = { RUNNING, PRE_COPY, STOP_COPY, RESUMING };
	int device = add_device(_metadata, self, variant->cdev, 0, 1, 1), fd, fd2, none;
	const size_t memory = self->memory[0];
	const size_t first = MIG_HEADER + memory / MIG_PAGE * MIG_PAGE_REC;
	__u8 *buf = malloc(first + MIG_TAIL + CHUNK);
	char path[256], about[128], value[16];
	struct mig_stream_map map;
	__u64 size, initial, dirty;
	size_t got = 0;
	const char *why;
	unsigned int i;
	ssize_t n;

	ASSERT_TRUE(buf != NULL);
	rmtty_device_path(path, sizeof(path), self->uuid[0], "stream_version");
	snprintf(about, sizeof(about), "%s: stream_version", self->uuid[0]);
	for (i = 0; i < ARRAY_SIZE(sessions); i++) {
		fd = -1;
		if (sessions[i] != RUNNING) {
			ASSERT_EQ(0, mig_set_state(device, sessions[i], &fd));
			ASSERT_LE(0, fd);
		}
		EXPECT_EQ(-EBUSY, sysfs_write(path, "1.0\n")) TH_LOG("in %s", state_name[sessions[i]]);
		expect_logged_once(_metadata, self->kmsg, about, "the device is open");
		/* The version it has is no change: accepted, and nothing logged */
		EXPECT_EQ(0, sysfs_write(path, "1.1"));
		EXPECT_EQ(0, kmsg_count(self->kmsg, about));
		ASSERT_LT(0, sysfs_read(path, value, sizeof(value)));
		EXPECT_STREQ("1.1\n", value);
		EXPECT_EQ(sessions[i], mig_get_state(device));
		EXPECT_EQ(0, mig_data_size(device, &size));
		EXPECT_EQ(mig_stream_size(memory), size);
		ASSERT_EQ(0, ioctl(device, VFIO_DEVICE_RESET));
		if (fd >= 0)
			close(fd);
	}

	/* Closed, it changes; a 1.0 device's sizes have no summary record */
	device = reopen_as(_metadata, self, variant->cdev, 0, "1.0");
	EXPECT_EQ(0, kmsg_count(self->kmsg, about));
	EXPECT_EQ(0, mig_data_size(device, &size));
	EXPECT_EQ(mig_stream_size_minor(memory, 0), size);
	EXPECT_EQ(MIG_HEADER + 256 * MIG_PAGE_REC + MIG_TAIL_1_0, size);
	EXPECT_EQ(-EBUSY, sysfs_write(path, "1.1"));
	expect_logged_once(_metadata, self->kmsg, about, "the device is open");

	/* A converged pre-copy of a 1.0 device: exact sizes, then 320 bytes of tail */
	give_state(_metadata, device, memory, 9);
	ASSERT_EQ(0, mig_set_state(device, PRE_COPY, &fd));
	ASSERT_LE(0, fd);
	EXPECT_EQ(0, mig_precopy_info(fd, &initial, &dirty));
	EXPECT_EQ(first, initial);
	EXPECT_EQ(0, dirty);
	EXPECT_EQ(0, mig_data_size(device, &size));
	EXPECT_EQ(first + MIG_TAIL_1_0, size);
	while ((n = read(fd, buf + got, CHUNK)) > 0 && got + n <= first)
		got += n;
	EXPECT_EQ(-1, n);
	EXPECT_EQ(first, got);
	EXPECT_EQ(0, mig_precopy_info(fd, &initial, &dirty));
	EXPECT_EQ(0, initial);
	EXPECT_EQ(0, dirty);
	EXPECT_EQ(0, mig_data_size(device, &size));
	EXPECT_EQ(MIG_TAIL_1_0, size);
	ASSERT_EQ(0, mig_set_state(device, STOP_COPY, &fd2));
	EXPECT_EQ(-1, fd2);
	EXPECT_EQ(0, mig_data_size(device, &size));
	EXPECT_EQ(MIG_TAIL_1_0, size);
	EXPECT_EQ(MIG_TAIL_1_0, read(fd, buf + got, CHUNK));
	got += MIG_TAIL_1_0;
	EXPECT_EQ(0, read(fd, buf + got, CHUNK));
	why = mig_stream_parse(buf, got, memory, &map, NULL);
	EXPECT_EQ(NULL, why) TH_LOG("%s", why);
	EXPECT_EQ(0, map.minor);
	EXPECT_EQ(0, map.summary);
	ASSERT_EQ(0, mig_set_state(device, RUNNING, &none));
	expect_stale(_metadata, fd, true);

	/* And back to 1.1 */
	device = reopen_as(_metadata, self, variant->cdev, 0, "1.1\n");
	EXPECT_EQ(0, mig_data_size(device, &size));
	EXPECT_EQ(mig_stream_size(memory), size);
	free(buf);
}

/* A 1.0 target refuses a 1.1 stream at its header: nothing applied, one log line. */
TEST_F_TIMEOUT(mig, older_target_refuses_newer_stream, 180)
{
	struct bad_stream b = { .at = MIG_HEADER - 1 };
	struct mig_stream_map map;
	__u8 *stream;
	size_t len;

	stream = refusal_setup(_metadata, self, variant->cdev, &len, &map);
	EXPECT_EQ(1, map.minor);
	EXPECT_NE(0, map.summary);
	reopen_as(_metadata, self, variant->cdev, TARGET, "1.0");
	b.what = "a 1.1 stream into a 1.0 device";
	b.s = stream;
	b.len = len;
	b.count = MIG_PAGE_REC;
	snprintf(b.reason, sizeof(b.reason), "minor version 1 is newer than 0");
	expect_refused(_metadata, self, &b, 70);
	/* Only the header: refused with its last byte */
	b.what = "a 1.1 header into a 1.0 device";
	b.len = MIG_HEADER;
	b.count = 1;
	expect_refused(_metadata, self, &b, 71);
	free(stream);
}

/*
 * A source set to 1.0 writes 1.0 streams: a 1.0 target loads them, and so
 * does a 1.1 target (a newer driver reads older streams).
 */
TEST_F_TIMEOUT(mig, stream_1_0_round_trips, 180)
{
	int source = add_device(_metadata, self, variant->cdev, SOURCE, 1, 2);
	int newer = add_device(_metadata, self, variant->cdev, TWIN, 2, 1);
	const size_t memory = self->memory[SOURCE];
	struct mig_stream_map map;
	const char *why;
	__u8 *stream;
	size_t len;
	int target;

	add_device(_metadata, self, variant->cdev, TARGET, 2, 1);
	source = reopen_as(_metadata, self, variant->cdev, SOURCE, "1.0");
	target = reopen_as(_metadata, self, variant->cdev, TARGET, "1.0");
	give_state(_metadata, source, memory, SOURCE_SEED);
	give_state(_metadata, target, memory, SOURCE_SEED + 1);
	give_state(_metadata, newer, memory, SOURCE_SEED + 2);
	stream = save_minor(_metadata, source, memory, 0, &len);
	why = mig_stream_parse(stream, len, memory, &map, NULL);
	ASSERT_EQ(NULL, why) TH_LOG("%s", why);
	EXPECT_EQ(0, map.minor);
	EXPECT_EQ(0, map.summary);

	load(_metadata, target, stream, len, by_rotation, 3);
	load(_metadata, newer, stream, len, by_sevens, 1);
	EXPECT_EQ(0, kmsg_count(self->kmsg, "migration stream refused"));

	expect_holds_source(_metadata, self, TWIN, "1.0 -> 1.1");
	/* The 1.0 target reads like the source */
	expect_loaded(_metadata, self, "1.0 -> 1.0");
	free(stream);
}

/*
 * A 1.1 reader checks the summary: wrong counts (the record's CRC fixed), a
 * stream without it, records after it are refused; then the stream loads.
 */
TEST_F_TIMEOUT(mig, refused_summaries, 240)
{
	static const struct {
		const char *what;
		unsigned int offset;
		__u8 xor;
		bool fix_crc;
	} changes[] = {
		{ "summary byte count", MIG_REC_HEADER, 0x01, true },
		{ "summary byte count's high word", MIG_REC_HEADER + 4, 0x01, true },
		{ "summary page count", MIG_REC_HEADER + 8, 0x01, true },
		{ "summary reserved word", MIG_REC_HEADER + 14, 0x80, true },
		{ "summary payload, CRC not fixed", MIG_REC_HEADER + 9, 0x01, false },
	};
	struct bad_stream b = { 0 };
	struct mig_stream_map map;
	__u8 *stream, *bad, *rec;
	size_t len, bad_len, at;
	unsigned long long stated;
	unsigned int i;

	stream = refusal_setup(_metadata, self, variant->cdev, &len, &map);
	at = map.summary;
	ASSERT_NE(0, at);
	ASSERT_EQ(map.uart + MIG_REC_HEADER + MIG_UART_SIZE, at);
	ASSERT_EQ(at + MIG_REC_HEADER + MIG_SUMMARY_SIZE, map.end);
	bad = malloc(len + MIG_PAGE_REC);
	ASSERT_TRUE(bad != NULL);
	for (i = 0; i < ARRAY_SIZE(changes); i++) {
		memcpy(bad, stream, len);
		rec = bad + at;
		rec[changes[i].offset] ^= changes[i].xor;
		if (changes[i].fix_crc)
			put_le32(rec + 8, mig_record_crc(rec));
		stated = get_le32(rec + MIG_REC_HEADER) |
			 (unsigned long long)get_le32(rec + MIG_REC_HEADER + 4) << 32;
		b = (struct bad_stream){ changes[i].what, bad, len, map.end - 1, len - map.end + 1 };
		if (!changes[i].fix_crc)
			snprintf(b.reason, sizeof(b.reason), "record type 0x4 at byte %zu: CRC", at);
		else if (i < 2)
			snprintf(b.reason, sizeof(b.reason),
				 "summary record at byte %zu: %llu bytes before it, %zu received",
				 at, stated, at);
		else if (i == 2)
			snprintf(b.reason, sizeof(b.reason),
				 "summary record at byte %zu: %u page records before it, %u received",
				 at, map.page_records ^ 1, map.page_records);
		else
			snprintf(b.reason, sizeof(b.reason), "summary record at byte %zu: reserved word",
				 at);
		expect_refused(_metadata, self, &b, 80 + i);
	}

	/* A 1.1 stream without its summary: refused with the end record */
	memcpy(bad, stream, at);
	memcpy(bad + at, stream + map.end, len - map.end);
	b = (struct bad_stream){ "no summary record", bad, at + MIG_REC_HEADER,
				 at + MIG_REC_HEADER - 1, 1 };
	snprintf(b.reason, sizeof(b.reason),
		 "end record at byte %zu: the 1.1 stream has no summary record", at);
	expect_refused(_metadata, self, &b, 90);
	free(bad);

	/* A page record, or a second summary, after the summary: refused with its header */
	bad = mig_insert_record(stream, len, map.end, MIG_REC_PAGE, MIG_REQUIRED, 8 + MIG_PAGE,
				&bad_len);
	ASSERT_TRUE(bad != NULL);
	b = (struct bad_stream){ "a page after the summary", bad, bad_len,
				 map.end + MIG_REC_HEADER - 1, 64 };
	snprintf(b.reason, sizeof(b.reason),
		 "record type 0x3 at byte %zu follows the summary record", map.end);
	expect_refused(_metadata, self, &b, 91);
	free(bad);
	bad = mig_insert_record(stream, len, map.end, MIG_REC_SUMMARY, 0, MIG_SUMMARY_SIZE,
				&bad_len);
	ASSERT_TRUE(bad != NULL);
	b = (struct bad_stream){ "a second summary", bad, bad_len,
				 map.end + MIG_REC_HEADER - 1, 64 };
	snprintf(b.reason, sizeof(b.reason),
		 "record type 0x4 at byte %zu follows the summary record", map.end);
	expect_refused(_metadata, self, &b, 92);
	free(bad);

	/* The target still takes the stream as it was written */
	load(_metadata, self->v[TARGET].device, stream, len, by_rotation, 3);
	expect_loaded(_metadata, self, "after refused summaries");
	free(stream);
}

/*
 * A 1.0 reader skips the summary: a 1.1 stream whose header says 1.0 loads
 * into a 1.0 device, whatever its summary says. A 1.1 device loads it too,
 * and checks its summary.
 */
TEST_F_TIMEOUT(mig, older_reader_skips_the_summary, 180)
{
	struct bad_stream b = { 0 };
	struct mig_stream_map map;
	__u8 *stream, *bad, *rec;
	size_t len, at;
	unsigned int pages;
	const char *why;

	stream = refusal_setup(_metadata, self, variant->cdev, &len, &map);
	pages = self->memory[SOURCE] / MIG_PAGE;
	ASSERT_NE(0, map.summary);
	ASSERT_EQ(pages, map.page_records);
	at = map.summary;
	mig_set_minor(stream, 0);
	/* Not as a 1.1 device writes it: the helper's own parser says so */
	why = mig_stream_parse(stream, len, self->memory[SOURCE], &map, NULL);
	EXPECT_NE(NULL, why);
	bad = malloc(len);
	ASSERT_TRUE(bad != NULL);
	memcpy(bad, stream, len);
	rec = bad + at;
	rec[MIG_REC_HEADER + 8] ^= 0x01;
	put_le32(rec + 8, mig_record_crc(rec));

	/* The 1.1 target checks the summary of the 1.0 stream */
	b = (struct bad_stream){ "a wrong summary in a 1.0 stream", bad, len,
				 at + MIG_REC_HEADER + MIG_SUMMARY_SIZE - 1, MIG_REC_HEADER + 1 };
	snprintf(b.reason, sizeof(b.reason),
		 "summary record at byte %zu: %u page records before it, %u received", at,
		 pages ^ 1, pages);
	expect_refused(_metadata, self, &b, 100);
	load(_metadata, self->v[TARGET].device, stream, len, by_pages, 1);
	EXPECT_EQ(0, kmsg_count(self->kmsg, "migration stream refused"));
	expect_holds_source(_metadata, self, TARGET, "1.1 stream with a 1.0 header -> 1.1");

	/* The 1.0 target skips it, right or wrong */
	reopen_as(_metadata, self, variant->cdev, TARGET, "1.0");
	ASSERT_EQ(0, memory_give_state(self->v[TARGET].device, self->memory[TARGET],
				       SOURCE_SEED + 5));
	load(_metadata, self->v[TARGET].device, bad, len, by_rotation, 3);
	EXPECT_EQ(0, kmsg_count(self->kmsg, "migration stream refused"));
	expect_loaded(_metadata, self, "1.1 stream with a 1.0 header -> 1.0");
	free(bad);
	free(stream);
}

TEST_HARNESS_MAIN
