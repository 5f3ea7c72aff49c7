#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# In the guest: run the kselftests and then a kmemleak scan, while the whole
# kernel log, from boot on, is copied to $RMTTY_GUEST_OUT/kmsg.log for the
# host to check. Prints TAP; exits non-zero if anything failed.
#
# RMTTY_TESTS, if set, names the programs to run (for a partial run by hand).
# RMTTY_PLANT, if set (kasan or ubsan), first loads the test module that
# makes that sanitizer report an out-of-bounds access: the run must turn red.
set -uo pipefail

out=${RMTTY_GUEST_OUT:?RMTTY_GUEST_OUT is not set}
# A reader of /dev/kmsg starts at the oldest record the buffer still holds:
# the kernel command line makes the buffer large enough to hold the whole
# boot. If records are overwritten before they are copied, cat fails with
# EPIPE and stops; the end of this script notices.
cat /dev/kmsg >"$out/kmsg.log" &
follower=$!

rc=0
tap() {
	if [ "$1" = 0 ]; then
		echo "ok - $2"
	else
		echo "not ok - $2"
		rc=1
	fi
}

if [ -n "${RMTTY_PLANT:-}" ]; then
	echo "# loading the planted defect: rmtty_plant kind=$RMTTY_PLANT"
	insmod "$RMTTY_TEST_MODULES/rmtty_plant.ko" kind="$RMTTY_PLANT" 2>&1 | sed 's/^/# /'
fi

# timed: the runner's output, with each program's wall time after its result
# ("# rmtty: time PROGRAM SECONDS"), for the host's summary.
timed() {
	local line prog= t0=0

	while IFS= read -r line; do
		printf '%s\n' "$line"
		case $line in
		"# selftests: rmtty: "*)
			prog=${line#"# selftests: rmtty: "}
			t0=$SECONDS
			;;
		"ok "*" selftests: rmtty: "* | "not ok "*" selftests: rmtty: "*)
			[ -n "$prog" ] && echo "# rmtty: time $prog $((SECONDS - t0))"
			prog=
			;;
		esac
	done
}

cd "$RMTTY_KSFT" || exit 1
args=(-c rmtty)
if [ -n "${RMTTY_TESTS:-}" ]; then
	args=()
	for t in $RMTTY_TESTS; do
		args+=(-t "rmtty:$t")
	done
fi
./run_kselftest.sh "${args[@]}" | timed
[ "${PIPESTATUS[0]}" = 0 ] || rc=1

# Each program unloads rmtty when it is done; a module still loaded is a
# reference some test leaked.
! grep -qE '^(rmtty|rmmem|mdev_attr_overflow) ' /proc/modules
tap $? "no test module is left loaded after the suite"

# Leaks anywhere in the run: unreferenced objects that project code or the
# mdev and VFIO cores allocated. Objects younger than kmemleak's minimum age
# (5 s) are not reported yet, and an object is only reported once a second
# scan confirms it.
leaks=$RMTTY_GUEST_OUT/kmemleak.txt
kmemleak=/sys/kernel/debug/kmemleak
[ -e "$kmemleak" ] || mount -t debugfs debugfs /sys/kernel/debug
if [ -w "$kmemleak" ]; then
	# The first scan records the objects' contents (about 15 s); the
	# second, 6 s at least after the suite's end, reports what is older
	# than kmemleak's minimum age (5 s) and unchanged since.
	start=$SECONDS
	echo scan >"$kmemleak"
	[ $((SECONDS - start)) -ge 6 ] || sleep $((6 - (SECONDS - start)))
	echo scan >"$kmemleak" && cat "$kmemleak" >"$leaks"
	# Only the backtrace counts: the comm line names whatever task allocated.
	# Frames of a module that is gone by now print as bare addresses, and
	# the only modules loaded here are ours and mtty.
	ours=$(awk -v RS='unreferenced object' '
		{ bt = $0; sub(/^.*backtrace/, "", bt) }
		bt ~ /rmtty|rmmem|mdev|mtty|vfio|iommufd|_6kernel|eventfd|[[:space:]]0xffffffff[0-9a-f]+/ {
			print "unreferenced object" $0
		}' "$leaks")
	[ -z "$ours" ]
	tap $? "kmemleak finds no leak of rmtty, rmmem, the abstractions or the mdev/VFIO cores"
	[ -n "$ours" ] && printf '%s\n' "$ours" | head -n 80 | sed 's/^/#   /'
else
	tap 1 "kmemleak finds no leak of rmtty, rmmem, the abstractions or the mdev/VFIO cores"
	echo "#   $kmemleak is not available"
fi

# The host checks the log up to this line: everything the suite caused is
# before it.
echo "rmtty: end of the test run" >/dev/kmsg
sleep 1
kill -0 "$follower" 2>/dev/null
tap $? "the kernel log was copied without losing records"
kill "$follower" 2>/dev/null
exit $rc
