// SPDX-License-Identifier: GPL-2.0
/*
 * The migration state machine fuzzer: random sequences of v2 state requests
 * (every state, unknown ones too) and v1 device_state writes (every bit
 * pattern), reads and writes of the v2 data file and of the v1 data section
 * at random sizes, VFIO_DEVICE_RESET, and closing and reopening the device
 * through either front door.
 *
 * What README's "Migration" promises, checked after every step: both front
 * ends report one valid state (v1 reads a v2 state's bits, P2P states as
 * their plain ones); a request either reaches its state or fails and
 * changes nothing; requests for ERROR, for an unknown state, for PRE_COPY
 * from STOP_COPY, v1's 110b, 101b, 111b and bits above them, and v1's
 * 010 -> 011 fail with EINVAL; reset and reopening bring RUNNING. A v2
 * stop-and-copy read to its end is a well-formed stream of the device (the
 * stream test's parser); such a stream written whole into RESUMING commits,
 * and anything else that was written there makes leaving RESUMING fail.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "rmtty_fuzz.h"
#include "rmtty_util.h"
#include "rmtty_vfio.h"

#define READ_MAX	(2u << 20)
#define NR_STATES	8	/* VFIO_DEVICE_STATE_ERROR .. _PRE_COPY_P2P */

static const char *const state_names[NR_STATES] = {
	"ERROR", "STOP", "RUNNING", "STOP_COPY", "RESUMING", "RUNNING_P2P", "PRE_COPY",
	"PRE_COPY_P2P",
};

/* v1's bits for each v2 state; ~0u: none. */
static const unsigned int v1_bits[NR_STATES] = {
	~0u, V1_STOP, V1_RUNNING, V1_SAVING, V1_RESUMING, V1_RUNNING, V1_PRECOPY, V1_PRECOPY,
};

struct state_fuzz {
	struct fuzz_rng rng;
	struct fuzz_run *run;
	const char *uuid;
	size_t memory;
	struct rmtty_vfio v;
	/*
	 * Another fuzzer uses the device at the same time: no model, only
	 * what holds whatever it does.
	 */
	bool shared;
	int data_fd;		/* the last v2 data file, or -1 */
	unsigned int state;	/* what the model says */
	enum { NONE, V1, V2 } owner;	/* the front end whose transfer runs */
	/* A v2 stop-and-copy transfer read from its start: the bytes so far. */
	uint8_t *saved;
	size_t saved_len;
	bool saving_whole;
	/* A well-formed stream of the device, once one was read whole. */
	uint8_t *stream;
	size_t stream_len;
	/* RESUMING: bytes of @stream written in order, or junk. */
	size_t loaded;
	bool load_junk;
	unsigned long streams, commits;	/* how often each was done */
	unsigned long refusals;
	uint8_t *buf;
};

static const char *name(unsigned int state)
{
	return state < NR_STATES ? state_names[state] : "unknown";
}

static bool transfer_state(unsigned int state)
{
	return state == VFIO_DEVICE_STATE_STOP_COPY || state == VFIO_DEVICE_STATE_RESUMING ||
	       state == VFIO_DEVICE_STATE_PRE_COPY || state == VFIO_DEVICE_STATE_PRE_COPY_P2P;
}

static void drop_data_fd(struct state_fuzz *f)
{
	if (f->data_fd >= 0)
		close(f->data_fd);
	f->data_fd = -1;
	f->saving_whole = false;
	f->saved_len = 0;
}

/*
 * The model after @by reached @state (NONE: a reset or an opening): a new
 * transfer starts clean and belongs to @by; leaving the transfer states ends
 * it.
 */
static void entered(struct state_fuzz *f, unsigned int state, int by)
{
	if (f->state == VFIO_DEVICE_STATE_RESUMING && state != f->state && by != NONE)
		f->commits++;
	if (state == VFIO_DEVICE_STATE_RESUMING && f->state != state) {
		f->loaded = 0;
		f->load_junk = false;
	}
	if (!transfer_state(state))
		f->owner = NONE;
	else if (!transfer_state(f->state))
		f->owner = by;
	if (f->owner != V2)
		drop_data_fd(f);
	f->state = state;
}

