// SPDX-License-Identifier: GPL-2.0
/*
 * Races of a device's users, through each front door, several threads for
 * a few seconds each: aggregation changes racing an open; a removal racing
 * opens, closes, a save, aggregation changes and migration_version checks;
 * rmmod racing an open file and the removal it blocks; resets during BAR
 * I/O. Every outcome must be success or an errno README names for the
 * situation, the pool's accounting must come out whole, and the kernel log
 * must hold no splat.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/serial_reg.h>
#include <linux/vfio.h>

#include "kselftest_harness.h"
#include "rmtty_race.h"
#include "rmtty_vfio.h"

FIXTURE(door) {
	unsigned int units, unit_mib;
	int kmsg;
	struct crowd crowd;
};

FIXTURE_VARIANT(door) {
	bool cdev;
};

FIXTURE_VARIANT_ADD(door, group) { .cdev = false };
FIXTURE_VARIANT_ADD(door, iommufd) { .cdev = true };

FIXTURE_SETUP(door)
{
	rmtty_setup_watched(_metadata, &race_pool, &self->units, &self->unit_mib, &self->kmsg);
	rmtty_vfio_quiet = true;
}

FIXTURE_TEARDOWN(door)
{
	rmtty_teardown_watched(_metadata, self->kmsg);
}

/* BAR2's size through VFIO_DEVICE_GET_REGION_INFO; 0 if that fails. */
static __u64 bar2_size(int device)
{
	struct vfio_region_info info = { .argsz = sizeof(info),
					  .index = VFIO_PCI_BAR2_REGION_INDEX };

	return ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &info) ? 0 : info.size;
}

/* A user: opens the device, looks at it twice, closes it, over and over. */
struct user {
	struct crowd *crowd;
	struct tally *tally;
	const char *uuid;
	bool cdev;
	unsigned int unit_mib;
	unsigned long changed;	/* opens in which the aggregation or BAR2 changed */
};

static void *open_and_look(void *arg)
{
	struct user *u = arg;
	struct rmtty_vfio v;
	long aggregation[2];
	__u64 bar2[2];
	int i, ret;

	crowd_wait(u->crowd);
	while (running(u->crowd)) {
		ret = rmtty_vfio_open(&v, u->uuid, u->cdev);
		count(u->tally, ret);
		if (ret)
			continue;
		for (i = 0; i < 2; i++) {
			aggregation[i] = rmtty_device_long(u->uuid, "mdev/aggregated_instances");
			bar2[i] = bar2_size(v.device);
			if (!i)
				pause_ms(1);
		}
		if (aggregation[0] != aggregation[1] || bar2[0] != bar2[1] ||
		    bar2[0] != bar2_size_for((__u64)aggregation[0] * u->unit_mib << 20))
			u->changed++;
		rmtty_vfio_close(&v);
	}
	return NULL;
}

/*
 * Aggregation changes racing opens and closes: none takes effect while the
 * device is open (README: EBUSY), so what an open sees stays put, and BAR2
 * is the size the aggregation asks for; the units come out whole.
 */
TEST_F_TIMEOUT(door, aggregation_races_an_open, 300)
{
	struct tally opens = { "open" }, writes = { "aggregated_instances write" };
	struct user u = { &self->crowd, &opens, .cdev = variant->cdev, .unit_mib = self->unit_mib };
	unsigned int i, held = 1, changes = 0;
	char uuid[UUID_LEN + 1];
	struct timespec t0;
	int ret;

	rmtty_uuid(uuid, 0x3000);
	ASSERT_EQ(0, rmtty_create(1, uuid));
	u.uuid = uuid;
	CROWD_ADD(&self->crowd, open_and_look, &u);
	crowd_go(&self->crowd);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; since(&t0) < race_seconds(); i++) {
		/* The value it holds succeeds at any time; only a change counts. */
		ret = set_aggregation(uuid, 1 + i % 2);
		count(&writes, ret);
		if (!ret && held != 1 + i % 2) {
			held = 1 + i % 2;
			changes++;
		}
	}
	crowd_stop(&self->crowd);
	EXPECT_EQ(0, u.changed);
	EXPECT_EQ(self->units, rmtty_device_long(uuid, "mdev/aggregated_instances") +
			       free_units());
	EXPECT_EQ(0, rmtty_remove(uuid));
	EXPECT_NONE_REFUSED(&opens);
	EXPECT_ONLY(&writes, EBUSY);
	/* The race ran: opens, changes between them, and changes refused. */
	TH_LOG("%u changes of the aggregation took effect", changes);
	EXPECT_LT(0, opens.n[0]);
	EXPECT_LT(0, changes);
	EXPECT_LT(0, writes.n[EBUSY]);
}

