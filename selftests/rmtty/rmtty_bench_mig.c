// SPDX-License-Identifier: GPL-2.0
/*
 * rmtty_bench's migration figures:
 *
 * - migration: an rmtty-1 device aggregated to each size is saved and loaded
 *   by rmtty-migrate over v2, v1 through pread/pwrite and v1 through the
 *   mmapped data section, each against memcpy() of the device's memory in
 *   this process, timed right before and after; and mtty-1's v2 stop-copy
 *   and load against the smallest rmtty device's, for what mtty has.
 * - precopy: the bytes stop-and-copy moves after pre-copy converged, idle
 *   and with a thread dirtying BAR2 pages at a set rate while pre-copy runs,
 *   against the stop-and-copy of the whole device (MIG_DATA_SIZE); the bytes
 *   of each pass go to the JSON.
 * - qemu: QEMU 10's own downtime and total time of a live migration
 *   (rmtty_bench_qemu.sh) of a VM with an rmtty-1 device and of one with an
 *   mtty-1 device, alternately.
 */
#include <errno.h>
#include <libgen.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kselftest.h"
#include "rmtty_bench.h"
#include "rmtty_vfio.h"

/* The most output of rmtty-migrate --json or of rmtty_bench_qemu.sh kept */
#define OUT_MAX		(1 << 16)
/* Pre-copy has converged once a pass after the first moves at most this */
#define CONVERGED	65536
#define PASSES_MAX	12
/*
 * Between passes: what a VMM does besides reading the device in an iteration
 * (QEMU sends the VM's dirty RAM), while the guest goes on dirtying pages.
 */
#define PASS_GAP_MS	50
#define PAGE		4096

/* Run @cmd with sh; its stdout and stderr, or die if it fails. The caller frees it. */
static char *run(const char *cmd)
{
	char *out = malloc(OUT_MAX);
	size_t n = 0, got;
	FILE *p;
	int status;

	if (!out)
		die("out of memory");
	p = popen(cmd, "r");
	if (!p)
		die("%s: %s", cmd, strerror(errno));
	while ((got = fread(out + n, 1, OUT_MAX - 1 - n, p)) > 0)
		n += got;
	out[n] = 0;
	status = pclose(p);
	if (status)
		die("%s failed (status %d):\n%s", cmd, status, out);
	return out;
}

/* The number after @key in @out (e.g. "\"mb_per_s\":" of a JSON report) */
static double number_after(const char *out, const char *key, const char *cmd)
{
	const char *p = strstr(out, key);
	char *end;
	double v;

	if (!p)
		die("%s: no %s in its output:\n%s", cmd, key, out);
	p += strlen(key);
	v = strtod(p, &end);
	if (end == p)
		die("%s: %s is not a number:\n%s", cmd, key, out);
	return v;
}

static char tool[512];

/* What one rmtty-migrate run reported: the stream's rate and the transfer's seconds */
struct tool_run {
	double mb_per_s, seconds, bytes;
};

/* rmtty-migrate @op (save or load) of device @uuid with @flags, to or from @file */
static void run_tool(struct tool_run *r, const char *op, const char *uuid, const char *flags,
		     const char *file)
{
	bool save = !strcmp(op, "save");
	char cmd[1024], *out;

	snprintf(cmd, sizeof(cmd), "'%s' %s %s %s %s '%s' --json 2>&1", tool, op, uuid, flags,
		 save ? "-o" : "-i", file);
	out = run(cmd);
	r->mb_per_s = number_after(out, "\"mb_per_s\":", cmd);
	r->seconds = number_after(out, "\"transfer_seconds\":", cmd);
	r->bytes = number_after(out, "\"bytes\":", cmd);
	free(out);
}

static void find_tool(void)
{
	const char *env = getenv("RMTTY_MIGRATE"), *top = getenv("RMTTY_TOP");

	if (env)
		snprintf(tool, sizeof(tool), "%s", env);
	else
		snprintf(tool, sizeof(tool), "%s/tools/target/release/rmtty-migrate",
			 top ? top : ".");
	if (access(tool, X_OK))
		die("%s: %s (set RMTTY_MIGRATE or RMTTY_TOP)", tool, strerror(errno));
}

/* memcpy() of @len bytes, in MB/s */
static double memcpy_rate(__u8 *dst, const __u8 *src, size_t len)
{
	double t0 = now();

	memcpy(dst, src, len);
	/* The copy is used: the compiler keeps it. */
	__asm__ __volatile__("" : : "r"(dst) : "memory");
	return len / 1e6 / (now() - t0);
}

