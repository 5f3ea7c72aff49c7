// SPDX-License-Identifier: GPL-2.0
/*
 * The sysfs fuzzer: random writes to every writable attribute of rmtty's
 * types and devices (create, migration_version; remove, migration_version,
 * stream_version, mdev/aggregated_instances) and to its read-only ones,
 * interleaved with creates and removes. Each write's outcome is predicted
 * from the documented ABI (README's sysfs section, migration-version.md, the
 * mdev core's create and remove) by a model of the pool that the fuzzer keeps
 * itself, and after every case the whole of sysfs must agree with the model:
 * which devices exist, each device's aggregation, maximum aggregation and
 * stream version, each type's available instances.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rmtty_fuzz.h"
#include "rmtty_util.h"

/* Writes reach a sysfs store in one piece of at most a page. */
#define STORE_MAX	4096
/* Input buffers: up to two pages. */
#define INPUT_MAX	(2 * STORE_MAX)
/* The devices the model follows at most: as many as the pool can hold. */
#define MAX_DEVICES	64
/* The UUIDs the fuzzer creates devices with (rmtty_uuid()'s numbers). */
#define UUID_BASE	0x100
#define UUID_SLOTS	6

struct model_device {
	char uuid[UUID_LEN + 1];	/* lower case, as sysfs names it */
	unsigned int type;		/* index in rmtty_type_units */
	unsigned int aggregation;
	unsigned int minor;		/* stream_version: 1.<minor> */
};

struct model {
	unsigned int units, unit_mib, free;
	unsigned int n;
	struct model_device dev[MAX_DEVICES];
};

static unsigned int type_aggregation(const struct model *m, unsigned int type)
{
	return m->units / rmtty_type_units[type];
}

static struct model_device *find(struct model *m, const char *uuid)
{
	unsigned int i;

	for (i = 0; i < m->n; i++)
		if (!strcmp(m->dev[i].uuid, uuid))
			return &m->dev[i];
	return NULL;
}

/* @len bytes of @in, less one trailing newline, are 1 to ... digits: their value, saturated. */
static bool decimal(const char *in, size_t len, unsigned long *value)
{
	size_t i;

	if (len && in[len - 1] == '\n')
		len--;
	if (!len)
		return false;
	*value = 0;
	for (i = 0; i < len; i++) {
		if (!isdigit((unsigned char)in[i]))
			return false;
		if (*value < 1000000000ul)
			*value = *value * 10 + (in[i] - '0');
	}
	return true;
}

/*
 * The kernel's kstrtoul(@in, 0): the C string @in (to its first NUL), an
 * optional '+', a number in C notation, one optional newline.
 */
static bool c_number(const char *in, unsigned long *value)
{
	char *end;

	/* kstrtoul knows no sign but '+', no leading space, no 0b. */
	if (*in == '-' || isspace((unsigned char)*in) ||
	    (in[*in == '+'] == '0' && tolower((unsigned char)in[(*in == '+') + 1]) == 'b'))
		return false;
	errno = 0;
	*value = strtoul(in, &end, 0);
	if (errno || end == in || (in[0] == '+' && !isalnum((unsigned char)in[1])))
		return false;
	if (*end == '\n')
		end++;
	return !*end;
}

/* The mdev core's UUID: 36 characters in 8-4-4-4-12 hex digits; lower-cased into @out. */
static bool uuid_text(const char *in, size_t len, char out[UUID_LEN + 1])
{
	size_t i;

	if (len != UUID_LEN && len != UUID_LEN + 1)
		return false;
	for (i = 0; i < UUID_LEN; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? in[i] != '-' : !isxdigit((unsigned char)in[i]))
			return false;
		out[i] = tolower((unsigned char)in[i]);
	}
	out[UUID_LEN] = '\0';
	return true;
}

/*
 * migration-version.md's verdict on @in written to a node of @ports ports
 * and @memory_mib MiB reading streams up to 1.@minor: a device node if
 * @max_aggregation is 0, else a type node whose devices may aggregate up to
 * it (@memory_mib then a device's of aggregation 1).
 */
