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
# Lockdep reports start with "WARNING:" or "INFO:"; its boot banner must not
# match.
splats=$(dmesg | grep -E 'WARNING:|BUG:|Oops|INFO: (possible|trying|task .* blocked)|DEBUG_LOCKS_WARN_ON|refcount_t:|KASAN|UBSAN|general protection fault')
if [ -n "$splats" ]; then
	echo "not ok - guest kernel log has no splat"
	printf '#   %s\n' "$splats"
	dmesg | tail -n 60 | sed 's/^/#   /'
	rc=1
else
	echo "ok - guest kernel log has no splat"
fi
exit $rc
