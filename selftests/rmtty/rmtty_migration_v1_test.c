// SPDX-License-Identifier: GPL-2.0
/*
 * rmtty's v1 migration region, through both front doors: what maps, header
 * fields only at their width, the states and every transition between them,
 * saving straight after resuming, QEMU 7.2's sequences
 * (reference/vfio-migration.md 2.5) replayed, exact pending_bytes, loads in
 * any chunks, the mapped data section, bad streams refused as over v2, and
 * the interlock with the v2 front end.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <linux/vfio.h>

#include "rmtty_mig_fixture.h"


/* As QEMU 7.2 does without a mapping; in larger pieces and chunks */
static const struct mig1_access qemu_pieces = { .piece = 8, .chunk = MIG1_CAPACITY },
				page_pieces = { .piece = 4093, .chunk = 4093 };

/* Save @device over v1 as QEMU's savevm does, and let it run: the stream. */
static __u8 *save1(struct __test_metadata *_metadata, int device, size_t memory,
		   const struct mig1_access *a, size_t *len)
{
	size_t size = mig_stream_size(memory);
	__u8 *buf = malloc(size);
	unsigned int buffers;
	ssize_t got;

	ASSERT_TRUE(buf != NULL);
	set_v1(_metadata, device, V1_SAVING);
	EXPECT_EQ(0, mig1_set_state(device, V1_SAVING));	/* save_setup: the same */
	EXPECT_EQ(size, field(_metadata, device, PENDING));
	got = mig1_drain(device, buf, size, a, &buffers);
	ASSERT_EQ((ssize_t)size, got);
	EXPECT_EQ((size + MIG1_CAPACITY - 1) / MIG1_CAPACITY, buffers);
	set_v1(_metadata, device, V1_STOP);
	set_v1(_metadata, device, V1_RUNNING);
	*len = got;
	return buf;
}

/* Load @s over v1 as QEMU's target does (straight from RUNNING), and let it run. */
static void load1(struct __test_metadata *_metadata, int device, const __u8 *s, size_t len,
		  const struct mig1_access *a)
{
	size_t done;
	int ret;

	set_v1(_metadata, device, V1_RESUMING);
	ret = mig1_fill(device, s, len, a, &done);
	ASSERT_EQ(0, ret) TH_LOG("at byte %zu: %s", done, strerror(-ret));
	set_v1(_metadata, device, V1_RUNNING);
	EXPECT_EQ(RUNNING, mig_get_state(device));
}

/*
 * One pre-copy iteration as QEMU 7.2's save_live_iterate does it: one buffer,
 * read in 4093-byte pieces to @out; its size.
 */
static size_t iterate(struct __test_metadata *_metadata, int device, __u8 *out, size_t room)
{
	__u64 len, done, n;

	EXPECT_EQ(MIG1_DATA, field(_metadata, device, DATA_OFFSET));
	len = field(_metadata, device, DATA_SIZE);
	ASSERT_GE(room, len);
	for (done = 0; done < len; done += n) {
		n = len - done < 4093 ? len - done : 4093;
		ASSERT_EQ(n, pread(device, out + done, n, MIG1_OFFSET + MIG1_DATA + done));
	}
	return len;
}

/*
 * Expect device @t to read like @s, whose state came from @seed: memory,
 * config space, and a UART in @seed's state (@s's UART is not read, so that
 * it can be compared again).
 */
static void expect_like(struct __test_metadata *_metadata, FIXTURE_DATA(mig) *self,
			unsigned int s, unsigned int t, unsigned int seed, const char *what)
{
	__u8 *ms = memory_read(_metadata, self->v[s].device, self->memory[s]);
	__u8 *mt = memory_read(_metadata, self->v[t].device, self->memory[t]);
	__u8 cs[MIG_CONFIG_SIZE], ct[MIG_CONFIG_SIZE], ut[UART_READS_MAX];

	expect_same(_metadata, mt, ms, self->memory[s], what);
	free(ms);
	free(mt);
	config_read(_metadata, self->v[s].device, cs);
	config_read(_metadata, self->v[t].device, ct);
	expect_same(_metadata, ct, cs, MIG_CONFIG_SIZE, what);
	uart_expect(_metadata, ut, uart_reads(_metadata, self->v[t].device, ut), seed);
}

