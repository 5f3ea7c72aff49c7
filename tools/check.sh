#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The test command: build whatever is missing, run the host checks (rustfmt,
# clippy warnings) and the whole kselftest suite in one guest boot, then
# check what the guest left: every test program's result and the whole
# kernel log. Prints TAP and ends with the line "N passed, N failed"; exits
# non-zero on any failure.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

log=$RMTTY_BUILD/check.log
mkdir -p "$RMTTY_BUILD"
: >"$log"

# Counts every test case (the harness's "# ok N" lines) and every check
# ("ok - "). The runner's one line per program is not counted here: the
# program accounting below turns each program's outcome into a check.
summary() {
	local passed failed skipped results
	results=$(grep -E '^(# )?(not )?ok [0-9-]' "$log" | grep -v ' selftests: ')
	passed=$(grep -cE '^(# )?ok ' <<<"$results")
	skipped=$(grep -E '^(# )?ok .*# SKIP' <<<"$results")
	failed=$(grep -cE '^(# )?not ok ' <<<"$results")
	[ "$1" != 0 ] && [ "$failed" = 0 ] && failed=1
	if [ -n "$skipped" ]; then
		echo "skipped: $(grep -c . <<<"$skipped") (not counted as passed):"
		sed 's/^/  /' <<<"$skipped"
	fi
	echo "$((passed - $(grep -c . <<<"$skipped"))) passed, $failed failed"
	[ "$failed" = 0 ]
}

# The nested guests' kernel may go on building while the suite runs: see
# tools/kernel.sh; the end of this script checks it was built, and a build
# still running when this script ends for any reason is stopped.
export RMTTY_NESTED_BACKGROUND=1
trap stop_nested_build EXIT
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
	return "$1"
}

echo "TAP version 13"
rust_files=$(cd "$RMTTY_TOP" && git ls-files 'rust/*.rs' 'samples/*.rs' 'selftests/*.rs' 2>/dev/null ||
	     find rust samples selftests -name '*.rs')
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

# The anonymous-inode files' file_operations belong to the kernel crate: a
# module that references their callbacks carries its own copy of the table,
# which the VFS reads after the file's release dropped the module.
out=$(llvm-nm$RMTTY_LLVM "$RMTTY_KO" 2>&1 | grep -E ' U .*10anon_inode[0-9]+[a-z_]+_callback$')
[ -z "$out" ] && [ -e "$RMTTY_KO" ]
tap $? "rmtty.ko carries no copy of the anonymous-inode files' file_operations" "$out"

# The userspace tools: their unit tests, one TAP line each, and clippy.
# In the release profile: on the crates the build step compiled already.
out=$(cargo test --release --manifest-path "$RMTTY_TOP/tools/Cargo.toml" 2>&1)
rc=$?
sed -n 's/^test \(.*\) \.\.\. ok$/ok - cargo test: \1/p; s/^test \(.*\) \.\.\. FAILED$/not ok - cargo test: \1/p' \
	<<<"$out" | tee -a "$log"
tap $rc "cargo test of tools/" "$(grep -A20 -E '^(error|failures:)' <<<"$out")"
out=$(cargo clippy --manifest-path "$RMTTY_TOP/tools/Cargo.toml" --all-targets -- -D warnings 2>&1)
tap $? "tools/ build without clippy warnings" "$out"

# RMTTY_TESTS='prog ...' runs only those programs (by hand, while working on
# them); the accounting below still counts the others as not run.
# RMTTY_PROGRAMS='prog ...' makes those programs the whole run (make fuzz).
# RMTTY_PLANT=kasan|ubsan plants an out-of-bounds access first (see
# selftests/rmtty/modules/rmtty_plant.c): the run must fail.
# RMTTY_FUZZ_CASES and RMTTY_FUZZ_SEED reach the fuzzers, RMTTY_RACE_SECONDS
# the race tests.
guest_log=$RMTTY_BUILD/guest.log
guest_vars=
for var in RMTTY_PLANT RMTTY_FUZZ_CASES RMTTY_FUZZ_SEED RMTTY_RACE_SECONDS; do
	guest_vars+="$var=$(sh_quote "${!var:-}") "
