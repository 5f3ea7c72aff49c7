#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# mdevctl as a real client of rmtty: types, start with the aggregation
# attribute, list, stop, a refused attribute, and a target planned by
# rmtty-compat and created by mdevctl.

. "$(dirname "$0")/rmtty_lib.sh"

ktap_print_header
# mdevctl is the one optional tool: without it, these tests are skipped.
command -v mdevctl >/dev/null ||
	rmtty_skip_all "mdevctl is not installed: install it (Debian: apt install mdevctl) to run these tests"
# rmtty-compat is built with the module: without it, the run is broken.
[ -x "${RMTTY_COMPAT:-}" ] ||
	ktap_exit_fail_msg "RMTTY_COMPAT='${RMTTY_COMPAT:-}' is not the rmtty-compat program"
rmtty_reload
# Seven tests and the unload
ktap_set_plan 8
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
available() { cat "$RMTTY_TYPES/rmtty-1/available_instances"; }

types=$(mdevctl types -p rmtty | awk '/^  rmtty-/ { t = $1 } /Available instances:/ { print t, $3 }')
[ "$(echo $types)" = "rmtty-1 16 rmtty-2 8 rmtty-4 4" ]
result "mdevctl types lists every type with its available instances"

uuid=$(rmtty_uuid 1)
echo '{"mdev_type":"rmtty-1","start":"manual","attrs":[{"mdev/aggregated_instances":"4"}]}' >"$tmp/agg4.json"
mdevctl start -p rmtty -u "$uuid" --jsonfile "$tmp/agg4.json"
[ "$(cat "$MDEV_DEVICES/$uuid/mdev/aggregated_instances" 2>/dev/null)" = 4 ] && [ "$(available)" = 12 ]
result "mdevctl start with aggregated_instances 4"

ref=$(rmtty_create 4 99)
[ "$(cat "$MDEV_DEVICES/$uuid/migration_version")" = "$(cat "$ref/migration_version")" ]
result "its migration_version is that of a fresh rmtty-4 device"
echo 1 >"$ref/remove"

grep -q "^$uuid rmtty rmtty-1" <<<"$(mdevctl list)"
result "mdevctl list shows it"

mdevctl stop -u "$uuid"
[ ! -e "$MDEV_DEVICES/$uuid" ] && [ "$(available)" = 16 ]
result "mdevctl stop removes it and returns its units"

bad=$(rmtty_uuid 2)
echo '{"mdev_type":"rmtty-1","start":"manual","attrs":[{"mdev/aggregated_instances":"17"}]}' >"$tmp/agg17.json"
! mdevctl start -p rmtty -u "$bad" --jsonfile "$tmp/agg17.json" 2>/dev/null &&
	[ ! -e "$MDEV_DEVICES/$bad" ] && [ "$(available)" = 16 ]
result "an aggregation above the maximum fails and leaves nothing"

# A source of 8 MiB; the plan's best type is rmtty-4 aggregated twice.
src=$(rmtty_create 1 3 8)
version=$(cat "$src/migration_version")
echo 1 >"$src/remove"
target=$(rmtty_uuid 4)
json=$("$RMTTY_COMPAT" plan "$version" --parent /sys/class/mdev_bus/rmtty --mdevctl-json) &&
	echo "$json" >"$tmp/plan.json" &&
	mdevctl start -p rmtty -u "$target" --jsonfile "$tmp/plan.json"
[ "$(cat "$MDEV_DEVICES/$target/migration_version" 2>/dev/null)" = "$version" ] &&
	grep -q '"rmtty-4"' <<<"$json"
result "a target planned by rmtty-compat, created by mdevctl, is compatible"
mdevctl stop -u "$target" 2>/dev/null

rmtty_finish
