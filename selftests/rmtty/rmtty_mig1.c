// SPDX-License-Identifier: GPL-2.0
/*
 * The v1 migration region of an rmtty device, driven the way QEMU 7.2 drives
 * it (hw/vfio/migration.c): header fields at their own width, one buffer of
 * the stream at a time, through pread/pwrite pieces or the mapped data
 * section.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/vfio.h>

#include "rmtty_vfio.h"

#define FIELD(name)	offsetof(struct vfio_device_migration_info, name)

int mig1_read(int device, unsigned int off, unsigned int width, __u64 *val)
{
	__u32 v32;
	ssize_t n;

	if (width == 4) {
		n = pread(device, &v32, 4, MIG1_OFFSET + off);
		*val = v32;
	} else {
		n = pread(device, val, width, MIG1_OFFSET + off);
	}
	return n == width ? 0 : n < 0 ? -errno : -EIO;
}

int mig1_write(int device, unsigned int off, unsigned int width, __u64 val)
{
	__u32 v32 = val;
	ssize_t n = pwrite(device, width == 4 ? (void *)&v32 : (void *)&val, width,
			   MIG1_OFFSET + off);

	return n == width ? 0 : n < 0 ? -errno : -EIO;
}

int mig1_state(int device)
{
	__u64 state;
	int ret = mig1_read(device, FIELD(device_state), 4, &state);

	return ret ? ret : (int)state;
}

int mig1_set_state(int device, __u32 bits)
{
	int old = mig1_state(device);

	if (old < 0)
		return old;
	return mig1_write(device, FIELD(device_state), 4, bits);
}

__u8 *mig1_map(int device)
{
	return mmap(NULL, MIG1_CAPACITY, PROT_READ | PROT_WRITE, MAP_SHARED, device,
		    MIG1_OFFSET + MIG1_DATA);
}

/* Move @len bytes between @buf and the data section at @off, as @a says; 0 or -errno. */
static int data_rw(int device, __u8 *buf, size_t len, size_t off, const struct mig1_access *a,
		   int write)
{
	size_t done, n;
	ssize_t got;

	if (a->map) {
		if (write)
			memcpy(a->map + off - MIG1_DATA, buf, len);
		else
			memcpy(buf, a->map + off - MIG1_DATA, len);
		return 0;
	}
	for (done = 0; done < len; done += n) {
		n = len - done < a->piece ? len - done : a->piece;
		got = write ? pwrite(device, buf + done, n, MIG1_OFFSET + off + done) :
			      pread(device, buf + done, n, MIG1_OFFSET + off + done);
		if (got != (ssize_t)n)
			return got < 0 ? -errno : -EIO;
	}
	return 0;
}

ssize_t mig1_drain(int device, __u8 *buf, size_t size, const struct mig1_access *a,
		   unsigned int *buffers)
{
	__u64 pending, offset, len;
	size_t got = 0;
	int ret;

	*buffers = 0;
	for (;;) {
		ret = mig1_read(device, FIELD(pending_bytes), 8, &pending);
		if (ret || !pending)
			break;
		ret = mig1_read(device, FIELD(data_offset), 8, &offset);
		if (!ret)
			ret = mig1_read(device, FIELD(data_size), 8, &len);
		if (ret)
			break;
		if (offset != MIG1_DATA || !len || len > pending || len > MIG1_CAPACITY)
			return -EPROTO;
		if (len > size - got)
			return -EFBIG;
		ret = data_rw(device, buf + got, len, offset, a, 0);
		if (ret)
			break;
		got += len;
		++*buffers;
	}
	return ret ? ret : (ssize_t)got;
}

int mig1_fill(int device, const __u8 *s, size_t len, const struct mig1_access *a, size_t *done)
{
	__u64 offset;
	size_t n;
	int ret = 0;

	for (*done = 0; *done < len; *done += n) {
		n = len - *done < a->chunk ? len - *done : a->chunk;
		ret = mig1_read(device, FIELD(data_offset), 8, &offset);
		if (ret)
			break;
		if (offset != MIG1_DATA)
			return -EPROTO;
		ret = data_rw(device, (__u8 *)s + *done, n, offset, a, 1);
		if (!ret)
			ret = mig1_write(device, FIELD(data_size), 8, n);
		if (ret)
			break;
	}
	return ret;
}
