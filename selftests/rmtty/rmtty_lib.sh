# SPDX-License-Identifier: GPL-2.0
# Helpers shared by rmtty's shell selftests; sourced.

. "$(dirname "$0")/../kselftest/ktap_helpers.sh"

RMTTY_TYPES=/sys/class/mdev_bus/rmtty/mdev_supported_types
MDEV_DEVICES=/sys/bus/mdev/devices

# rmtty_uuid N: the UUID of test device N.
rmtty_uuid() {
	printf '8c1f7a2e-3b4d-4e5f-8a9b-%012x' "$1"
}

# rmtty_reload [PARAMS...]: load rmtty afresh, or skip every test.
rmtty_reload() {
	[ -n "${RMTTY_KO:-}" ] || ktap_skip_all "RMTTY_KO is not set"
	rmmod rmtty 2>/dev/null
	insmod "$RMTTY_KO" "$@" || ktap_exit_fail_msg "insmod $RMTTY_KO $* failed"
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