/* Only the data section maps (rmtty_vfio_test checks the region's description). */
TEST_F_TIMEOUT(mig, only_the_data_section_maps, 120)
{
	int device = add_device(_metadata, self, variant->cdev, 0, 1, 1);
	__u8 *map;

	EXPECT_EQ(MAP_FAILED, mmap(NULL, 4096, PROT_READ, MAP_SHARED, device, MIG1_OFFSET));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(MAP_FAILED, mmap(NULL, 2 * MIG1_CAPACITY, PROT_READ, MAP_SHARED, device,
				   MIG1_OFFSET + MIG1_DATA));
	EXPECT_EQ(MAP_FAILED, mmap(NULL, 4096, PROT_READ, MAP_SHARED, device, BAR2_OFFSET));
	/* A private mapping's writes would never reach the device; an executable one is refused */
	EXPECT_EQ(MAP_FAILED, mmap(NULL, MIG1_CAPACITY, PROT_READ | PROT_WRITE, MAP_PRIVATE,
				   device, MIG1_OFFSET + MIG1_DATA));
	EXPECT_EQ(EINVAL, errno);
	/* (EPERM if the VFIO device's file system is mounted noexec) */
	EXPECT_EQ(MAP_FAILED, mmap(NULL, MIG1_CAPACITY, PROT_READ | PROT_EXEC, MAP_SHARED,
				   device, MIG1_OFFSET + MIG1_DATA));
	EXPECT_TRUE(errno == EINVAL || errno == EPERM) TH_LOG("errno %d", errno);
	map = mig1_map(device);
	ASSERT_NE(MAP_FAILED, map);
	EXPECT_EQ(0, munmap(map, MIG1_CAPACITY));
	EXPECT_EQ(V1_RUNNING, mig1_state(device));
}

/* Every access that is not exactly one header field is refused, and changes nothing. */
TEST_F_TIMEOUT(mig, header_fields_only_at_their_width, 120)
{
	static const unsigned int widths[] = { 1, 2, 3, 4, 8, 16 };
	int device = add_device(_metadata, self, variant->cdev, 0, 1, 1);
	__u8 bytes[16] = { 0 };
	unsigned int off, w, refused = 0;
	__u64 val;

	for (off = 0; off < 40; off++) {
		for (w = 0; w < sizeof(widths) / sizeof(widths[0]); w++) {
			unsigned int width = widths[w];
			bool valid = (width == 4 && (off == 0 || off == 4)) ||
				     (width == 8 && (off == 8 || off == 16 || off == 24));

			if (valid)
				continue;
			errno = 0;
			EXPECT_EQ(-1, pread(device, bytes, width, MIG1_OFFSET + off))
				TH_LOG("read of %u bytes at %u", width, off);
			EXPECT_EQ(EINVAL, errno);
			errno = 0;
			EXPECT_EQ(-1, pwrite(device, bytes, width, MIG1_OFFSET + off))
				TH_LOG("write of %u bytes at %u", width, off);
			EXPECT_EQ(EINVAL, errno);
			refused += 2;
		}
	}
	EXPECT_LT(300, refused);
	/* Past the header, up to the data section; and the data section with no transfer */
	EXPECT_EQ(-1, pread(device, bytes, 8, MIG1_OFFSET + 32));
	EXPECT_EQ(-1, pread(device, bytes, 8, MIG1_OFFSET + MIG1_DATA - 8));
	EXPECT_EQ(-1, pread(device, bytes, 8, MIG1_OFFSET + MIG1_DATA));
	EXPECT_EQ(-1, pwrite(device, bytes, 8, MIG1_OFFSET + MIG1_DATA));
	/* pending_bytes and data_offset are read-only; reserved reads 0, writes do nothing */
	EXPECT_EQ(-EINVAL, mig1_write(device, PENDING, 8, 1));
	EXPECT_EQ(-EINVAL, mig1_write(device, DATA_OFFSET, 8, 8192));
	EXPECT_EQ(0, mig1_write(device, FIELD(reserved), 4, 0xffffffff));
	ASSERT_EQ(0, mig1_read(device, FIELD(reserved), 4, &val));
	EXPECT_EQ(0, val);
	/* data_size is only written while resuming */
	EXPECT_EQ(-EINVAL, mig1_write(device, DATA_SIZE, 8, 16));

	EXPECT_EQ(V1_RUNNING, mig1_state(device));
	EXPECT_EQ(0, field(_metadata, device, PENDING));
	EXPECT_EQ(MIG1_DATA, field(_metadata, device, DATA_OFFSET));
	EXPECT_EQ(0, field(_metadata, device, DATA_SIZE));
	EXPECT_EQ(RUNNING, mig_get_state(device));
}

/* Refusals in a flood: as many as the rate limit lets through in 5 windows */
#define FLOOD	(5 * LOG_BURST)