done
guest_vars+="RMTTY_TESTS=$(sh_quote "${RMTTY_PROGRAMS:-${RMTTY_TESTS:-}}")"
# The kernel crate's doctests run as a KUnit suite in this boot only; not
# those of files whose name starts with a t: upstream's rust/kernel/time/
# hrtimer.rs examples set up hrtimers on the stack without the debug-objects
# annotation, which DEBUG_OBJECTS_TIMERS reports as a WARNING ("object is on
# stack, but NOT annotated"). A KUnit filter is one glob.
RMTTY_GUEST_APPEND="kunit.enable=1 kunit.filter_glob=rust_doctests_kernel.rust_doctest_kernel_[!t]*" \
	run_guest "$guest_vars $(sh_quote "$RMTTY_TOP/tools/guest/tests.sh")" |
	tee "$guest_log" | tee -a "$log"
rc=${PIPESTATUS[0]}

# Every program the selftests' Makefile lists must have run to its end: a
# result from the runner, a plan, and at least as many cases as the plan
# promised. A program that failed outside its cases (a crash, a timeout, a
# failing exit status) is a failure of its own.
programs=${RMTTY_PROGRAMS:-$(make -s --no-print-directory -C "$RMTTY_TOP/selftests/rmtty" list)}
programs=$(tr -s ' ' '\n' <<<"$programs")
awk -v programs="$programs" '
	function name_of(line) {
		sub(/^.*selftests: rmtty: /, "", line)
		sub(/[[:space:]].*$/, "", line)
		return line
	}
	/^# selftests: rmtty: / { prog = name_of($0); started[prog] = 1; next }
	/^(not )?ok [0-9]+ selftests: rmtty: / {
		p = name_of($0)
		result[p] = $0
		prog = ""
		next
	}
	prog != "" && /^# 1\.\.[0-9]+/ && !(prog in plan) {
		plan[prog] = $2
		sub(/^1\.\./, "", plan[prog])
		plan[prog] += 0
		if ($0 ~ /# SKIP/) {
			skip[prog] = $0
			sub(/^.*# SKIP */, "", skip[prog])
		}
		next
	}
	prog != "" && /^# (not )?ok [0-9]+/ {
		cases[prog]++
		if ($2 == "not")
			failed[prog]++
	}
	END {
		n = split(programs, want, "\n")
		ran = 0
		for (i = 1; i <= n; i++) {
			p = want[i]
			c = cases[p] + 0
			if (!(p in result)) {
				printf "not ok - program %s: no result%s\n", p,
				       (p in started) ? " (it started and never ended)" : " (it did not run)"
				continue
			}
			ran++
			if (!(p in plan)) {
				printf "not ok - program %s: no plan\n", p
			} else if (p in skip) {
				printf "ok - program %s: skipped all its cases # SKIP %s\n", p, skip[p]
			} else if (c < plan[p]) {
				printf "not ok - program %s: %d of the %d cases it planned\n", p, c, plan[p]
			} else if (result[p] ~ /^not ok/ && !failed[p]) {
				printf "not ok - program %s: failed outside its cases\n#   %s\n", p, result[p]
			} else {
				printf "ok - program %s: %d of %d planned cases reported\n", p, c, plan[p]
			}
		}
		printf "# programs: %d of %d ran to a result\n", ran, n
	}' "$guest_log" | tee -a "$log"

# Each program's wall time, and the three slowest: a slow test is seen the
# day it is added.
times=$(sed -n 's/^# rmtty: time \([^ ]*\) \([0-9]*\)$/\2 \1/p' "$guest_log")
if [ -n "$times" ]; then
	{
		echo "# program times (s):"
		awk '{ printf "#   %5d  %s\n", $1, $2 }' <<<"$times"
		echo "# slowest: $(sort -rn <<<"$times" | head -n 3 |
			awk '{ printf "%s%s %d s", sep, $2, $1; sep = ", " }')"
		echo "# the suite: $(awk '{ s += $1 } END { print s }' <<<"$times") s"
	} | tee -a "$log"
fi

# The nested guests' kernel was built (during the suite, if it was not
# before): the live migration tests used it. Wait for a build still running
# (the guest may have ended early), at most as long as those tests would.
waited=0
while [ ! -e "$RMTTY_NESTED_DIR/bzImage" ] && [ ! -e "$RMTTY_NESTED_DIR/failed" ] &&
      [ "$waited" -lt "${RMTTY_NESTED_WAIT:-900}" ]; do
	sleep 5
	waited=$((waited + 5))
