#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Run a shell command as root in a guest booted on the test kernel, with
# rmtty.ko built (not loaded), and exit with the command's status.
#
# Usage: guest.sh CMD
set -euo pipefail
. "$(dirname "$0")/lib.sh"
[ $# = 1 ] && [ -n "$1" ] || die "usage: make guest CMD='shell command'"

"$RMTTY_TOP"/tools/build.sh >&2
kernel_paths
run_guest "$1"