/*
 * Shared: both front ends report a valid state (not ERROR: no request
 * reaches it), not necessarily the same one (the other fuzzer may have moved
 * it in between), and the model follows v2's.
 */
static void check_valid(struct state_fuzz *f, const char *after)
{
	int v2 = mig_get_state(f->v.device), v1 = mig1_state(f->v.device);
	unsigned int i;

	if (v2 <= VFIO_DEVICE_STATE_ERROR || v2 >= NR_STATES) {
		fuzz_fail(f->run, "after %s: v2 state %d (%s)", after, v2,
			  v2 < 0 ? strerror(-v2) : name(v2));
		return;
	}
	f->state = v2;
	for (i = VFIO_DEVICE_STATE_STOP; i < NR_STATES; i++)
		if (v1 >= 0 && (unsigned int)v1 == v1_bits[i])
			return;
	fuzz_fail(f->run, "after %s: v1 device_state %d", after, v1);
}

/*
 * Shared: a refusal, if @err is one, is one the uAPI or README names for a
 * request that another user's doing overtook: an arc or a transfer's end
 * that no longer fits (EINVAL), the other front end's transfer (EBUSY), a
 * data file of an ended transfer (ENODEV), a data file read the wrong way
 * (EBADF), a pre-copy read with nothing ready (ENOMSG).
 */
static void check_refusal(struct state_fuzz *f, const char *what, int err)
{
	if (err && err != EINVAL && err != EBUSY && err != ENODEV && err != EBADF &&
	    err != ENOMSG)
		fuzz_fail(f->run, "%s: %s", what, strerror(err));
}

/* Both front ends report the model's state. */
static void check_state(struct state_fuzz *f, const char *after)
{
	int v2, v1;

	if (f->shared) {
		check_valid(f, after);
		return;
	}
	v2 = mig_get_state(f->v.device);
	v1 = mig1_state(f->v.device);
	if (v2 != (int)f->state)
		fuzz_fail(f->run, "after %s: v2 state %d (%s), expected %s", after, v2,
			  v2 < 0 ? strerror(-v2) : name(v2), name(f->state));
	else if (v1 < 0 || (unsigned int)v1 != v1_bits[f->state])
		fuzz_fail(f->run, "after %s: v1 device_state %d, expected %u for %s", after, v1,
			  v1_bits[f->state], name(f->state));
}

/*
 * Whether leaving RESUMING commits: the stream was written whole and
 * nothing else was.
 */
static bool commits(const struct state_fuzz *f)
{
	return f->stream && !f->load_junk && f->loaded == f->stream_len;
}

/*
 * A request from the model's state to @to: 0 if it must succeed, else the
 * errno it must fail with.
 */
static int predict(const struct state_fuzz *f, unsigned int to)
{
	if (to == VFIO_DEVICE_STATE_ERROR || to >= NR_STATES)
		return EINVAL;
	if (f->state == VFIO_DEVICE_STATE_STOP_COPY &&
	    (to == VFIO_DEVICE_STATE_PRE_COPY || to == VFIO_DEVICE_STATE_PRE_COPY_P2P))
		return EINVAL;
	if (to == f->state)
		return 0;
	if (f->state == VFIO_DEVICE_STATE_RESUMING)
		return commits(f) ? 0 : EINVAL;
	return 0;
}

static void step_v2_request(struct state_fuzz *f)
{
	unsigned int to = fuzz_chance(&f->rng, 90) ? fuzz_below(&f->rng, NR_STATES) :
			  (unsigned int)fuzz_next(&f->rng);
	int want = predict(f, to), fd = -1, ret;
	char what[64];

	/* v1's transfer runs: v2 cannot move the state machine. */
	if (f->owner == V1)
		want = to == f->state || want ? -1 : EBUSY;

	ret = mig_set_state(f->v.device, to, &fd);
	snprintf(what, sizeof(what), "v2 %s -> %s (%u)", name(f->state), name(to), to);
	if (ret)
		f->refusals++;
	if (f->shared) {
		check_refusal(f, what, -ret);
		want = -1;
	}
	if (want >= 0 && -ret != want) {
		fuzz_fail(f->run, "%s: %s, expected %s", what, ret ? strerror(-ret) : "success",
			  want ? strerror(want) : "success");
		if (fd >= 0)
			close(fd);
		return;
	}
	if (!ret) {
		entered(f, to, V2);
		if (fd >= 0) {
			/* A new transfer: stop-and-copy's is the whole stream. */
			drop_data_fd(f);
			f->data_fd = fd;
			f->saving_whole = to == VFIO_DEVICE_STATE_STOP_COPY && !f->shared;
		}
	}
	check_state(f, what);
}

