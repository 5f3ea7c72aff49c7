// SPDX-License-Identifier: GPL-2.0
/*
 * Opening an rmtty device through either VFIO front door, and what the tests
 * ask of it: region accesses, interrupt set-up, the log of its refusals, its
 * migration and the stream that carries it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/iommufd.h>
#include <linux/pci_regs.h>
#include <linux/serial_reg.h>

#include "kselftest.h"
#include "rmtty_util.h"
#include "rmtty_vfio.h"

int (*rmtty_vfio_before_device)(void);
bool rmtty_vfio_quiet;

/* Call rmtty_vfio_before_device, if set: 0 or its -errno. */
static int before_device(void)
{
	return rmtty_vfio_before_device ? rmtty_vfio_before_device() : 0;
}

/* Log what failed and return -errno. */
static int failed(const char *what)
{
	int err = errno;

	if (!rmtty_vfio_quiet)
		ksft_print_msg("%s: %s\n", what, strerror(err));
	return -err;
}

/* The number at the end of the link @path. */
static int trailing_number(const char *path)
{
	char buf[256];
	ssize_t len = readlink(path, buf, sizeof(buf) - 1);
	const char *p;

	if (len < 0)
		return -errno;
	buf[len] = '\0';
	p = strrchr(buf, '/');
	return atoi(p ? p + 1 : buf);
}

static int open_group(struct rmtty_vfio *v, const char *uuid)
{
	struct vfio_group_status status = { .argsz = sizeof(status) };
	char path[256];
	int group, ret;

	rmtty_device_path(path, sizeof(path), uuid, "iommu_group");
	group = trailing_number(path);
	if (group < 0)
		return failed(path);
	snprintf(path, sizeof(path), "/dev/vfio/%d", group);
	v->group = open(path, O_RDWR);
	if (v->group < 0)
		return failed(path);
	if (ioctl(v->group, VFIO_GROUP_GET_STATUS, &status))
		return failed("VFIO_GROUP_GET_STATUS");
	if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		errno = EBUSY;
		return failed("group not viable");
	}
	v->container = open("/dev/vfio/vfio", O_RDWR);
	if (v->container < 0)
		return failed("/dev/vfio/vfio");
	if (ioctl(v->group, VFIO_GROUP_SET_CONTAINER, &v->container))
		return failed("VFIO_GROUP_SET_CONTAINER");
	if (ioctl(v->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))
		return failed("VFIO_SET_IOMMU");
	ret = before_device();
	if (ret)
		return ret;
	v->device = ioctl(v->group, VFIO_GROUP_GET_DEVICE_FD, uuid);
	if (v->device < 0)
		return failed("VFIO_GROUP_GET_DEVICE_FD");
	return 0;
}

static int open_cdev(struct rmtty_vfio *v, const char *uuid)
{
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
	struct vfio_device_attach_iommufd_pt attach = { .argsz = sizeof(attach) };
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	char path[300], name[256] = "";
	struct dirent *entry;
	DIR *dir;
	int ret;

	/* The cdev's name: the one entry of the device's vfio-dev directory. */
	snprintf(path, sizeof(path), "%s/%s/vfio-dev", MDEV_DEVICES, uuid);
	dir = opendir(path);
	if (!dir)
		return failed(path);
	while ((entry = readdir(dir)))
		if (entry->d_name[0] != '.')
			snprintf(name, sizeof(name), "%s", entry->d_name);
	closedir(dir);
	if (!name[0]) {
		errno = ENOENT;
		return failed("the device's vfio-dev directory");
	}
	snprintf(path, sizeof(path), "/dev/vfio/devices/%s", name);
	ret = before_device();
	if (ret)
		return ret;
	v->device = open(path, O_RDWR);
	if (v->device < 0)
		return failed(path);

	v->iommufd = open("/dev/iommu", O_RDWR);
	if (v->iommufd < 0)
		return failed("/dev/iommu");
	bind.iommufd = v->iommufd;
	if (ioctl(v->device, VFIO_DEVICE_BIND_IOMMUFD, &bind))
		return failed("VFIO_DEVICE_BIND_IOMMUFD");
	if (ioctl(v->iommufd, IOMMU_IOAS_ALLOC, &alloc))
		return failed("IOMMU_IOAS_ALLOC");
	attach.pt_id = alloc.out_ioas_id;
	if (ioctl(v->device, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach))
		return failed("VFIO_DEVICE_ATTACH_IOMMUFD_PT");
	return 0;
}

