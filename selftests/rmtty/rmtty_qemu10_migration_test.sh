#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# QEMU 10 migrates rmtty devices through the VFIO v2 protocol: a paused VM
# with a device assigned (-device vfio-pci,sysfsdev=...,enable-migration=on)
# is saved to a file by one QEMU and loaded from it by another, onto a
# device of the same shape but another type (rmtty-1 x4 to rmtty-4), through
# the group with a type1 container and through iommufd; the target's memory
# must then hold the source's, and neither device may refuse a request. A
# target of another shape (rmtty-2) must refuse the stream, and QEMU must fail
# the load.
#
# The saved VM was paused, so the loaded one stays paused too, and QEMU leaves
# the target device in RESUMING until the VM runs: a target QEMU that quits
# then leaves the device as it was (closing the device ends the transfer; only
# RESUMING -> STOP commits it). The test therefore runs the loaded VM (cont)
# before it quits.
#
# Both QEMUs run under TCG inside the test guest (2 to 10 s to start each in
# the check's guest, more on a busy machine); the times of each phase are
# reported.

. "$(dirname "$0")/rmtty_lib.sh"

here=$(cd "$(dirname "$0")" && pwd)
QEMU=qemu-system-x86_64
BAR2=$here/rmtty_bar2
QMP=$here/rmtty_qmp.py

# Time limits in seconds: for a QEMU to come up and answer on its QMP socket,
# for a save or a load to end, and for a QEMU to exit once told to quit. A
# QEMU still running after its last step is killed.
START_TIMEOUT=300
MIGRATE_TIMEOUT=600
QUIT_TIMEOUT=120

ktap_print_header
# All of these are part of the test setup: without them the run is broken.
command -v "$QEMU" >/dev/null || ktap_exit_fail_msg "$QEMU is not installed"
command -v python3 >/dev/null || ktap_exit_fail_msg "python3 is not installed"
[ -x "$BAR2" ] || ktap_exit_fail_msg "$BAR2 is missing: it is built and installed with the tests"
[ -r "$QMP" ] || ktap_exit_fail_msg "$QMP is missing: it is installed with the tests"
ktap_print_msg "$("$QEMU" --version | head -n 1)"
rmtty_reload
# Five tests for each of two backends, four for a target of another shape,
# and the unload
ktap_set_plan 15

tmp=$(mktemp -d)
qemu_pid=
cleanup() {
	running "$qemu_pid" && kill -KILL "$qemu_pid"
	rm -rf "$tmp"
}
trap cleanup EXIT

# running PID: whether PID is a child of this shell that has not exited.
running() {
	local stat state ppid

	[ -n "$1" ] && stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	read -r state ppid _ <<<"${stat##*) }"
	[ "$ppid" = "$$" ] && [ "$state" != Z ]
}

# now_ms: the wall clock in milliseconds.
now_ms() {
	local t=${EPOCHREALTIME//[.,]/}

	echo $((t / 1000))
}

# since MS: the seconds since now_ms said MS, with one decimal.
since() {
	local ms=$(($(now_ms) - $1))

	printf '%d.%d s' $((ms / 1000)) $((ms % 1000 / 100))
}

# msgs TEXT: TEXT as KTAP diagnostic lines.
msgs() {
	[ -n "$1" ] && printf '%s\n' "$1" | sed 's/^/#   /'
}

# device_args DEVICE BACKEND: QEMU's arguments assigning DEVICE (its sysfs
# path) through the group and a type1 container, or through iommufd.
device_args() {
	local dev="vfio-pci,sysfsdev=$1,enable-migration=on"

	case $2 in
	container) echo "-device $dev" ;;
	iommufd) echo "-object iommufd,id=iommufd0 -device $dev,iommufd=iommufd0" ;;
	esac
}