/* Create rmtty device @n with @mib MiB of memory; fill it with a pattern if @fill. */
static void create_sized(unsigned int n, unsigned int mib, long unit_mib, bool fill)
{
	char uuid[UUID_LEN + 1], path[256], val[16];
	struct rmtty_vfio v;
	size_t off;
	__u8 *buf;
	int ret;

	if (unit_mib < 1 || mib % unit_mib)
		die("%u MiB is not a multiple of rmtty's unit_mib=%ld", mib, unit_mib);
	dev_create(&rmtty, n);
	dev_uuid(uuid, &rmtty, n);
	snprintf(path, sizeof(path), MDEV_DEVICES "/%s/mdev/aggregated_instances", uuid);
	snprintf(val, sizeof(val), "%ld", mib / unit_mib);
	ret = sysfs_write(path, val);
	if (ret)
		die("%s: aggregation %s: %s (load rmtty with units >= %ld)", uuid, val,
		    strerror(-ret), mib / unit_mib);
	if (!fill)
		return;
	buf = malloc(MIB);
	if (!buf || rmtty_vfio_open(&v, uuid, false))
		die("%s: opening it to fill its memory", uuid);
	for (off = 0; off < (size_t)mib * MIB; off += MIB) {
		memset(buf, (off / MIB) * 37 + 1, MIB);
		if (pwrite(v.device, buf, MIB, BAR2_OFFSET + off) != MIB)
			die("%s: filling BAR2 at 0x%zx: %s", uuid, off, strerror(errno));
	}
	rmtty_vfio_close(&v);
	free(buf);
}

/* The guest's MemAvailable in MiB */
static long mem_available_mib(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb / 1024;
}

static const struct protocol {
	const char *id, *name, *flags;
} protocols[] = {
	{ "v2", "v2", "" },
	{ "v1_pread", "v1 pread/pwrite", "--v1 --no-mmap" },
	{ "v1_mmap", "v1 mmap", "--v1" },
};

#define NPROTO	ARRAY_SIZE(protocols)

/*
 * Put mtty device @uuid back to RUNNING after a save, which leaves it in
 * STOP: unlike rmtty, mtty keeps its migration state when it is closed and
 * opened again (QEMU resets a device when it opens it).
 */
static void mtty_run_again(const char *uuid)
{
	struct rmtty_vfio v;
	int fd;

	if (rmtty_vfio_open(&v, uuid, false))
		die("mtty: opening %s through its group", uuid);
	if (mig_set_state(v.device, VFIO_DEVICE_STATE_RUNNING, &fd))
		die("mtty: %s: STOP -> RUNNING: %s", uuid, strerror(errno));
	rmtty_vfio_close(&v);
}

/*
 * mtty-1's v2 save and load against the smallest rmtty device's, in ms: the
 * transfer times @rs and @rl of rmtty's, measured in the same repetitions.
 */
static void mtty_figures(const char *file, unsigned int mib, const struct series *rs,
			 const struct series *rl)
{
	struct series ms = { "mtty-1" }, ml = { "mtty-1" };
	char uuid[UUID_LEN + 1], what[128];
	struct tool_run r;
	unsigned int i;

	dev_create(&mtty, DEV_MIGRATION);
	dev_uuid(uuid, &mtty, DEV_MIGRATION);
	for (i = 0; i < reps; i++) {
		run_tool(&r, "save", uuid, "", file);
		ms.v[i] = r.seconds * 1000;
		mtty_run_again(uuid);
		run_tool(&r, "load", uuid, "", file);
		ml.v[i] = r.seconds * 1000;
	}
	dev_remove(&mtty, DEV_MIGRATION);
	snprintf(what, sizeof(what), "v2 save, rmtty %u MiB vs mtty-1 (%.0f B)", mib, r.bytes);
	emit("migrate_v2_save_mtty", what, MILLISECONDS, NONE, rs, &ms);
	snprintf(what, sizeof(what), "v2 load, rmtty %u MiB vs mtty-1 (%.0f B)", mib, r.bytes);
	emit("migrate_v2_load_mtty", what, MILLISECONDS, NONE, rl, &ml);
}

