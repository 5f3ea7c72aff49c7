#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# One live migration for rmtty_bench's QEMU figures, not a test:
#   rmtty_bench_qemu.sh SOURCE TARGET
# QEMU 10 runs a VM (q35, 64 MiB, the firmware alone: no disk, no OS) with
# the mdev SOURCE (its sysfs path) assigned, migratable, and migrates it
# live over a unix socket to a QEMU started with -incoming and the mdev
# TARGET. Prints rmtty_qmp.py's report, whose query-migrate line has QEMU's
# own total-time and downtime in ms; exits 0 only if the migration
# completed and the target runs. The QEMU helpers are rmtty_lib.sh's.

. "$(dirname "$0")/rmtty_lib.sh"

[ $# = 2 ] || { echo "usage: $0 SOURCE TARGET" >&2; exit 2; }
rmtty_qemu_setup 10

# Without x-device-dirty-page-tracking=off QEMU tracks the VM's memory through
# a device that has DMA logging ops, which mtty has (stubs) and rmtty has not,
# and mtty's fail the migration ("Failed to get DMA logging report:
# Operation not supported"). Off, both drivers' migrations take the same path.
device() {
	echo "vfio-pci,sysfsdev=$1,$QEMU_MIGRATION,x-device-dirty-page-tracking=off"
}

qemu_start target -machine q35 -m 64 -device "$(device "$2")" -incoming "unix:$tmp/migration.sock"
qemu_start source -machine q35 -m 64 -device "$(device "$1")"
rc=0
# A QEMU answers on its QMP socket once its -incoming socket listens.
if ! { qmp target "$START_TIMEOUT" ready && qmp source "$START_TIMEOUT" ready; }; then
	echo "a QEMU did not come up: $qmp_out"
	rc=1
fi
if [ "$rc" = 0 ]; then
	qmp source "$MIGRATE_TIMEOUT" migrate "unix:$tmp/migration.sock"
	rc=$?
	printf '%s\n' "$qmp_out"
fi
if [ "$rc" = 0 ]; then
	qmp target "$MIGRATE_TIMEOUT" incoming && qmp target 60 ready &&
		[ "$qmp_out" = running ]
	rc=$?
	[ "$rc" = 0 ] || echo "the target: $qmp_out"
fi
for name in source target; do
	qemu_running "$name" && qmp "$name" "$QUIT_TIMEOUT" quit
	qemu_wait "$name" "$QUIT_TIMEOUT"
done
[ "$rc" = 0 ] || { qemu_report source; qemu_report target; }
exit "$rc"
