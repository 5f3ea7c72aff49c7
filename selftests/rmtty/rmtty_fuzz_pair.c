// SPDX-License-Identifier: GPL-2.0
/*
 * Two fuzzers at once on one device. Through the group each has a file of
 * its own, one in a forked process; through the cdev, which opens a device
 * once, both share its one file from two threads. Neither keeps a model of
 * the device (the other changes it under its feet): each checks what holds
 * whatever the other does. After them the device must recover with a reset,
 * report RUNNING on both front ends, and the driver's log must have stayed
 * within its rate limits.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rmtty_fuzz.h"
#include "rmtty_util.h"
#include "rmtty_vfio.h"

/* One of the two: its fuzzer, the file it uses, what it did. */
struct side {
	fuzz_shared_fn *fuzz;
	int device;
	uint64_t memory;
	struct fuzz_run run;
};

static void *side_thread(void *arg)
{
	struct side *s = arg;

	s->fuzz(&s->run, s->device, s->memory);
	return NULL;
}

/* Side @s in a forked process with a file of its own from @group; 0 or -1. */
static int run_in_child(struct side *s, int group, const char *uuid, pid_t *pid)
{
	fflush(stdout);
	*pid = fork();
	if (*pid < 0)
		return -1;
	if (*pid)
		return 0;
	s->device = fuzz_group_file(&s->run, group, uuid);
	if (s->device >= 0)
		side_thread(s);
	fflush(stdout);
	_exit(0);
}

void pair_fuzzer(struct fuzz_run *run, fuzz_shared_fn *a, fuzz_shared_fn *b, const char *uuid,
		 uint64_t memory, bool cdev)
{
	/* Shared with a forked process: it reports in this memory. */
	struct side *sides = mmap(NULL, 2 * sizeof(*sides), PROT_READ | PROT_WRITE,
				  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct rmtty_vfio v = RMTTY_VFIO_INIT;
	int log = fuzz_log_open(), status = 0, i;
	struct timespec t0, t1;
	pthread_t tid;
	pid_t pid;

	if (sides == MAP_FAILED || log < 0 || rmtty_vfio_open(&v, uuid, cdev)) {
		fuzz_fail(run, "setting up: no memory, no kernel log, or the device did not open");
		goto out;
	}
	for (i = 0; i < 2; i++)
		sides[i] = (struct side){ i ? b : a, v.device, memory,
					  { run->name, run->seed, run->cases } };
	/* The pair's cases: both sides'. */
	run->cases *= 2;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (cdev ? pthread_create(&tid, NULL, side_thread, &sides[0]) :
		   run_in_child(&sides[0], v.group, uuid, &pid)) {
		fuzz_fail(run, "no thread or process for the second fuzzer");
		goto out;
	}
	side_thread(&sides[1]);
	if (cdev) {
		pthread_join(tid, NULL);
	} else if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
		   WEXITSTATUS(status)) {
		fuzz_fail(run, "the second process ended with status %#x", status);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);

	for (i = 0; i < 2; i++) {
		run->failures += sides[i].run.failures;
		run->refused += sides[i].run.refused;
	}
	printf("# %s: %lu and %lu cases, %lu and %lu refused\n", run->name, sides[0].run.done,
	       sides[1].run.done, sides[0].run.refused, sides[1].run.refused);
	run->done = sides[0].run.done + sides[1].run.done;
	fuzz_check_recovery(run, v.device);
	if (mig_get_state(v.device) != VFIO_DEVICE_STATE_RUNNING ||
	    mig1_state(v.device) != V1_RUNNING)
		fuzz_fail(run, "after the reset: v2 state %d, v1 device_state %d, expected RUNNING",
			  mig_get_state(v.device), mig1_state(v.device));
	fuzz_log_rate_ok(run, log, run->refused, seconds_between(&t0, &t1));
out:
	rmtty_vfio_close(&v);
	if (log >= 0)
		close(log);
	if (sides != MAP_FAILED)
		munmap(sides, 2 * sizeof(*sides));
}
