#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# QEMU 10 migrates rmtty devices through the VFIO v2 protocol: a paused VM
# with a device assigned (-device vfio-pci,sysfsdev=...,enable-migration=on)
# is saved to a file by one QEMU and loaded from it by another, onto a
# device of the same shape but another type (rmtty-1 x4 to rmtty-4), through
# the group with a type1 container and through iommufd; the target's memory
# (filled with another pattern before) must then hold the source's, its UART
# and configuration space the values the test gave the source's through QEMU
# (none of them power-on's), and neither device may refuse a request. A
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

BAR2=$(cd "$(dirname "$0")" && pwd)/rmtty_bar2

ktap_print_header
# All of these are part of the test setup: without them the run is broken.
rmtty_qemu_setup 10
[ -x "$BAR2" ] || ktap_exit_fail_msg "$BAR2 is missing: it is built and installed with the tests"
rmtty_reload
# Seven tests for each of two backends, four for a target of another shape,
# and the unload
ktap_set_plan 19

migration_same_shape container 1
migration_same_shape iommufd 3
# Another shape: rmtty-1 x4 (4 MiB) to rmtty-2 (2 MiB), through the container.
migration_other_shape 5

rmtty_finish
