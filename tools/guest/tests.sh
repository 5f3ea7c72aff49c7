#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# In the guest: run the kselftests, then check the kernel log for splats.
# Prints TAP; exits non-zero if anything failed.
set -uo pipefail

cd "$RMTTY_KSFT" || exit 1
./run_kselftest.sh -c rmtty
rc=$?

# Anything the debug options report is a failure of the run, whatever test
# triggered it.
splats=$(dmesg | grep -E 'WARNING:|BUG:|Oops|lockdep|refcount_t:|KASAN|UBSAN|general protection fault|kernel BUG|INFO: task .* blocked')
if [ -n "$splats" ]; then
	echo "not ok - guest kernel log has no splat"
	printf '#   %s\n' "$splats"
	dmesg | tail -n 60 | sed 's/^/#   /'
	rc=1
else
	echo "ok - guest kernel log has no splat"
fi
exit $rc
