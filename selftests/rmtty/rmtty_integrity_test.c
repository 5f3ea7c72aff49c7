// SPDX-License-Identifier: GPL-2.0
/*
 * Nothing lost, nothing changed by what fails, through both front doors:
 *
 * - a region write that faults on the user's buffer changes nothing of the
 *   part it faulted in, and what it wrote before is marked dirty and reaches
 *   the target;
 * - a stopped device (STOP, STOP_COPY, RESUMING, by v2 or v1) does not run:
 *   BAR writes are refused, reads have no side effects, no interrupt is
 *   signalled, while config space and SET_IRQS work;
 * - MIG_DATA_SIZE counts what a v1 buffer holds that was not consumed;
 * - a short stream can be completed after a refused commit, and refused
 *   commits do not flood the log;
 * - allocation failures (fail-nth) in a request change nothing;
 * - the device answers no DMA logging feature.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include "rmtty_mig_fixture.h"

/* The parts region writes are copied in (README: "Region writes") */
#define WRITE_PART	65536

/*
 * A buffer of @good readable bytes followed by a page that is not mapped for
 * access: a copy from it faults there. NULL on failure.
 */
static __u8 *half_mapped(size_t good)
{
	size_t len = (good + MIG_PAGE - 1) / MIG_PAGE * MIG_PAGE;
	__u8 *map = mmap(NULL, len + MIG_PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (map == MAP_FAILED)
		return NULL;
	if (mprotect(map + len, MIG_PAGE, PROT_NONE)) {
		munmap(map, len + MIG_PAGE);
		return NULL;
	}
	return map + len - good;
}

/* Append pre-copy data from @fd to @buf (@size bytes) until none is ready: how many bytes. */
static size_t converge(struct __test_metadata *_metadata, int fd, __u8 *buf, size_t size)
{
	size_t total = 0;
	ssize_t n;

	while (total < size && (n = read(fd, buf + total, size - total)) > 0)
		total += n;
	EXPECT_GT(size, total);
	EXPECT_EQ(ENOMSG, errno);
	return total;
}

static __u64 dirty_bytes(struct __test_metadata *_metadata, int fd)
{
	__u64 initial = ~0ULL, dirty = ~0ULL;

	EXPECT_EQ(0, mig_precopy_info(fd, &initial, &dirty));
	EXPECT_EQ(0, initial);
	return dirty;
}

/*
 * Stop-and-copy the rest of @fd's stream into @buf (@size bytes), close the
 * fd and let @device run again: how many bytes.
 */
static size_t finish(struct __test_metadata *_metadata, int device, int fd, __u8 *buf,
		     size_t size)
{
	ssize_t got;
	int none;

	EXPECT_EQ(0, mig_set_state(device, STOP_COPY, &none));
	EXPECT_EQ(-1, none);
	got = mig_read_to_end(fd, buf, size);
	EXPECT_LT(0, got);
	EXPECT_EQ(0, mig_set_state(device, RUNNING, &none));
	close(fd);
	return got > 0 ? got : 0;
}

/*
 * A BAR2 write whose user buffer faults: outside migration and in a
 * converged pre-copy it changes nothing; one longer than a part writes the
 * parts before the fault, which are dirty and reach the target.
 */
TEST_F_TIMEOUT(mig, faulting_bar2_write_changes_nothing, 240)
{
	int s = add_device(_metadata, self, variant->cdev, 0, 1, 1);
	int t = add_device(_metadata, self, variant->cdev, 1, 1, 1);
	const size_t memory = self->memory[0], at = 2 * MIG_PAGE;
	size_t size = mig_stream_size(memory) + 32 * MIG_PAGE_REC, len;
	__u8 *two = half_mapped(MIG_PAGE), *many = half_mapped(WRITE_PART);
	__u8 *before, *after, *stream = malloc(size), *pages = malloc(memory);
	struct mig_stream_map map;
	int fd;

	ASSERT_TRUE(two && many && stream && pages);
	/* Only the first page of each is readable: it differs from the device's memory */
	memset(two, 0xa5, MIG_PAGE);
	memset(many, 0x3c, WRITE_PART);
	give_state(_metadata, s, memory, 51);
	give_state(_metadata, t, memory, 52);
	before = memory_read(_metadata, s, memory);

	errno = 0;
	EXPECT_EQ(-1, pwrite(s, two, 2 * MIG_PAGE, BAR2_OFFSET + at));
	EXPECT_EQ(EFAULT, errno);
	after = memory_read(_metadata, s, memory);
	expect_same(_metadata, after, before, memory, "memory after a faulting write");
	free(after);

	ASSERT_EQ(0, mig_set_state(s, PRE_COPY, &fd));
	ASSERT_LE(0, fd);
	len = converge(_metadata, fd, stream, size);
	EXPECT_EQ(MIG_HEADER + memory / MIG_PAGE * MIG_PAGE_REC, len);
	EXPECT_EQ(0, dirty_bytes(_metadata, fd));
	errno = 0;
	EXPECT_EQ(-1, pwrite(s, two, 2 * MIG_PAGE, BAR2_OFFSET + at));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(0, dirty_bytes(_metadata, fd)) TH_LOG("a refused write made pages dirty");
	after = memory_read(_metadata, s, memory);
	expect_same(_metadata, after, before, memory, "memory after a faulting write in pre-copy");
	free(after);

	/* Longer than a part: the first part is written, whole, and only it is dirty */
	EXPECT_EQ(WRITE_PART, pwrite(s, many, WRITE_PART + MIG_PAGE, BAR2_OFFSET + at));
	EXPECT_EQ(WRITE_PART / MIG_PAGE * MIG_PAGE_REC, dirty_bytes(_metadata, fd));
	memcpy(before + at, many, WRITE_PART);
	after = memory_read(_metadata, s, memory);
	expect_same(_metadata, after, before, memory, "memory after a short write");
	free(after);

	/* The target gets what the source holds, the part written again among the pages */
	len += finish(_metadata, s, fd, stream + len, size - len);
	EXPECT_EQ(NULL, mig_stream_parse(stream, len, memory, &map, pages));
	EXPECT_EQ(WRITE_PART / MIG_PAGE, map.nr_resent);
	expect_same(_metadata, pages, before, memory, "pages of the stream");
	load(_metadata, t, stream, len, by_pages, 1);
	after = memory_read(_metadata, t, memory);
	expect_same(_metadata, after, before, memory, "target memory");
	free(after);
	free(before);
	free(stream);
	free(pages);
}

/*
 * A v1 data section write whose user buffer faults leaves the section as it
 * was: what the next data_size write hands to the loader.
 */
TEST_F_TIMEOUT(mig, faulting_data_section_write_changes_nothing, 120)
{
	int device = add_device(_metadata, self, variant->cdev, 0, 1, 1);
	__u8 *two = half_mapped(MIG_PAGE), *map, expected[2 * MIG_PAGE];

	ASSERT_TRUE(two != NULL);
	memset(two, 0xa5, MIG_PAGE);
	set_v1(_metadata, device, V1_RESUMING);
	map = mig1_map(device);
	ASSERT_NE(MAP_FAILED, map);
	memset(map, 0x5a, 2 * MIG_PAGE);
	memcpy(expected, map, sizeof(expected));
	errno = 0;
	EXPECT_EQ(-1, pwrite(device, two, 2 * MIG_PAGE, MIG1_OFFSET + MIG1_DATA));
	EXPECT_EQ(EFAULT, errno);
	expect_same(_metadata, map, expected, sizeof(expected), "data section");
	EXPECT_EQ(V1_RESUMING, mig1_state(device));
	EXPECT_EQ(0, munmap(map, MIG1_CAPACITY));
	ASSERT_EQ(0, ioctl(device, VFIO_DEVICE_RESET));
}

/* Move @device to @state (STOP, STOP_COPY or RESUMING) through v1 or v2 from RUNNING. */
static void stop_for(struct __test_metadata *_metadata, int device, bool v1, __u32 state)
{
	static const __u32 bits[] = { [STOP] = V1_STOP, [STOP_COPY] = V1_SAVING,
				      [RESUMING] = V1_RESUMING };
	int fd = -1;

	if (v1) {
		set_v1(_metadata, device, V1_STOP);
		if (state != STOP)
			set_v1(_metadata, device, bits[state]);
		return;
	}
	ASSERT_EQ(0, mig_set_state(device, state, &fd));
	ASSERT_EQ(state, mig_get_state(device));
	if (fd >= 0)
		close(fd);
}

/* How often @efd was signalled since the last look. */
static __u64 signalled(int efd)
{
	__u64 count = 0;

	if (read(efd, &count, sizeof(count)) != sizeof(count))
		return 0;
	return count;
}

/*
 * A stopped device does not run: BAR writes are refused with EBUSY, BAR
 * reads show the registers without their side effects (the FIFO keeps its
 * bytes, LSR its overrun, MSR its deltas), nothing is signalled; config
 * space and SET_IRQS work as when running. Each stopped state, through each
 * front end.
 */
TEST_F_TIMEOUT(mig, stopped_device_does_not_run, 300)
{
	static const __u32 stopped[] = { STOP, STOP_COPY, RESUMING };
	static const __u8 regs[] = { UART_RX, UART_IIR, UART_LSR, UART_MSR, UART_IER, UART_LCR };
	int device = add_device(_metadata, self, variant->cdev, 0, 1, 1);
	int twin = add_device(_metadata, self, variant->cdev, 1, 1, 1);
	const size_t memory = self->memory[0];
	__u8 cfg[MIG_CONFIG_SIZE], cfg_twin[MIG_CONFIG_SIZE], seen[UART_READS_MAX], byte = 0x77;
	__u8 *before, *after;
	unsigned int i, r, refused = 0;
	int efd = eventfd(0, EFD_NONBLOCK), efd2 = eventfd(0, EFD_NONBLOCK), none, lines;
	char what[64];

	ASSERT_LE(0, efd);
	ASSERT_LE(0, efd2);
	ASSERT_EQ(0, memory_give_state(device, memory, 61));
	before = memory_read(_metadata, device, memory);
	EXPECT_EQ(0, kmsg_splats(self->kmsg));	/* not counted below */
	for (i = 0; i < 2 * 3; i++) {
		bool v1 = i >= 3;
		__u32 state = stopped[i % 3];
		int first[sizeof(regs)];

		snprintf(what, sizeof(what), "%s through %s", state_name[state], v1 ? "v1" : "v2");
		ASSERT_EQ(0, ioctl(device, VFIO_DEVICE_RESET));
		ASSERT_EQ(0, set_eventfd(device, VFIO_PCI_INTX_IRQ_INDEX, efd));
		ASSERT_EQ(0, uart_give_state(device, 63));
		ASSERT_EQ(0, irq_action(device, VFIO_PCI_INTX_IRQ_INDEX,
					VFIO_IRQ_SET_ACTION_UNMASK));
		signalled(efd);
		stop_for(_metadata, device, v1, state);

		/* Reads have no side effects: twice the same, and the state is still there */
		for (r = 0; r < sizeof(regs); r++)
			first[r] = bar0_read(device, regs[r]);
		for (r = 0; r < sizeof(regs); r++) {
			unsigned int reg = regs[r];

			EXPECT_EQ(first[r], bar0_read(device, reg))
				TH_LOG("%s: register %u read again", what, reg);
		}
		/* Writes are refused: transmitting would signal (THRI is enabled) */
		EXPECT_EQ(-EBUSY, bar0_write(device, UART_TX, 0x41)) TH_LOG("%s", what);
		EXPECT_EQ(-EBUSY, bar0_write(device, UART_IER, 0)) TH_LOG("%s", what);
		errno = 0;
		EXPECT_EQ(-1, pwrite(device, &byte, 1, BAR2_OFFSET + 5 * MIG_PAGE)) TH_LOG("%s", what);
		EXPECT_EQ(EBUSY, errno);
		refused += 3;
		EXPECT_EQ(0, signalled(efd)) TH_LOG("%s: an interrupt was signalled", what);

		/* Config space and SET_IRQS work */
		ASSERT_EQ(0, config_give_state(device, 64 + i));
		ASSERT_EQ(0, config_give_state(twin, 64 + i));
		config_read(_metadata, device, cfg);
		config_read(_metadata, twin, cfg_twin);
		expect_same(_metadata, cfg, cfg_twin, MIG_CONFIG_SIZE, what);
		EXPECT_EQ(0, set_eventfd(device, VFIO_PCI_INTX_IRQ_INDEX, efd2));
		EXPECT_EQ(0, set_eventfd(device, VFIO_PCI_INTX_IRQ_INDEX, efd));
		/* An unmasked level that is pending is not signalled while stopped ... */
		EXPECT_EQ(0, irq_action(device, VFIO_PCI_INTX_IRQ_INDEX,
					VFIO_IRQ_SET_ACTION_UNMASK));
		EXPECT_EQ(0, signalled(efd) + signalled(efd2)) TH_LOG("%s: SET_IRQS signalled", what);

		after = memory_read(_metadata, device, memory);
		expect_same(_metadata, after, before, memory, what);
		free(after);
		if (state == RESUMING) {
			/* No stream to commit: the reset is the way out */
			ASSERT_EQ(0, ioctl(device, VFIO_DEVICE_RESET));
			continue;
		}
		/* ... but once the device runs again */
		if (v1)
			set_v1(_metadata, device, V1_RUNNING);
		else
			ASSERT_EQ(0, mig_set_state(device, RUNNING, &none));
		ASSERT_EQ(RUNNING, mig_get_state(device));
		EXPECT_EQ(1, signalled(efd)) TH_LOG("%s: the pending level after the stop", what);
		/* Running again, the UART is as it was given: nothing was read off it */
		uart_expect(_metadata, seen, uart_reads(_metadata, device, seen), 63);
		/* ... and it signals again */
		ASSERT_EQ(0, irq_action(device, VFIO_PCI_INTX_IRQ_INDEX,
					VFIO_IRQ_SET_ACTION_UNMASK));
		signalled(efd);
		ASSERT_EQ(0, bar0_write(device, UART_IER, UART_IER_THRI));
		ASSERT_EQ(0, bar0_write(device, UART_TX, 0x41));
		EXPECT_EQ(1, signalled(efd)) TH_LOG("%s: running again", what);
	}
	/* Each refusal is logged, within the rate limit */
	lines = kmsg_count(self->kmsg, "write refused: the device is stopped for migration");
	EXPECT_LE(1, lines);
	EXPECT_GE(refused, lines);
	close(efd);
	close(efd2);
	free(before);
}

/*
 * MIG_DATA_SIZE during a v1 stop-and-copy counts the buffer in the data
 * section until pending_bytes says it was consumed.
 */
TEST_F_TIMEOUT(mig, data_size_counts_the_v1_buffer, 120)
{
	int device = add_device(_metadata, self, variant->cdev, 0, 2, 1);
	const size_t full = mig_stream_size(self->memory[0]);
	__u64 size = 0;

	ASSERT_LT(MIG1_CAPACITY, full);
	set_v1(_metadata, device, V1_STOP);
	set_v1(_metadata, device, V1_SAVING);
	EXPECT_EQ(full, field(_metadata, device, PENDING));
	EXPECT_EQ(0, mig_data_size(device, &size));
	EXPECT_EQ(full, size);
	/* A buffer is filled: none of it is consumed yet */
	EXPECT_EQ(MIG1_DATA, field(_metadata, device, DATA_OFFSET));
	EXPECT_EQ(0, mig_data_size(device, &size));
	EXPECT_EQ(full, size) TH_LOG("the filled, unread buffer is not counted");
	/* Reading pending_bytes consumes it */
	EXPECT_EQ(full - MIG1_CAPACITY, field(_metadata, device, PENDING));
	EXPECT_EQ(0, mig_data_size(device, &size));
	EXPECT_EQ(full - MIG1_CAPACITY, size);
	set_v1(_metadata, device, V1_STOP);
}

/*
 * A short stream's commit is refused and the session stays: more writes can
 * complete the stream, which then commits (migration-stream.md). Refused
 * commits repeated in a loop are logged within the rate limit.
 */
TEST_F_TIMEOUT(mig, short_stream_completed_after_refused_commit, 240)
{
	int s = add_device(_metadata, self, variant->cdev, 0, 1, 1);
	int t = add_device(_metadata, self, variant->cdev, 1, 1, 1);
	const size_t memory = self->memory[0];
	struct timespec t0, t1;
	__u8 *stream;
	size_t len, done, half;
	long windows;
	int fd, none, i, lines;

	give_state(_metadata, s, memory, 71);
	give_state(_metadata, t, memory, 72);
	stream = save(_metadata, s, memory, &len);
	half = MIG_HEADER + 100 * MIG_PAGE_REC + 33;
	ASSERT_EQ(0, mig_set_state(t, RESUMING, &fd));
	ASSERT_EQ(0, mig_write_plan(fd, stream, half, by_pages, 1, &done));
	EXPECT_EQ(-EINVAL, mig_set_state(t, STOP, &none));
	EXPECT_EQ(RESUMING, mig_get_state(t));
	ASSERT_EQ(0, mig_write_plan(fd, stream + half, len - half, by_pages, 1, &done));
	ASSERT_EQ(0, mig_set_state(t, STOP, &none));
	ASSERT_EQ(0, mig_set_state(t, RUNNING, &none));
	close(fd);
	expect_same_memory(_metadata, s, t, memory, "memory");
	expect_same_regs(_metadata, s, t, "completed after a refused commit", 71);

	/* A loop of refused commits of a header-only stream is rate limited */
	sleep(LOG_WINDOW + 1);
	EXPECT_EQ(0, kmsg_splats(self->kmsg));	/* what came before: not counted */
	ASSERT_EQ(0, mig_set_state(t, RESUMING, &fd));
	ASSERT_EQ(MIG_HEADER, write(fd, stream, MIG_HEADER));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < 5 * LOG_BURST; i++)
		EXPECT_EQ(-EINVAL, mig_set_state(t, STOP, &none));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	windows = (t1.tv_sec - t0.tv_sec + 1) / LOG_WINDOW + 1;
	lines = kmsg_count(self->kmsg, self->uuid[1]);
	EXPECT_LE(1, lines);
	EXPECT_GE(windows * LOG_BURST, lines) TH_LOG("%ld s", t1.tv_sec - t0.tv_sec);
	EXPECT_GT(5 * LOG_BURST, lines);
	close(fd);
	ASSERT_EQ(0, ioctl(t, VFIO_DEVICE_RESET));
	free(stream);
}

