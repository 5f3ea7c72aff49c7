// SPDX-License-Identifier: GPL-2.0
/*
 * The ioctl fuzzer: every device ioctl the device answers, with random
 * argsz, flags, index, start and count and random bytes after the header:
 * VFIO_DEVICE_GET_INFO, _GET_REGION_INFO, _GET_IRQ_INFO, _SET_IRQS (with
 * lists of eventfds, -1 and descriptors that are not eventfds),
 * VFIO_DEVICE_FEATURE (every feature number the uAPI has and others, every
 * flag), VFIO_DEVICE_RESET, and commands of the VFIO range the device does
 * not know.
 *
 * What README's "The VFIO device" documents is checked where a request
 * succeeds: the device's flags and counts, each region's size and offset,
 * each interrupt index's flags and count, the migration features. Requests
 * that the uAPI's structures make malformed (argsz below the header, an
 * index out of range) must fail with EINVAL, unknown commands with ENOTTY;
 * anything else may fail, but only with an errno the uAPI gives. After every
 * case the device still answers VFIO_DEVICE_GET_INFO as documented.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "rmtty_fuzz.h"
#include "rmtty_util.h"
#include "rmtty_vfio.h"

#define IOCTL_ARG_MAX		512
#define NUM_REGIONS	10
#define NUM_IRQS	5
#define EVENTFDS	4

/* README's regions: index 2's size depends on the device. */
static uint64_t region_size(unsigned int index, uint64_t bar2)
{
	switch (index) {
	case VFIO_PCI_BAR0_REGION_INDEX:
		return 8;
	case VFIO_PCI_BAR2_REGION_INDEX:
		return bar2;
	case VFIO_PCI_CONFIG_REGION_INDEX:
		return 256;
	case 9:
		return sysconf(_SC_PAGESIZE) + (1u << 20);
	default:
		return 0;
	}
}

/* README's interrupt indexes: flags and count. */
static const struct {
	uint32_t flags, count;
} irqs[NUM_IRQS] = {
	[VFIO_PCI_INTX_IRQ_INDEX] = { VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE |
				      VFIO_IRQ_INFO_AUTOMASKED, 1 },
	[VFIO_PCI_MSI_IRQ_INDEX] = { VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE, 1 },
};

struct ioctl_fuzz {
	struct fuzz_rng rng;
	struct fuzz_run *run;
	int device;
	uint64_t bar2;
	int eventfd[EVENTFDS];
	unsigned long refusals;
	union {
		uint8_t bytes[IOCTL_ARG_MAX];
		uint64_t align;
	} arg;
};

/* An argsz: below, at and above the header's @minsz, or anything. */
static uint32_t pick_argsz(struct ioctl_fuzz *f, uint32_t minsz)
{
	switch (fuzz_below(&f->rng, 5)) {
	case 0:
		return fuzz_below(&f->rng, minsz);
	case 1:
		return minsz;
	case 2:
		return minsz + fuzz_below(&f->rng, IOCTL_ARG_MAX - minsz + 1);
	case 3:
		return (uint32_t)fuzz_next(&f->rng);
	default:
		return IOCTL_ARG_MAX;
	}
}

/* An index: in range, just out of it, or anything. */
static uint32_t pick_index(struct ioctl_fuzz *f, uint32_t n)
{
	return fuzz_chance(&f->rng, 70) ? fuzz_below(&f->rng, n + 2) : (uint32_t)fuzz_next(&f->rng);
}

/* The header in f->arg, junk after it, one ioctl; 0 or -errno. */
static int call(struct ioctl_fuzz *f, unsigned long cmd, const void *head, size_t len)
{
	size_t i;

	for (i = 0; i < IOCTL_ARG_MAX; i++)
		f->arg.bytes[i] = fuzz_next(&f->rng);
	memcpy(f->arg.bytes, head, len);
	return ioctl(f->device, cmd, f->arg.bytes) ? -errno : 0;
}

static void expect(struct ioctl_fuzz *f, const char *what, int ret, int want)
{
	if (ret)
		f->refusals++;
	if (ret != -want)
		fuzz_fail(f->run, "%s: %s, expected %s", what, ret ? strerror(-ret) : "success",
			  want ? strerror(want) : "success");
}