/* v1's bits to the state they ask for; NR_STATES if they ask for none. */
static unsigned int v1_request(uint64_t bits)
{
	switch (bits) {
	case V1_STOP:
		return VFIO_DEVICE_STATE_STOP;
	case V1_RUNNING:
		return VFIO_DEVICE_STATE_RUNNING;
	case V1_SAVING:
		return VFIO_DEVICE_STATE_STOP_COPY;
	case V1_PRECOPY:
		return VFIO_DEVICE_STATE_PRE_COPY;
	case V1_RESUMING:
		return VFIO_DEVICE_STATE_RESUMING;
	default:
		return NR_STATES;
	}
}

static void step_v1_request(struct state_fuzz *f)
{
	uint64_t bits = fuzz_chance(&f->rng, 90) ? fuzz_below(&f->rng, 8) :
			(uint32_t)fuzz_next(&f->rng);
	unsigned int to = v1_request(bits), plain = f->state;
	int want, ret;
	char what[64];

	/* v1 reads the P2P states as their plain ones: it asks from those. */
	if (plain == VFIO_DEVICE_STATE_RUNNING_P2P)
		plain = VFIO_DEVICE_STATE_RUNNING;
	else if (plain == VFIO_DEVICE_STATE_PRE_COPY_P2P)
		plain = VFIO_DEVICE_STATE_PRE_COPY;
	if (to == NR_STATES)
		want = EINVAL;
	else if (to == plain)
		want = 0;
	else if (f->owner == V2)
		want = predict(f, to) ? -1 : EBUSY;	/* v2's transfer runs */
	else if (plain == VFIO_DEVICE_STATE_STOP_COPY && to == VFIO_DEVICE_STATE_PRE_COPY)
		want = EINVAL;
	else
		want = predict(f, to);
	ret = mig1_write(f->v.device, 0, 4, bits);
	snprintf(what, sizeof(what), "v1 %s -> %#" PRIx64, name(f->state), bits);
	if (ret)
		f->refusals++;
	if (f->shared)
		check_refusal(f, what, -ret);
	else if (want >= 0 && -ret != want)
		fuzz_fail(f->run, "%s: %s, expected %s", what, ret ? strerror(-ret) : "success",
			  want ? strerror(want) : "success");
	else if (!ret && to != plain)
		entered(f, to, V1);
	else if (!ret && f->state != plain && mig_get_state(f->v.device) == (int)plain)
		entered(f, plain, V1);	/* a P2P state's plain bits: either stays or moves */
	check_state(f, what);
}

/* Keep the @n bytes just read of a stop-and-copy stream; false if it cannot. */
static bool save(struct state_fuzz *f, size_t n)
{
	uint8_t *more = realloc(f->saved, f->saved_len + n);

	if (!more) {
		f->saving_whole = false;
		return false;
	}
	memcpy(more + f->saved_len, f->buf, n);
	f->saved = more;
	f->saved_len += n;
	return true;
}

/* A stop-and-copy stream read to its end: a well-formed stream of this device. */
static void saved_whole(struct state_fuzz *f)
{
	struct mig_stream_map map;
	const char *wrong = mig_stream_parse(f->saved, f->saved_len, f->memory, &map, NULL);

	if (wrong) {
		fuzz_fail(f->run, "a stop-and-copy stream of %zu bytes read to its end: %s",
			  f->saved_len, wrong);
	} else {
		f->streams++;
		free(f->stream);
		f->stream = f->saved;
		f->stream_len = f->saved_len;
		f->saved = NULL;
	}
	f->saved_len = 0;
	f->saving_whole = false;
}