# qemu_start NAME ARGS...: start a QEMU with a QMP socket at $tmp/NAME.sock,
# its output in $tmp/NAME.log and the device states it sets (its trace) in
# $tmp/NAME.trace; sets qemu_pid.
qemu_start() {
	local name=$1

	shift
	rm -f "$tmp/$name.sock"
	"$QEMU" -nodefaults -display none -machine q35 -m 64 \
		-qmp "unix:$tmp/$name.sock,server=on,wait=off" \
		-D "$tmp/$name.trace" -trace vfio_migration_set_device_state \
		"$@" >"$tmp/$name.log" 2>&1 </dev/null &
	qemu_pid=$!
}

# qmp NAME TIMEOUT COMMAND [ARG]: run COMMAND of rmtty_qmp.py on QEMU NAME;
# its output in qmp_out, its status returned.
qmp() {
	local name=$1

	shift
	qmp_out=$(RMTTY_QMP_PID=$qemu_pid python3 "$QMP" "$tmp/$name.sock" "$@" 2>&1)
}

# qemu_wait: wait up to QUIT_TIMEOUT s for the QEMU to exit, then kill it;
# sets qemu_rc to its exit status ("killed" if it had to be).
qemu_wait() {
	local i

	for ((i = 0; i < QUIT_TIMEOUT * 5; i++)); do
		running "$qemu_pid" || break
		sleep 0.2
	done
	if running "$qemu_pid"; then
		kill -KILL "$qemu_pid"
		wait "$qemu_pid" 2>/dev/null
		qemu_rc=killed
	else
		wait "$qemu_pid"
		qemu_rc=$?
	fi
	qemu_pid=
}

# qemu_errors NAME: what QEMU NAME printed besides warnings.
qemu_errors() {
	grep -v -e 'warning:' -e '^[[:space:]]*$' "$tmp/$1.log"
}

# qemu_states NAME: the device states QEMU NAME set, in order.
qemu_states() {
	sed -n 's/.*vfio_migration_set_device_state *([^)]*) *\(state \)\?//p' "$tmp/$1.trace" 2>/dev/null |
		tr '\n' ' '
}

# qemu_report NAME: QEMU NAME's output, warnings included, and the states it
# set the device to, as diagnostics.
qemu_report() {
	local states

	msgs "$(sed "s/^/$1: /" "$tmp/$1.log")"
	states=$(qemu_states "$1")
	ktap_print_msg "$1: device states set: ${states:-none}"
}

# mark LABEL: a kernel log line after which only LABEL's QEMUs use the devices.
mark() {
	log_mark="rmtty_qemu10_migration_test: $1: the QEMUs start"
	echo "$log_mark" >/dev/kmsg
}

# log_since_mark: the kernel log after the last mark.
log_since_mark() {
	dmesg | awk -v m="$log_mark" 'found; index($0, m) { found = 1 }'
}

# mem_hash UUID: set mem to the hash of the device's memory, read through
# VFIO; on failure, empty, and why is reported.
mem_hash() {
	if mem=$("$BAR2" hash "$1" 2>&1) && [[ "$mem" =~ ^[0-9a-f]{16}$ ]]; then
		return 0
	fi
	ktap_print_msg "rmtty_bar2 hash $1 failed:"
	msgs "$mem"
	mem=
	return 1
}

# save LABEL DEVICE BACKEND: a paused (-S) QEMU with DEVICE assigned saves its
# VM to $tmp/LABEL.state; QEMU's output is $tmp/LABEL-source.log. Sets
# save_info (the migration's report, with HMP's `info migrate`) and returns 0
# if the QEMU came up and the save ran to its end.
save() {
	local label=$1 name=$1-source t0 t up rc
	local -a args

	read -ra args <<<"$(device_args "$2" "$3")"
	t0=$(now_ms)
	qemu_start "$name" -S "${args[@]}"
	qmp "$name" "$START_TIMEOUT" ready
	rc=$?
	up="up (${qmp_out:-no answer}) after $(since "$t0")"
	save_info=$qmp_out
	if [ "$rc" = 0 ]; then
		t=$(now_ms)
		qmp "$name" "$MIGRATE_TIMEOUT" migrate "file:$tmp/$label.state"
		rc=$?
		save_info=$qmp_out
		up+=", saved in $(since "$t")"
	fi
	t=$(now_ms)
	qmp "$name" "$QUIT_TIMEOUT" quit
	qemu_wait
	ktap_print_msg "$label: source QEMU: $up, exited ($qemu_rc) $(since "$t") after quit;" \
		"$(since "$t0") in all; $(grep -m1 '^query-migrate:' <<<"$save_info");" \
		"state file: $(stat -c %s "$tmp/$label.state" 2>/dev/null || echo none) bytes"
	return "$rc"
}

