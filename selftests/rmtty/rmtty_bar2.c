// SPDX-License-Identifier: GPL-2.0
/*
 * rmtty_bar2: a device's memory (BAR2, VFIO region 2) through VFIO, for the
 * shell tests; not a test itself. The device is opened through its group
 * with a type1 container, or with --cdev through the iommufd cdev.
 *
 *   rmtty_bar2 [--cdev] fill UUID SEED     write SEED's pattern over the whole BAR
 *   rmtty_bar2 [--cdev] hash UUID          print a 64-bit hash of the whole BAR
 *   rmtty_bar2 [--cdev] verify UUID SEED [WRITTEN]
 *                                          compare the BAR with SEED's pattern, or
 *                                          with what dirty leaves after WRITTEN pages
 *   rmtty_bar2 [--cdev] written UUID SEED  print the WRITTEN that verify passes with,
 *                                          the last page possibly written in part
 *
 * In a guest the device is assigned to, the same BAR through the sysfs
 * resource file of its PCI device (mapped: a memory BAR's resource file has
 * no read or write), in 8-byte accesses:
 *
 *   rmtty_bar2 --resource FILE fill|hash|verify ... (as above, FILE for UUID)
 *   rmtty_bar2 --resource FILE dirty SEED  write pages until SIGTERM
 *
 * dirty writes the BAR's pages one after the other, round after round, after
 * a fill with SEED: round R writes SEED + 1 + R's pattern. Meanwhile a second
 * thread writes one byte to each page of 16 MiB of its own memory, again and
 * again: the guest's RAM changes all the time, so that a migration with a
 * small downtime limit cannot converge while the writer runs. It prints
 * "rmtty-live: dirtied N" every 16 pages and, once SIGTERM has made it stop
 * after the page it was writing, "rmtty-live: writer stopped: N pages"; every
 * write of the BAR is done by then, and verify ... SEED N compares with what
 * the N pages left; written finds N from the BAR's content (it fails if no N
 * explains all of it). A guest paused while the writer is at a page, as a
 * migration's switchover pauses it, leaves that page written in part: written
 * accepts the page N - 1 holding its new pattern up to some offset and the
 * pattern of N - 1 pages after it, and says up to where. It is linked
 * statically, for a busybox initramfs.
 *
 * The pattern is a function of the seed and the offset only (8-byte words of
 * a splitmix64 sequence), so a device of the same size filled with the same
 * seed holds the same bytes. The hash is 64-bit FNV-1a over the BAR's bytes,
 * the part past the backed memory (all-ones) included; it prints as 16 hex
 * digits. verify prints how many 4 KiB pages differ and the first of them
 * (for a BAR the memory fills: past the backed size it reads all-ones).
 * Exit status: 0, 1 on a failure or a mismatch, 2 on a usage error.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/vfio.h>

#include "kselftest.h"
#include "rmtty_vfio.h"

#define CHUNK		(64u << 10)
#define PAGE		4096u

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* The pattern's bytes for [@offset, @offset + @len), both multiples of 8. */
static void pattern(uint64_t seed, uint64_t offset, uint8_t *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len; i += 8) {
		uint64_t word = splitmix64(seed * 0x100000001b3ull ^ ((offset + i) >> 3));

		memcpy(buf + i, &word, 8);
	}
}

/* The size of region @index, or 0 with what failed logged. */
static uint64_t region_size(int device, unsigned int index)
{
	struct vfio_region_info info = { .argsz = sizeof(info), .index = index };

	if (ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &info)) {
		ksft_print_msg("VFIO_DEVICE_GET_REGION_INFO of region %u: %s\n", index,
			       strerror(errno));
		return 0;
	}
	if (!info.size || info.size % CHUNK)
		ksft_print_msg("region %u has size %llu, not a multiple of %u\n", index,
			       (unsigned long long)info.size, CHUNK);
	return info.size % CHUNK ? 0 : info.size;
}

