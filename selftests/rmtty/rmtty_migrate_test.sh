#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# rmtty-migrate, the userspace client of the migration protocols, through
# both VFIO front doors: over v2, a save with pre-copy passes while a
# workload dirties the source's memory, a load into a device of another type
# with the same shape, and a refused stream; over v1 (the migration region),
# the same save through an mmap of the data section, loads of v1- and
# v2-saved streams over either protocol (through the mmap and through
# pread/pwrite), stop-and-copy giving v2's very bytes, and streams refused at
# a data_size write and at the commit, changing nothing. A device's state is compared by saving
# it again by stop-and-copy alone: two devices in the same state save the
# same bytes (memory, config space, UART). Last, a 64 MiB device is saved and
# loaded over v2, v1 mmap and v1 pread/pwrite, and the rates are printed.

. "$(dirname "$0")/rmtty_lib.sh"

MIGRATE=${RMTTY_MIGRATE:-$RMTTY_TOP/tools/target/release/rmtty-migrate}
BAR2=$(dirname "$0")/rmtty_bar2

ktap_print_header
[ -x "$MIGRATE" ] || ktap_exit_fail_msg "rmtty-migrate is not built ($MIGRATE)"
[ -x "$BAR2" ] || ktap_exit_fail_msg "rmtty_bar2 is not built ($BAR2)"
command -v python3 >/dev/null || ktap_exit_fail_msg "python3 is needed for the workload"
rmtty_reload
ktap_set_plan 33

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

# json_field FILE KEY[.KEY...]: a number or string of a JSON report.
json_field() {
	python3 -c '
import json, sys
v = json.load(open(sys.argv[1]))
for key in sys.argv[2].split("."):
    v = v[key]
print(v)' "$1" "$2"
}

# rate FILE: a JSON report's transfer rate, in MB/s.
rate() {
	printf '%.1f' "$(json_field "$1" mb_per_s)"
}