# load LABEL DEVICE BACKEND: a QEMU with DEVICE assigned loads the VM from
# $tmp/LABEL.state (-incoming) and, if the load completed, runs it (cont):
# the source was paused, so the VM stays paused after the load and QEMU moves
# the device out of RESUMING, which commits the loaded state, only when the VM
# starts. Sets load_info; returns 0 if the load completed and the VM ran.
load() {
	local label=$1 name=$1-target t0 t up rc
	local -a args

	read -ra args <<<"$(device_args "$2" "$3")"
	t0=$(now_ms)
	qemu_start "$name" -incoming "file:$tmp/$label.state" "${args[@]}"
	qmp "$name" "$START_TIMEOUT" ready
	rc=$?
	up="up (${qmp_out:-no answer}) after $(since "$t0")"
	load_info=$qmp_out
	if [ "$rc" = 0 ]; then
		qmp "$name" "$MIGRATE_TIMEOUT" incoming
		rc=$?
		load_info=$qmp_out
		up+=", load ended $(since "$t0") after the start"
	fi
	if [ "$rc" = 0 ]; then
		t=$(now_ms)
		qmp "$name" "$START_TIMEOUT" cont
		rc=$?
		[ "$qmp_out" = running ] || rc=1
		up+=", cont: ${qmp_out:-no answer} in $(since "$t")"
	fi
	t=$(now_ms)
	running "$qemu_pid" && qmp "$name" "$QUIT_TIMEOUT" quit
	qemu_wait
	ktap_print_msg "$label: target QEMU: $up, exited ($qemu_rc) $(since "$t") later;" \
		"$(since "$t0") in all; $(grep -m1 '^query-migrate:' <<<"$load_info")"
	return "$rc"
}

# same_shape BACKEND N: migrate rmtty-1 x4 (device N) to rmtty-4 (device N+1)
# through BACKEND; five tests.
same_shape() {
	local backend=$1 src tgt src_uuid tgt_uuid seed=$((0x5eed0000 + $2)) ok
	local src_hash tgt_before src_after tgt_after refusals errors

	src=$(rmtty_create 1 "$2" 4) && tgt=$(rmtty_create 4 $(($2 + 1))) ||
		ktap_exit_fail_msg "creating the devices failed"
	src_uuid=$(basename "$src")
	tgt_uuid=$(basename "$tgt")
	"$BAR2" fill "$src_uuid" "$seed" || ktap_exit_fail_msg "filling $src_uuid's memory failed"
	mem_hash "$src_uuid"
	src_hash=$mem
	mem_hash "$tgt_uuid"
	tgt_before=$mem
	ktap_print_msg "$backend: source $src_uuid (rmtty-1 x4) filled with seed $seed, memory hash" \
		"${src_hash:-unknown}; target $tgt_uuid (rmtty-4) memory hash ${tgt_before:-unknown}"

	mark "$backend"
	save "$backend" "$src" "$backend"
	ok=$?
	grep -qx 'Migration status: completed' <<<"$save_info" && [ "$ok" = 0 ]
	result "$backend: QEMU saves the paused VM with rmtty-1 x4 (Migration status: completed)"
	[ "$ok" = 0 ] || msgs "$save_info"
	qemu_report "$backend-source"

	load "$backend" "$tgt" "$backend"
	ok=$?
	result "$backend: another QEMU loads it onto rmtty-4 (incoming migration completed) and runs it"
	[ "$ok" = 0 ] || msgs "$load_info"
	qemu_report "$backend-target"

	mem_hash "$src_uuid"
	src_after=$mem
	mem_hash "$tgt_uuid"
	tgt_after=$mem
	ktap_print_msg "$backend: memory hashes after: source ${src_after:-unknown}, target ${tgt_after:-unknown}"
	[ -n "$src_hash" ] && [ "$src_hash" != "$tgt_before" ] &&
		[ "$src_after" = "$src_hash" ] && [ "$tgt_after" = "$src_hash" ]
	result "$backend: the target's memory is the source's, which the save left as it was"
	[ "$tgt_after" = "$src_hash" ] || msgs "$("$BAR2" verify "$tgt_uuid" "$seed" 2>&1)"

	refusals=$(log_since_mark | grep -F -e "$src_uuid" -e "$tgt_uuid" | grep -F refused)
	[ -z "$refusals" ]
	result "$backend: neither device refused a request of QEMU's"
	msgs "$refusals"

	errors=$(qemu_errors "$backend-source"; qemu_errors "$backend-target")
	[ -z "$errors" ]
	result "$backend: QEMU printed no error"
	msgs "$errors"

	echo 1 >"$src/remove" && echo 1 >"$tgt/remove" ||
		ktap_exit_fail_msg "removing the devices failed"
}

