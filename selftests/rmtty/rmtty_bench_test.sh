#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The benchmarks of make bench run once each, at a tiny size, to prove they
# work; what they measure is not checked (a test is no benchmark): one
# repetition of every group of figures (BAR0 and config accesses,
# create+remove, BAR2, migration of a 1 MiB device with rmtty-migrate over
# v2, v1 pread/pwrite and v1 mmap and mtty's v2, pre-copy convergence on a
# 1 MiB device, QEMU 10's live migration downtime), and the JSON has every
# figure with its samples.

. "$(dirname "$0")/rmtty_lib.sh"

BENCH=$(dirname "$0")/rmtty_bench

ktap_print_header
[ -x "$BENCH" ] || ktap_exit_fail_msg "rmtty_bench is not built ($BENCH)"
command -v python3 >/dev/null || ktap_exit_fail_msg "python3 is needed to read the JSON"
rmtty_reload units=256
mtty_loaded=0
[ -e /sys/module/mtty ] && mtty_loaded=1
modprobe mtty || ktap_exit_fail_msg "modprobe mtty failed"
ktap_set_plan 4

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

t0=$(now_ms)
"$BENCH" -r 1 -R 1 -n 10 -c 1 -m 1 -O 16 -s 1 -p 1 -o "$tmp/bench.json" >"$tmp/out" 2>&1
result "rmtty_bench runs every group of figures once ($(since "$t0"))"
msgs "$(cat "$tmp/out")"

python3 - "$tmp/bench.json" >"$tmp/check" 2>&1 <<'PY'
import json, sys

b = json.load(open(sys.argv[1]))
ids = {f["id"] for f in b["figures"]}
want = {"bar0_read_group", "bar0_write_cdev", "config_read_group", "create_remove_0",
        "create_remove_16", "bar2_read_memcpy", "migrate_v2_save_1", "migrate_v2_load_1",
        "migrate_v1_pread_save_1", "migrate_v1_mmap_load_1", "migrate_v2_save_mtty",
        "precopy_stop_copy_0", "precopy_stop_copy_1024", "qemu_downtime", "qemu_total"}
missing = sorted(want - ids)
if missing:
    sys.exit(f"figures missing: {missing}")
for f in b["figures"]:
    for side in ("rmtty", "baseline", "ratio"):
        if len(f[side]["samples"]) != 1:
            sys.exit(f"{f['id']}: {side} has {len(f[side]['samples'])} samples")
print(f"{len(b['figures'])} figures")
PY
result "build/bench.json has every figure, each with its one sample"
msgs "$(cat "$tmp/check")"

# No device of the run is left.
[ -z "$(find /sys/class/mdev_bus/rmtty/mdev_supported_types/*/devices/ \
	/sys/class/mdev_bus/mtty/mdev_supported_types/*/devices/ -mindepth 1 2>/dev/null)" ]
result "rmtty_bench removes every device it created"

[ "$mtty_loaded" = 1 ] || rmmod mtty
rmtty_finish