/* What a device's users do while it is removed. */
struct remove_race {
	struct crowd *crowd;
	const char *uuid;
	bool cdev;
	const char *version;	/* the device's migration_version at aggregation 1 */
	struct tally opens, transfers, versions;
};

/* Open the device, hold it a millisecond, close it. */
static void *open_hold_close(void *arg)
{
	struct remove_race *r = arg;
	struct rmtty_vfio v;

	crowd_wait(r->crowd);
	while (running(r->crowd)) {
		count(&r->opens, rmtty_vfio_open(&v, r->uuid, r->cdev));
		pause_ms(1);
		rmtty_vfio_close(&v);
	}
	return NULL;
}

/* Open the device, save its state to the stream's end, close it. */
static void *save_whole(void *arg)
{
	struct remove_race *r = arg;
	__u8 *buf = malloc(4u << 20);
	struct rmtty_vfio v;
	ssize_t n;
	int ret, fd;

	crowd_wait(r->crowd);
	while (buf && running(r->crowd)) {
		ret = rmtty_vfio_open(&v, r->uuid, r->cdev);
		count(&r->opens, ret);
		if (ret)
			continue;
		ret = mig_set_state(v.device, VFIO_DEVICE_STATE_STOP_COPY, &fd);
		if (!ret) {
			n = mig_read_to_end(fd, buf, 4u << 20);
			ret = n < 0 ? n : 0;
			close(fd);
		}
		count(&r->transfers, ret);
		rmtty_vfio_close(&v);
	}
	free(buf);
	return NULL;
}

/*
 * Write the device's migration_version at aggregation 1 to it: a check that
 * passes, or (EINVAL) one of another shape while an aggregation change holds.
 */
static void *check_version(void *arg)
{
	struct remove_race *r = arg;
	char path[256];

	rmtty_device_path(path, sizeof(path), r->uuid, "migration_version");
	crowd_wait(r->crowd);
	while (running(r->crowd))
		count(&r->versions, sysfs_write(path, r->version));
	return NULL;
}

/*
 * A removal racing the device's users: opens and closes, a whole save,
 * aggregation changes and migration_version checks. The removal waits for
 * the users that have the device open and then succeeds (README); what is
 * refused is refused for being busy (the group opens once: EBUSY; the cdev
 * binds once: EINVAL), for another shape, or for the device being gone
 * (ENOENT, ENODEV, ENXIO); a save that got the device open completes; the
 * units come back whole.
 */
TEST_F_TIMEOUT(door, remove_races_its_users, 300)
{
	struct remove_race r = { &self->crowd, .cdev = variant->cdev, .opens = { "open" },
				 .transfers = { "save" },
				 .versions = { "migration_version check" } };
	struct tally aggregations = { "aggregated_instances write" };
	struct aggregator a = { &self->crowd, &aggregations, .devices = 1, .max = 2,
				.units = self->units };
	char uuid[1][UUID_LEN + 1], version[128], path[256];
	unsigned int round, i, seed = 1;
	struct timespec t0;

	rmtty_uuid(uuid[0], 0x4000);
	r.uuid = uuid[0];
	a.uuids = uuid;
	r.version = version;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (round = 0; round < 5 || since(&t0) < race_seconds(); round++) {
		ASSERT_EQ(0, rmtty_create(1, uuid[0]));
		rmtty_device_path(path, sizeof(path), uuid[0], "migration_version");
		ASSERT_LT(0, sysfs_read(path, version, sizeof(version)));
		CROWD_ADD(&self->crowd, open_hold_close, &r);
		CROWD_ADD(&self->crowd, save_whole, &r);
		CROWD_ADD(&self->crowd, check_version, &r);
		CROWD_ADD(&self->crowd, aggregate, &a);
		crowd_go(&self->crowd);
		pause_ms(20 + rand_r(&seed) % 200);
		/* Until one save has completed at all: on a slow machine it may take a while. */
		for (i = 0; i < 300 && !__atomic_load_n(&r.transfers.n[0], __ATOMIC_RELAXED); i++)
			pause_ms(10);
		EXPECT_EQ(0, rmtty_remove(uuid[0])) TH_LOG("round %u", round);
		crowd_stop(&self->crowd);
		EXPECT_FALSE(rmtty_device_exists(uuid[0]));
		EXPECT_EQ(self->units, free_units()) TH_LOG("round %u", round);
	}
	TH_LOG("%u rounds", round);
	if (variant->cdev)
		EXPECT_ONLY(&r.opens, EINVAL, ENOENT, ENODEV, ENXIO);
	else
		EXPECT_ONLY(&r.opens, EBUSY, ENOENT, ENODEV, ENXIO);
	EXPECT_NONE_REFUSED(&r.transfers);
	EXPECT_ONLY(&r.versions, EINVAL, ENOENT, ENODEV);
	EXPECT_ONLY(&aggregations, EBUSY, ENOENT, ENODEV);
	EXPECT_LT(0, r.opens.n[0]);
	EXPECT_LT(0, r.transfers.n[0]);
}