static bool version_accepted(const char *in, size_t len, unsigned long ports,
			     unsigned long memory_mib, unsigned int minor,
			     unsigned int max_aggregation)
{
	static const char *const keys[] = { "ports", "memory_mib", "unit_mib", "max_aggregation" };
	unsigned long value[4] = { 0 }, major, their_minor;
	char text[1025], *rest, *field, *dot;
	bool seen[4] = { false };
	unsigned int i, k;

	if (len > 1024)
		return false;
	if (len && in[len - 1] == '\n')
		len--;
	for (i = 0; i < len; i++)
		if (in[i] < 0x20 || in[i] > 0x7e)
			return false;
	memcpy(text, in, len);
	text[len] = '\0';
	rest = text;
	field = strsep(&rest, " ");
	if (strcmp(field, "rmtty") || !rest)
		return false;
	field = strsep(&rest, " ");
	dot = strchr(field, '.');
	if (!dot || dot - field > 9 || strlen(dot + 1) > 9)
		return false;
	*dot = '\0';
	if (!decimal(field, strlen(field), &major) ||
	    !decimal(dot + 1, strlen(dot + 1), &their_minor))
		return false;
	if (major != 1 || their_minor > minor)
		return false;
	while (rest) {
		field = strsep(&rest, " ");
		dot = strchr(field, '=');
		if (!dot)
			return false;
		*dot = '\0';
		for (k = 0; k < 4 && strcmp(field, keys[k]); k++)
			;
		if (k == 4 || seen[k] || strlen(dot + 1) > 9 ||
		    !decimal(dot + 1, strlen(dot + 1), &value[k]) || !value[k])
			return false;
		seen[k] = true;
	}
	if (!seen[0] || !seen[1] || !seen[2] || value[0] != ports)
		return false;
	if (!max_aggregation)
		return value[1] == memory_mib;
	return value[1] % memory_mib == 0 && value[1] / memory_mib >= 1 &&
	       value[1] / memory_mib <= max_aggregation;
}

/* What a write is expected to do: succeed, or fail with one of two errnos. */
struct expect {
	int err, or_err;	/* 0: success */
};

static const struct expect OK = { 0, 0 };
static const struct expect EINVAL_ = { EINVAL, EINVAL };
/* Over a page: the store sees the first page, or the write fails whole. */
static const struct expect REFUSED_OR_TOO_BIG = { EINVAL, E2BIG };

struct sysfs_fuzz {
	struct fuzz_rng rng;
	struct model m;
	struct fuzz_run *run;
	unsigned long refusals;
	char in[INPUT_MAX + 2];
	size_t len;
};

static void slot_uuid(struct sysfs_fuzz *f, char uuid[UUID_LEN + 1])
{
	rmtty_uuid(uuid, UUID_BASE + fuzz_below(&f->rng, UUID_SLOTS));
}

/* An existing device of the model, or NULL if there is none. */
static struct model_device *some_device(struct sysfs_fuzz *f)
{
	return f->m.n ? &f->m.dev[fuzz_below(&f->rng, f->m.n)] : NULL;
}

/* Input for a numeric attribute: a number near one of the edges, or junk. */
static void number_input(struct sysfs_fuzz *f, const int64_t *edges, size_t n)
{
	if (fuzz_chance(&f->rng, 75))
		f->len = fuzz_number(&f->rng, f->in, sizeof(f->in), edges, n);
	else
		f->len = fuzz_junk(&f->rng, f->in, INPUT_MAX);
}

/*
 * One write(2) of f->in to @path, checked against @want; true if it
 * succeeded. A store sees a page at most: a longer write that succeeds
 * writes a page.
 */
static bool write_checked(struct sysfs_fuzz *f, const char *path, struct expect want,
			  const char *what)
{
	ssize_t ret;
	int fd, err;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		fuzz_fail(f->run, "%s: %s", path, strerror(errno));
		return false;
	}
	ret = write(fd, f->in, f->len);
	err = ret < 0 ? errno : 0;
	close(fd);
	if (err)
		f->refusals++;
	if (err != want.err && err != want.or_err)
		fuzz_fail(f->run, "%s: %zu bytes \"%.*s%s\": %s, expected %s", what, f->len,
			  (int)(f->len < 40 ? f->len : 40), f->in, f->len > 40 ? "..." : "",
			  err ? strerror(err) : "success", want.err ? strerror(want.err) : "success");
	return !err;
}

