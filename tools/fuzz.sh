#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The fuzzers and the races at length: the test command (tools/check.sh)
# with them as the whole run, 10,000 cases per fuzzer unless
# RMTTY_FUZZ_CASES says otherwise, from a seed drawn from the clock unless
# RMTTY_FUZZ_SEED gives one (make check runs the fuzzers' fixed seed), and
# each race running 30 s unless RMTTY_RACE_SECONDS says otherwise (make
# check: 3 s).
export RMTTY_PROGRAMS='rmtty_fuzz_test rmtty_race_pool_test rmtty_race_user_test'
export RMTTY_RACE_SECONDS=${RMTTY_RACE_SECONDS:-30}
export RMTTY_FUZZ_CASES=${RMTTY_FUZZ_CASES:-10000}
export RMTTY_FUZZ_SEED=${RMTTY_FUZZ_SEED:-$(date +%s%N)}
exec "$(dirname "$0")/check.sh"
