#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# QEMU 7.2, the last QEMU that speaks VFIO's v1 migration protocol, migrates
# rmtty devices through their v1 migration region
# (-device vfio-pci,sysfsdev=...,x-enable-migration=on):
#   - as in rmtty_qemu10_migration_test.sh, a paused VM with an rmtty-1 x4
#     device is saved to a file by one QEMU and loaded from it onto an rmtty-4
#     by another, which then runs it; the target's memory must hold the
#     source's, its UART and configuration space the values the test set on
#     the source, and neither device may refuse a request. A target of another
#     shape (rmtty-2) must refuse the stream, and QEMU must fail the load.
#     QEMU 7.2 has no file: migration (8.2 brought it): the stream goes
#     through `exec:cat`;
#   - a running VM with an rmtty-2 device is snapshotted into a qcow2 disk
#     (HMP savevm); with QEMU gone, the device's memory is overwritten; another
#     QEMU's running VM then restores the snapshot (HMP loadvm), which must
#     bring the memory back;
#   - the kernel logs no splat meanwhile.
# QEMU 7.2 assigns devices through the group and a type1 container only: it
# has no iommufd backend, and its v1 migration needs the container's dirty
# page tracking (iommufd's compat container has none). Its binary and data
# are the prefix tools/deps.sh unpacks (RMTTY_QEMU72).

. "$(dirname "$0")/rmtty_lib.sh"

BAR2=$(cd "$(dirname "$0")" && pwd)/rmtty_bar2
SNAPSHOT=rmtty

ktap_print_header
# All of these are part of the test setup: without them the run is broken.
rmtty_qemu_setup 7.2
[ -x "$BAR2" ] || ktap_exit_fail_msg "$BAR2 is missing: it is built and installed with the tests"
command -v qemu-img >/dev/null || ktap_exit_fail_msg "qemu-img is not installed"
rmtty_reload
# Seven tests for the same shape, four for another shape, four for the
# snapshot, the kernel log, and the unload
ktap_set_plan 17

# The splat check reads the kernel log from here on.
rmtty_log_mark "$(basename "$0" .sh): the tests start"
first_mark=$rmtty_mark
migration_same_shape container 1
migration_other_shape 3

# snapshot_hmp NAME DEVICE COMMAND: a QEMU NAME with DEVICE assigned and the
# test's disk runs its VM and, once the VM runs, HMP COMMAND; hmp_out is what
# COMMAND printed. Returns 0 if COMMAND printed nothing (HMP's way to
# succeed) and the VM was running before and after it.
snapshot_hmp() {
	local name=$1 t0 t up rc

	t0=$(now_ms)
	qemu_start "$name" -machine q35 -m 64 \
		-drive "file=$tmp/disk.qcow2,if=none,id=disk0,format=qcow2" \
		-device "vfio-pci,sysfsdev=$2,$QEMU_MIGRATION"
	qmp "$name" "$START_TIMEOUT" ready
	rc=$?
	[ "$qmp_out" = running ] || rc=1
	up="up (${qmp_out:-no answer}) after $(since "$t0")"
	hmp_out=
	if [ "$rc" = 0 ]; then
		t=$(now_ms)
		qmp "$name" "$MIGRATE_TIMEOUT" hmp "$3"
		rc=$?
		hmp_out=$qmp_out
		[ -z "$hmp_out" ] || rc=1
		up+=", $3 in $(since "$t")"
		qmp "$name" "$START_TIMEOUT" ready
		[ "$qmp_out" = running ] || rc=1
		up+=", then ${qmp_out:-no answer}"
	fi
	t=$(now_ms)
	qmp "$name" "$QUIT_TIMEOUT" quit
	qemu_wait "$name" "$QUIT_TIMEOUT"
	ktap_print_msg "$name: QEMU $up, exited ($qemu_rc) $(since "$t") after quit; $(since "$t0") in all"
	qemu_report "$name"
	return "$rc"
}

label=snapshot
dev=$(rmtty_create 2 5) || ktap_exit_fail_msg "creating the device failed"
uuid=$(basename "$dev")
qemu-img create -q -f qcow2 "$tmp/disk.qcow2" 16M || ktap_exit_fail_msg "qemu-img create failed"
"$BAR2" fill "$uuid" 0x5eed0005 || ktap_exit_fail_msg "filling $uuid's memory failed"
mem_hash "$uuid"
saved=$mem
ktap_print_msg "$label: device $uuid (rmtty-2) filled with seed 0x5eed0005, memory hash ${saved:-unknown}"

rmtty_log_mark "$(basename "$0" .sh): $label: the QEMUs start"
snapshot_hmp savevm "$dev" "savevm $SNAPSHOT"
ok=$?
snapshots=$(qemu-img snapshot -l "$tmp/disk.qcow2" 2>&1)
[ "$ok" = 0 ] && grep -qw "$SNAPSHOT" <<<"$snapshots"
result "$label: QEMU snapshots the running VM with rmtty-2 (HMP savevm) into its disk"
msgs "$hmp_out"
msgs "$snapshots"

"$BAR2" fill "$uuid" 0x5eed0006 || ktap_exit_fail_msg "filling $uuid's memory failed"
mem_hash "$uuid"
overwritten=$mem
snapshot_hmp loadvm "$dev" "loadvm $SNAPSHOT"
ok=$?
[ "$ok" = 0 ]
result "$label: another QEMU's running VM restores the snapshot (HMP loadvm) and runs on"
msgs "$hmp_out"

mem_hash "$uuid"
[ -n "$saved" ] && [ "$overwritten" != "$saved" ] && [ "$mem" = "$saved" ]
result "$label: the device's memory is the snapshot's again"
ktap_print_msg "$label: memory hash overwritten ${overwritten:-unknown}, after loadvm ${mem:-unknown}"
[ "$mem" = "$saved" ] || msgs "$("$BAR2" verify "$uuid" 0x5eed0005 2>&1)"

refusals=$(rmtty_refusals "$uuid")
ok=$?
errors=$(qemu_errors savevm; qemu_errors loadvm)
[ "$ok" = 0 ] && [ -z "$refusals" ] && [ -z "$errors" ]
result "$label: the device refused none of QEMU's requests, and QEMU printed no error"
msgs "$refusals"
msgs "$errors"

echo 1 >"$dev/remove" || ktap_exit_fail_msg "removing the device failed"

splats=$(rmtty_log_since_mark "$first_mark" |
	grep -E 'WARNING:|BUG:|Oops|INFO: possible|refcount_t:|UBSAN|KASAN|Call Trace')
# The mark must still be in the log for its absence of splats to mean anything.
dmesg | grep -qF "$first_mark" && [ -z "$splats" ]
result "the kernel logged no splat while the QEMUs ran"
msgs "$splats"

rmtty_finish