/* A failure, if @ret is one, must be one of the uAPI's errnos for ioctls. */
static void expect_sane(struct ioctl_fuzz *f, const char *what, int ret)
{
	static const int allowed[] = { 0, -EINVAL, -ENOTTY, -EBADF, -EBUSY, -EOPNOTSUPP,
				       -E2BIG, -ENOMSG, -ENOMEM };
	unsigned int i;

	if (ret)
		f->refusals++;
	for (i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		if (ret == allowed[i])
			return;
	fuzz_fail(f->run, "%s: %s", what, strerror(-ret));
}

static void case_device_info(struct ioctl_fuzz *f)
{
	struct vfio_device_info info = { .argsz = pick_argsz(f, 16) };
	const struct vfio_device_info *out = (void *)f->arg.bytes;
	int ret = call(f, VFIO_DEVICE_GET_INFO, &info, sizeof(info));

	expect(f, "VFIO_DEVICE_GET_INFO", ret, info.argsz < 16 ? EINVAL : 0);
	if (!ret && ((out->flags & (VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET)) !=
		     (VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET) ||
		     out->num_regions != NUM_REGIONS || out->num_irqs != NUM_IRQS))
		fuzz_fail(f->run, "VFIO_DEVICE_GET_INFO: flags %#x, %u regions, %u irqs",
			  out->flags, out->num_regions, out->num_irqs);
}

static void case_region_info(struct ioctl_fuzz *f)
{
	struct vfio_region_info info = { .argsz = pick_argsz(f, 32),
					 .index = pick_index(f, NUM_REGIONS) };
	const struct vfio_region_info *out = (void *)f->arg.bytes;
	int ret = call(f, VFIO_DEVICE_GET_REGION_INFO, &info, sizeof(info));
	char what[64];

	snprintf(what, sizeof(what), "VFIO_DEVICE_GET_REGION_INFO of %u, argsz %u", info.index,
		 info.argsz);
	expect(f, what, ret, info.argsz < 32 || info.index >= NUM_REGIONS ? EINVAL : 0);
	if (!ret && (out->size != region_size(info.index, f->bar2) ||
		     out->offset != (uint64_t)info.index << 40))
		fuzz_fail(f->run, "%s: size %" PRIu64 " at %#" PRIx64 ", README says %" PRIu64,
			  what, (uint64_t)out->size, (uint64_t)out->offset,
			  region_size(info.index, f->bar2));
}

static void case_irq_info(struct ioctl_fuzz *f)
{
	struct vfio_irq_info info = { .argsz = pick_argsz(f, 16), .index = pick_index(f, NUM_IRQS) };
	const struct vfio_irq_info *out = (void *)f->arg.bytes;
	int ret = call(f, VFIO_DEVICE_GET_IRQ_INFO, &info, sizeof(info));
	char what[64];

	snprintf(what, sizeof(what), "VFIO_DEVICE_GET_IRQ_INFO of %u, argsz %u", info.index,
		 info.argsz);
	expect(f, what, ret, info.argsz < 16 || info.index >= NUM_IRQS ? EINVAL : 0);
	if (!ret && (out->flags != irqs[info.index].flags || out->count != irqs[info.index].count))
		fuzz_fail(f->run, "%s: flags %#x, count %u, README says %#x, %u", what, out->flags,
			  out->count, irqs[info.index].flags, irqs[info.index].count);
}

static void case_set_irqs(struct ioctl_fuzz *f)
{
	static const uint32_t data[] = { VFIO_IRQ_SET_DATA_NONE, VFIO_IRQ_SET_DATA_BOOL,
					 VFIO_IRQ_SET_DATA_EVENTFD };
	static const uint32_t action[] = { VFIO_IRQ_SET_ACTION_MASK, VFIO_IRQ_SET_ACTION_UNMASK,
					   VFIO_IRQ_SET_ACTION_TRIGGER };
	struct vfio_irq_set set = {
		.flags = fuzz_pick(&f->rng, data) | fuzz_pick(&f->rng, action),
		.index = pick_index(f, NUM_IRQS),
		.start = fuzz_chance(&f->rng, 80) ? fuzz_below(&f->rng, 3) : (uint32_t)fuzz_next(&f->rng),
		.count = fuzz_chance(&f->rng, 80) ? fuzz_below(&f->rng, 3) : (uint32_t)fuzz_next(&f->rng),
	};
	int32_t *fds = (int32_t *)(f->arg.bytes + sizeof(set));
	unsigned int i, n = (IOCTL_ARG_MAX - sizeof(set)) / sizeof(*fds);
	int ret;

	if (fuzz_chance(&f->rng, 10))
		set.flags = (uint32_t)fuzz_next(&f->rng);
	set.argsz = fuzz_chance(&f->rng, 70) ? sizeof(set) + 4 * fuzz_below(&f->rng, 4) :
		    pick_argsz(f, sizeof(set));
	for (i = 0; i < IOCTL_ARG_MAX; i++)
		f->arg.bytes[i] = fuzz_next(&f->rng);
	memcpy(f->arg.bytes, &set, sizeof(set));
	/* Eventfds, -1, and descriptors that are no eventfds or none at all. */
	for (i = 0; i < n; i++) {
		switch (fuzz_below(&f->rng, 4)) {
		case 0:
		case 1:
			fds[i] = f->eventfd[fuzz_below(&f->rng, EVENTFDS)];
			break;
		case 2:
			fds[i] = -1;
			break;
		default:
			fds[i] = fuzz_chance(&f->rng, 50) ? f->device : (int32_t)fuzz_below(&f->rng, 4096);
			break;
		}
	}
	ret = ioctl(f->device, VFIO_DEVICE_SET_IRQS, f->arg.bytes) ? -errno : 0;
	expect_sane(f, "VFIO_DEVICE_SET_IRQS", ret);
}

static void case_feature(struct ioctl_fuzz *f)
{
	static const uint32_t flags[] = { VFIO_DEVICE_FEATURE_GET, VFIO_DEVICE_FEATURE_SET,
					  VFIO_DEVICE_FEATURE_PROBE,
					  VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_GET,
					  VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET,
					  VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET };
	struct vfio_device_feature feature = {
		.argsz = pick_argsz(f, sizeof(feature)),
		.flags = fuzz_pick(&f->rng, flags) | (uint32_t)fuzz_below(&f->rng, 16),
	};
	const struct vfio_device_feature_migration *mig = (void *)(f->arg.bytes + sizeof(feature));
	struct vfio_device_feature_mig_state *state = (void *)(f->arg.bytes + sizeof(feature));
	int ret;

	if (fuzz_chance(&f->rng, 10))
		feature.flags = (uint32_t)fuzz_next(&f->rng);
	/* A state request asks for a state, or one near them, most of the time. */
	if ((feature.flags & VFIO_DEVICE_FEATURE_MASK) == VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE &&
	    fuzz_chance(&f->rng, 80)) {
		struct {
			struct vfio_device_feature feature;
			struct vfio_device_feature_mig_state state;
		} head = { feature, { .device_state = fuzz_below(&f->rng, 10), .data_fd = -1 } };

		ret = call(f, VFIO_DEVICE_FEATURE, &head, sizeof(head));
	} else {
		ret = call(f, VFIO_DEVICE_FEATURE, &feature, sizeof(feature));
	}
	expect_sane(f, "VFIO_DEVICE_FEATURE", ret);
	if (ret)
		return;
	switch (feature.flags & VFIO_DEVICE_FEATURE_MASK) {
	case VFIO_DEVICE_FEATURE_MIGRATION:
		if ((feature.flags & VFIO_DEVICE_FEATURE_GET) &&
		    !(feature.flags & VFIO_DEVICE_FEATURE_PROBE) &&
		    mig->flags != (VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P |
				   VFIO_MIGRATION_PRE_COPY))
			fuzz_fail(f->run, "VFIO_DEVICE_FEATURE_MIGRATION: flags %#" PRIx64,
				  (uint64_t)mig->flags);
		break;
	case VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE:
		/* A state request may have been made: close its file, back to RUNNING. */
		if ((feature.flags & VFIO_DEVICE_FEATURE_SET) &&
		    !(feature.flags & VFIO_DEVICE_FEATURE_PROBE)) {
			if (state->data_fd >= 0 && state->data_fd != f->device)
				close(state->data_fd);
			if (ioctl(f->device, VFIO_DEVICE_RESET))
				fuzz_fail(f->run, "VFIO_DEVICE_RESET: %s", strerror(errno));
		}
		break;
	}
}

static void case_unknown(struct ioctl_fuzz *f)
{
	/*
	 * VFIO's commands are ';' 100 and up: the gfx and ioeventfd ones,
	 * which rmtty does not have, and those past the last the uAPI has
	 * (VFIO_MIG_GET_PRECOPY_INFO, 21).
	 */
	unsigned int nr = fuzz_below(&f->rng, 43);
	unsigned long cmd = _IO(VFIO_TYPE, VFIO_BASE + (nr < 3 ? 14 + nr : 22 + nr - 3));
	int ret = call(f, cmd, NULL, 0);

	expect(f, "an unknown command", ret, ENOTTY);
}

/* A fuzzer of @run's cases on the open @device whose BAR2 has @bar2 bytes. */
static void ioctl_fuzz_init(struct ioctl_fuzz *f, struct fuzz_run *run, int device, uint64_t bar2)
{
	unsigned int i;

	f->run = run;
	f->rng.state = run->seed;
	f->device = device;
	f->bar2 = bar2;
	for (i = 0; i < EVENTFDS; i++)
		f->eventfd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

static void close_eventfds(struct ioctl_fuzz *f)
{
	unsigned int i;

	for (i = 0; i < EVENTFDS; i++)
		if (f->eventfd[i] >= 0)
			close(f->eventfd[i]);
}

/* The run's cases, each followed by a look at the device's answer to GET_INFO. */
static void run_cases(struct ioctl_fuzz *f)
{
	struct fuzz_run *run = f->run;

	for (run->done = 0; run->done < run->cases && !run->failures; run->done++) {
		switch (fuzz_below(&f->rng, 8)) {
		case 0:
			case_device_info(f);
			break;
		case 1:
		case 2:
			case_region_info(f);
			break;
		case 3:
			case_irq_info(f);
			break;
		case 4:
		case 5:
			case_set_irqs(f);
			break;
		case 6:
			case_feature(f);
			break;
		default:
			if (fuzz_chance(&f->rng, 50))
				case_unknown(f);
			else if (ioctl(f->device, VFIO_DEVICE_RESET))
				fuzz_fail(run, "VFIO_DEVICE_RESET: %s", strerror(errno));
			break;
		}
		/* The device still answers as documented. */
		case_device_info(f);
	}
}

void ioctl_fuzzer(struct fuzz_run *run, const char *uuid, uint64_t bar2)
{
	struct ioctl_fuzz *f = calloc(1, sizeof(*f));
	struct rmtty_vfio v = RMTTY_VFIO_INIT;
	int log = fuzz_log_open();
	struct timespec t0, t1;
	unsigned int i;

	if (!f || log < 0 || rmtty_vfio_open(&v, uuid, false)) {
		fuzz_fail(run, "setting up: no memory, no kernel log, or the device did not open");
		goto out;
	}
	ioctl_fuzz_init(f, run, v.device, bar2);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	run_cases(f);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* Interrupts torn down: INTx and MSI by DATA_NONE, count 0 (one is refused). */
	for (i = 0; i < 2; i++)
		if (set_irqs(f->device, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, i, 0,
			     0, NULL, 0))
			f->refusals++;
	fuzz_log_rate_ok(run, log, f->refusals, seconds_between(&t0, &t1));
	run->refused = f->refusals;
	close_eventfds(f);
out:
	rmtty_vfio_close(&v);
	if (log >= 0)
		close(log);
	free(f);
}

void ioctl_fuzz_shared(struct fuzz_run *run, int device, uint64_t memory)
{
	struct ioctl_fuzz *f = calloc(1, sizeof(*f));

	if (!f) {
		fuzz_fail(run, "no memory");
		return;
	}
	ioctl_fuzz_init(f, run, device, bar2_size_for(memory));
	run_cases(f);
	run->refused = f->refusals;
	close_eventfds(f);
	free(f);
}