static void case_create(struct sysfs_fuzz *f)
{
	struct model *m = &f->m;
	unsigned int type = fuzz_below(&f->rng, RMTTY_NR_TYPES);
	size_t store_len;
	char uuid[UUID_LEN + 1], path[256];
	struct expect want;

	slot_uuid(f, uuid);
	memcpy(f->in, uuid, UUID_LEN);
	f->len = UUID_LEN;
	if (fuzz_chance(&f->rng, 30))
		f->in[f->len++] = '\n';
	if (fuzz_chance(&f->rng, 10))
		for (size_t i = 0; i < f->len; i++)
			f->in[i] = toupper((unsigned char)f->in[i]);
	if (fuzz_chance(&f->rng, 40))
		f->len = fuzz_mutate(&f->rng, f->in, f->len, INPUT_MAX);
	if (fuzz_chance(&f->rng, 5))
		f->len = fuzz_junk(&f->rng, f->in, INPUT_MAX);

	store_len = f->len < STORE_MAX ? f->len : STORE_MAX;
	if (!f->len)
		want = OK;
	else if (memchr(f->in, '\0', store_len > UUID_LEN ? UUID_LEN : store_len) ||
		 !uuid_text(f->in, store_len, uuid))
		want = EINVAL_;
	else if (find(m, uuid))
		want = (struct expect){ EEXIST, EEXIST };
	else if (m->free < rmtty_type_units[type])
		want = (struct expect){ ENOSPC, ENOSPC };
	else
		want = OK;
	rmtty_type_path(path, sizeof(path), rmtty_type_units[type], "create");
	if (write_checked(f, path, want, "create") && f->len && !want.err) {
		struct model_device *d = &m->dev[m->n++];

		strcpy(d->uuid, uuid);
		d->type = type;
		d->aggregation = 1;
		d->minor = 1;
		m->free -= rmtty_type_units[type];
	}
}

static void case_remove(struct sysfs_fuzz *f, struct model_device *d)
{
	static const int64_t edges[] = { 0, 1, 2, 1ll << 32, -1 };
	size_t store_len;
	char path[256], text[STORE_MAX + 1];
	struct expect want = OK;
	unsigned long value = 0;

	if (fuzz_chance(&f->rng, 50)) {
		f->len = 2;
		memcpy(f->in, "1\n", 2);
	} else {
		number_input(f, edges, sizeof(edges) / sizeof(edges[0]));
	}
	store_len = f->len < STORE_MAX ? f->len : STORE_MAX;
	memcpy(text, f->in, store_len);
	text[store_len] = '\0';
	if (f->len && !c_number(text, &value))
		want = EINVAL_;
	rmtty_device_path(path, sizeof(path), d->uuid, "remove");
	if (write_checked(f, path, want, "remove") && value) {
		f->m.free += rmtty_type_units[d->type] * d->aggregation;
		*d = f->m.dev[--f->m.n];
	}
}

static void case_aggregation(struct sysfs_fuzz *f, struct model_device *d)
{
	struct model *m = &f->m;
	unsigned int units = rmtty_type_units[d->type], max = type_aggregation(m, d->type);
	const int64_t edges[] = { 0, 1, d->aggregation, max, d->aggregation + m->free / units,
				  1ll << 31, 1ll << 32, 999999999, 1000000000 };
	size_t store_len;
	unsigned long value;
	struct expect want;
	char path[256];

	number_input(f, edges, sizeof(edges) / sizeof(edges[0]));
	store_len = f->len < STORE_MAX ? f->len : STORE_MAX;
	if (!f->len)
		want = OK;
	else if (!decimal(f->in, store_len, &value) || !value || value > max)
		want = f->len > STORE_MAX ? REFUSED_OR_TOO_BIG : EINVAL_;
	else if (value == d->aggregation)
		want = OK;
	else if (value > d->aggregation && (value - d->aggregation) * units > m->free)
		want = (struct expect){ ENOSPC, ENOSPC };
	else
		want = OK;
	rmtty_device_path(path, sizeof(path), d->uuid, "mdev/aggregated_instances");
	if (write_checked(f, path, want, "aggregated_instances") && f->len && !want.err) {
		m->free = m->free + d->aggregation * units - value * units;
		d->aggregation = value;
	}
}