/* A mapped resource file, or NULL: the device's BAR2 through VFIO. */
static volatile uint64_t *mapped;

/* Copies @len bytes (a multiple of 8) to or from the mapped BAR, 8 at a time. */
static void mmio(uint8_t *buf, uint64_t offset, size_t len, bool write)
{
	volatile uint64_t *bar = mapped + offset / 8;
	uint64_t word;
	size_t i;

	for (i = 0; i < len; i += 8) {
		if (write) {
			memcpy(&word, buf + i, 8);
			bar[i / 8] = word;
		} else {
			word = bar[i / 8];
			memcpy(buf + i, &word, 8);
		}
	}
}

static bool transfer(int device, uint8_t *buf, uint64_t offset, bool write)
{
	ssize_t n;

	if (mapped) {
		mmio(buf, offset, CHUNK, write);
		return true;
	}
	n = write ? pwrite(device, buf, CHUNK, BAR2_OFFSET + offset)
			  : pread(device, buf, CHUNK, BAR2_OFFSET + offset);

	if (n == CHUNK)
		return true;
	ksft_print_msg("%s of %u bytes at BAR2 offset 0x%" PRIx64 ": %s\n",
		       write ? "pwrite" : "pread", CHUNK, offset,
		       n < 0 ? strerror(errno) : "short");
	return false;
}

static int usage(void)
{
	fprintf(stderr, "usage: rmtty_bar2 [--cdev] fill UUID SEED | hash UUID |\n"
			"                           verify UUID SEED [WRITTEN] | written UUID SEED\n"
			"       rmtty_bar2 --resource FILE fill|hash|verify ... | dirty SEED\n");
	return 2;
}

/* Parses @arg, a whole number; false if it is not one. */
static bool number(const char *arg, uint64_t *value)
{
	char *end;

	errno = 0;
	*value = strtoull(arg, &end, 0);
	return !errno && *arg && !*end;
}

/* Maps the resource file @path; its size, or 0 with what failed printed. */
static uint64_t map_resource(const char *path)
{
	struct stat st;
	void *p;
	int fd;

	fd = open(path, O_RDWR | O_SYNC);
	if (fd < 0 || fstat(fd, &st)) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return 0;
	}
	if (!st.st_size || st.st_size % CHUNK) {
		fprintf(stderr, "%s has size %lld, not a multiple of %u\n", path,
			(long long)st.st_size, CHUNK);
		return 0;
	}
	p = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		fprintf(stderr, "mmap of %s: %s\n", path, strerror(errno));
		return 0;
	}
	mapped = p;
	return st.st_size;
}

/*
 * The seed of the pattern that page @index holds after a fill with @seed and
 * @written pages of dirty (see the top of the file).
 */
static uint64_t page_seed(uint64_t seed, uint64_t written, uint64_t pages, uint64_t index)
{
	if (written <= index)
		return seed;
	/* The last write of the page was in round (written - 1 - index) / pages. */
	return seed + 1 + (written - 1 - index) / pages;
}

/* The most rounds of dirty that written looks for. */
#define MAX_ROUNDS	65536

/*
 * The round of dirty whose pattern the page at @offset starts with, -1 for
 * the fill with @seed, -2 for none; @first is its first 8 bytes.
 */
static int64_t page_round(uint64_t seed, uint64_t offset, const uint8_t *first)
{
	uint8_t word[8];
	int64_t round;

	for (round = -1; round < MAX_ROUNDS; round++) {
		pattern(seed + 1 + round, offset, word, sizeof(word));
		if (!memcmp(word, first, sizeof(word)))
			return round;
	}
	return -2;
}

/*
 * The pages of dirty after which the BAR @bar of @size bytes holds what it
 * holds, by the rounds its pages start with: after N = Q * pages + R pages,
 * pages 0 to R - 1 were last written in round Q and the others in round
 * Q - 1 (the fill if Q is 0). verify then checks every byte.
 */