/* 110b, 101b, 111b and bits above the three: EINVAL, and the state stays. */
TEST_F_TIMEOUT(mig, invalid_states_keep_the_state, 180)
{
	static const __u32 invalid[] = { 6, 5, 7, 8 | V1_RUNNING, 0x80000000 | V1_RUNNING, 8 };
	static const __u32 from[] = { V1_RUNNING, V1_PRECOPY, V1_SAVING, V1_RESUMING };
	int device = add_device(_metadata, self, variant->cdev, 0, 1, 1);
	unsigned int i, j;
	struct timespec t0, t1;
	long windows, lines;
	char reason[64];
	__u64 pending;

	/* What was logged before (the device's creation): no splat, and not counted below */
	EXPECT_EQ(0, kmsg_splats(self->kmsg));
	for (i = 0; i < sizeof(from) / sizeof(from[0]); i++) {
		/*
		 * A new window of the refusals' rate limit (10 lines in 5 s) for each
		 * row: one second more, as the window ends a jiffy after its 5 s.
		 */
		if (i)
			sleep(LOG_WINDOW + 1);
		ASSERT_EQ(0, ioctl(device, VFIO_DEVICE_RESET));
		if (from[i] == V1_SAVING)
			set_v1(_metadata, device, V1_STOP);
		set_v1(_metadata, device, from[i]);
		pending = field(_metadata, device, PENDING);
		for (j = 0; j < sizeof(invalid) / sizeof(invalid[0]); j++) {
			EXPECT_EQ(-EINVAL, mig1_set_state(device, invalid[j]))
				TH_LOG("%#x from %#x", invalid[j], from[i]);
			EXPECT_EQ(from[i], mig1_state(device));
			/* One line per refusal, saying why */
			snprintf(reason, sizeof(reason), "device_state %#x is not a state",
				 invalid[j]);
			expect_logged_once(_metadata, self->kmsg, self->uuid[0], reason);
		}
		/* The transfer goes on as before */
		EXPECT_EQ(pending, field(_metadata, device, PENDING));
	}
	/*
	 * A flood is rate limited: 10 lines a window, the rest dropped. Under
	 * emulation the flood (and its console output) may outlast a window.
	 */
	sleep(LOG_WINDOW + 1);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (j = 0; j < FLOOD; j++)
		EXPECT_EQ(-EINVAL, mig1_set_state(device, 6));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	windows = (t1.tv_sec - t0.tv_sec + 1) / LOG_WINDOW + 1;
	lines = kmsg_count(self->kmsg, "device_state 0x6 is not a state");
	EXPECT_LE(LOG_BURST, lines);
	EXPECT_GE(windows * LOG_BURST, lines) TH_LOG("%ld s: %ld window(s)", t1.tv_sec - t0.tv_sec,
						     windows);
	EXPECT_GT(FLOOD, lines) TH_LOG("the flood took %ld s", t1.tv_sec - t0.tv_sec);
	ASSERT_EQ(0, ioctl(device, VFIO_DEVICE_RESET));
	EXPECT_EQ(V1_RUNNING, mig1_state(device));
}

/*
 * Put @device in v2 state @state from a reset, over v2 (@v1 false) or v1;
 * RESUMING with the whole of @stream written, so that leaving it commits. The
 * v2 data fd, if one was opened, or -1.
 */
static int enter(struct __test_metadata *_metadata, int device, bool v1, __u32 state,
		 const __u8 *stream, size_t len)
{
	static const __u32 bits[] = { [STOP] = V1_STOP, [RUNNING] = V1_RUNNING,
				      [STOP_COPY] = V1_SAVING, [PRE_COPY] = V1_PRECOPY,
				      [RESUMING] = V1_RESUMING };
	size_t done;
	int fd = -1;

	ASSERT_EQ(0, ioctl(device, VFIO_DEVICE_RESET));
	if (state == STOP_COPY || state == RESUMING) {
		if (v1)
			set_v1(_metadata, device, V1_STOP);
		else
			ASSERT_EQ(0, mig_set_state(device, STOP, &fd));
	}
	if (v1) {
		set_v1(_metadata, device, bits[state]);
		if (state == RESUMING)
			ASSERT_EQ(0, mig1_fill(device, stream, len, &page_pieces, &done));
	} else {
		ASSERT_EQ(0, mig_set_state(device, state, &fd));
		if (state == RESUMING)
			ASSERT_EQ(0, mig_write_plan(fd, stream, len, by_pages, 1, &done));
	}
	return fd;
}

/*
 * Each of the 25 requests between the five v1 states goes where the same
 * request over v2 goes, on a twin device: v1 walks the v2 arcs. The one v2
 * forbids, STOP_COPY -> PRE_COPY, is refused with EINVAL, and the state and
 * the transfer stay (pending_bytes as before). Out of RESUMING with a stream
 * loaded.
 */
