/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by rmtty's selftests: load and unload the module, create
 * and remove devices, read and write sysfs, and watch the kernel log.
 * The helpers that fail a test are there for the files that include
 * kselftest_harness.h first.
 */
#ifndef RMTTY_UTIL_H
#define RMTTY_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RMTTY_PARENT	"/sys/class/mdev_bus/rmtty"
#define RMTTY_TYPES	RMTTY_PARENT "/mdev_supported_types"
#define MDEV_DEVICES	"/sys/bus/mdev/devices"
#define UUID_LEN	36

/* The types, by units per instance. */
#define RMTTY_NR_TYPES	3
extern const unsigned int rmtty_type_units[RMTTY_NR_TYPES];

/* The seconds from @t0 to @t1 (CLOCK_MONOTONIC readings). */
static inline double seconds_between(const struct timespec *t0, const struct timespec *t1)
{
	return t1->tv_sec - t0->tv_sec + (t1->tv_nsec - t0->tv_nsec) / 1e9;
}

/* Module parameters a test loads rmtty with; 0 means the default. */
struct rmtty_params {
	unsigned int units;
	unsigned int unit_mib;
};

#define RMTTY_DEFAULT_UNITS	16
#define RMTTY_DEFAULT_UNIT_MIB	1

/* Path of rmtty.ko: $RMTTY_KO, or NULL if unset. */
const char *rmtty_ko(void);
/*
 * What keeps rmtty.ko from being loaded: "RMTTY_KO is not set", or that the
 * file it names cannot be read; NULL if it can be.
 */
const char *rmtty_ko_missing(void);

/* Load rmtty.ko with a raw parameter string; 0 or -errno of finit_module. */
int rmtty_load_args(const char *args);
/* Load rmtty.ko with @p (NULL: defaults); 0 or -errno. */
int rmtty_load(const struct rmtty_params *p);
/*
 * Unload rmtty if loaded and load it with @p; 0 or -errno, with the step
 * that failed logged. Stores the pool size and unit size in effect, defaults
 * included, in @units and @unit_mib.
 */
int rmtty_reload(const struct rmtty_params *p, unsigned int *units, unsigned int *unit_mib);
/* Unload rmtty; 0 or -errno of delete_module. */
int rmtty_unload(void);
bool rmtty_loaded(void);
/*
 * Unload rmtty if loaded, removing whatever devices it has; 0 (also if it
 * was not loaded) or -errno of delete_module: -EWOULDBLOCK means something,
 * a leaked file or module reference, still holds it.
 */
int rmtty_cleanup(void);

/* A valid, deterministic UUID for test device @n. */
void rmtty_uuid(char out[UUID_LEN + 1], unsigned int n);

/* Write @uuid to the create attribute of rmtty-@units; 0 or -errno. */
int rmtty_create(unsigned int units, const char *uuid);
/* Write "1" to the device's remove attribute; 0 or -errno. */
int rmtty_remove(const char *uuid);
bool rmtty_device_exists(const char *uuid);

/* Read a sysfs file into @buf (NUL-terminated); length or -errno. */
int sysfs_read(const char *path, char *buf, size_t size);
/* Read a sysfs file holding one decimal number; the number or -errno. */
long sysfs_read_long(const char *path);
/* Write @len bytes of @val to a sysfs file in one write(); 0 or -errno. */
int sysfs_write_len(const char *path, const char *val, size_t len);
int sysfs_write(const char *path, const char *val);

/* Paths of a type's and a device's attributes. */
void rmtty_type_path(char *buf, size_t size, unsigned int units, const char *attr);
void rmtty_device_path(char *buf, size_t size, const char *uuid, const char *attr);
long rmtty_type_long(unsigned int units, const char *attr);
long rmtty_device_long(const char *uuid, const char *attr);

/*
 * Kernel log: kmsg_open() starts watching at the current end of the log;
 * kmsg_count() counts the records logged since that contain @needle, and
 * consumes them: the next call reads the records logged after. Negative
 * (-errno) if it cannot count.
 */
int kmsg_open(void);
int kmsg_count(int fd, const char *needle);
/*
 * Like kmsg_count(), and copies the message of the last record counted (""
 * if none) into @seen.
 */
int kmsg_find(int fd, const char *needle, char *seen, size_t size);
/*
 * Count the records that report a warning, BUG or lockdep splat since
 * kmsg_open() returned @fd or since the last kmsg_splats(@fd), whichever
 * call on @fd read them first: a kmsg_count() or kmsg_find() does not hide
 * a splat from it.
 */
int kmsg_splats(int fd);

/*
 * Fault injection on demand (FAULT_INJECTION_DEBUG_FS): fault_injection_setup()
 * makes the slab and page allocators' fault sites reachable by fail-nth
 * (sleeping allocations, order 0 included); with @verbose each injected
 * failure is logged with its stack, with no rate limit. 0 or -errno
 * (-ENOENT: no fault injection). fault_injection_restore() puts the kernel's
 * defaults back (the mig fixture's teardown calls it).
 */
