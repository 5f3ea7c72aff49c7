#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# In the guest: load rmtty with a pool of 256 units (room for 255 other
# devices and one more) and the C mtty sample, run the benchmarks, which
# write $RMTTY_GUEST_OUT/bench.json, and unload both drivers, which removes
# any device a failed run left. RMTTY_BENCH_ARGS, if set, goes to
# rmtty_bench (e.g. '-r 5 -n 2000' for a shorter run).
set -uo pipefail

out=${RMTTY_GUEST_OUT:?RMTTY_GUEST_OUT is not set}
rc=0
insmod "$RMTTY_KO" units=256 && modprobe mtty &&
	"$RMTTY_KSFT/rmtty/rmtty_bench" ${RMTTY_BENCH_ARGS:-} -o "$out/bench.json" || rc=1
for m in mtty rmtty; do
	[ ! -e "/sys/module/$m" ] || rmmod "$m" || rc=1
done
exit $rc
