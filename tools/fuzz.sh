#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The fuzzers at length: the test command (tools/check.sh) with
# rmtty_fuzz_test as the whole run and 10,000 cases per fuzzer unless
# RMTTY_FUZZ_CASES says otherwise, from a seed drawn from the clock unless
# RMTTY_FUZZ_SEED gives one (make check runs the fuzzers' fixed seed).
export RMTTY_PROGRAMS=rmtty_fuzz_test
export RMTTY_FUZZ_CASES=${RMTTY_FUZZ_CASES:-10000}
export RMTTY_FUZZ_SEED=${RMTTY_FUZZ_SEED:-$(date +%s%N)}
exec "$(dirname "$0")/check.sh"