/* The device does no DMA: it answers no DMA logging feature (reference 0.4). */
TEST_F_TIMEOUT(mig, no_dma_logging, 60)
{
	static const __u32 features[] = {
		VFIO_DEVICE_FEATURE_DMA_LOGGING_START, VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP,
		VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
	};
	int device = add_device(_metadata, self, variant->cdev, 0, 1, 1);
	unsigned int i;

	for (i = 0; i < 3; i++) {
		EXPECT_EQ(-ENOTTY, device_feature(device, VFIO_DEVICE_FEATURE_PROBE |
					VFIO_DEVICE_FEATURE_SET, features[i], NULL, 0));
		EXPECT_EQ(-ENOTTY, device_feature(device, VFIO_DEVICE_FEATURE_PROBE |
					VFIO_DEVICE_FEATURE_GET, features[i], NULL, 0));
	}
	EXPECT_EQ(RUNNING, mig_get_state(device));
}

/* More fault sites than a request has: a load's copy of 1 MiB is 256 pages */
#define MAX_SITES	2000

/*
 * Every fault site (allocations, user copies) of a request that starts a
 * transfer fails in turn. Where the driver's part fails, the request fails
 * with ENOMEM (EFAULT for a user copy) and changes nothing: the state, and a
 * transfer in progress, which goes on. Through v2 from STOP and from
 * STOP_COPY, through v1 from 010 (a half-read stop-and-copy) to 100. Over v2
 * the VFIO core installs the data fd after the driver moved the device, and
 * fails the ioctl if it cannot (the device then stays in the new state, with
 * no fd: a reset recovers it); those failures are counted apart.
 */