static void step_v2_read(struct state_fuzz *f)
{
	size_t len = fuzz_chance(&f->rng, 50) ? 1 + fuzz_below(&f->rng, 64) :
		     1 + fuzz_below(&f->rng, READ_MAX);
	ssize_t n;

	if (f->data_fd < 0)
		return;
	/* Now and then to the end, as a VMM's stop-and-copy reads. */
	if (f->saving_whole && fuzz_chance(&f->rng, 30)) {
		do
			n = read(f->data_fd, f->buf, READ_MAX);
		while (n > 0 && save(f, n));
		if (n == 0)
			saved_whole(f);
		else if (n < 0)
			f->saving_whole = false;
		return;
	}
	n = read(f->data_fd, f->buf, len);
	if (n < 0 && f->shared)
		check_refusal(f, "a data file read", errno);
	if (n < 0) {
		/* A resuming file has no read: the VFS refuses that. */
		if (errno != EBADF && errno != EINVAL)
			f->refusals++;
		f->saving_whole = false;
		return;
	}
	if (!f->saving_whole)
		return;
	if (n > 0)
		save(f, n);
	else
		saved_whole(f);
}

static void step_v2_write(struct state_fuzz *f)
{
	size_t len = 1 + fuzz_below(&f->rng, fuzz_chance(&f->rng, 50) ? 64 : READ_MAX);
	bool valid = f->stream && !f->load_junk && f->loaded < f->stream_len &&
		     fuzz_chance(&f->rng, 80);
	ssize_t n;
	size_t i;

	if (f->data_fd < 0)
		return;
	/* Now and then the rest of the stream, as a VMM's load writes it. */
	if (valid && fuzz_chance(&f->rng, 30))
		len = f->stream_len - f->loaded;
	if (valid) {
		if (len > f->stream_len - f->loaded)
			len = f->stream_len - f->loaded;
		if (len > READ_MAX)
			len = READ_MAX;
		memcpy(f->buf, f->stream + f->loaded, len);
	} else {
		for (i = 0; i < len; i++)
			f->buf[i] = fuzz_next(&f->rng);
	}
	n = write(f->data_fd, f->buf, len);
	if (n < 0 && errno != EBADF)	/* a saving file has no write */
		f->refusals++;
	if (n < 0 && f->shared)
		check_refusal(f, "a data file write", errno);
	if (f->shared || f->state != VFIO_DEVICE_STATE_RESUMING)
		return;
	/* The stream's next bytes, in RESUMING, are taken whole. */
	if (valid && n != (ssize_t)len) {
		fuzz_fail(f->run, "writing bytes %zu..%zu of a well-formed stream: %zd (%s)",
			  f->loaded, f->loaded + len, n, n < 0 ? strerror(errno) : "short");
		f->load_junk = true;
	} else if (valid) {
		f->loaded += len;
	} else if (n != 0) {
		f->load_junk = true;
	}
}

/* v1's data section: a saving sequence's reads, or a resuming chunk of junk. */
static void step_v1_data(struct state_fuzz *f)
{
	__u64 value, size;
	size_t len = 1 + fuzz_below(&f->rng, 4096);
	int ret;

	switch (fuzz_below(&f->rng, 4)) {
	case 0:
		ret = mig1_read(f->v.device, 8, 8, &value);		/* pending_bytes */
		break;
	case 1:
		ret = mig1_read(f->v.device, 16, 8, &value);		/* data_offset */
		break;
	case 2:
		ret = mig1_read(f->v.device, 24, 8, &size);		/* data_size */
		if (!ret && size) {
			ret = pread(f->v.device, f->buf, size < len ? size : len,
				    MIG1_OFFSET + MIG1_DATA) < 0 ? -errno : 0;
		}
		break;
	default:
		memset(f->buf, 0xa5, len);
		ret = pwrite(f->v.device, f->buf, len, MIG1_OFFSET + MIG1_DATA) < 0 ? -errno : 0;
		if (!ret)
			ret = mig1_write(f->v.device, 24, 8, len);
		if (!ret && f->state == VFIO_DEVICE_STATE_RESUMING)
			f->load_junk = true;
		break;
	}
	if (ret)
		f->refusals++;
	if (f->shared)
		check_refusal(f, "a v1 data section access", -ret);
	check_state(f, "a v1 data section access");
}

