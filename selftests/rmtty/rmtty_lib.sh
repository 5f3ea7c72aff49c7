# SPDX-License-Identifier: GPL-2.0
# Helpers shared by rmtty's shell selftests; sourced.

. "$(dirname "$0")/../kselftest/ktap_helpers.sh"

RMTTY_TYPES=/sys/class/mdev_bus/rmtty/mdev_supported_types
MDEV_DEVICES=/sys/bus/mdev/devices

# rmtty_uuid N: the UUID of test device N.
rmtty_uuid() {
	printf '8c1f7a2e-3b4d-4e5f-8a9b-%012x' "$1"
}

# rmtty_skip_all REASON: skip every test, for want of an optional tool.
rmtty_skip_all() {
	ktap_skip_all "$1"
	exit "$KSFT_SKIP"
}

# rmtty_unload: unload rmtty if it is loaded; fails if it cannot be, as when
# a test leaked a reference to it.
rmtty_unload() {
	[ -e /sys/module/rmtty ] || return 0
	rmmod rmtty
}

# rmtty_reload [PARAMS...]: load rmtty afresh; without RMTTY_KO, or if the
# module cannot be unloaded or loaded, every test fails.
rmtty_reload() {
	[ -n "${RMTTY_KO:-}" ] ||
		ktap_exit_fail_msg "RMTTY_KO is not set: it must name the rmtty.ko to test"
	[ -r "$RMTTY_KO" ] || ktap_exit_fail_msg "RMTTY_KO=$RMTTY_KO cannot be read"
	rmtty_unload || ktap_exit_fail_msg "the loaded rmtty cannot be unloaded"
	insmod "$RMTTY_KO" "$@" || ktap_exit_fail_msg "insmod $RMTTY_KO $* failed"
}

# rmtty_finish: unload rmtty as one more test result, one the plan counts, and
# finish: a module reference the tests leaked fails the run.
rmtty_finish() {
	rmtty_unload
	result "rmtty unloads after the tests"
	ktap_finished
}

# rmtty_create TYPE_UNITS N [AGGREGATION]: create test device N, echo its path.
rmtty_create() {
	local uuid
	uuid=$(rmtty_uuid "$2")
	echo "$uuid" >"$RMTTY_TYPES/rmtty-$1/create" || return 1
	if [ -n "${3:-}" ]; then
		echo "$3" >"$MDEV_DEVICES/$uuid/mdev/aggregated_instances" || return 1
	fi
	echo "$MDEV_DEVICES/$uuid"
}

# read_exact FILE: the content of FILE, trailing newline included.
read_exact() {
	local s
	IFS= read -r -d '' s <"$1"
	printf '%s' "$s"
}

# result DESCRIPTION: a test result from the status of the command just run.
result() {
	local rc=$?

	if [ "$rc" = 0 ]; then
		ktap_test_pass "$1"
	else
		ktap_test_fail "$1"
	fi
}