/*
 * Each size: the device saved to a file in a temporary directory and loaded
 * from it into the same device over each protocol, MB/s of the stream as
 * rmtty-migrate times its reads or writes, against memcpy() of the memory.
 */
void migration_figures(const unsigned int *sizes, unsigned int n_sizes, long unit_mib)
{
	struct series save[NPROTO], load[NPROTO], base = { "memcpy" };
	struct series first_save = { "rmtty" }, first_load = { "rmtty" };
	char dir[] = "/tmp/rmtty_bench.XXXXXX", file[64], uuid[UUID_LEN + 1];
	char id[64], what[128];
	unsigned int s, i, p;
	struct tool_run r;
	__u8 *src, *dst;
	size_t len;
	long avail;

	find_tool();
	if (!mkdtemp(dir))
		die("%s: %s", dir, strerror(errno));
	snprintf(file, sizeof(file), "%s/stream", dir);
	for (s = 0; s < n_sizes; s++) {
		len = (size_t)sizes[s] * MIB;
		/* The load's copy, rmtty-migrate's buffer, the file, memcpy()'s two */
		avail = mem_available_mib();
		if (avail < 5L * sizes[s] + 64) {
			fprintf(stderr, "rmtty_bench: %u MiB left out: the guest has %ld MiB available, "
				"%u MiB needed (tools/bench.sh: RMTTY_GUEST_MEMORY)\n", sizes[s],
				avail, 5 * sizes[s] + 64);
			continue;
		}
		src = malloc(len);
		dst = malloc(len);
		if (!src || !dst)
			die("out of memory for memcpy() of %u MiB", sizes[s]);
		memset(src, 0x5a, len);
		memset(dst, 0xa5, len);
		create_sized(DEV_MIGRATION, sizes[s], unit_mib, true);
		dev_uuid(uuid, &rmtty, DEV_MIGRATION);
		for (p = 0; p < NPROTO; p++) {
			save[p].label = load[p].label = "rmtty";
			/* A run to warm the tool up, once: larger sizes are long enough */
			if (!s)
				run_tool(&r, "save", uuid, protocols[p].flags, file);
		}
		for (i = 0; i < reps; i++) {
			base.v[i] = memcpy_rate(dst, src, len) / 2;
			for (p = 0; p < NPROTO; p++) {
				run_tool(&r, "save", uuid, protocols[p].flags, file);
				save[p].v[i] = r.mb_per_s;
				if (!s && !p)
					first_save.v[i] = r.seconds * 1000;
				run_tool(&r, "load", uuid, protocols[p].flags, file);
				load[p].v[i] = r.mb_per_s;
				if (!s && !p)
					first_load.v[i] = r.seconds * 1000;
			}
			base.v[i] += memcpy_rate(dst, src, len) / 2;
		}
		dev_remove(&rmtty, DEV_MIGRATION);
		free(src);
		free(dst);
		for (p = 0; p < NPROTO; p++) {
			snprintf(id, sizeof(id), "migrate_%s_save_%u", protocols[p].id, sizes[s]);
			snprintf(what, sizeof(what), "migration %u MiB, %s save vs memcpy", sizes[s],
				 protocols[p].name);
			emit(id, what, MB_PER_SECOND, AT_LEAST_HALF, &save[p], &base);
			snprintf(id, sizeof(id), "migrate_%s_load_%u", protocols[p].id, sizes[s]);
			snprintf(what, sizeof(what), "migration %u MiB, %s load vs memcpy", sizes[s],
				 protocols[p].name);
			emit(id, what, MB_PER_SECOND, AT_LEAST_HALF, &load[p], &base);
		}
		if (!s)
			mtty_figures(file, sizes[s], &first_save, &first_load);
	}
	unlink(file);
	rmdir(dir);
}

/* A thread writing one BAR2 page of @fd @rate times a second until @stop */
struct dirtier {
	int fd;
	unsigned int rate;
	size_t pages;
	volatile bool stop;
	unsigned long written;
};

static void *dirty_loop(void *arg)
{
	struct dirtier *d = arg;
	long step = 1000000000L / d->rate;
	struct timespec next;
	__u8 page[PAGE];
	size_t at;

	memset(page, 0x3c, sizeof(page));
	clock_gettime(CLOCK_MONOTONIC, &next);
	while (!d->stop) {
		/* A prime stride: every page in turn, spread over the memory */
		at = d->written * 7919 % d->pages * PAGE;
		page[0] = d->written;
		if (pwrite(d->fd, page, PAGE, BAR2_OFFSET + at) != PAGE)
			die("dirtying BAR2 at 0x%zx: %s", at, strerror(errno));
		d->written++;
		next.tv_nsec += step;
		if (next.tv_nsec >= 1000000000L) {
			next.tv_sec++;
			next.tv_nsec -= 1000000000L;
		}
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
	}
	return NULL;
}