static void reopen(struct state_fuzz *f)
{
	bool cdev = fuzz_chance(&f->rng, 50);

	drop_data_fd(f);
	rmtty_vfio_close(&f->v);
	if (rmtty_vfio_open(&f->v, f->uuid, cdev))
		fuzz_fail(f->run, "reopening the device through the %s", cdev ? "cdev" : "group");
	entered(f, VFIO_DEVICE_STATE_RUNNING, NONE);
}

/* The run's steps. */
static void run_steps(struct state_fuzz *f)
{
	struct fuzz_run *run = f->run;

	for (run->done = 0; run->done < run->cases && !run->failures; run->done++) {
		/*
		 * A whole stop-and-copy stream, and a load of one, take a few
		 * steps in a row: give them a chance to finish.
		 */
		if (f->saving_whole && fuzz_chance(&f->rng, 50)) {
			step_v2_read(f);
			continue;
		}
		if (f->state == VFIO_DEVICE_STATE_RESUMING && f->stream && !f->load_junk &&
		    f->loaded < f->stream_len && fuzz_chance(&f->rng, 50)) {
			step_v2_write(f);
			continue;
		}
		switch (fuzz_below(&f->rng, 16)) {
		case 0 ... 4:
			step_v2_request(f);
			break;
		case 5 ... 7:
			step_v1_request(f);
			break;
		case 8 ... 10:
			step_v2_read(f);
			break;
		case 11 ... 12:
			step_v2_write(f);
			break;
		case 13:
			step_v1_data(f);
			break;
		case 14:
			if (ioctl(f->v.device, VFIO_DEVICE_RESET))
				fuzz_fail(run, "VFIO_DEVICE_RESET in %s: %s", name(f->state),
					  strerror(errno));
			entered(f, VFIO_DEVICE_STATE_RUNNING, NONE);
			check_state(f, "VFIO_DEVICE_RESET");
			break;
		default:
			if (!f->shared && fuzz_chance(&f->rng, 20)) {
				reopen(f);
				check_state(f, "reopening");
			}
			break;
		}
	}
}

void state_fuzzer(struct fuzz_run *run, const char *uuid, size_t memory)
{
	struct state_fuzz f = { .rng = { run->seed }, .run = run, .uuid = uuid, .memory = memory,
				.v = RMTTY_VFIO_INIT, .data_fd = -1,
				.state = VFIO_DEVICE_STATE_RUNNING };
	int log = fuzz_log_open();
	struct timespec t0, t1;

	f.buf = malloc(READ_MAX);
	if (!f.buf || log < 0 || rmtty_vfio_open(&f.v, uuid, false)) {
		fuzz_fail(run, "setting up: no memory, no kernel log, or the device did not open");
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	run_steps(&f);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* It recovers with a reset. */
	if (ioctl(f.v.device, VFIO_DEVICE_RESET))
		fuzz_fail(run, "VFIO_DEVICE_RESET at the end: %s", strerror(errno));
	entered(&f, VFIO_DEVICE_STATE_RUNNING, NONE);
	check_state(&f, "the last VFIO_DEVICE_RESET");
	fuzz_log_rate_ok(run, log, f.refusals, seconds_between(&t0, &t1));
	run->refused = f.refusals;
	printf("# state: %lu stop-and-copy streams read whole, %lu loaded whole and committed\n",
	       f.streams, f.commits);
out:
	drop_data_fd(&f);
	rmtty_vfio_close(&f.v);
	if (log >= 0)
		close(log);
	free(f.stream);
	free(f.saved);
	free(f.buf);
}

void state_fuzz_shared(struct fuzz_run *run, int device, uint64_t memory)
{
	struct state_fuzz f = { .rng = { run->seed }, .run = run, .memory = memory,
				.v = RMTTY_VFIO_INIT, .shared = true, .data_fd = -1 };

	f.v.device = device;
	f.buf = malloc(READ_MAX);
	if (!f.buf)
		fuzz_fail(run, "no memory");
	else
		run_steps(&f);
	run->refused = f.refusals;
	drop_data_fd(&f);
	free(f.buf);
}
