#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# QEMU 10 migrates a running nested guest, whose 8250_pci driver drives an
# rmtty device, live through VFIO's v2 protocol
# (-device vfio-pci,sysfsdev=...,enable-migration=on); see rmtty_live.sh.

. "$(dirname "$0")/rmtty_live.sh" 10
