#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Linux's own 8250_pci driver on an rmtty device: a nested QEMU guest booted on
# the test kernel, with the device assigned through vfio-pci, must bind it as a
# 16550A, read back what it writes to the port, and take the port's interrupts.
#
# The nested guest runs under TCG inside a TCG guest: its boot takes minutes.

. "$(dirname "$0")/rmtty_lib.sh"

MESSAGE=rmtty-8250-loopback

# The nested guest's time limit follows how fast this machine is right now
# (rmtty_lib.sh's CPU loop): QEMU_BASE_TIMEOUT is ample where the loop takes
# its reference time. It is never less than that, nor more than
# QEMU_MAX_TIMEOUT, nor more than the runner allows this script (settings'
# timeout) less QEMU_MARGIN for the rest of it.
QEMU_BASE_TIMEOUT=600
QEMU_MAX_TIMEOUT=2400
QEMU_MARGIN=120

# set_qemu_timeout: set qemu_timeout, the nested guest's time limit in seconds,
# and say how it was chosen.
set_qemu_timeout() {
	local ms runner=${kselftest_timeout:-}

	ms=$(rmtty_loop_ms)
	qemu_timeout=$((QEMU_BASE_TIMEOUT * ms / RMTTY_REF_LOOP_MS))
	[ "$qemu_timeout" -ge "$QEMU_BASE_TIMEOUT" ] || qemu_timeout=$QEMU_BASE_TIMEOUT
	[ "$qemu_timeout" -le "$QEMU_MAX_TIMEOUT" ] || qemu_timeout=$QEMU_MAX_TIMEOUT
	if [[ "$runner" =~ ^[0-9]+$ ]] && [ "$runner" -gt "$QEMU_MARGIN" ] &&
	   [ "$qemu_timeout" -gt $((runner - QEMU_MARGIN)) ]; then
		qemu_timeout=$((runner - QEMU_MARGIN))
	fi
	ktap_print_msg "nested guest time limit: $qemu_timeout s; the CPU loop took $ms ms," \
		"$RMTTY_REF_LOOP_MS ms on an idle machine; the runner's limit: ${runner:-none}"
}

ktap_print_header
# All of these are part of the test setup: without them the run is broken.
command -v qemu-system-x86_64 >/dev/null ||
	ktap_exit_fail_msg "qemu-system-x86_64 is not installed"
rmtty_nested_guest_setup
rmtty_reload
# Six tests and the unload
ktap_set_plan 7
set_qemu_timeout

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dev=$(rmtty_create 1 1) || ktap_exit_fail_msg "creating the device failed"
uuid=$(basename "$dev")

# The nested guest's init: the rmtty port is the PCI one after the ISA ttyS0.
# It keeps the port open while it counts the port's interrupts.
rmtty_initramfs "$tmp" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t devtmpfs dev /dev
mount -t proc proc /proc
echo "rmtty-8250: probe: \$(dmesg | grep -E 'ttyS1 at I/O .* is a')"
stty -F /dev/ttyS1 raw -echo 115200
exec 3<>/dev/ttyS1
(sleep 1; printf '%s' $MESSAGE >&3) &
echo "rmtty-8250: read: \$(timeout 60 head -c ${#MESSAGE} <&3)"
echo "rmtty-8250: interrupts: \$(grep ttyS1 /proc/interrupts)"
exec 3<&-
# Let the console drain before the power goes.
sleep 2
poweroff -f
EOF

# Earlier tests refuse requests of a device of this name on purpose: only the
# kernel log after this mark is QEMU's.
rmtty_log_mark "rmtty_8250_test: QEMU starts with $uuid"
start=$SECONDS
out=$(timeout "$qemu_timeout" qemu-system-x86_64 -nodefaults -display none -serial stdio \
	-m 256 -no-reboot -kernel "$RMTTY_BZIMAGE" -initrd "$tmp/initramfs.gz" \
	-append "console=ttyS0 panic=-1 kmemleak=off" \
	-device "vfio-pci,sysfsdev=$dev" 2>&1)
rc=$?
ktap_print_msg "QEMU ran $((SECONDS - start)) s of its $qemu_timeout s"
case $rc in
0) qemu_status="exited 0" ;;
124) qemu_status="timed out after $qemu_timeout s" ;;
*) qemu_status="failed with status $rc" ;;
esac
field() { sed -n "s/^rmtty-8250: $1: //p" <<<"$out" | tr -d '\r'; }
# What the nested guest reported, for the log.
grep -a '^rmtty-8250: ' <<<"$out" | tr -d '\r' | sed 's/^/# /'

[ "$rc" = 0 ]
result "the nested guest booted and powered off (QEMU $qemu_status)"
[ "$rc" = 0 ] || printf '%s\n' "$out" | tail -n 40 | sed 's/^/# /'

grep -q 'ttyS1 at I/O 0x[0-9a-f]* (irq = [0-9]*, base_baud = 115200) is a 16550A' <<<"$(field probe)"
result "8250_pci binds the device as a 16550A"

[ "$(field read)" = "$MESSAGE" ]
result "what the guest writes to the port reads back"

irqs=$(field interrupts | awk '{ print $2 }')
[ "${irqs:-0}" -gt 0 ] 2>/dev/null
result "the port's interrupts reach the guest ($irqs)"

# The device logs each request it refuses: QEMU's use of it should have none.
refusals=$(rmtty_refusals "$uuid") && [ -z "$refusals" ]
result "QEMU's requests to the device were all answered"
[ -z "$refusals" ] || printf '%s\n' "$refusals" | sed 's/^/# /'

! grep -qE 'WARNING:|BUG:|Oops|INFO: possible' <<<"$out" && echo 1 >"$dev/remove"
result "no splat in the nested guest, and the device is removable after"

rmtty_finish
