# SPDX-License-Identifier: GPL-2.0
# rmtty's user-facing targets. The kernel module itself is built by kbuild
# from ./Kbuild (make -C $KDIR M=$PWD); these targets drive the scripts in
# tools/, which install what is missing and build what changed.

.PHONY: run check fuzz bench guest build deps kernel clean

# Build everything, boot the test kernel, load rmtty, create and show devices.
run:
	@tools/run.sh

# Build everything and run the whole test suite in one guest boot.
check:
	@tools/check.sh

# Build everything and run the fuzzers at length (10,000 cases each;
# RMTTY_FUZZ_CASES and RMTTY_FUZZ_SEED to change), in one guest boot, with
# check's accounting and log checks. check runs them briefly.
fuzz:
	@tools/fuzz.sh

# Build everything and run the benchmarks in one guest boot: rmtty against
# the C mtty sample and memcpy(), a table on stdout and build/bench.json. A
# benchmark is not a test: check does not run it.
bench:
	@tools/bench.sh

# Run CMD as root in the guest: make guest CMD='...'. CMD reaches the guest's
# shell unexpanded by make, so $$VAR and quotes work as on a command line.
# make fails exactly when CMD does, with its own status 2; the line before
# names CMD's status, which tools/guest.sh exits with.
guest: export RMTTY_GUEST_CMD = $(value CMD)
guest:
	@tools/guest.sh "$$RMTTY_GUEST_CMD" || { rc=$$?; echo "make guest: CMD exited with status $$rc" >&2; exit $$rc; }

build:
	@tools/build.sh

deps:
	@tools/deps.sh

kernel:
	@tools/deps.sh && tools/kernel.sh

clean:
	rm -rf build
	find samples selftests \( -name '*.o' -o -name '*.ko' -o -name '*.mod*' -o -name '.*.cmd' -o -name '*.d' \) -delete
	rm -f Module.symvers modules.order samples/modules.order .*.cmd