done
[ -e "$RMTTY_NESTED_DIR/bzImage" ]
tap $? "the nested guests' kernel is built" "$(tail -n 20 "$RMTTY_NESTED_DIR/build.log" 2>/dev/null)"

# The kernel crate's doctests ran at boot (KUnit's rust_doctests_kernel):
# none failed, and every example in the abstractions' files ran and passed,
# as many as those files hold: the code blocks of their rustdoc that are
# Rust (a fence of ``` or ```rust opens one).
kmsg=$RMTTY_GUEST_OUT/kmsg.log
abstraction_files=$(cd "$RMTTY_TOP/rust/kernel" && find . -name '*.rs' | sed 's|^\./||' | sort)
examples=$(cd "$RMTTY_TOP/rust/kernel" && awk '
	/^ *\/\/[\/!] ```/ {
		if (!open && $0 ~ /```(rust)?$/)
			n++
		open = !open
	}
	END { print n + 0 }' $abstraction_files)
# A test is named rust_doctest_kernel_<its file's path in rust/kernel, _ for
# / and .>_<n>.
doctest_names=$(sed 's|[/.]|_|g' <<<"$abstraction_files" | paste -sd'|')
doctests=$(grep -oE '(not )?ok [0-9]+ rust_doctest_kernel_[a-z0-9_]+' "$kmsg" 2>/dev/null)
passed=$(grep -E "^ok [0-9]+ rust_doctest_kernel_(${doctest_names})_[0-9]+$" <<<"$doctests" |
	 grep -c .)
failed=$(grep '^not ok' <<<"$doctests")
[ -z "$failed" ] && [ -n "$doctests" ]
tap $? "the kernel crate's doctests pass ($(grep -c . <<<"$doctests") run)" "${failed:-none ran}"
[ "$passed" = "$examples" ] && [ "$examples" -gt 0 ]
tap $? "the abstractions' $examples examples ran as doctests and passed ($passed)"

# The guest's whole kernel log, from boot to the end of the suite: anything
# the debug options report is a failure of the run, whatever caused it.
# Lockdep reports start with "WARNING:" or "INFO:" (its boot banner must not
# match); RCU stalls, hung tasks and lockups have their own words.
grep -q 'Linux version' "$kmsg" 2>/dev/null && grep -q 'rmtty: end of the test run' "$kmsg"
tap $? "the guest's kernel log was kept from boot to the end of the suite" \
	"$kmsg does not hold both the boot banner and the end of the run"
splats=$(grep -E 'WARNING:|BUG:|kernel BUG at|Oops|INFO: (possible|trying|task .* blocked)|blocked for more than|DEBUG_LOCKS_WARN_ON|refcount_t:|KASAN|UBSAN|general protection fault|detected stalls|self-detected stall|soft lockup|hard LOCKUP|panicked at|Kernel panic' \
	 "$kmsg" 2>/dev/null)
# One report is not counted, and is shown: an interrupt taken in the first
# milliseconds of the boot, during identify_cpu() and long before init, some
# module or test runs, makes KASAN report a "wild-memory-access in
# do_raw_spin_lock" from handle_edge_irq (3 of 7 boots of this kernel under
# TCG, December 2026; not understood yet, see the README). Only that report,
# and only before the kernel frees its init memory, is left out.
early=$(awk '/Freeing unused kernel image/ { exit } { print }' "$kmsg" 2>/dev/null |
	grep -F 'BUG: KASAN: wild-memory-access in do_raw_spin_lock')
if [ -n "$early" ] && grep -A20 -F "$early" "$kmsg" | grep -q handle_edge_irq; then
	echo "# the early-boot KASAN report, not counted: $early" | tee -a "$log"
	splats=$(grep -v -x -F "$early" <<<"$splats")
fi
grep -q 'KernelAddressSanitizer initialized' "$kmsg" 2>/dev/null
tap $? "the guest kernel ran with KASAN (its boot log says so)"
tap $(( ${#splats} != 0 )) "guest kernel log has no splat" "$splats" || {
	# The context of the first one.
	grep -m1 -B5 -A40 -F "$(head -n1 <<<"$splats")" "$kmsg" | sed 's/^/#   /' | tee -a "$log"
}

summary "$rc"
