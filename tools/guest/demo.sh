#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# In the guest: load rmtty, create one device of each type (the rmtty-1 one
# aggregated to 4) and show the parent, its types and its devices.
set -euo pipefail

types=/sys/class/mdev_bus/rmtty/mdev_supported_types

insmod "$RMTTY_KO"
echo "== rmtty loaded: $(uname -r), parent $(readlink -f /sys/class/mdev_bus/rmtty)"

n=0
for t in rmtty-1 rmtty-2 rmtty-4; do
	n=$((n + 1))
	echo "8c1f7a2e-3b4d-4e5f-8a9b-$(printf '%012x' $n)" >"$types/$t/create"
done
echo 4 >/sys/bus/mdev/devices/8c1f7a2e-3b4d-4e5f-8a9b-000000000001/mdev/aggregated_instances

echo
echo "== types ($types)"
for t in "$types"/*; do
	printf '%s\n  name:                %s\n  description:         %s\n  device_api:          %s\n  available_instances: %s\n  aggregation:         %s\n' \
		"$(basename "$t")" "$(cat "$t/name")" "$(cat "$t/description")" "$(cat "$t/device_api")" \
		"$(cat "$t/available_instances")" "$(cat "$t/aggregation")"
done

echo
echo "== devices (/sys/bus/mdev/devices)"
for d in /sys/bus/mdev/devices/*; do
	printf '%s  type %s  aggregated_instances %s  max_aggregation %s\n' "$(basename "$d")" \
		"$(basename "$(readlink "$d/mdev_type")")" "$(cat "$d/mdev/aggregated_instances")" \
		"$(cat "$d/mdev/max_aggregation")"
done

if command -v mdevctl >/dev/null; then
	echo
	echo "== mdevctl list"
	mdevctl list
fi