/* A removal, and its result. */
struct remover {
	struct crowd *crowd;
	const char *uuid;
	int removed;
	bool done;
};

static void *remove_device(void *arg)
{
	struct remover *r = arg;

	crowd_wait(r->crowd);
	r->removed = rmtty_remove(r->uuid);
	__atomic_store_n(&r->done, true, __ATOMIC_RELEASE);
	return NULL;
}

/* rmmod, over and over until it succeeds or is told to stop. */
struct unloader {
	struct crowd *crowd;
	struct tally tally;
	bool unloaded;
};

static void *unload_until_gone(void *arg)
{
	struct unloader *u = arg;
	int ret;

	crowd_wait(u->crowd);
	while (running(u->crowd)) {
		ret = rmtty_unload();
		count(&u->tally, ret);
		if (!ret) {
			__atomic_store_n(&u->unloaded, true, __ATOMIC_RELEASE);
			break;
		}
		pause_ms(2);
	}
	return NULL;
}

/*
 * rmmod racing an open file and the removal it blocks: neither completes
 * while the file is open (the VFIO core holds the module while a device is
 * open: rmmod is refused with EAGAIN); once it is closed, the removal
 * succeeds and rmmod does, and rmtty loads again.
 */
TEST_F_TIMEOUT(door, rmmod_races_an_open_file_and_a_blocked_remove, 300)
{
	struct unloader u = { &self->crowd, { "rmmod" } };
	struct remover r = { &self->crowd };
	char uuid[UUID_LEN + 1], cdev[256];
	struct rmtty_vfio v;
	unsigned int round, tries;

	rmtty_uuid(uuid, 0x5000);
	rmtty_device_path(cdev, sizeof(cdev), uuid, "vfio-dev");
	r.uuid = uuid;
	for (round = 0; round < 3; round++) {
		if (round)
			ASSERT_EQ(0, rmtty_reload(&race_pool, &self->units, &self->unit_mib));
		ASSERT_EQ(0, rmtty_create(1, uuid));
		ASSERT_EQ(0, rmtty_vfio_open(&v, uuid, variant->cdev));
		r.done = false;
		u.unloaded = false;
		CROWD_ADD(&self->crowd, remove_device, &r);
		CROWD_ADD(&self->crowd, unload_until_gone, &u);
		crowd_go(&self->crowd);
		/*
		 * Both under way: the removal has taken the device's cdev away
		 * (before it waits for the file), rmmod has been refused.
		 */
		for (tries = 0; tries < 3000 && (!access(cdev, F_OK) ||
						 !__atomic_load_n(&u.tally.n[EAGAIN],
								  __ATOMIC_RELAXED)); tries++)
			pause_ms(10);
		pause_ms(100);
		EXPECT_FALSE(__atomic_load_n(&r.done, __ATOMIC_ACQUIRE))
			TH_LOG("round %u: the removal returned with the device open", round);
		EXPECT_FALSE(__atomic_load_n(&u.unloaded, __ATOMIC_ACQUIRE))
			TH_LOG("round %u: rmmod succeeded with the device open", round);
		rmtty_vfio_close(&v);
		for (tries = 0; tries < 3000 && !__atomic_load_n(&u.unloaded, __ATOMIC_ACQUIRE);
		     tries++)
			pause_ms(10);
		crowd_stop(&self->crowd);
		EXPECT_EQ(0, r.removed) TH_LOG("round %u: %s", round, strerror(-r.removed));
		EXPECT_TRUE(u.unloaded) TH_LOG("round %u: rmmod did not succeed after the close",
					       round);
		EXPECT_FALSE(rmtty_loaded());
	}
	/* Refused while the file was open: the module is in use. */
	EXPECT_ONLY(&u.tally, EAGAIN);
	EXPECT_LT(0, u.tally.n[EAGAIN]);
}