TEST_F_TIMEOUT(mig, every_v1_transition, 300)
{
	static const __u32 states[] = { V1_STOP, V1_RUNNING, V1_SAVING, V1_PRECOPY, V1_RESUMING };
	static const __u32 v2[] = { STOP, RUNNING, STOP_COPY, PRE_COPY, RESUMING };
	int device = add_device(_metadata, self, variant->cdev, 0, 1, 1);
	int twin = add_device(_metadata, self, variant->cdev, 1, 1, 1);
	unsigned int i, j, refused = 0;
	size_t len;
	__u8 *stream;

	stream = save1(_metadata, twin, self->memory[1], &page_pieces, &len);
	for (i = 0; i < 5; i++) {
		for (j = 0; j < 5; j++) {
			__u32 a = states[i], b = states[j];
			int fd, fd2 = -1, expected, ret;
			__u64 pending;

			/* The v2 request on the twin says what the v1 one must do */
			fd = enter(_metadata, twin, false, v2[a], stream, len);
			expected = mig_set_state(twin, v2[b], &fd2);
			if (fd >= 0)
				close(fd);
			if (fd2 >= 0)
				close(fd2);
			EXPECT_EQ(expected ? v2[a] : v2[b], mig_get_state(twin));

			enter(_metadata, device, true, v2[a], stream, len);
			pending = field(_metadata, device, PENDING);
			ret = mig1_set_state(device, b);
			EXPECT_EQ(expected, ret) TH_LOG("%#x -> %#x", a, b);
			if (ret) {
				refused++;
				EXPECT_EQ(a, mig1_state(device)) TH_LOG("%#x -> %#x", a, b);
				EXPECT_EQ(pending, field(_metadata, device, PENDING))
					TH_LOG("%#x -> %#x", a, b);
				continue;
			}
			EXPECT_EQ(b, mig1_state(device)) TH_LOG("%#x -> %#x", a, b);
			EXPECT_EQ(v2[b], mig_get_state(device)) TH_LOG("%#x -> %#x", a, b);
		}
	}
	/* The protocol forbids one of the 25: STOP_COPY -> PRE_COPY */
	EXPECT_EQ(1, refused);
	enter(_metadata, device, true, STOP_COPY, stream, len);
	EXPECT_LT(0, field(_metadata, device, PENDING));
	EXPECT_EQ(-EINVAL, mig1_set_state(device, V1_PRECOPY));
	EXPECT_EQ(V1_SAVING, mig1_state(device));

	/* Out of RESUMING without a whole stream: refused, and still resuming */
	ASSERT_EQ(0, ioctl(device, VFIO_DEVICE_RESET));
	set_v1(_metadata, device, V1_RESUMING);
	EXPECT_EQ(-EINVAL, mig1_set_state(device, V1_RUNNING));
	EXPECT_EQ(V1_RESUMING, mig1_state(device));
	EXPECT_EQ(-EINVAL, mig1_set_state(device, V1_STOP));
	EXPECT_EQ(V1_RESUMING, mig1_state(device));
	free(stream);
}

/*
 * Saving straight out of RESUMING (100 -> 010, 100 -> 011) commits the loaded
 * stream first: what the device then saves is the stream it loaded, and it
 * reads like the source after.
 */
TEST_F_TIMEOUT(mig, resume_then_save_commits_first, 240)
{
	static const __u32 saving[] = { V1_SAVING, V1_PRECOPY };
	int s = add_device(_metadata, self, variant->cdev, 0, 1, 1);
	int t = add_device(_metadata, self, variant->cdev, 1, 1, 1);
	const size_t memory = self->memory[0];
	size_t len, done, got;
	unsigned int i, buffers;
	__u8 *stream, *again;
	ssize_t n;
	int ret;

	give_state(_metadata, s, memory, 41);
	stream = save1(_metadata, s, memory, &page_pieces, &len);
	again = malloc(len);
	ASSERT_TRUE(again != NULL);
	for (i = 0; i < 2; i++) {
		give_state(_metadata, t, memory, 42 + i);
		set_v1(_metadata, t, V1_RESUMING);
		ret = mig1_fill(t, stream, len, &page_pieces, &done);
		ASSERT_EQ(0, ret) TH_LOG("at byte %zu: %s", done, strerror(-ret));
		set_v1(_metadata, t, saving[i]);
		got = 0;
		if (saving[i] == V1_PRECOPY) {
			/* Pre-copy hands out the pages; stop-and-copy the rest */
			n = mig1_drain(t, again, len, &page_pieces, &buffers);
			ASSERT_LT(0, n);
			got = n;
			set_v1(_metadata, t, V1_SAVING);
		}
		n = mig1_drain(t, again + got, len - got, &page_pieces, &buffers);
		ASSERT_LT(0, n);
		got += n;
		ASSERT_EQ(len, got) TH_LOG("100 -> %#x", saving[i]);
		expect_same(_metadata, again, stream, len,
			    saving[i] == V1_SAVING ? "saved after 100 -> 010" :
						     "saved after 100 -> 011");
		set_v1(_metadata, t, V1_STOP);
		set_v1(_metadata, t, V1_RUNNING);
		expect_like(_metadata, self, 0, 1, 41, "resumed, then saved");
	}
	free(again);
	free(stream);
}

