#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The main job: build whatever is missing, boot the test kernel in a guest,
# load rmtty, create one device of each type and show them. From a terminal
# the guest then stays up with a root shell; otherwise it powers off and the
# job exits with the demo's status.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$RMTTY_TOP"/tools/build.sh
kernel_paths

demo=$RMTTY_TOP/tools/guest/demo.sh
if [ -t 0 ] && [ -t 1 ]; then
	echo "rmtty: booting the guest; 'exit' or Ctrl-D powers it off"
	exec vng --disable-kvm --run "$KOUT" --memory 2G --cpus 2 --append root=/dev/root \
		--exec "$(guest_env); $(sh_quote "$demo"); exec bash -i"
fi
run_guest "$demo"