/* A thread hammering its own 64 KiB of BAR2, and BAR0. */
struct hammer {
	struct crowd *crowd;
	int device;
	unsigned int slice;
	struct tally bar0, bar2;
	unsigned long mismatches;
};

static void *hammer_bars(void *arg)
{
	struct hammer *h = arg;
	unsigned int seed = h->slice, i;
	__u8 out[4096], in[4096];
	__u64 at;
	int ret;

	crowd_wait(h->crowd);
	while (running(h->crowd)) {
		at = BAR2_OFFSET + h->slice * 65536 + (rand_r(&seed) % 16) * sizeof(out);
		for (i = 0; i < sizeof(out); i++)
			out[i] = rand_r(&seed);
		ret = pwrite(h->device, out, sizeof(out), at) == sizeof(out) ? 0 : -errno;
		if (!ret)
			ret = pread(h->device, in, sizeof(in), at) == sizeof(in) ? 0 : -errno;
		count(&h->bar2, ret);
		if (!ret && memcmp(in, out, sizeof(in)))
			h->mismatches++;
		ret = bar0_write(h->device, UART_SCR, out[0]);
		if (!ret)
			ret = bar0_read(h->device, UART_LSR);
		count(&h->bar0, ret < 0 ? ret : 0);
	}
	return NULL;
}

struct resetter {
	struct crowd *crowd;
	int device;
	struct tally tally;
};

static void *reset_device(void *arg)
{
	struct resetter *r = arg;

	crowd_wait(r->crowd);
	while (running(r->crowd)) {
		count(&r->tally, ioctl(r->device, VFIO_DEVICE_RESET) ? -errno : 0);
		pause_ms(1);
	}
	return NULL;
}

/*
 * Resets during BAR I/O from two threads: every access succeeds (a reset
 * keeps the memory and leaves the device running), what a thread wrote to
 * its BAR2 slice reads back, and the device ends RUNNING with README's
 * identity.
 */
TEST_F_TIMEOUT(door, reset_during_the_bar_hammer, 300)
{
	struct hammer h[2] = { { &self->crowd, .slice = 0, .bar0 = { "BAR0 access" },
				 .bar2 = { "BAR2 write and read" } },
			       { &self->crowd, .slice = 1, .bar0 = { "BAR0 access" },
				 .bar2 = { "BAR2 write and read" } } };
	struct resetter r = { &self->crowd, .tally = { "VFIO_DEVICE_RESET" } };
	char uuid[UUID_LEN + 1];
	struct rmtty_vfio v;
	unsigned int i;

	rmtty_uuid(uuid, 0x6000);
	ASSERT_EQ(0, rmtty_create(1, uuid));
	ASSERT_EQ(0, rmtty_vfio_open(&v, uuid, variant->cdev));
	r.device = v.device;
	for (i = 0; i < 2; i++) {
		h[i].device = v.device;
		CROWD_ADD(&self->crowd, hammer_bars, &h[i]);
	}
	CROWD_ADD(&self->crowd, reset_device, &r);
	crowd_go(&self->crowd);
	pause_ms(race_seconds() * 1000);
	crowd_stop(&self->crowd);
	for (i = 0; i < 2; i++) {
		EXPECT_EQ(0, h[i].mismatches);
		EXPECT_NONE_REFUSED(&h[i].bar0);
		EXPECT_NONE_REFUSED(&h[i].bar2);
		EXPECT_LT(0, h[i].bar2.n[0]);
	}
	EXPECT_NONE_REFUSED(&r.tally);
	EXPECT_LT(0, r.tally.n[0]);
	EXPECT_EQ(VFIO_DEVICE_STATE_RUNNING, mig_get_state(v.device));
	EXPECT_TRUE(config_identity_ok(v.device));
	rmtty_vfio_close(&v);
	EXPECT_EQ(0, rmtty_remove(uuid));
}

TEST_HARNESS_MAIN