/*
 * QEMU 7.2's sequences: stop/cont, savevm, a live migration with pages dirtied
 * during pre-copy and its target (loaded straight from RUNNING, committed on
 * 100 -> 001), loadvm, and cancels in pre-copy and in stop-and-copy.
 */
TEST_F_TIMEOUT(mig, qemu72_sequences, 300)
{
	int s = add_device(_metadata, self, variant->cdev, 0, 1, 1);
	int t = add_device(_metadata, self, variant->cdev, 1, 1, 1);
	const size_t memory = self->memory[0];
	size_t size = mig_stream_size(memory) + 4 * MIG_PAGE_REC, len, done;
	__u8 *stream = malloc(size), *pages = calloc(1, memory), *saved, byte = 0x5a, *mt;
	__u8 cs[MIG_CONFIG_SIZE], ct[MIG_CONFIG_SIZE], ut[UART_READS_MAX];
	unsigned int buffers, iterations = 0;
	struct mig_stream_map map;
	ssize_t got;

	ASSERT_TRUE(stream && pages);
	give_state(_metadata, s, memory, 21);
	give_state(_metadata, t, memory, 22);

	/* stop, cont */
	set_v1(_metadata, s, V1_STOP);
	set_v1(_metadata, s, V1_RUNNING);

	/* savevm: the stream is what v2 saves of the same state */
	saved = save1(_metadata, s, memory, &page_pieces, &len);
	EXPECT_EQ(NULL, mig_stream_parse(saved, len, memory, &map, pages));

	/* Live: save_setup, iterations of one buffer each, a page dirtied on the way */
	set_v1(_metadata, s, V1_PRECOPY);
	len = 0;
	while (field(_metadata, s, PENDING)) {
		len += iterate(_metadata, s, stream + len, size - len);
		if (++iterations == 1)
			ASSERT_EQ(1, pwrite(s, &byte, 1, BAR2_OFFSET + 3 * MIG_PAGE + 1));
	}
	EXPECT_LT(1, iterations);
	/* vm_stop_force_state: 011 -> 010; complete_precopy: 010 -> 010, the rest, 010 -> 000 */
	set_v1(_metadata, s, V1_SAVING);
	EXPECT_EQ(0, mig1_set_state(s, V1_SAVING));
	got = mig1_drain(s, stream + len, size - len, &page_pieces, &buffers);
	ASSERT_LT(0, got);
	len += got;
	set_v1(_metadata, s, V1_STOP);
	EXPECT_EQ(NULL, mig_stream_parse(stream, len, memory, &map, NULL));
	EXPECT_EQ(1, map.nr_resent);

	/* The target: 001 -> 100, the data, 100 -> 001 */
	load1(_metadata, t, stream, len, &qemu_pieces);
	expect_like(_metadata, self, 0, 1, 21, "live migration");

	/*
	 * loadvm of the savevm stream on the running target, given another state
	 * first: 001 -> 000 -> 100 -> 001, and it reads like the source at savevm
	 */
	give_state(_metadata, t, memory, 24);
	set_v1(_metadata, t, V1_STOP);
	set_v1(_metadata, t, V1_RESUMING);
	ASSERT_EQ(0, mig1_fill(t, saved, mig_stream_size(memory), &page_pieces, &done));
	set_v1(_metadata, t, V1_RUNNING);
	mt = memory_read(_metadata, t, memory);
	expect_same(_metadata, mt, pages, memory, "loadvm: memory");
	free(mt);
	config_read(_metadata, s, cs);
	config_read(_metadata, t, ct);
	expect_same(_metadata, ct, cs, MIG_CONFIG_SIZE, "loadvm: config space");
	uart_expect(_metadata, ut, uart_reads(_metadata, t, ut), 21);

	/* Cancel in pre-copy and in stop-and-copy: back to running, the transfer gone */
	set_v1(_metadata, s, V1_RUNNING);
	set_v1(_metadata, s, V1_PRECOPY);
	ASSERT_LT(0, field(_metadata, s, PENDING));
	EXPECT_EQ(MIG1_CAPACITY, iterate(_metadata, s, stream, size));
	set_v1(_metadata, s, V1_RUNNING);
	EXPECT_EQ(0, field(_metadata, s, PENDING));
	set_v1(_metadata, s, V1_PRECOPY);
	set_v1(_metadata, s, V1_SAVING);
	set_v1(_metadata, s, V1_RUNNING);
	EXPECT_EQ(0, field(_metadata, s, PENDING));
	EXPECT_EQ(RUNNING, mig_get_state(s));
	free(stream);
	free(saved);
	free(pages);
}