# same_state DOOR SRC DST: whether the two devices save the same bytes.
same_state() {
	"$MIGRATE" save "$2" --"$1" -o "$tmp/src.bin" 2>/dev/null &&
		"$MIGRATE" save "$3" --"$1" -o "$tmp/dst.bin" 2>/dev/null &&
		cmp -s "$tmp/src.bin" "$tmp/dst.bin"
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
	[ -s "$tmp/save.json" ] && echo "# v2 save: $(rate "$tmp/save.json") MB/s"

	"$MIGRATE" inspect "$tmp/pre.bin" >"$tmp/inspect.out" 2>&1
	result "$door: the saved stream is complete and well-formed"

	"$MIGRATE" load "$dst" --"$door" -i "$tmp/pre.bin" >"$tmp/load.out" 2>&1
	result "$door: load into an rmtty-2 device"
	[ -s "$tmp/load.out" ] && grep -i error "$tmp/load.out" | sed 's/^/# /'

	same_state "$door" "$src" "$dst"
	result "$door: the target's state equals the source's, dirtied pages included"

	# A flipped byte in the header's shape: refused at the header.
	cp "$tmp/pre.bin" "$tmp/bad.bin"
	printf '\x03' | dd of="$tmp/bad.bin" bs=1 seek=16 conv=notrunc status=none
	echo "rmtty_migrate_test: bad stream into $dst" >/dev/kmsg
	! "$MIGRATE" load "$dst" --"$door" -i "$tmp/bad.bin" >/dev/null 2>&1 &&
		dmesg | sed -n "/rmtty_migrate_test: bad stream into $dst/,\$p" |
		grep -q "$dst: migration stream refused: shape 1 port(s) and 3 MiB"
	result "$door: a stream of another shape is refused, and the refusal logged"

	# Over v1. The workload writes what it wrote during the v2 save, so
	# the source's state is the same after this save as after that one.
	"$MIGRATE" save "$src" --"$door" --v1 -o "$tmp/v1pre.bin" --precopy-passes 2 \
		--workload "$workload" --json >"$tmp/v1save.json" 2>"$tmp/v1save.err" &&
		[ "$(json_field "$tmp/v1save.json" v1_region.data_access)" = mmap ] &&
		[ "$(json_field "$tmp/v1save.json" bytes)" = "$(stat -c %s "$tmp/v1pre.bin")" ]
	result "$door: v1 save with 2 pre-copy passes and a dirtying workload, through an mmap"
	[ -s "$tmp/v1save.err" ] && sed 's/^/# /' "$tmp/v1save.err"
	[ -s "$tmp/v1save.json" ] && echo "# v1 save: $(rate "$tmp/v1save.json") MB/s"

	"$MIGRATE" inspect "$tmp/v1pre.bin" >/dev/null 2>&1
	result "$door: the v1-saved stream is complete and well-formed"

	"$MIGRATE" load "$dst" --"$door" -i "$tmp/v1pre.bin" >"$tmp/load.out" 2>&1 &&
		same_state "$door" "$src" "$dst"
	result "$door: a v1-saved stream loads over v2, and the target's state equals the source's"
	grep -i error "$tmp/load.out" | sed 's/^/# /'

	"$MIGRATE" load "$dst" --"$door" --v1 -i "$tmp/pre.bin" --json \
		>"$tmp/v1load.json" 2>/dev/null &&
		[ "$(json_field "$tmp/v1load.json" v1_region.data_access)" = mmap ] &&
		same_state "$door" "$src" "$dst"
	result "$door: a v2-saved stream loads over v1 through an mmap, the same state"

	"$MIGRATE" load "$dst" --"$door" --v1 --no-mmap -i "$tmp/v1pre.bin" --json \
		>"$tmp/v1load.json" 2>/dev/null &&
		[ "$(json_field "$tmp/v1load.json" v1_region.data_access)" = pread/pwrite ] &&
		same_state "$door" "$src" "$dst"
	result "$door: a v1-saved stream loads over v1 through pread/pwrite, the same state"

	# same_state left the source's v2 stop-and-copy stream in src.bin.
	"$MIGRATE" save "$src" --"$door" --v1 --no-mmap -o "$tmp/v1src.bin" 2>/dev/null &&
		cmp -s "$tmp/src.bin" "$tmp/v1src.bin"
	result "$door: v1 stop-and-copy through pread/pwrite saves the very bytes v2 does"

	# The stream of another shape: the driver takes the header with the
	# first piece, so the first data_size write fails. The device stays in
	# RESUMING: the tool's cancel (001) is refused like any commit of a bad
	# stream, and closing the device returns it to RUNNING unchanged.
	echo "rmtty_migrate_test: bad stream over v1 into $dst" >/dev/kmsg
	! "$MIGRATE" load "$dst" --"$door" --v1 -i "$tmp/bad.bin" --json \
		>"$tmp/bad.json" 2>/dev/null &&
		[ "$(json_field "$tmp/bad.json" error.what)" = \
		  "write of stream bytes 0..1048576: write data_size" ] &&
		[ "$(json_field "$tmp/bad.json" error.errno_name)" = EINVAL ] &&
		[ "$(json_field "$tmp/bad.json" cancel_error.errno_name)" = EINVAL ] &&
		dmesg | sed -n "/rmtty_migrate_test: bad stream over v1 into $dst/,\$p" |
		grep -q "$dst: migration stream refused: shape 1 port(s) and 3 MiB" &&
		same_state "$door" "$src" "$dst"
	result "$door: over v1, a stream of another shape fails its first data_size write, logged, nothing changed"

	# A truncated stream: refused when leaving RESUMING, and again for the
	# cancel; the device keeps its state.
	head -c 100000 "$tmp/pre.bin" >"$tmp/short.bin"
	! "$MIGRATE" load "$dst" --"$door" --v1 -i "$tmp/short.bin" --json \
		>"$tmp/short.json" 2>/dev/null &&
		[ "$(json_field "$tmp/short.json" error.what)" = \
		  "RESUMING -> RUNNING: write device_state" ] &&
		[ "$(json_field "$tmp/short.json" final_state)" = RESUMING ] &&
		[ "$(json_field "$tmp/short.json" cancel_error.errno_name)" = EINVAL ] &&
		same_state "$door" "$src" "$dst"
	result "$door: over v1, a truncated stream is refused at the commit and changes nothing"

	echo 1 >"$MDEV_DEVICES/$src/remove" && echo 1 >"$MDEV_DEVICES/$dst/remove"
	result "$door: both devices removed"
done

# A 64 MiB device (rmtty-4 aggregated 4, 4 MiB units) filled with a pattern:
# stop-and-copy over v2, v1 mmap and v1 pread/pwrite save the same bytes,
# and a load over each makes another such device (filled otherwise first)
# hold the pattern. The rates are the stream's bytes over the transfer time.
rmtty_reload units=32 unit_mib=4
{ src=$(rmtty_create 4 5 4) && dst=$(rmtty_create 4 6 4); } ||
	ktap_exit_fail_msg "creating the 64 MiB devices failed"
src=$(basename "$src")
dst=$(basename "$dst")
"$BAR2" fill "$src" 7 >/dev/null || ktap_exit_fail_msg "filling $src failed"

protocols="v2 v1-mmap v1-pread"
flags() {
	case $1 in
	v2) ;;
	v1-mmap) echo --v1 ;;
	v1-pread) echo --v1 --no-mmap ;;
	esac
}

ok=0
for p in $protocols; do
	# shellcheck disable=SC2046 # flags() gives words
	"$MIGRATE" save "$src" $(flags "$p") -o "$tmp/$p.bin" --json \
		>"$tmp/$p-save.json" 2>/dev/null || ok=1
	[ -s "$tmp/$p-save.json" ] && echo "# 64 MiB save over $p: $(rate "$tmp/$p-save.json") MB/s"
done
[ "$ok" = 0 ] && cmp -s "$tmp/v2.bin" "$tmp/v1-mmap.bin" &&
	cmp -s "$tmp/v2.bin" "$tmp/v1-pread.bin"
result "64 MiB: saves over v2, v1 mmap and v1 pread/pwrite give the same stream"

ok=0
for p in $protocols; do
	"$BAR2" fill "$dst" 8 >/dev/null || ok=1
	# shellcheck disable=SC2046 # flags() gives words
	"$MIGRATE" load "$dst" $(flags "$p") -i "$tmp/v2.bin" --json \
		>"$tmp/$p-load.json" 2>/dev/null || ok=1
	[ -s "$tmp/$p-load.json" ] && echo "# 64 MiB load over $p: $(rate "$tmp/$p-load.json") MB/s"
	"$BAR2" verify "$dst" 7 >/dev/null || ok=1
done
[ "$ok" = 0 ]
result "64 MiB: loads over v2, v1 mmap and v1 pread/pwrite each give the target the source's memory"

{ echo 1 >"$MDEV_DEVICES/$src/remove" && echo 1 >"$MDEV_DEVICES/$dst/remove"; } ||
	ktap_print_msg "removing the 64 MiB devices failed"

rmtty_finish
