// SPDX-License-Identifier: GPL-2.0
/*
 * rmtty's v1 migration region beyond QEMU 7.2's sequences, through both
 * front doors: the data section read at any offset inside the buffer and
 * nowhere past it, a transfer ended by VFIO_DEVICE_RESET, and a device whose
 * stream_version is 1.0, whose pending_bytes counts the 1.0 tail.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/vfio.h>

#include "rmtty_mig_fixture.h"

#define PIECE	4096

/*
 * The first buffer of a stop-and-copy, read in pieces from the last to the
 * first and at odd offsets, holds what v2 saves of the same state; nothing
 * past data_size can be read; a reset ends the transfer, and the section
 * cannot be read after it.
 */
TEST_F_TIMEOUT(mig, data_section_reads, 180)
{
	int device = add_device(_metadata, self, variant->cdev, 0, 2, 1);
	const size_t memory = self->memory[0];
	__u8 *v2, *buffer = malloc(MIG1_CAPACITY), byte;
	__u64 size, off, at, k;
	size_t len;

	ASSERT_TRUE(buffer != NULL);
	give_state(_metadata, device, memory, 81);
	v2 = save(_metadata, device, memory, &len);
	ASSERT_LT(MIG1_CAPACITY, len);

	set_v1(_metadata, device, V1_STOP);
	set_v1(_metadata, device, V1_SAVING);
	EXPECT_EQ(len, field(_metadata, device, PENDING));
	EXPECT_EQ(MIG1_DATA, field(_metadata, device, DATA_OFFSET));
	size = field(_metadata, device, DATA_SIZE);
	ASSERT_EQ(MIG1_CAPACITY, size);
	/* Backwards, a piece at a time */
	for (off = size; off > 0; off -= PIECE)
		ASSERT_EQ(PIECE, pread(device, buffer + off - PIECE, PIECE,
				       MIG1_OFFSET + MIG1_DATA + off - PIECE));
	expect_same(_metadata, buffer, v2, size, "the buffer read backwards");
	/* Single bytes at odd offsets, in no order */
	for (k = 0; k < 64; k++) {
		at = (k * 16411 + 7) % size;
		ASSERT_EQ(1, pread(device, &byte, 1, MIG1_OFFSET + MIG1_DATA + at));
		EXPECT_EQ(v2[at], byte) TH_LOG("byte %llu", (unsigned long long)at);
	}
	ASSERT_EQ(3, pread(device, buffer, 3, MIG1_OFFSET + MIG1_DATA + size - 3));
	expect_same(_metadata, buffer, v2 + size - 3, 3, "the buffer's last bytes");
	/* Nothing past data_size */
	errno = 0;
	EXPECT_EQ(-1, pread(device, buffer, 8, MIG1_OFFSET + MIG1_DATA + size - 4));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, pread(device, buffer, 1, MIG1_OFFSET + MIG1_DATA + size));
	EXPECT_EQ(-1, pread(device, buffer, 1, MIG1_OFFSET + MIG1_SIZE));
	/* Still the same transfer: the next buffer is the rest of the stream */
	EXPECT_EQ(len - size, field(_metadata, device, PENDING));
	EXPECT_EQ(MIG1_DATA, field(_metadata, device, DATA_OFFSET));
	EXPECT_EQ(len - size < MIG1_CAPACITY ? len - size : MIG1_CAPACITY,
		  field(_metadata, device, DATA_SIZE));
	ASSERT_EQ((ssize_t)PIECE, pread(device, buffer, PIECE, MIG1_OFFSET + MIG1_DATA));
	expect_same(_metadata, buffer, v2 + size, PIECE, "the second buffer");

	/* A reset mid-transfer ends it: nothing to read, nothing pending, running */
	ASSERT_EQ(0, ioctl(device, VFIO_DEVICE_RESET));
	EXPECT_EQ(V1_RUNNING, mig1_state(device));
	errno = 0;
	EXPECT_EQ(-1, pread(device, buffer, 8, MIG1_OFFSET + MIG1_DATA));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(0, field(_metadata, device, PENDING));
	EXPECT_EQ(0, field(_metadata, device, DATA_SIZE));
	/* And a new transfer starts from the beginning */
	set_v1(_metadata, device, V1_STOP);
	set_v1(_metadata, device, V1_SAVING);
	EXPECT_EQ(len, field(_metadata, device, PENDING));
	set_v1(_metadata, device, V1_STOP);
	free(buffer);
	free(v2);
}

/*
 * A device whose stream_version is 1.0 writes 1.0 streams over v1 too:
 * pending_bytes counts the 1.0 tail (no summary record), by stop-and-copy
 * alone and after a pre-copy, and the stream it hands out is a 1.0 stream.
 */
TEST_F_TIMEOUT(mig, stream_1_0_over_v1, 180)
{
	struct mig1_access pieces = { .piece = PIECE, .chunk = PIECE };
	struct mig_stream_map map;
	char path[256];
	size_t memory, pages, full;
	unsigned int buffers;
	__u8 *stream;
	ssize_t got;
	int device;

	rmtty_uuid(self->uuid[0], 1);
	ASSERT_EQ(0, rmtty_create(1, self->uuid[0]));
	rmtty_device_path(path, sizeof(path), self->uuid[0], "stream_version");
	ASSERT_EQ(0, sysfs_write(path, "1.0"));
	ASSERT_EQ(0, rmtty_vfio_open(&self->v[0], self->uuid[0], variant->cdev));
	device = self->v[0].device;
	memory = self->memory[0] = (size_t)self->unit_mib << 20;
	pages = memory / MIG_PAGE;
	full = MIG_HEADER + pages * MIG_PAGE_REC + MIG_TAIL_1_0;
	stream = malloc(full);
	ASSERT_TRUE(stream != NULL);

	set_v1(_metadata, device, V1_STOP);
	set_v1(_metadata, device, V1_SAVING);
	EXPECT_EQ(full, field(_metadata, device, PENDING));
	set_v1(_metadata, device, V1_STOP);

	set_v1(_metadata, device, V1_RUNNING);
	set_v1(_metadata, device, V1_PRECOPY);
	EXPECT_EQ(MIG_HEADER + pages * MIG_PAGE_REC, field(_metadata, device, PENDING));
	got = mig1_drain(device, stream, full, &pieces, &buffers);
	ASSERT_EQ((ssize_t)(MIG_HEADER + pages * MIG_PAGE_REC), got);
	set_v1(_metadata, device, V1_SAVING);
	EXPECT_EQ(MIG_TAIL_1_0, field(_metadata, device, PENDING));
	got += mig1_drain(device, stream + got, full - got, &pieces, &buffers);
	ASSERT_EQ((ssize_t)full, got);
	EXPECT_EQ(NULL, mig_stream_parse(stream, full, memory, &map, NULL));
	EXPECT_EQ(0, map.minor);
	EXPECT_EQ(0, map.summary);
	set_v1(_metadata, device, V1_STOP);
	set_v1(_metadata, device, V1_RUNNING);
	free(stream);
}

TEST_HARNESS_MAIN