TEST_F_TIMEOUT(mig, allocation_failures_change_nothing, 900)
{
	int device = add_device(_metadata, self, variant->cdev, 0, 1, 1);
	const size_t full = mig_stream_size(self->memory[0]);
	unsigned int nth, path, clean[3] = { 0 }, after_driver = 0, recovered = 0;
	__u8 *buf = malloc(full);
	__u64 pending, size;
	int ret, fd, save_fd, nth_fd;

	ASSERT_TRUE(buf != NULL);
	ret = fault_injection_setup(false);
	if (ret == -ENOENT)
		SKIP(return, "no fault injection in this kernel");
	ASSERT_EQ(0, ret);
	nth_fd = fail_nth_open();
	ASSERT_LE(0, nth_fd);
	for (path = 0; path < 3; path++) {
		for (nth = 1; nth < MAX_SITES; nth++) {
			__u32 before;
			bool fired;

			ASSERT_EQ(0, ioctl(device, VFIO_DEVICE_RESET));
			save_fd = -1;
			if (path == 0) {
				ASSERT_EQ(0, mig_set_state(device, STOP, &fd));
			} else if (path == 1) {
				ASSERT_EQ(0, mig_set_state(device, STOP_COPY, &save_fd));
				ASSERT_EQ(MIG_HEADER, read(save_fd, buf, MIG_HEADER));
			} else {
				set_v1(_metadata, device, V1_STOP);
				set_v1(_metadata, device, V1_SAVING);
				field(_metadata, device, PENDING);
				field(_metadata, device, DATA_OFFSET);
			}
			before = mig_get_state(device);
			pending = path == 2 ? field(_metadata, device, PENDING) : 0;
			fd = -1;
			ASSERT_EQ(0, fail_nth_arm(nth_fd, nth));
			ret = path == 2 ? mig1_set_state(device, V1_RESUMING) :
					  mig_set_state(device, RESUMING, &fd);
			fired = fail_nth_fired(nth_fd);
			if (fd >= 0)
				close(fd);
			if (!fired) {
				/* Past the last fault site: the request succeeded */
				EXPECT_EQ(0, ret);
				EXPECT_EQ(RESUMING, mig_get_state(device));
				if (save_fd >= 0)
					expect_stale(_metadata, save_fd, true);
				break;
			}
			if (!ret) {
				/* A failure the allocator recovered from (kvmalloc's kmalloc) */
				EXPECT_EQ(RESUMING, mig_get_state(device));
				recovered++;
				if (save_fd >= 0)
					close(save_fd);
				continue;
			}
			if (mig_get_state(device) != before) {
				/* Failed after the driver's part: the core's fd installation */
				EXPECT_NE(2, path) TH_LOG("v1, fault site %u: %s", nth,
							  strerror(-ret));
				EXPECT_EQ(RESUMING, mig_get_state(device));
				after_driver++;
				if (save_fd >= 0)
					close(save_fd);
				continue;
			}
			clean[path]++;
			EXPECT_TRUE(ret == -ENOMEM || ret == -EFAULT)
				TH_LOG("path %u, fault site %u: %s", path, nth, strerror(-ret));
			EXPECT_GT(0, fd);
			if (path == 1) {
				/* The transfer goes on: the rest of the stream is there */
				EXPECT_EQ(0, mig_data_size(device, &size));
				EXPECT_EQ(full - MIG_HEADER, size);
				EXPECT_EQ((ssize_t)(full - MIG_HEADER),
					  mig_read_to_end(save_fd, buf, full));
				close(save_fd);
			} else if (path == 2) {
				EXPECT_EQ(V1_SAVING, mig1_state(device));
				EXPECT_EQ(pending, field(_metadata, device, PENDING));
			}
		}
		EXPECT_GT(MAX_SITES, nth) TH_LOG("path %u: the request kept failing", path);
		/* The session, its link, the copy of the memory, the file: at least four */
		EXPECT_LE(4, clean[path]) TH_LOG("path %u", path);
	}
	TH_LOG("failures that changed nothing: %u, %u, %u; recovered: %u; after the driver: %u",
	       clean[0], clean[1], clean[2], recovered, after_driver);
	close(nth_fd);
	ASSERT_EQ(0, ioctl(device, VFIO_DEVICE_RESET));
	give_state(_metadata, device, self->memory[0], 73);
	free(buf);
}