int fault_injection_setup(bool verbose);
void fault_injection_restore(void);
/*
 * This thread's fail-nth file, opened once (a file descriptor or -errno):
 * arming and reading it then reach no fault site but its own user copy.
 * fail_nth_arm() makes the @nth fault site the thread reaches fail (0:
 * none); fail_nth_fired() says whether it fired (if the read itself fails,
 * it fired there: after the request) and disarms it.
 */
int fail_nth_open(void);
int fail_nth_arm(int fd, unsigned int nth);
bool fail_nth_fired(int fd);

/* The kernel's default rate limit of messages, which refusals have: 10 in 5 seconds. */
#define LOG_BURST	10
#define LOG_WINDOW	5

#ifdef __KSELFTEST_HARNESS_H
/*
 * In a test or a fixture's setup: fail, naming what is missing, unless
 * $RMTTY_KO names a readable rmtty.ko. Every test needs the module: a run
 * without it must fail, not pass as skipped.
 */
static inline void rmtty_require_ko(struct __test_metadata *_metadata)
{
	const char *missing = rmtty_ko_missing();

	ASSERT_TRUE(!missing) TH_LOG("%s", missing);
}

/* In a fixture's setup: fail unless rmtty.ko is at hand and reloads with @p. */
static inline void rmtty_require_reload(struct __test_metadata *_metadata,
					const struct rmtty_params *p, unsigned int *units,
					unsigned int *unit_mib)
{
	int ret;

	rmtty_require_ko(_metadata);
	ret = rmtty_reload(p, units, unit_mib);
	ASSERT_EQ(0, ret) TH_LOG("reloading rmtty: %s", strerror(-ret));
}

/*
 * In a fixture's teardown: unload rmtty, and fail the test if it cannot be
 * unloaded; a file or module reference the test leaked would go unseen.
 */
static inline void rmtty_expect_cleanup(struct __test_metadata *_metadata)
{
	int ret = rmtty_cleanup();

	EXPECT_EQ(0, ret) TH_LOG("unloading rmtty: %s", strerror(-ret));
}

/*
 * In a fixture's setup: rmtty reloaded with @p (see rmtty_require_reload()),
 * and a reader of the kernel log from here on in @kmsg.
 */
static inline void rmtty_setup_watched(struct __test_metadata *_metadata,
				       const struct rmtty_params *p, unsigned int *units,
				       unsigned int *unit_mib, int *kmsg)
{
	rmtty_require_reload(_metadata, p, units, unit_mib);
	*kmsg = kmsg_open();
	ASSERT_LE(0, *kmsg);
}

/* In a fixture's teardown after rmtty_setup_watched(): no splat, and rmtty unloads. */
static inline void rmtty_teardown_watched(struct __test_metadata *_metadata, int kmsg)
{
	EXPECT_EQ(0, kmsg_splats(kmsg));
	close(kmsg);
	rmtty_expect_cleanup(_metadata);
}

/*
 * Expect one kernel log record, since the last look at @kmsg, that contains
 * @about, and that it contains @reason too: something was refused, logged
 * once, and the line says why.
 */
static inline void expect_logged_once(struct __test_metadata *_metadata, int kmsg,
				      const char *about, const char *reason)
{
	char seen[512];
	int n = kmsg_find(kmsg, about, seen, sizeof(seen));

	EXPECT_EQ(1, n) TH_LOG("%d records with '%s', the last '%s'", n, about, seen);
	EXPECT_TRUE(strstr(seen, reason) != NULL)
		TH_LOG("logged '%s', expected '%s'", seen, reason);
}

/*
 * A refusal of a logger whose lines are rate limited (LOG_BURST lines in
 * each LOG_WINDOW seconds): while @budget (LOG_BURST for a fresh limit) lasts,
 * exactly one line, since the last look at @kmsg, that contains @about and
 * @reason; after that at most one (the limit may suppress it), and if there
 * is one, with @reason.
 */
static inline void expect_logged_within(struct __test_metadata *_metadata, int kmsg,
					const char *about, const char *reason,
					unsigned int *budget)
{
	char seen[512];
	int n = kmsg_find(kmsg, about, seen, sizeof(seen));

	if (*budget) {
		(*budget)--;
		EXPECT_EQ(1, n) TH_LOG("%d records with '%s', the last '%s'", n, about, seen);
	} else {
		EXPECT_LE(0, n);
		EXPECT_GE(1, n) TH_LOG("%d records with '%s', the last '%s'", n, about, seen);
	}
	if (n > 0)
		EXPECT_TRUE(strstr(seen, reason) != NULL)
			TH_LOG("logged '%s', expected '%s'", seen, reason);
}
#endif /* __KSELFTEST_HARNESS_H */

#endif /* RMTTY_UTIL_H */