same_shape container 1
same_shape iommufd 3

# Another shape: rmtty-1 x4 (4 MiB) to rmtty-2 (2 MiB), through the container.
label=shape
src=$(rmtty_create 1 5 4) && tgt=$(rmtty_create 2 6) ||
	ktap_exit_fail_msg "creating the devices failed"
src_uuid=$(basename "$src")
tgt_uuid=$(basename "$tgt")
seed=0x5eed0005
"$BAR2" fill "$src_uuid" "$seed" || ktap_exit_fail_msg "filling $src_uuid's memory failed"
"$BAR2" fill "$tgt_uuid" 0x5eed0006 || ktap_exit_fail_msg "filling $tgt_uuid's memory failed"
mem_hash "$tgt_uuid"
tgt_before=$mem
ktap_print_msg "$label: source $src_uuid (rmtty-1 x4, 4 MiB), target $tgt_uuid (rmtty-2, 2 MiB)" \
	"with memory hash ${tgt_before:-unknown}"

mark "$label"
save "$label" "$src" container
ok=$?
grep -qx 'Migration status: completed' <<<"$save_info" && [ "$ok" = 0 ]
result "$label: QEMU saves the paused VM with rmtty-1 x4 (Migration status: completed)"
[ "$ok" = 0 ] || msgs "$save_info"
qemu_report "$label-source"

load "$label" "$tgt" container
ok=$?
errors=$(qemu_errors "$label-target")
[ "$ok" != 0 ] && [ "$qemu_rc" != 0 ] && [ "$qemu_rc" != killed ] && [ -n "$errors" ]
result "$label: another QEMU fails to load it onto rmtty-2, with an error (exit status $qemu_rc)"
msgs "$load_info"
qemu_report "$label-target"

refusals=$(log_since_mark | grep -F -e "$src_uuid" -e "$tgt_uuid" | grep -F refused)
grep -qF "$tgt_uuid: migration stream refused: shape 1 port(s) and 4 MiB, this device has 1 port(s) and 2 MiB" <<<"$refusals"
result "$label: the target refuses the stream for its shape (kernel log)"
msgs "$refusals"

mem_hash "$tgt_uuid"
tgt_after=$mem
[ -n "$tgt_before" ] && [ "$tgt_after" = "$tgt_before" ]
result "$label: the target's memory is as it was before"
ktap_print_msg "$label: target memory hash after: ${tgt_after:-unknown}"

echo 1 >"$src/remove" && echo 1 >"$tgt/remove" || ktap_exit_fail_msg "removing the devices failed"

rmtty_finish
