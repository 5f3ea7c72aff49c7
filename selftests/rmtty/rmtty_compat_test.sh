#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# rmtty-compat's predictions against the kernel's verdicts: every source
# string of a matrix of device shapes (writing stream 1.1, the default, and
# set to 1.0 through stream_version), type nodes, malformed strings and other
# versions is written to device nodes (in both modes) and type nodes, and the
# kernel's verdict must be what `rmtty-compat check` predicted from the
# strings alone. Then rmtty-compat's hint for a source newer than its target
# must make the target accept it.

. "$(dirname "$0")/rmtty_lib.sh"

ktap_print_header
# rmtty-compat is built with the module: without it, the run is broken.
[ -x "${RMTTY_COMPAT:-}" ] ||
	ktap_exit_fail_msg "RMTTY_COMPAT='${RMTTY_COMPAT:-}' is not the rmtty-compat program"
rmtty_reload units=16 unit_mib=1

# Device shapes as type:aggregation; all fit in 16 units one at a time.
shapes=(1:1 1:2 1:3 1:4 1:5 1:8 1:16 2:1 2:2 2:3 2:4 2:8 4:1 4:2 4:3 4:4)
# Those whose string is also taken from a device set to stream 1.0
older=(1:1 1:4 2:2 4:1 4:4)

sources=()
for i in "${!shapes[@]}"; do
	IFS=: read -r t a <<<"${shapes[$i]}"
	dev=$(rmtty_create "$t" "$i" "$a") || ktap_exit_fail_msg "cannot create rmtty-$t x$a"
	sources+=("$(read_exact "$dev/migration_version")")
	if [[ " ${older[*]} " == *" ${shapes[$i]} "* ]]; then
		echo 1.0 >"$dev/stream_version" ||
			ktap_exit_fail_msg "cannot set rmtty-$t x$a to stream 1.0"
		sources+=("$(read_exact "$dev/migration_version")")
	fi
	echo 1 >"$dev/remove"
done
for t in 1 2 4; do
	sources+=("$(read_exact "$RMTTY_TYPES/rmtty-$t/migration_version")")
done
long=$(printf 'rmtty 1.0 ports=1 memory_mib=4 unit_mib=1%1100s' '')
sources+=(
	$'\n'
	"$long"
	$'rmtty 1.0 ports=1 memory_mib=\xc3\xa9 unit_mib=1'
	'mtty 1.0 ports=1 memory_mib=4 unit_mib=1'
	'rmtty 2.0 ports=1 memory_mib=4 unit_mib=1'
	'rmtty 1.1 ports=1 memory_mib=4 unit_mib=1'
	'rmtty 1.2 ports=1 memory_mib=4 unit_mib=1'
	'rmtty 1.0 ports=1 memory_mib=4 unit_mib=1'
	'rmtty 1.0 ports=1 memory_mib=4 unit_mib=2'
	'rmtty 1.0 ports=2 memory_mib=4 unit_mib=1'
	'rmtty 1.0 ports=1 memory_mib=4x unit_mib=1'
	'rmtty 1.0 ports=1 memory_mib=4'
	'rmtty 1.0 ports=1 memory_mib=4 memory_mib=4 unit_mib=1'
	'rmtty 1.0 ports=1 memory_mib=4 unit_mib=1 colour=blue'
	'rmtty 1.0 ports=1 memory_mib=6 unit_mib=1 max_aggregation=3'
	'rmtty 1.0 ports=1 memory_mib=999999999 unit_mib=1'
)

pairs=0
# check_target NAME ATTR: write every source to ATTR and compare the
# kernel's verdicts with the predictions for the string ATTR reads.
check_target() {
	local name=$1 attr=$2 i predictions kernel predicted bad=0

	mapfile -t predictions < <(printf '%s\0' "${sources[@]}" |
		"$RMTTY_COMPAT" check - "$(read_exact "$attr")")
	[ "${#predictions[@]}" = "${#sources[@]}" ] || bad=1
	for i in "${!sources[@]}"; do
		printf '%s' "${sources[$i]}" 2>/dev/null >"$attr"
		kernel=$?
		case "${predictions[$i]:-}" in
		compatible*) predicted=0 ;;
		incompatible*) predicted=1 ;;
		*) predicted="none" ;;
		esac
		pairs=$((pairs + 1))
		if [ "$predicted" != "$kernel" ]; then
			ktap_print_msg "$name: predicted '${predictions[$i]:-}', kernel $kernel for '${sources[$i]}'"
			bad=1
		fi
	done
	[ "$bad" = 0 ]
	result "prediction == verdict, ${#sources[@]} sources to $name"
}

# A result for each target (each shape in both modes, each type), two for the
# hint, and one for the unload
ktap_set_plan $((2 * ${#shapes[@]} + 3 + 2 + 1))
for i in "${!shapes[@]}"; do
	IFS=: read -r t a <<<"${shapes[$i]}"
	dev=$(rmtty_create "$t" "$i" "$a") || ktap_exit_fail_msg "cannot create rmtty-$t x$a"
	check_target "device rmtty-$t x$a" "$dev/migration_version"
	echo 1.0 >"$dev/stream_version" || ktap_exit_fail_msg "cannot set rmtty-$t x$a to stream 1.0"
	check_target "device rmtty-$t x$a set to stream 1.0" "$dev/migration_version"
	echo 1 >"$dev/remove"
done
for t in 1 2 4; do
	check_target "type rmtty-$t" "$RMTTY_TYPES/rmtty-$t/migration_version"
done
ktap_print_msg "$pairs pairs of ${#sources[@]} sources and $((2 * ${#shapes[@]} + 3)) targets checked"

# A 1.1 source and a target set to 1.0: refused, and the prediction says
# what to do; done, the target accepts the source's string.
src=$(rmtty_create 4 100) && dst=$(rmtty_create 1 101 4) && echo 1.0 >"$dst/stream_version" ||
	ktap_exit_fail_msg "cannot create the devices of the hint's test"
verdict=$("$RMTTY_COMPAT" check "@$src/migration_version" "@$dst/migration_version")
rc=$?
hint="incompatible: stream minor version 1 is newer than the target's 0; write 1.0 to the source's stream_version"
[ "$rc" = 1 ] && [ "$verdict" = "$hint" ] || ktap_print_msg "rmtty-compat said '$verdict' (exit $rc)"
[ "$rc" = 1 ] && [ "$verdict" = "$hint" ] &&
	! read_exact "$src/migration_version" 2>/dev/null >"$dst/migration_version"
result "a 1.1 source and a 1.0 target: refused, and the hint given"
echo 1.0 >"$src/stream_version" &&
	"$RMTTY_COMPAT" check "@$src/migration_version" "@$dst/migration_version" >/dev/null &&
	read_exact "$src/migration_version" >"$dst/migration_version"
result "the hint followed, the target accepts the source"
echo 1 >"$src/remove"
echo 1 >"$dst/remove"
rmtty_finish