static uint64_t find_written(uint64_t seed, const uint8_t *bar, uint64_t size)
{
	uint64_t pages = size / PAGE, index;
	int64_t first = page_round(seed, 0, bar);

	if (first < 0)
		return 0;
	for (index = 1; index < pages; index++)
		if (page_round(seed, index * PAGE, bar + index * PAGE) != first)
			break;
	return first * pages + index;
}

/*
 * Counts in *@bad the pages of @data, @len bytes of a BAR of @size at
 * @offset, that differ from a fill with @seed and @written pages of dirty;
 * *@first_bad is the offset of the first of them.
 */
static void compare(uint64_t seed, uint64_t written, uint64_t size, uint64_t offset,
		    const uint8_t *data, size_t len, uint64_t *bad, uint64_t *first_bad)
{
	uint8_t want[PAGE];
	size_t i;

	for (i = 0; i < len; i += PAGE) {
		uint64_t page = (offset + i) / PAGE;

		pattern(page_seed(seed, written, size / PAGE, page), offset + i, want, PAGE);
		if (!memcmp(data + i, want, PAGE))
			continue;
		if (!(*bad)++)
			*first_bad = offset + i;
	}
}

/*
 * Whether page @index of @bar, the last of @written pages of dirty, holds its
 * new pattern up to an offset and its previous one after; that offset.
 */
static bool written_in_part(uint64_t seed, uint64_t written, uint64_t size, const uint8_t *bar,
			    uint64_t index, size_t *part)
{
	uint8_t now[PAGE], before[PAGE];
	uint64_t offset = index * PAGE;
	size_t i;

	if (!written || (written - 1) % (size / PAGE) != index)
		return false;
	pattern(page_seed(seed, written, size / PAGE, index), offset, now, PAGE);
	pattern(page_seed(seed, written - 1, size / PAGE, index), offset, before, PAGE);
	for (i = 0; i < PAGE && !memcmp(bar + offset + i, now + i, 8); i += 8)
		;
	*part = i;
	return !memcmp(bar + offset + i, before + i, PAGE - i);
}

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	stop = 1;
}

/* Writes one byte to each page of 16 MiB of RAM, over and over, until stop. */
static void *dirty_ram(void *unused)
{
	/* Volatile: stores that are never read back must still be made. */
	static volatile uint8_t ram[16u << 20];
	uint8_t round = 0;
	size_t i;

	while (!stop) {
		round++;
		for (i = 0; i < sizeof(ram); i += PAGE)
			ram[i] = round;
	}
	return NULL;
}

/* dirty: see the top of the file. */
static int dirty(uint64_t size, uint64_t seed)
{
	uint64_t n = 0, pages = size / PAGE;
	uint8_t page[PAGE];
	pthread_t ram;
	int err;

	signal(SIGTERM, on_term);
	setvbuf(stdout, NULL, _IOLBF, 0);
	err = pthread_create(&ram, NULL, dirty_ram, NULL);
	if (err) {
		fprintf(stderr, "pthread_create: %s\n", strerror(err));
		return 1;
	}
	while (!stop) {
		uint64_t index = n % pages;

		pattern(page_seed(seed, n + 1, pages, index), index * PAGE, page, PAGE);
		mmio(page, index * PAGE, PAGE, true);
		n++;
		if (!(n % 16))
			printf("rmtty-live: dirtied %" PRIu64 "\n", n);
	}
	pthread_join(ram, NULL);
	printf("rmtty-live: writer stopped: %" PRIu64 " pages\n", n);
	return 0;
}