static void case_stream(struct sysfs_fuzz *f, struct model_device *d)
{
	static const char *const versions[] = { "1.0", "1.1", "1.0\n", "1.1\n", "1.2", "0.1",
						"1", "1.", "2.0", "1.00", "1.1\n\n", " 1.1" };
	struct expect want;
	char path[256];

	if (fuzz_chance(&f->rng, 70)) {
		f->len = strlen(strcpy(f->in, fuzz_pick(&f->rng, versions)));
		if (fuzz_chance(&f->rng, 20))
			f->len = fuzz_mutate(&f->rng, f->in, f->len, INPUT_MAX);
	} else {
		f->len = fuzz_junk(&f->rng, f->in, INPUT_MAX);
	}
	if (!f->len)
		want = OK;
	else if ((f->len == 3 || (f->len == 4 && f->in[3] == '\n')) &&
		 (!memcmp(f->in, "1.0", 3) || !memcmp(f->in, "1.1", 3)))
		want = OK;
	else
		want = f->len > STORE_MAX ? REFUSED_OR_TOO_BIG : EINVAL_;
	rmtty_device_path(path, sizeof(path), d->uuid, "stream_version");
	if (write_checked(f, path, want, "stream_version") && f->len && !want.err)
		d->minor = f->in[2] - '0';
}

/* A version string: a node's own, mutated, another shape's, or junk. */
static void version_input(struct sysfs_fuzz *f, const char *own_path)
{
	int len;

	switch (fuzz_below(&f->rng, 4)) {
	case 0:
		len = sysfs_read(own_path, f->in, sizeof(f->in));
		f->len = len < 0 ? 0 : len;
		break;
	case 1:
		len = sysfs_read(own_path, f->in, sizeof(f->in));
		f->len = fuzz_mutate(&f->rng, f->in, len < 0 ? 0 : len, INPUT_MAX);
		break;
	case 2:
		f->len = snprintf(f->in, sizeof(f->in), "rmtty 1.%u ports=%u memory_mib=%u unit_mib=%u",
				  (unsigned int)fuzz_below(&f->rng, 3),
				  (unsigned int)fuzz_below(&f->rng, 3),
				  (unsigned int)(f->m.unit_mib * fuzz_below(&f->rng, f->m.units + 2)),
				  f->m.unit_mib);
		break;
	default:
		f->len = fuzz_junk(&f->rng, f->in, INPUT_MAX);
		break;
	}
}

static void case_version(struct sysfs_fuzz *f, struct model_device *d)
{
	unsigned int type = fuzz_below(&f->rng, RMTTY_NR_TYPES);
	unsigned long memory;
	bool accepted;
	char path[256];

	if (d && fuzz_chance(&f->rng, 50)) {
		rmtty_device_path(path, sizeof(path), d->uuid, "migration_version");
		version_input(f, path);
		memory = (unsigned long)rmtty_type_units[d->type] * d->aggregation * f->m.unit_mib;
		accepted = version_accepted(f->in, f->len, 1, memory, d->minor, 0);
	} else {
		rmtty_type_path(path, sizeof(path), rmtty_type_units[type], "migration_version");
		version_input(f, path);
		memory = (unsigned long)rmtty_type_units[type] * f->m.unit_mib;
		accepted = version_accepted(f->in, f->len, 1, memory, 1,
					    type_aggregation(&f->m, type));
	}
	write_checked(f, path, !f->len || accepted ? OK :
		      f->len > STORE_MAX ? REFUSED_OR_TOO_BIG : EINVAL_, "migration_version");
}