/* Read @fd until nothing is ready (pre-copy) or its end; the bytes read. */
static double drain(int fd, __u8 *buf, bool precopy)
{
	double bytes = 0;
	ssize_t n;

	for (;;) {
		n = read(fd, buf, MIB);
		if (n > 0) {
			bytes += n;
			continue;
		}
		if (!n || (precopy && errno == ENOMSG))
			return bytes;
		die("read() of the migration data file: %s", strerror(errno));
	}
}

static void set_state(int device, __u32 state, int *fd)
{
	int ret = mig_set_state(device, state, fd);

	if (ret)
		die("migration state %u: %s", state, strerror(-ret));
}

/*
 * RUNNING -> PRE_COPY, passes (each reading until ENOMSG, PASS_GAP_MS apart)
 * until a pass after the first moves at most CONVERGED bytes or PASSES_MAX
 * passes, with @rate
 * pages a second dirtied from the start of the first pass to the end of the
 * last; then STOP_COPY, its bytes into @stop_bytes, and back to RUNNING.
 * The passes' bytes go to @passes, their number to @n.
 */
static void precopy_run(int device, unsigned int rate, size_t pages, __u8 *buf,
			double *stop_bytes, double *passes, unsigned int *n, unsigned long *dirtied)
{
	struct dirtier d = { device, rate, pages };
	unsigned int k = 0;
	pthread_t thread;
	int fd, other;

	set_state(device, VFIO_DEVICE_STATE_PRE_COPY, &fd);
	if (fd < 0)
		die("PRE_COPY gave no data file");
	if (rate && pthread_create(&thread, NULL, dirty_loop, &d))
		die("pthread_create failed");
	while (k < PASSES_MAX) {
		passes[k] = drain(fd, buf, true);
		if ((++k > 1 && passes[k - 1] <= CONVERGED) || k == PASSES_MAX)
			break;
		usleep(PASS_GAP_MS * 1000);
	}
	*n = k;
	if (rate) {
		d.stop = true;
		pthread_join(thread, NULL);
	}
	*dirtied = d.written;
	set_state(device, VFIO_DEVICE_STATE_STOP_COPY, &other);
	if (other >= 0 && other != fd)
		die("PRE_COPY -> STOP_COPY gave another data file");
	*stop_bytes = drain(fd, buf, false);
	set_state(device, VFIO_DEVICE_STATE_STOP, &other);
	set_state(device, VFIO_DEVICE_STATE_RUNNING, &other);
	close(fd);
}

/* Pages a second the dirtying thread writes; 0: an idle device */
static const unsigned int dirty_rates[] = { 0, 128, 1024 };

