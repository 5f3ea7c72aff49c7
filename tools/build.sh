#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build everything that is missing: dependencies, the test kernel, rmtty.ko
# and the selftests with their kselftest install layout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$RMTTY_TOP"/tools/deps.sh
"$RMTTY_TOP"/tools/kernel.sh
kernel_paths

# Always from clean (seconds), so that its warnings are seen and recorded for
# the test command; the compiler's and objtool's warnings follow a file name.
module() {
	local out=$RMTTY_BUILD/module.out
	mkdir -p "$RMTTY_BUILD"
	kmake M="$RMTTY_TOP" CLIPPY=1 clean
	kmake M="$RMTTY_TOP" CLIPPY=1 modules 2>&1 | tee "$out"
	[ "${PIPESTATUS[0]}" = 0 ] || return 1
	grep -A8 -E '(^|: )(warning|error)' "$out" >"$RMTTY_BUILD/module.warnings" || true
}

# The kselftest runner comes from the kernel tree; the tests are ours.
selftests() {
	local ksft=$RMTTY_BUILD/ksft
	make -C "$RMTTY_TOP/selftests/rmtty" KSRC="$KSRC" KHDR="$KOUT/usr/include" \
		OUTPUT="$RMTTY_BUILD/selftests"
	rm -rf "$ksft"
	mkdir -p "$ksft/kselftest" "$ksft/rmtty"
	cp "$KSRC/tools/testing/selftests/run_kselftest.sh" "$ksft/"
	cp "$KSRC"/tools/testing/selftests/kselftest/{runner.sh,ktap_helpers.sh,prefix.pl,module.sh} \
		"$ksft/kselftest/"
	make -C "$RMTTY_TOP/selftests/rmtty" KSRC="$KSRC" KHDR="$KOUT/usr/include" \
		OUTPUT="$RMTTY_BUILD/selftests" INSTALL_PATH="$ksft/rmtty" install
	make -s --no-print-directory -C "$RMTTY_TOP/selftests/rmtty" list | sed 's/^/rmtty:/' \
		>"$ksft/kselftest-list.txt"
}

# Userspace tools, for the host and, through the shared file system, the guest.
tools() {
	cargo build --release --manifest-path "$RMTTY_TOP/tools/Cargo.toml"
}

echo "rmtty: module and selftests"
step "build rmtty.ko (CLIPPY=1)" module
step "build selftests" selftests
step "build tools (cargo)" tools
