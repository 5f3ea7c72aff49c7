#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# rmtty-migrate, the userspace client of the migration protocols, through
# both VFIO front doors: over v2, a save with pre-copy passes while a
# workload dirties the source's memory, a load into a device of another type
# with the same shape, and a refused stream; over v1 (the migration region),
# the same save through an mmap of the data section, loads of v1- and
# v2-saved streams over either protocol (through the mmap and through
# pread/pwrite), stop-and-copy giving v2's very bytes, and streams refused at
# a data_size write and at the commit, changing nothing. The sizes of the
# streams are computed from the documented format (migration-stream.md), not
# taken from the device or the tool. Two devices' memory is compared by saving
# each again by stop-and-copy alone; every run of the tool opens the device,
# which resets its config space and UART to power-on, so only the memory tells
# such streams apart (rmtty_migration_test checks config and UART round trips
# within one open). Last, a 64 MiB device is saved and loaded over v2, v1 mmap
# and v1 pread/pwrite, and the rates are printed.

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

# load_report FILE: the numbers and strings of FILE, a JSON report, in J,
# each under its path (KEY.KEY..., a list's KEY an index); fails, J empty, if
# FILE is no JSON. One Python start per report: each costs a second in the
# guest.
declare -A J
load_report() {
	local key value out

	J=()
	out=$(python3 -c '
import json, sys
def leaves(path, v):
    if isinstance(v, dict):
        items = v.items()
    elif isinstance(v, list):
        items = enumerate(v)
    else:
        print(f"{path}\t{v}".replace("\n", " "))
        return
    for key, child in items:
        leaves(f"{path}.{key}" if path else str(key), child)
leaves("", json.load(open(sys.argv[1])))' "$1" 2>/dev/null) || return
	while IFS=$'\t' read -r key value; do
		[ -n "$key" ] && J[$key]=$value
	done <<<"$out"
}

# The stream's sizes, from migration-stream.md (version 1.1, which the
# devices write): a 32-byte header; a page record, 12 bytes of record header
# and a payload of the page's index, a reserved word and its 4096 bytes, per
# 4 KiB page sent; and at stop-and-copy the tail: the config record (12 +
# 256), the UART record (12 + 28), the summary (12 + 16) and the end (12).
HEADER=32
PAGE_RECORD=$((12 + 8 + 4096))
TAIL=$((12 + 256 + 12 + 28 + 12 + 16 + 12))

# stream_size MIB [AGAIN]: the bytes of the stream of a MIB MiB device: the
# header, the first pass (a page record per 4 KiB page), AGAIN page records of
# pages sent again, and the tail.
stream_size() {
	echo $((HEADER + ($1 * 256 + ${2:-0}) * PAGE_RECORD + TAIL))
}

# rate: the loaded report's transfer rate, in MB/s.
rate() {
	printf '%.1f' "${J[mb_per_s]:-0}"
}

# same_memory DOOR SRC DST: whether the two devices, of MIB MiB, hold the same
# memory: each saves by stop-and-copy alone a stream of the documented size,
# and the streams are the same. Each save opens its device, which resets its
# config space and UART: the streams' config and UART records are power-on's.
same_memory() {
	"$MIGRATE" save "$2" --"$1" -o "$tmp/src.bin" 2>/dev/null &&
		"$MIGRATE" save "$3" --"$1" -o "$tmp/dst.bin" 2>/dev/null &&
		[ "$(stat -c %s "$tmp/src.bin")" = "$(stream_size "$MIB")" ] &&
		cmp -s "$tmp/src.bin" "$tmp/dst.bin"
}

# precopy_sizes STREAM: whether a save with 2 pre-copy passes and the
# workload, whose report is loaded, gave a stream of the documented size, read
# in the documented parts: pass 1 sends the header and every page; its
# workload dirties pages 0 and 1, which pass 2 sends again; pass 2's dirties
# pages 0 and 2, which stop-and-copy sends with the tail. The tool's count of
# the bytes it read must be the stream's.
precopy_sizes() {
	[ "$(stat -c %s "$1")" = "$(stream_size "$MIB" 4)" ] &&
		[ "${J[passes.0.bytes]:-}" = $((HEADER + PAGES * PAGE_RECORD)) ] &&
		[ "${J[passes.1.bytes]:-}" = $((2 * PAGE_RECORD)) ] &&
		[ "${J[stop_copy_bytes]:-}" = $((2 * PAGE_RECORD + TAIL)) ] &&
		[ "${J[bytes]:-}" = "$(stat -c %s "$1")" ]
}

# refill DEVICE SEED: fill the device's memory with SEED's pattern, which no
# stream of this test holds, and set before to its hash.
refill() {
	"$BAR2" fill "$1" "$2" >/dev/null || ktap_exit_fail_msg "filling $1's memory failed"
	mem_hash "$1"
	before=$mem
}

# unchanged DEVICE: whether the device's memory still hashes as when refill
# filled it, which is not the source's (src_mem).
unchanged() {
	mem_hash "$1" && [ -n "$before" ] && [ -n "$src_mem" ] && [ "$before" != "$src_mem" ] &&
		[ "$mem" = "$before" ]
}

# The source is an rmtty-1 x2 and the target an rmtty-2: 2 MiB, 512 pages.
MIB=2
PAGES=$((MIB * 256))

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

	# MIG_DATA_SIZE before STOP_COPY is what stop-and-copy sent.
	load_report "$tmp/save.json"
	precopy_sizes "$tmp/pre.bin" &&
		[ "${J[data_size]:-}" = $((2 * PAGE_RECORD + TAIL)) ]
	result "$door: the stream's size, and stop-and-copy's is MIG_DATA_SIZE"
	ktap_print_msg "$door: saved $(stat -c %s "$tmp/pre.bin" 2>/dev/null || echo no) bytes" \
		"($(stream_size "$MIB" 4) expected), stop-and-copy's MIG_DATA_SIZE" \
		"${J[data_size]:-none} ($((2 * PAGE_RECORD + TAIL)) expected)"
	[ -s "$tmp/save.json" ] && echo "# v2 save: $(rate) MB/s"

	"$MIGRATE" inspect "$tmp/pre.bin" >"$tmp/inspect.out" 2>&1
	result "$door: the saved stream is complete and well-formed"

	"$MIGRATE" load "$dst" --"$door" -i "$tmp/pre.bin" >"$tmp/load.out" 2>&1
	result "$door: load into an rmtty-2 device"
	[ -s "$tmp/load.out" ] && grep -i error "$tmp/load.out" | sed 's/^/# /'

	same_memory "$door" "$src" "$dst"
	result "$door: the target's memory equals the source's, dirtied pages included"
	mem_hash "$src"
	src_mem=$mem

	# A flipped byte in the header's shape: refused at the header. The
	# bad stream is cut from one the target holds now, so its memory is
	# filled otherwise first: a stream applied in part would show.
	cp "$tmp/pre.bin" "$tmp/bad.bin"
	printf '\x03' | dd of="$tmp/bad.bin" bs=1 seek=16 conv=notrunc status=none
	refill "$dst" $((0x5eed0100 + n))
	rmtty_log_mark "rmtty_migrate_test: $door: bad stream into $dst"
	! "$MIGRATE" load "$dst" --"$door" -i "$tmp/bad.bin" >/dev/null 2>&1 &&
		rmtty_refusals "$dst" |
		grep -qF "$dst: migration stream refused: shape 1 port(s) and 3 MiB" &&
		unchanged "$dst"
	result "$door: a stream of another shape is refused, the refusal logged, nothing changed"

	# Over v1. The workload writes what it wrote during the v2 save, so
	# the source's state is the same after this save as after that one.
	"$MIGRATE" save "$src" --"$door" --v1 -o "$tmp/v1pre.bin" --precopy-passes 2 \
		--workload "$workload" --json >"$tmp/v1save.json" 2>"$tmp/v1save.err"
	saved=$?
	load_report "$tmp/v1save.json"
	[ "$saved" = 0 ] && [ "${J[v1_region.data_access]:-}" = mmap ] &&
		precopy_sizes "$tmp/v1pre.bin"
	result "$door: v1 save with 2 pre-copy passes and a dirtying workload, through an mmap"
	[ -s "$tmp/v1save.err" ] && sed 's/^/# /' "$tmp/v1save.err"
	[ -s "$tmp/v1save.json" ] && echo "# v1 save: $(rate) MB/s"

	"$MIGRATE" inspect "$tmp/v1pre.bin" >/dev/null 2>&1
	result "$door: the v1-saved stream is complete and well-formed"

	"$MIGRATE" load "$dst" --"$door" -i "$tmp/v1pre.bin" >"$tmp/load.out" 2>&1 &&
		same_memory "$door" "$src" "$dst"
	result "$door: a v1-saved stream loads over v2, and the target's memory equals the source's"
	grep -i error "$tmp/load.out" | sed 's/^/# /'

	"$MIGRATE" load "$dst" --"$door" --v1 -i "$tmp/pre.bin" --json \
		>"$tmp/v1load.json" 2>/dev/null &&
		load_report "$tmp/v1load.json" && [ "${J[v1_region.data_access]:-}" = mmap ] &&
		same_memory "$door" "$src" "$dst"
	result "$door: a v2-saved stream loads over v1 through an mmap, the same memory"

	"$MIGRATE" load "$dst" --"$door" --v1 --no-mmap -i "$tmp/v1pre.bin" --json \
		>"$tmp/v1load.json" 2>/dev/null &&
		load_report "$tmp/v1load.json" && [ "${J[v1_region.data_access]:-}" = pread/pwrite ] &&
		same_memory "$door" "$src" "$dst"
	result "$door: a v1-saved stream loads over v1 through pread/pwrite, the same memory"

	# same_memory left the source's v2 stop-and-copy stream in src.bin.
	"$MIGRATE" save "$src" --"$door" --v1 --no-mmap -o "$tmp/v1src.bin" 2>/dev/null &&
		cmp -s "$tmp/src.bin" "$tmp/v1src.bin"
	result "$door: v1 stop-and-copy through pread/pwrite saves the very bytes v2 does"

	# The stream of another shape: the driver takes the header with the
	# first piece, so the first data_size write fails. The device stays in
	# RESUMING: the tool's cancel (001) is refused like any commit of a bad
	# stream, and closing the device returns it to RUNNING unchanged.
	refill "$dst" $((0x5eed0200 + n))
	rmtty_log_mark "rmtty_migrate_test: $door: bad stream over v1 into $dst"
	! "$MIGRATE" load "$dst" --"$door" --v1 -i "$tmp/bad.bin" --json \
		>"$tmp/bad.json" 2>/dev/null &&
		load_report "$tmp/bad.json" &&
		[ "${J[error.what]:-}" = "write of stream bytes 0..1048576: write data_size" ] &&
		[ "${J[error.errno_name]:-}" = EINVAL ] &&
		[ "${J[cancel_error.errno_name]:-}" = EINVAL ] &&
		rmtty_refusals "$dst" |
		grep -qF "$dst: migration stream refused: shape 1 port(s) and 3 MiB" &&
		unchanged "$dst"
	result "$door: over v1, a stream of another shape fails its first data_size write, logged, nothing changed"

	# A truncated stream, the header and 24 whole pages of 512: refused
	# when leaving RESUMING, and again for the cancel; the device keeps its
	# memory.
	head -c 100000 "$tmp/pre.bin" >"$tmp/short.bin"
	refill "$dst" $((0x5eed0300 + n))
	! "$MIGRATE" load "$dst" --"$door" --v1 -i "$tmp/short.bin" --json \
		>"$tmp/short.json" 2>/dev/null &&
		load_report "$tmp/short.json" &&
		[ "${J[error.what]:-}" = "RESUMING -> RUNNING: write device_state" ] &&
		[ "${J[final_state]:-}" = RESUMING ] &&
		[ "${J[cancel_error.errno_name]:-}" = EINVAL ] &&
		unchanged "$dst"
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
	load_report "$tmp/$p-save.json"
	[ -s "$tmp/$p-save.json" ] && echo "# 64 MiB save over $p: $(rate) MB/s"
done
[ "$ok" = 0 ] && [ "$(stat -c %s "$tmp/v2.bin")" = "$(stream_size 64)" ] &&
	cmp -s "$tmp/v2.bin" "$tmp/v1-mmap.bin" && cmp -s "$tmp/v2.bin" "$tmp/v1-pread.bin"
result "64 MiB: saves over v2, v1 mmap and v1 pread/pwrite give the same stream, of the documented size"

ok=0
for p in $protocols; do
	"$BAR2" fill "$dst" 8 >/dev/null || ok=1
	# shellcheck disable=SC2046 # flags() gives words
	"$MIGRATE" load "$dst" $(flags "$p") -i "$tmp/v2.bin" --json \
		>"$tmp/$p-load.json" 2>/dev/null || ok=1
	load_report "$tmp/$p-load.json"
	[ -s "$tmp/$p-load.json" ] && echo "# 64 MiB load over $p: $(rate) MB/s"
	"$BAR2" verify "$dst" 7 >/dev/null || ok=1
done
[ "$ok" = 0 ]
result "64 MiB: loads over v2, v1 mmap and v1 pread/pwrite each give the target the source's memory"

{ echo 1 >"$MDEV_DEVICES/$src/remove" && echo 1 >"$MDEV_DEVICES/$dst/remove"; } ||
	ktap_print_msg "removing the 64 MiB devices failed"

rmtty_finish