/*
 * VFIO_MIG_GET_PRECOPY_INFO follows the INFOv2 opt-in as the VFIO core's
 * vfio_check_precopy_ioctl() reads it, on each call: before it the flags are
 * left as userspace put them ("reserved for bug compatibility"), after it
 * (made during the transfer) they are output, and nothing is flagged. Once
 * the device is closed, the data fd answers ENODEV.
 */
TEST_F_TIMEOUT(mig, precopy_info_follows_the_opt_in, 120)
{
	int device = add_device(_metadata, self, variant->cdev, 0, 1, 1);
	__u64 initial = 0, dirty = ~0ULL;
	__u32 flags = 0xa5a50000;
	int fd;

	ASSERT_EQ(0, mig_set_state(device, PRE_COPY, &fd));
	ASSERT_LE(0, fd);
	EXPECT_EQ(0, mig_precopy_info_flags(fd, &flags, &initial, &dirty));
	EXPECT_EQ(0xa5a50000, flags);
	EXPECT_EQ(MIG_HEADER + self->memory[0] / MIG_PAGE * MIG_PAGE_REC, initial);
	EXPECT_EQ(0, dirty);
	ASSERT_EQ(0, device_feature(device, VFIO_DEVICE_FEATURE_SET,
				    VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2, NULL, 0));
	flags = 0xa5a50000;
	EXPECT_EQ(0, mig_precopy_info_flags(fd, &flags, &initial, &dirty));
	EXPECT_EQ(0, flags) TH_LOG("the opt-in made during the transfer is not seen");
	rmtty_vfio_close(&self->v[0]);
	EXPECT_EQ(-ENODEV, mig_precopy_info_flags(fd, &flags, &initial, &dirty));
	close(fd);
}

TEST_HARNESS_MAIN