int main(int argc, char **argv)
{
	struct rmtty_vfio v = RMTTY_VFIO_INIT;
	const char *resource = NULL;
	uint8_t *buf, *whole = NULL;
	uint64_t size, offset, seed = 0, written = 0, hash = 0xcbf29ce484222325ull;
	uint64_t bad_pages = 0, first_bad = 0;
	size_t part = PAGE;
	const char *cmd, *uuid = NULL;
	bool cdev = false, ok = true;
	size_t i;

	if (argc > 1 && !strcmp(argv[1], "--cdev")) {
		cdev = true;
		argc--;
		argv++;
	} else if (argc > 2 && !strcmp(argv[1], "--resource")) {
		/* FILE names the device: argv[0] is FILE, argv[1] the command. */
		resource = argv[2];
		argc -= 2;
		argv += 2;
	}
	if (argc < 2)
		return usage();
	cmd = argv[1];
	if (!resource) {
		if (argc < 3)
			return usage();
		uuid = argv[2];
		argc--;
		argv++;
	}
	/* Now argv[2] is the command's argument. */
	if (!strcmp(cmd, "hash")) {
		if (argc != 2)
			return usage();
	} else if (!strcmp(cmd, "verify")) {
		if ((argc != 3 && argc != 4) || !number(argv[2], &seed) ||
		    (argc == 4 && !number(argv[3], &written)))
			return usage();
	} else if (!strcmp(cmd, "fill") || !strcmp(cmd, "written") ||
		   (resource && !strcmp(cmd, "dirty"))) {
		if (argc != 3 || !number(argv[2], &seed))
			return usage();
	} else {
		return usage();
	}

	if (resource) {
		size = map_resource(resource);
		if (!size)
			return 1;
		if (!strcmp(cmd, "dirty"))
			return dirty(size, seed);
	} else {
		if (rmtty_vfio_open(&v, uuid, cdev))
			return 1;
		size = region_size(v.device, VFIO_PCI_BAR2_REGION_INDEX);
		if (!size) {
			rmtty_vfio_close(&v);
			return 1;
		}
	}
	/* written reads the whole BAR first, the others a chunk at a time. */
	buf = malloc(CHUNK);
	if (!strcmp(cmd, "written"))
		whole = malloc(size);
	if (!buf || (!whole && !strcmp(cmd, "written")))
		return 1;

	for (offset = 0; ok && offset < size; offset += CHUNK) {
		if (!strcmp(cmd, "fill")) {
			pattern(seed, offset, buf, CHUNK);
			ok = transfer(v.device, buf, offset, true);
			continue;
		}
		ok = transfer(v.device, whole ? whole + offset : buf, offset, false);
		if (!ok || whole)
			continue;
		if (!strcmp(cmd, "hash")) {
			for (i = 0; i < CHUNK; i++)
				hash = (hash ^ buf[i]) * 0x100000001b3ull;
			continue;
		}
		compare(seed, written, size, offset, buf, CHUNK, &bad_pages, &first_bad);
	}
	if (!resource)
		rmtty_vfio_close(&v);
	if (ok && whole) {
		written = find_written(seed, whole, size);
		compare(seed, written, size, 0, whole, size, &bad_pages, &first_bad);
		if (bad_pages == 1 &&
		    written_in_part(seed, written, size, whole, first_bad / PAGE, &part))
			bad_pages = 0;
	}
	free(buf);
	free(whole);
	if (!ok)
		return 1;

	if (!strcmp(cmd, "fill")) {
		return 0;
	} else if (!strcmp(cmd, "hash")) {
		printf("%016" PRIx64 "\n", hash);
	} else if (!strcmp(cmd, "written") && !bad_pages && part < PAGE) {
		printf("%" PRIu64 " (the last page up to byte %zu)\n", written, part);
	} else if (!strcmp(cmd, "written") && !bad_pages) {
		printf("%" PRIu64 "\n", written);
	} else if (!bad_pages) {
		printf("all %" PRIu64 " pages hold seed %" PRIu64 "'s pattern and %"
		       PRIu64 " pages of dirty\n", size / PAGE, seed, written);
	} else {
		printf("%" PRIu64 " of %" PRIu64 " pages differ from seed %" PRIu64
		       "'s pattern and %" PRIu64 " pages of dirty, the first at 0x%"
		       PRIx64 "\n", bad_pages, size / PAGE, seed, written, first_bad);
	}
	return bad_pages ? 1 : 0;
}