/* pending_bytes is exact: every buffer is as large as it allows, and it shrinks by that. */
TEST_F_TIMEOUT(mig, pending_bytes_exact, 180)
{
	int device = add_device(_metadata, self, variant->cdev, 0, 4, 1);
	const size_t memory = self->memory[0];
	__u64 pending, next, size, pages = memory / MIG_PAGE;
	__u8 byte = 1;

	/* Stop-and-copy from STOP: the whole stream */
	set_v1(_metadata, device, V1_STOP);
	set_v1(_metadata, device, V1_SAVING);
	pending = field(_metadata, device, PENDING);
	EXPECT_EQ(mig_stream_size(memory), pending);
	while (pending) {
		EXPECT_EQ(MIG1_DATA, field(_metadata, device, DATA_OFFSET));
		size = field(_metadata, device, DATA_SIZE);
		EXPECT_EQ(pending < MIG1_CAPACITY ? pending : MIG1_CAPACITY, size);
		/* Reading them again changes nothing */
		EXPECT_EQ(MIG1_DATA, field(_metadata, device, DATA_OFFSET));
		EXPECT_EQ(size, field(_metadata, device, DATA_SIZE));
		next = field(_metadata, device, PENDING);
		EXPECT_EQ(pending - size, next);
		EXPECT_EQ(next, field(_metadata, device, PENDING));
		if (next >= pending)
			break;
		pending = next;
	}
	EXPECT_EQ(MIG1_DATA, field(_metadata, device, DATA_OFFSET));
	EXPECT_EQ(0, field(_metadata, device, DATA_SIZE));
	set_v1(_metadata, device, V1_STOP);

	/* Pre-copy: the first pass, then a dirty page, then the tail */
	set_v1(_metadata, device, V1_RUNNING);
	set_v1(_metadata, device, V1_PRECOPY);
	EXPECT_EQ(MIG_HEADER + pages * MIG_PAGE_REC, field(_metadata, device, PENDING));
	while ((pending = field(_metadata, device, PENDING))) {
		field(_metadata, device, DATA_OFFSET);
		if (!field(_metadata, device, DATA_SIZE))
			break;
	}
	EXPECT_EQ(0, pending);
	ASSERT_EQ(1, pwrite(device, &byte, 1, BAR2_OFFSET + 5 * MIG_PAGE));
	EXPECT_EQ(MIG_PAGE_REC, field(_metadata, device, PENDING));
	set_v1(_metadata, device, V1_SAVING);
	EXPECT_EQ(MIG_PAGE_REC + MIG_TAIL, field(_metadata, device, PENDING));
	field(_metadata, device, DATA_OFFSET);
	EXPECT_EQ(MIG_PAGE_REC + MIG_TAIL, field(_metadata, device, DATA_SIZE));
	EXPECT_EQ(0, field(_metadata, device, PENDING));
	set_v1(_metadata, device, V1_STOP);
}

/*
 * Streams cross front ends and chunkings: v1 saves the bytes v2 saves, and
 * either loads in any chunks, through pieces or the mapping.
 */