void precopy_figures(unsigned int mib, long unit_mib)
{
	struct series sb = { "rmtty, after pre-copy" }, full = { "stop-copy alone" };
	double passes[MAX_REPS][PASSES_MAX];
	unsigned int n[MAX_REPS], r, i, k;
	char uuid[UUID_LEN + 1], id[64], what[128], *extra;
	unsigned long dirtied[MAX_REPS];
	struct rmtty_vfio v;
	size_t size, len;
	__u64 data_size;
	__u8 *buf = malloc(MIB);
	FILE *f;

	if (!buf)
		die("out of memory");
	create_sized(DEV_PRECOPY, mib, unit_mib, true);
	dev_uuid(uuid, &rmtty, DEV_PRECOPY);
	if (rmtty_vfio_open(&v, uuid, false))
		die("rmtty: opening %s through its group", uuid);
	for (r = 0; r < ARRAY_SIZE(dirty_rates); r++) {
		for (i = 0; i < reps; i++) {
			if (mig_data_size(v.device, &data_size))
				die("MIG_DATA_SIZE: %s", strerror(errno));
			full.v[i] = data_size;
			precopy_run(v.device, dirty_rates[r], (size_t)mib * MIB / PAGE, buf, &sb.v[i],
				    passes[i], &n[i], &dirtied[i]);
		}
		/* The passes of each repetition, then the pages the thread wrote */
		f = open_memstream(&extra, &size);
		if (!f)
			die("out of memory");
		fprintf(f, "\"passes\": [");
		for (i = 0; i < reps; i++) {
			fprintf(f, "%s[", i ? ", " : "");
			for (k = 0; k < n[i]; k++)
				fprintf(f, "%s%.0f", k ? ", " : "", passes[i][k]);
			fprintf(f, "]");
		}
		fprintf(f, "], \"converged\": [");
		for (i = 0; i < reps; i++)
			fprintf(f, "%s%s", i ? ", " : "",
				n[i] > 1 && passes[i][n[i] - 1] <= CONVERGED ? "true" : "false");
		fprintf(f, "], \"dirtied_pages\": [");
		for (i = 0; i < reps; i++)
			fprintf(f, "%s%lu", i ? ", " : "", dirtied[i]);
		fprintf(f, "], \"pages_per_second\": %u, \"pass_gap_ms\": %u", dirty_rates[r],
			PASS_GAP_MS);
		fclose(f);
		emit_extra = extra;
		snprintf(id, sizeof(id), "precopy_stop_copy_%u", dirty_rates[r]);
		len = snprintf(what, sizeof(what), "pre-copy %u MiB, ", mib);
		if (dirty_rates[r])
			snprintf(what + len, sizeof(what) - len, "%u pages/s: stop-copy",
				 dirty_rates[r]);
		else
			snprintf(what + len, sizeof(what) - len, "idle: stop-copy");
		emit(id, what, BYTES, dirty_rates[r] ? NONE : AT_MOST_64K, &sb, &full);
		for (i = 0; i < reps; i++) {
			printf("    repetition %u: pass bytes", i + 1);
			for (k = 0; k < n[i]; k++)
				printf(" %.0f", passes[i][k]);
			printf(", stop-copy %.0f, %lu pages dirtied\n", sb.v[i], dirtied[i]);
		}
	}
	rmtty_vfio_close(&v);
	dev_remove(&rmtty, DEV_PRECOPY);
	free(buf);
}

/*
 * One live migration of a running VM by QEMU 10 from a QEMU with device @a
 * of @d to one with device @a + 1 (rmtty_bench_qemu.sh); QEMU's downtime and
 * total time, in ms.
 */
static void qemu_run(const char *script, const struct driver *d, unsigned int a,
		     double *downtime, double *total)
{
	char src[UUID_LEN + 1], tgt[UUID_LEN + 1], cmd[1024], *out;

	dev_uuid(src, d, a);
	dev_uuid(tgt, d, a + 1);
	snprintf(cmd, sizeof(cmd), "'%s' " MDEV_DEVICES "/%s " MDEV_DEVICES "/%s 2>&1", script,
		 src, tgt);
	out = run(cmd);
	*downtime = number_after(out, "downtime ", cmd);
	*total = number_after(out, "total-time ", cmd);
	free(out);
}

void qemu_figures(const char *self)
{
	struct series rd = { "rmtty" }, rt = { "rmtty" }, md = { "mtty" }, mt = { "mtty" };
	char *copy = strdup(self), script[512];
	unsigned int i, k;

	snprintf(script, sizeof(script), "%s/rmtty_bench_qemu.sh", dirname(copy));
	free(copy);
	if (access(script, X_OK))
		die("%s: %s", script, strerror(errno));
	for (k = 0; k < 2; k++) {
		dev_create(&rmtty, DEV_QEMU + k);
		dev_create(&mtty, DEV_QEMU + k);
	}
	for (i = 0; i < reps; i++) {
		for (k = 0; k < 2; k++) {
			if ((i + k) % 2)
				qemu_run(script, &mtty, DEV_QEMU, &md.v[i], &mt.v[i]);
			else
				qemu_run(script, &rmtty, DEV_QEMU, &rd.v[i], &rt.v[i]);
		}
	}
	for (k = 0; k < 2; k++) {
		dev_remove(&rmtty, DEV_QEMU + k);
		dev_remove(&mtty, DEV_QEMU + k);
	}
	emit("qemu_downtime", "QEMU 10 live migration downtime, rmtty-1 vs mtty-1", MILLISECONDS,
	     NONE, &rd, &md);
	emit("qemu_total", "QEMU 10 live migration total time, rmtty-1 vs mtty-1", MILLISECONDS,
	     NONE, &rt, &mt);
}