int rmtty_vfio_open(struct rmtty_vfio *v, const char *uuid, bool cdev)
{
	int ret;

	*v = (struct rmtty_vfio)RMTTY_VFIO_INIT;
	ret = cdev ? open_cdev(v, uuid) : open_group(v, uuid);
	if (ret)
		rmtty_vfio_close(v);
	return ret;
}

void rmtty_vfio_close(struct rmtty_vfio *v)
{
	int *fds[] = { &v->device, &v->group, &v->container, &v->iommufd };
	unsigned int i;

	for (i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

__u64 bar2_size_for(__u64 memory)
{
	__u64 bar = 1;

	while (bar < memory)
		bar <<= 1;
	return bar;
}

bool config_identity_ok(int device)
{
	__u8 id[12];

	return pread(device, id, sizeof(id), CONFIG_OFFSET) == sizeof(id) &&
	       get_le16(id) == 0x4348 && get_le16(id + 2) == 0x3253 &&
	       (get_le32(id + 8) >> 8) == 0x070002;
}

int bar0_read(int device, unsigned int reg)
{
	__u8 value;

	if (pread(device, &value, 1, BAR0_OFFSET + reg) != 1)
		return -errno;
	return value;
}

int bar0_write(int device, unsigned int reg, __u8 value)
{
	if (pwrite(device, &value, 1, BAR0_OFFSET + reg) != 1)
		return -errno;
	return 0;
}

int set_irqs(int device, __u32 flags, __u32 index, __u32 start, __u32 count,
	     const void *data, size_t size)
{
	__u64 buf[(sizeof(struct vfio_irq_set) + SET_IRQS_DATA_MAX + 7) / sizeof(__u64)] = { 0 };
	struct vfio_irq_set *set = (struct vfio_irq_set *)buf;

	if (size > SET_IRQS_DATA_MAX)
		return -E2BIG;
	set->argsz = sizeof(*set) + size;
	set->flags = flags;
	set->index = index;
	set->start = start;
	set->count = count;
	if (size)
		memcpy(set->data, data, size);
	return ioctl(device, VFIO_DEVICE_SET_IRQS, set) ? -errno : 0;
}

int set_eventfd(int device, __u32 index, __s32 fd)
{
	return set_irqs(device, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
			index, 0, 1, &fd, sizeof(fd));
}

int irq_action(int device, __u32 index, __u32 action)
{
	return set_irqs(device, VFIO_IRQ_SET_DATA_NONE | action, index, 0, 1, NULL, 0);
}

int refusals_logged(int kmsg, const char *uuid, const char *refusal)
{
	char needle[256];

	snprintf(needle, sizeof(needle), "%s: %s", uuid, refusal);
	return kmsg_count(kmsg, needle);
}

int device_feature(int device, __u32 flags, __u32 feature, void *data, size_t size)
{
	__u64 buf[(sizeof(struct vfio_device_feature) + 16) / sizeof(__u64)] = { 0 };
	struct vfio_device_feature *f = (struct vfio_device_feature *)buf;

	if (size > 16)
		return -E2BIG;
	f->argsz = sizeof(*f) + size;
	f->flags = flags | feature;
	if (size)
		memcpy(f->data, data, size);
	if (ioctl(device, VFIO_DEVICE_FEATURE, f))
		return -errno;
	if (size && (flags & VFIO_DEVICE_FEATURE_GET))
		memcpy(data, f->data, size);
	return 0;
}

int mig_features(int device, __u64 *flags)
{
	struct vfio_device_feature_migration mig = { 0 };
	int ret = device_feature(device, VFIO_DEVICE_FEATURE_GET, VFIO_DEVICE_FEATURE_MIGRATION,
				 &mig, sizeof(mig));

	*flags = mig.flags;
	return ret;
}

int mig_get_state(int device)
{
	struct vfio_device_feature_mig_state mig = { .data_fd = -1 };
	int ret = device_feature(device, VFIO_DEVICE_FEATURE_GET,
				 VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &mig, sizeof(mig));

	return ret ?: (int)mig.device_state;
}

int mig_set_state(int device, __u32 state, int *data_fd)
{
	__u64 buf[(sizeof(struct vfio_device_feature) +
		   sizeof(struct vfio_device_feature_mig_state) + 7) / sizeof(__u64)] = { 0 };
	struct vfio_device_feature *f = (struct vfio_device_feature *)buf;
	struct vfio_device_feature_mig_state *mig = (void *)f->data;
	int ret;

	f->argsz = sizeof(buf);
	f->flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE;
	mig->device_state = state;
	mig->data_fd = -2;	/* what the kernel returns replaces it */
	ret = ioctl(device, VFIO_DEVICE_FEATURE, f) ? -errno : 0;
	if (data_fd)
		*data_fd = mig->data_fd;
	return ret;
}

int mig_data_size(int device, __u64 *size)
{
	struct vfio_device_feature_mig_data_size data = { 0 };
	int ret = device_feature(device, VFIO_DEVICE_FEATURE_GET,
				 VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, &data, sizeof(data));

	*size = data.stop_copy_length;
	return ret;
}

int mig_precopy_info_flags(int data_fd, __u32 *flags, __u64 *initial, __u64 *dirty)
{
	struct vfio_precopy_info info = { .argsz = sizeof(info), .flags = *flags };

	if (ioctl(data_fd, VFIO_MIG_GET_PRECOPY_INFO, &info))
		return -errno;
	*flags = info.flags;
	*initial = info.initial_bytes;
	*dirty = info.dirty_bytes;
	return 0;
}

int mig_precopy_info(int data_fd, __u64 *initial, __u64 *dirty)
{
	__u32 flags = 0;

	return mig_precopy_info_flags(data_fd, &flags, initial, dirty);
}

struct uart_state uart_state_of(unsigned int seed)
{
	return (struct uart_state){
		.lcr = UART_LCR_WLEN8 | (seed % 8) << 3,
		.fcr = UART_FCR_ENABLE_FIFO | (seed % 4) << 6,
		.mcr = UART_MCR_DTR | UART_MCR_RTS | UART_MCR_OUT2,
		.scr = 0x5a ^ (seed * 7),
		.ier = UART_IER_RDI | UART_IER_THRI | UART_IER_RLSI | UART_IER_MSI,
		.divisor = 0x100 + seed * 3 + 1,
		.sent = seed % 2 ? UART_FIFO_SIZE + 1 : 3 + seed % 13,
	};
}

__u8 uart_sent_byte(unsigned int seed, unsigned int i)
{
	return 'A' + (seed * 5 + i) % 26;
}

int uart_give_state(int device, unsigned int seed)
{
	struct uart_state u = uart_state_of(seed);
	const __u8 writes[][2] = {
		{ UART_LCR, UART_LCR_DLAB }, { UART_DLL, u.divisor & 0xff },
		{ UART_DLM, u.divisor >> 8 }, { UART_LCR, u.lcr },
		{ UART_FCR, u.fcr | UART_FCR_CLEAR_RCVR }, { UART_MCR, u.mcr },
		{ UART_SCR, u.scr },
	};
	unsigned int i;
	int ret = 0;

	for (i = 0; !ret && i < sizeof(writes) / sizeof(writes[0]); i++)
		ret = bar0_write(device, writes[i][0], writes[i][1]);
	for (i = 0; !ret && i < u.sent; i++)
		ret = bar0_write(device, UART_TX, uart_sent_byte(seed, i));
	return ret ?: bar0_write(device, UART_IER, u.ier);
}

/* Read the @nr UART registers @regs into @out; 0 or -errno. */
static int read_regs(int device, const __u8 *regs, unsigned int nr, __u8 *out)
{
	unsigned int i;
	int value;

	for (i = 0; i < nr; i++) {
		value = bar0_read(device, regs[i]);
		if (value < 0)
			return value;
		out[i] = value;
	}
	return 0;
}

int uart_read_all(int device, __u8 *out)
{
	/* The registers, the FIFO with LSR before each byte, what is left pending */
	static const __u8 first[] = {
		UART_IIR, UART_LSR, UART_IIR, UART_LCR, UART_IER, UART_MCR, UART_SCR,
		UART_MSR, UART_MSR, UART_IIR,
	}, fifo[] = { UART_LSR, UART_RX }, last[] = { UART_IIR, UART_IIR, UART_LSR };
	static const __u8 divisor[] = { UART_DLL, UART_DLM };
	unsigned int i, n = sizeof(first);
	int ret = read_regs(device, first, sizeof(first), out);

	for (i = 0; !ret && i <= UART_FIFO_SIZE; i++, n += sizeof(fifo))
		ret = read_regs(device, fifo, sizeof(fifo), out + n);
	if (!ret) {
		ret = read_regs(device, last, sizeof(last), out + n);
		n += sizeof(last);
	}
	/* The divisor latch, then LCR as it was */
	if (!ret)
		ret = bar0_write(device, UART_LCR, out[3] | UART_LCR_DLAB);
	if (!ret) {
		ret = read_regs(device, divisor, sizeof(divisor), out + n);
		n += sizeof(divisor);
	}
	if (!ret)
		ret = bar0_write(device, UART_LCR, out[3]);
	return ret ?: (int)n;
}

int config_give_state(int device, unsigned int seed)
{
	__u16 command = PCI_COMMAND_IO | PCI_COMMAND_MEMORY |
			(seed % 2 ? PCI_COMMAND_INTX_DISABLE : PCI_COMMAND_MASTER);
	__u32 bar0 = 0xc000 + seed % 64 * 8, bar2 = 0xe0000000 + ((seed % 16) << 24);
	__u8 line = 5 + seed % 10;

	if (pwrite(device, &command, 2, CONFIG_OFFSET + PCI_COMMAND) != 2 ||
	    pwrite(device, &bar0, 4, CONFIG_OFFSET + PCI_BASE_ADDRESS_0) != 4 ||
	    pwrite(device, &bar2, 4, CONFIG_OFFSET + PCI_BASE_ADDRESS_2) != 4 ||
	    pwrite(device, &line, 1, CONFIG_OFFSET + PCI_INTERRUPT_LINE) != 1)
		return -errno;
	return 0;
}

int memory_give_state(int device, size_t memory, unsigned int seed)
{
	unsigned int i, j, r = seed * 2654435761u + 1;
	size_t pages = memory / 4096, page;
	__u8 buf[4096];

	for (i = 0; i < 8; i++) {
		r = r * 1103515245 + 12345;
		page = i == 0 ? 0 : i == 1 ? pages - 1 : (r >> 8) % pages;
		for (j = 0; j < sizeof(buf); j++)
			buf[j] = seed * 31 + page * 7 + j * 13 + (j >> 8);
		if (pwrite(device, buf, sizeof(buf), BAR2_OFFSET + page * sizeof(buf)) !=
		    sizeof(buf))
			return -errno;
	}
	if (pwrite(device, "abc", 3, BAR2_OFFSET + (r >> 4) % (memory - 3)) != 3)
		return -errno;
	return 0;
}

__u8 *memory_read_all(int device, size_t memory)
{
	__u8 *buf = malloc(memory);

	if (buf && pread(device, buf, memory, BAR2_OFFSET) != (ssize_t)memory) {
		free(buf);
		buf = NULL;
	}
	return buf;
}

__u32 crc32c_update(__u32 crc, const void *buf, size_t len)
{
	static __u32 table[256];
	const __u8 *p = buf;
	unsigned int i, j;
	__u32 c;

	if (!table[1]) {
		for (i = 0; i < 256; i++) {
			for (c = i, j = 0; j < 8; j++)
				c = (c & 1) ? (c >> 1) ^ 0x82f63b78 : c >> 1;
			table[i] = c;
		}
	}
	while (len--)
		crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

__u32 crc32c(const void *buf, size_t len)
{
	return ~crc32c_update(~0u, buf, len);
}

__u32 mig_record_crc(const __u8 *rec)
{
	return ~crc32c_update(crc32c_update(~0u, rec, 8), rec + MIG_REC_HEADER,
			      get_le32(rec + 4));
}

size_t mig_stream_size_minor(size_t memory, unsigned int minor)
{
	return MIG_HEADER + memory / MIG_PAGE * MIG_PAGE_REC + (minor ? MIG_TAIL : MIG_TAIL_1_0);
}

size_t mig_stream_size(size_t memory)
{
	return mig_stream_size_minor(memory, 1);
}

/* Check the record at @rec of @plen payload bytes, and note where it is in @map. */
static const char *parse_record(const __u8 *rec, size_t at, size_t plen, size_t pages,
				struct mig_stream_map *map, __u8 *out)
{
	__u32 index = get_le32(rec + MIG_REC_HEADER);
	__u16 type = get_le16(rec);

	/* The summary is the one record a reader may skip */
	if (get_le16(rec + 2) != (type == MIG_REC_SUMMARY ? 0 : MIG_REQUIRED) ||
	    get_le32(rec + 8) != mig_record_crc(rec))
		return "record flags or CRC";
	switch (type) {
	case MIG_REC_PAGE:
		if (plen != 8 + MIG_PAGE || map->config || index >= pages ||
		    get_le32(rec + MIG_REC_HEADER + 4))
			return "page record";
		if (map->page_records < pages && index != map->page_records)
			return "first pass out of order";
		if (map->page_records >= pages && map->nr_resent < 16)
			map->resent[map->nr_resent++] = index;
		if (!map->page_records++)
			map->first_page = at;
		if (out)
			memcpy(out + (size_t)index * MIG_PAGE, rec + MIG_REC_HEADER + 8, MIG_PAGE);
		return NULL;
	case MIG_REC_CONFIG:
		if (plen != MIG_CONFIG_SIZE || map->page_records < pages || map->config)
			return "config record";
		map->config = at;
		return NULL;
	case MIG_REC_UART:
		if (plen != MIG_UART_SIZE || !map->config || map->uart)
			return "UART record";
		map->uart = at;
		return NULL;
	case MIG_REC_SUMMARY:
		if (plen != MIG_SUMMARY_SIZE || !map->minor || !map->uart || map->summary)
			return "summary record";
		if (get_le32(rec + MIG_REC_HEADER) != at || get_le32(rec + MIG_REC_HEADER + 4) ||
		    get_le32(rec + MIG_REC_HEADER + 8) != map->page_records ||
		    get_le32(rec + MIG_REC_HEADER + 12))
			return "summary record's counts";
		map->summary = at;
		return NULL;
	case MIG_REC_END:
		if (plen || !map->uart || !map->minor != !map->summary)
			return "end record";
		map->end = at;
		return NULL;
	}
	return "unknown record type";
}

const char *mig_stream_parse(const __u8 *s, size_t len, size_t memory,
			     struct mig_stream_map *map, __u8 *pages)
{
	size_t at = MIG_HEADER, plen;
	const char *why;

	memset(map, 0, sizeof(*map));
	if (len < MIG_HEADER || memcmp(s, "RMTTYMIG", 8))
		return "no header";
	map->minor = get_le16(s + 10);
	if (get_le16(s + 8) != 1 || map->minor > 1 || get_le32(s + 12) || get_le32(s + 28))
		return "header version, flags or reserved word";
	if (get_le32(s + 16) != memory >> 20 || get_le32(s + 20) != 1)
		return "header shape";
	if (get_le32(s + 24) != crc32c(s, 24))
		return "header CRC";
	while (at < len && !map->end) {
		if (len - at < MIG_REC_HEADER || len - at - MIG_REC_HEADER < get_le32(s + at + 4))
			return "a record past the end";
		plen = get_le32(s + at + 4);
		why = parse_record(s + at, at, plen, memory / MIG_PAGE, map, pages);
		if (why)
			return why;
		at += MIG_REC_HEADER + plen;
	}
	if (!map->end)
		return "no end record";
	return at == len ? NULL : "bytes after the end record";
}

__u8 *mig_insert_record(const __u8 *s, size_t len, size_t at, __u16 type, __u16 flags,
			__u32 plen, size_t *new_len)
{
	__u8 *out = malloc(len + MIG_REC_HEADER + plen), *rec = out + at;
	__u32 i;

	if (!out)
		return NULL;
	memcpy(out, s, at);
	rec[0] = type;
	rec[1] = type >> 8;
	rec[2] = flags;
	rec[3] = flags >> 8;
	put_le32(rec + 4, plen);
	for (i = 0; i < plen; i++)
		rec[MIG_REC_HEADER + i] = i * 3;
	put_le32(rec + 8, mig_record_crc(rec));
	memcpy(rec + MIG_REC_HEADER + plen, s + at, len - at);
	*new_len = len + MIG_REC_HEADER + plen;
	return out;
}

int mig_fix_summary(__u8 *s, size_t len)
{
	size_t at = MIG_HEADER, plen;
	__u32 pages = 0;
	__u8 *rec;

	while (len - at >= MIG_REC_HEADER) {
		rec = s + at;
		plen = get_le32(rec + 4);
		if (get_le16(rec) == MIG_REC_SUMMARY && plen == MIG_SUMMARY_SIZE &&
		    len - at - MIG_REC_HEADER >= plen) {
			put_le32(rec + MIG_REC_HEADER, at);
			put_le32(rec + MIG_REC_HEADER + 4, (__u64)at >> 32);
			put_le32(rec + MIG_REC_HEADER + 8, pages);
			put_le32(rec + 8, mig_record_crc(rec));
			return 0;
		}
		pages += get_le16(rec) == MIG_REC_PAGE;
		if (len - at - MIG_REC_HEADER < plen)
			break;
		at += MIG_REC_HEADER + plen;
	}
	return -1;
}

void mig_set_minor(__u8 *s, unsigned int minor)
{
	s[10] = minor;
	s[11] = minor >> 8;
	put_le32(s + 24, crc32c(s, 24));
}

ssize_t mig_read_to_end(int fd, __u8 *buf, size_t size)
{
	size_t got = 0;
	ssize_t n;

	do {
		n = read(fd, buf + got, size - got < 65536 ? size - got : 65536);
		if (n < 0)
			return -errno;
		got += n;
	} while (n && got < size);
	return n ? -EFBIG : (ssize_t)got;
}

int mig_write_plan(int fd, const __u8 *s, size_t len, const unsigned int *plan,
		   unsigned int steps, size_t *done)
{
	size_t n, off = 0;
	unsigned int i = 0;
	ssize_t w = 0;

	while (off < len) {
		n = plan[i++ % steps];
		n = n < len - off ? n : len - off;
		w = write(fd, s + off, n);
		if (w != (ssize_t)n)
			break;
		off += n;
	}
	*done = off;
	return off == len ? 0 : w < 0 ? -errno : -EIO;
}