TEST_F_TIMEOUT(mig, streams_cross_front_ends, 300)
{
	int s = add_device(_metadata, self, variant->cdev, 0, 2, 1);
	int t = add_device(_metadata, self, variant->cdev, 1, 1, 2);
	const size_t memory = self->memory[0];
	struct mig1_access mapped = { .chunk = MIG1_CAPACITY }, mapped_small = { .chunk = 65536 };
	__u8 *v1, *v1_mapped, *v2;
	size_t len1, len1m, len2;

	ASSERT_EQ(memory, self->memory[1]);
	give_state(_metadata, s, memory, 31);
	mapped.map = mig1_map(s);
	ASSERT_NE(MAP_FAILED, mapped.map);
	v2 = save(_metadata, s, memory, &len2);
	v1 = save1(_metadata, s, memory, &page_pieces, &len1);
	v1_mapped = save1(_metadata, s, memory, &mapped, &len1m);
	ASSERT_EQ(len2, len1);
	ASSERT_EQ(len2, len1m);
	expect_same(_metadata, v1, v2, len2, "v1 stream");
	expect_same(_metadata, v1_mapped, v2, len2, "v1 stream through the mapping");
	EXPECT_EQ(0, munmap(mapped.map, MIG1_CAPACITY));

	load(_metadata, t, v1, len1, by_pages, 1);
	expect_like(_metadata, self, 0, 1, 31, "v1 stream loaded over v2");
	give_state(_metadata, t, memory, 32);
	load1(_metadata, t, v2, len2, &page_pieces);
	expect_like(_metadata, self, 0, 1, 31, "v2 stream loaded over v1 in 4093-byte chunks");
	give_state(_metadata, t, memory, 33);
	mapped_small.map = mig1_map(t);
	ASSERT_NE(MAP_FAILED, mapped_small.map);
	load1(_metadata, t, v2, len2, &mapped_small);
	expect_like(_metadata, self, 0, 1, 31, "v2 stream loaded through the mapping");
	EXPECT_EQ(0, munmap(mapped_small.map, MIG1_CAPACITY));
	free(v1);
	free(v1_mapped);
	free(v2);
}

/*
 * Bad streams are refused over v1 where v2 refuses them: a bad header by the
 * data_size write of its chunk, a corrupt record by the one of its chunk, a
 * stream cut just before its end record (config, UART and every page
 * delivered) on leaving RESUMING; the state stays 100, nothing is applied:
 * the target reads like a twin given the same state, memory, config space
 * and UART.
 */
TEST_F_TIMEOUT(mig, bad_streams_refused, 240)
{
	int s = add_device(_metadata, self, variant->cdev, 0, 1, 1);
	int t = add_device(_metadata, self, variant->cdev, 1, 1, 1);
	int twin = add_device(_metadata, self, variant->cdev, 2, 1, 1);
	const size_t memory = self->memory[0];
	const size_t page_at = MIG_HEADER + 100 * MIG_PAGE_REC;
	/* The byte flipped, where the piece it spoils ends, and the reason logged */
	struct { size_t at, end; const char *reason; } bad[] = {
		{ 0, MIG_HEADER, "bad magic" },
		{ page_at + MIG_REC_HEADER + 8 + 77, page_at + MIG_PAGE_REC, "CRC" },
		{ 0, 0, "ended without an end record" },
	};
	struct mig_stream_map map;
	__u8 *stream, *mem, *before;
	unsigned int i;
	size_t len, done;
	char about[128];

	give_state(_metadata, s, memory, 41);
	stream = save1(_metadata, s, memory, &page_pieces, &len);
	ASSERT_EQ(NULL, mig_stream_parse(stream, len, memory, &map, NULL));
	ASSERT_EQ(len - MIG_REC_HEADER, map.end);
	ASSERT_EQ(0, memory_give_state(t, memory, 42));
	before = memory_read(_metadata, t, memory);
	/* Each refusal is one line about the device: its reason, nothing about the request */
	snprintf(about, sizeof(about), "%s: ", self->uuid[1]);
	EXPECT_EQ(0, kmsg_splats(self->kmsg));	/* the devices' creation: not counted below */
	for (i = 0; i < 3; i++) {
		struct mig1_access a = { .piece = 65536, .chunk = 65536 };
		size_t n = bad[i].end ? len : map.end;
		int ret;

		ASSERT_EQ(0, ioctl(t, VFIO_DEVICE_RESET));
		ASSERT_EQ(0, ioctl(twin, VFIO_DEVICE_RESET));
		give_state(_metadata, t, 0, 43 + i);
		give_state(_metadata, twin, 0, 43 + i);
		if (bad[i].end)
			stream[bad[i].at] ^= 0x40;
		set_v1(_metadata, t, V1_RESUMING);
		ret = mig1_fill(t, stream, n, &a, &done);
		if (bad[i].end) {
			stream[bad[i].at] ^= 0x40;
			EXPECT_EQ(-EINVAL, ret) TH_LOG("%s", bad[i].reason);
			EXPECT_EQ((bad[i].end - 1) / a.chunk * a.chunk, done)
				TH_LOG("%s", bad[i].reason);
		} else {
			EXPECT_EQ(0, ret);
			EXPECT_EQ(-EINVAL, mig1_set_state(t, V1_RUNNING));
		}
		EXPECT_EQ(V1_RESUMING, mig1_state(t)) TH_LOG("%s", bad[i].reason);
		expect_logged_once(_metadata, self->kmsg, about, bad[i].reason);
		mem = memory_read(_metadata, t, memory);
		expect_same(_metadata, mem, before, memory, bad[i].reason);
		free(mem);
		/* The twin stopped too: a stopped device's UART reads without side effects */
		set_v1(_metadata, twin, V1_STOP);
		expect_same_stopped_regs(_metadata, twin, t, bad[i].reason, 43 + i);
	}
	ASSERT_EQ(0, ioctl(t, VFIO_DEVICE_RESET));
	EXPECT_EQ(V1_RUNNING, mig1_state(t));
	free(stream);
	free(before);
}

