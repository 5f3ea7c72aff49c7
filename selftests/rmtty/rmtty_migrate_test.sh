#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# rmtty-migrate, the userspace client of the v2 migration protocol, through
# both VFIO front doors: a save with pre-copy passes while a workload dirties
# the source's memory, a load into a device of another type with the same
# shape, and a refused stream. A device's state is compared by saving it
# again by stop-and-copy alone: two devices in the same state save the same
# bytes (memory, config space, UART).

. "$(dirname "$0")/rmtty_lib.sh"

MIGRATE=${RMTTY_MIGRATE:-$RMTTY_TOP/tools/target/release/rmtty-migrate}

ktap_print_header
[ -x "$MIGRATE" ] || ktap_exit_fail_msg "rmtty-migrate is not built ($MIGRATE)"
command -v python3 >/dev/null || ktap_exit_fail_msg "python3 is needed for the workload"
rmtty_reload
ktap_set_plan 15

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The workload of pass N writes page N and page 0 of BAR2 through the
# descriptor rmtty-migrate lends it: page 0 was sent by the first pass, so
# it is dirty; so is page N once the pass has gone past it.
workload='python3 -c "
import os
fd = int(os.environ[\"RMTTY_MIGRATE_DEVICE_FD\"])
bar2 = int(os.environ[\"RMTTY_MIGRATE_BAR2_OFFSET\"])
n = int(os.environ[\"RMTTY_MIGRATE_PASS\"])
for page in (0, n):
    os.pwrite(fd, bytes([0x40 + n]) * 4096, bar2 + page * 4096)
"'

# json_field FILE KEY: a top-level number or string of a JSON report.
json_field() {
	python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

for door in group cdev; do
	n=$([ "$door" = group ] && echo 1 || echo 3)
	src=$(rmtty_create 1 "$n" 2) || ktap_exit_fail_msg "creating the source failed"
	dst=$(rmtty_create 2 $((n + 1))) || ktap_exit_fail_msg "creating the target failed"
	src=$(basename "$src")
	dst=$(basename "$dst")

	"$MIGRATE" save "$src" --"$door" -o "$tmp/pre.bin" --precopy-passes 2 \
		--workload "$workload" --json >"$tmp/save.json" 2>"$tmp/save.err"
	result "$door: save with 2 pre-copy passes and a dirtying workload"
	[ -s "$tmp/save.err" ] && sed 's/^/# /' "$tmp/save.err"

	# The stop-copy part is MIG_DATA_SIZE's bytes, and the whole stream
	# is what the file holds.
	[ "$(json_field "$tmp/save.json" bytes)" = "$(stat -c %s "$tmp/pre.bin")" ] &&
		[ "$(json_field "$tmp/save.json" stop_copy_bytes)" = \
		  "$(json_field "$tmp/save.json" data_size)" ]
	result "$door: the stream's size, and stop-and-copy's is MIG_DATA_SIZE"
	sed -n 's/.*"mb_per_s":\([0-9.]*\).*/# save: \1 MB\/s/p' "$tmp/save.json"

	"$MIGRATE" inspect "$tmp/pre.bin" >"$tmp/inspect.out" 2>&1
	result "$door: the saved stream is complete and well-formed"

	"$MIGRATE" load "$dst" --"$door" -i "$tmp/pre.bin" >"$tmp/load.out" 2>&1
	result "$door: load into an rmtty-2 device"
	[ -s "$tmp/load.out" ] && grep -i error "$tmp/load.out" | sed 's/^/# /'

	"$MIGRATE" save "$src" --"$door" -o "$tmp/src.bin" 2>/dev/null &&
		"$MIGRATE" save "$dst" --"$door" -o "$tmp/dst.bin" 2>/dev/null &&
		cmp -s "$tmp/src.bin" "$tmp/dst.bin"
	result "$door: the target's state equals the source's, dirtied pages included"

	# A flipped byte in the header's shape: refused at the header.
	cp "$tmp/pre.bin" "$tmp/bad.bin"
	printf '\x03' | dd of="$tmp/bad.bin" bs=1 seek=16 conv=notrunc status=none
	echo "rmtty_migrate_test: bad stream into $dst" >/dev/kmsg
	! "$MIGRATE" load "$dst" --"$door" -i "$tmp/bad.bin" >/dev/null 2>&1 &&
		dmesg | sed -n "/rmtty_migrate_test: bad stream into $dst/,\$p" |
		grep -q "$dst: migration stream refused: shape 1 port(s) and 3 MiB"
	result "$door: a stream of another shape is refused, and the refusal logged"

	echo 1 >"$MDEV_DEVICES/$src/remove" && echo 1 >"$MDEV_DEVICES/$dst/remove"
	result "$door: both devices removed"
done

rmtty_finish
