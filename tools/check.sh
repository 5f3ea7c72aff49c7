#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The test command: build whatever is missing, run the host checks (rustfmt,
# clippy warnings) and the whole kselftest suite in one guest boot. Prints
# TAP and ends with the line "N passed, N failed"; exits non-zero on any
# failure.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

log=$RMTTY_BUILD/check.log
mkdir -p "$RMTTY_BUILD"
: >"$log"

# Counts every test case (the harness's "# ok N" lines) and every check
# ("ok - "), not the runner's one line per test program.
summary() {
	local passed failed skipped results
	results=$(grep -E '^(# )?(not )?ok [0-9-]' "$log" | grep -v ' selftests: ')
	passed=$(grep -cE '^(# )?ok ' <<<"$results")
	skipped=$(grep -cE '^(# )?ok .*# SKIP' <<<"$results")
	failed=$(grep -cE '^(# )?not ok ' <<<"$results")
	[ "$1" != 0 ] && [ "$failed" = 0 ] && failed=1
	echo "$((passed - skipped)) passed, $failed failed, $skipped skipped"
	[ "$failed" = 0 ]
}

if ! "$RMTTY_TOP"/tools/build.sh; then
	echo "not ok - build" | tee -a "$log"
	summary 1
	exit 1
fi
kernel_paths

# tap OK NAME [DETAILS]: one host check as a TAP line.
tap() {
	if [ "$1" = 0 ]; then
		echo "ok - $2"
	else
		echo "not ok - $2"
		[ -n "${3:-}" ] && printf '%s\n' "$3" | sed 's/^/#   /'
	fi | tee -a "$log"
}

echo "TAP version 13"
rust_files=$(cd "$RMTTY_TOP" && git ls-files 'rust/*.rs' 'samples/*.rs' 2>/dev/null || find rust samples -name '*.rs')
out=$(cd "$RMTTY_TOP" && rustfmt --check --edition 2021 --config-path "$KSRC/.rustfmt.toml" $rust_files 2>&1)
tap $? "rustfmt --check on the kernel's Rust files" "$out"
out=$(cargo fmt --manifest-path "$RMTTY_TOP/tools/Cargo.toml" --all --check 2>&1)
tap $? "cargo fmt --check on tools/" "$out"

# Clippy and objtool: warnings recorded when the module and the kernel crate
# were built.
warnings=$(cat "$RMTTY_BUILD/module.warnings" 2>/dev/null || echo "no record of the module's build")
[ -z "$warnings" ] && [ -e "$RMTTY_KO" ]
tap $? "rmtty.ko builds without warnings with CLIPPY=1" "$warnings"
warnings=$(cat "$KCACHE/abstractions.warnings" 2>/dev/null || echo "no record of the kernel crate's build")
[ -z "$warnings" ]
tap $? "Rust abstractions build without warnings with CLIPPY=1" "$warnings"

# The userspace tools: their unit tests, one TAP line each, and clippy.
out=$(cargo test --manifest-path "$RMTTY_TOP/tools/Cargo.toml" 2>&1)
rc=$?
sed -n 's/^test \(.*\) \.\.\. ok$/ok - cargo test: \1/p; s/^test \(.*\) \.\.\. FAILED$/not ok - cargo test: \1/p' \
	<<<"$out" | tee -a "$log"
tap $rc "cargo test of tools/" "$(grep -A20 -E '^(error|failures:)' <<<"$out")"
out=$(cargo clippy --manifest-path "$RMTTY_TOP/tools/Cargo.toml" --all-targets -- -D warnings 2>&1)
tap $? "tools/ build without clippy warnings" "$out"

run_guest "$RMTTY_TOP/tools/guest/tests.sh" | tee -a "$log"
rc=${PIPESTATUS[0]}
summary "$rc"