/* A transfer of one front end keeps the other from moving the machine: EBUSY. */
TEST_F_TIMEOUT(mig, v1_v2_interlock, 120)
{
	int device = add_device(_metadata, self, variant->cdev, 0, 1, 1), fd, none;
	const size_t size = mig_stream_size(self->memory[0]);
	__u8 *buf = malloc(size + MIG_PAGE);
	struct mig_stream_map map;
	unsigned int buffers;
	ssize_t got, n;

	ASSERT_TRUE(buf != NULL);
	set_v1(_metadata, device, V1_PRECOPY);
	EXPECT_EQ(PRE_COPY, mig_get_state(device));
	/* One line each, about the device, saying why; its creation's lines not counted */
	EXPECT_EQ(0, kmsg_splats(self->kmsg));
	EXPECT_EQ(-EBUSY, mig_set_state(device, STOP_COPY, &none));
	expect_logged_once(_metadata, self->kmsg, self->uuid[0],
			   "v2 (data file) request for STOP_COPY refused: "
			   "a v1 (migration region) transfer is in progress");
	EXPECT_EQ(-EBUSY, mig_set_state(device, RUNNING, &none));
	expect_logged_once(_metadata, self->kmsg, self->uuid[0],
			   "v2 (data file) request for RUNNING refused");
	EXPECT_EQ(PRE_COPY, mig_get_state(device));
	/* The v1 transfer went on: it still gives the whole stream */
	ASSERT_EQ(mig_stream_size(self->memory[0]) - MIG_TAIL, field(_metadata, device, PENDING));
	got = mig1_drain(device, buf, size, &page_pieces, &buffers);
	EXPECT_EQ((ssize_t)(size - MIG_TAIL), got);
	set_v1(_metadata, device, V1_SAVING);
	got += mig1_drain(device, buf + got, size - got, &page_pieces, &buffers);
	ASSERT_EQ((ssize_t)size, got);
	EXPECT_EQ(NULL, mig_stream_parse(buf, size, self->memory[0], &map, NULL));
	set_v1(_metadata, device, V1_STOP);
	set_v1(_metadata, device, V1_RUNNING);

	ASSERT_EQ(0, mig_set_state(device, PRE_COPY, &fd));
	ASSERT_LE(0, fd);
	EXPECT_EQ(V1_PRECOPY, mig1_state(device));
	EXPECT_EQ(-EBUSY, mig1_set_state(device, V1_SAVING));
	expect_logged_once(_metadata, self->kmsg, self->uuid[0],
			   "v1 (migration region) request for STOP_COPY refused: "
			   "a v2 (data file) transfer is in progress");
	EXPECT_EQ(-EBUSY, mig1_set_state(device, V1_RUNNING));
	expect_logged_once(_metadata, self->kmsg, self->uuid[0],
			   "v1 (migration region) request for RUNNING refused");
	EXPECT_EQ(V1_PRECOPY, mig1_state(device));
	/* Its own front end's reads see no transfer of theirs */
	EXPECT_EQ(0, field(_metadata, device, PENDING));
	EXPECT_EQ(0, mig1_set_state(device, V1_PRECOPY));	/* the same state: nothing to do */
	/* The v2 transfer went on: its data fd gives the whole stream */
	got = 0;
	while ((n = read(fd, buf + got, size - got)) > 0)
		got += n;
	EXPECT_EQ(ENOMSG, errno);
	EXPECT_EQ((ssize_t)(size - MIG_TAIL), got);
	ASSERT_EQ(0, mig_set_state(device, STOP_COPY, &none));
	n = mig_read_to_end(fd, buf + got, size + MIG_PAGE - got);
	ASSERT_LT(0, n);
	got += n;
	ASSERT_EQ((ssize_t)size, got);
	EXPECT_EQ(NULL, mig_stream_parse(buf, size, self->memory[0], &map, NULL));
	ASSERT_EQ(0, mig_set_state(device, RUNNING, &none));
	expect_stale(_metadata, fd, true);
	set_v1(_metadata, device, V1_STOP);
	set_v1(_metadata, device, V1_RUNNING);
	free(buf);
}

TEST_HARNESS_MAIN