/* A write to a read-only attribute fails and changes nothing. */
static void case_read_only(struct sysfs_fuzz *f, struct model_device *d)
{
	static const char *const type_attrs[] = { "name", "description", "device_api",
						  "available_instances", "aggregation" };
	char path[256];
	int ret;

	f->len = fuzz_junk(&f->rng, f->in, INPUT_MAX);
	if (d && fuzz_chance(&f->rng, 50))
		rmtty_device_path(path, sizeof(path), d->uuid, "mdev/max_aggregation");
	else
		rmtty_type_path(path, sizeof(path), rmtty_type_units[fuzz_below(&f->rng, 3)],
				fuzz_pick(&f->rng, type_attrs));
	ret = sysfs_write_len(path, f->in, f->len);
	if (f->len && !ret)
		fuzz_fail(f->run, "a write of %zu bytes to the read-only %s succeeded", f->len, path);
	/* Opening it for writing is refused before the driver is asked. */
	if (ret && ret != -EACCES)
		f->refusals++;
}

/* sysfs agrees with the model: devices, their attributes, the types' instances. */
static void check_model(struct sysfs_fuzz *f)
{
	struct model *m = &f->m;
	char uuid[UUID_LEN + 1], path[256], buf[16];
	unsigned int i, units, want;
	long have;

	for (i = 0; i < UUID_SLOTS; i++) {
		rmtty_uuid(uuid, UUID_BASE + i);
		if (rmtty_device_exists(uuid) != !!find(m, uuid))
			fuzz_fail(f->run, "device %s %s", uuid,
				  find(m, uuid) ? "is gone" : "exists, and should not");
	}
	for (i = 0; i < m->n; i++) {
		struct model_device *d = &m->dev[i];

		units = rmtty_type_units[d->type];
		have = rmtty_device_long(d->uuid, "mdev/aggregated_instances");
		if (have != d->aggregation)
			fuzz_fail(f->run, "%s: aggregated_instances %ld, expected %u", d->uuid,
				  have, d->aggregation);
		want = d->aggregation + m->free / units;
		if (want > type_aggregation(m, d->type))
			want = type_aggregation(m, d->type);
		have = rmtty_device_long(d->uuid, "mdev/max_aggregation");
		if (have != want)
			fuzz_fail(f->run, "%s: max_aggregation %ld, expected %u", d->uuid, have, want);
		rmtty_device_path(path, sizeof(path), d->uuid, "stream_version");
		if (sysfs_read(path, buf, sizeof(buf)) < 0 || buf[0] != '1' || buf[1] != '.' ||
		    (unsigned int)(buf[2] - '0') != d->minor)
			fuzz_fail(f->run, "%s: stream_version %.3s, expected 1.%u", d->uuid, buf,
				  d->minor);
	}
	for (i = 0; i < RMTTY_NR_TYPES; i++) {
		units = rmtty_type_units[i];
		have = rmtty_type_long(units, "available_instances");
		if (have != m->free / units)
			fuzz_fail(f->run, "rmtty-%u: available_instances %ld, expected %u (%u units free)",
				  units, have, m->free / units, m->free);
	}
}

void sysfs_fuzzer(struct fuzz_run *run, unsigned int units, unsigned int unit_mib)
{
	struct sysfs_fuzz *f = calloc(1, sizeof(*f));
	struct timespec t0, t1;
	int kmsg = fuzz_log_open();
	unsigned int i;

	if (!f || kmsg < 0) {
		fuzz_fail(run, "no memory or no kernel log");
		free(f);
		return;
	}
	f->run = run;
	f->rng.state = run->seed;
	f->m.units = units;
	f->m.unit_mib = unit_mib;
	f->m.free = units;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (run->done = 0; run->done < run->cases && !run->failures; run->done++) {
		struct model_device *d = some_device(f);

		switch (fuzz_below(&f->rng, 8)) {
		case 0:
		case 1:
			case_create(f);
			break;
		case 2:
			if (d)
				case_remove(f, d);
			break;
		case 3:
		case 4:
			if (d)
				case_aggregation(f, d);
			break;
		case 5:
			if (d)
				case_stream(f, d);
			break;
		case 6:
			case_version(f, d);
			break;
		default:
			case_read_only(f, d);
			break;
		}
		check_model(f);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fuzz_log_rate_ok(run, kmsg, f->refusals, seconds_between(&t0, &t1));
	run->refused = f->refusals;
	for (i = 0; i < f->m.n; i++)
		rmtty_remove(f->m.dev[i].uuid);
	close(kmsg);
	free(f);
}
