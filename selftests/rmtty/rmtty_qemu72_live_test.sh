#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# QEMU 7.2 migrates a running nested guest, whose 8250_pci driver drives an
# rmtty device, live through VFIO's v1 migration region
# (-device vfio-pci,sysfsdev=...,x-enable-migration=on, through the group and
# a type1 container); see rmtty_live.sh.

. "$(dirname "$0")/rmtty_live.sh" 7.2
