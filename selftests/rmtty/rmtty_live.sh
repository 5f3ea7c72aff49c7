# SPDX-License-Identifier: GPL-2.0
# The live migration tests' body, sourced with the QEMU version to run:
#   . rmtty_live.sh VERSION
# QEMU migrates a running guest that is using an rmtty device: a nested guest
# (on the nested guests' own kernel, tools/kernel/nested.config) runs on a
# QEMU with device A, whose 8250_pci driver must first bind the device as a
# 16550A (ttyS1), read back what it writes to the port and take the port's
# interrupts; the guest then migrates live, over a unix socket, to a QEMU
# with device B of the same shape, both assigned with
# -device vfio-pci,sysfsdev=... and the version's migration property.
#
# Before the migration the nested guest, through its own driver and the port's
# registers, leaves state in the device, none of it the power-on value:
#   - a baud rate of 9600 set with stty: the driver programs divisor 12, LCR
#     0x13 (8 bits, no parity; 8250 sets the even-parity select whenever
#     PARODD is off) and MCR 0x0b (DTR, RTS, OUT2); its PCI command register
#     decodes I/O and memory (power-on: I/O only);
#   - 0xa5 in the scratch register;
#   - text written through the tty, which the driver has moved from the
#     device into the tty's buffer but nobody has read;
#   - text in the device's receive FIFO itself: the port loops back, and with
#     IER 0x04 (line status only: nothing it enables is pending) nothing takes
#     it out;
#   - all of the device's memory (BAR2) filled with SEED's pattern.
# The tty layer reaches neither the scratch register, nor the divisor latch,
# nor IER, nor BAR2: the guest uses its sysfs resource files of the port's I/O
# BAR (/sys/bus/pci/devices/*/resourceN, 1-byte reads and writes are
# inb/outb; rmtty_port) and of BAR2 (mapped by rmtty_bar2 --resource, 8-byte
# accesses that QEMU forwards to the device). The nested kernel has neither
# /dev/port (DEVPORT) nor /dev/mem (DEVMEM), and busybox has no io applet (its
# devmem needs /dev/mem).
#
# Then a writer (rmtty_bar2 dirty) keeps rewriting BAR2's pages, round after
# round, and dirties the guest's RAM all the time, through the whole
# migration and on the target until the guest stops it there. The pages it
# writes after the source emitted their first-pass records are device memory
# the source's dirty tracking must send again: the device data QEMU sent must
# exceed the first pass and the stop-and-copy tail by at least REWRITES page
# records. The migration starts with a downtime limit of 1 ms, which puts the
# switchover off while the guest dirties memory (QEMU 7.2 never switches over
# with it); once QEMU has sent REWRITES page records beyond the first pass
# (or a quarter of the migration's time limit has passed), the test holds
# the migration (a bandwidth limit of 1 KiB/s: the RAM the writer dirties can
# no longer be sent), stops the writer through the guest's console ("stop"),
# and lets the migration complete (no bandwidth limit, a downtime limit of
# 2 s). Once both QEMUs are gone (closing a device keeps its memory) the
# target's memory must be what the fill and the writer's pages left (the
# pattern is a function of the seed, the round and the offset, so a twin
# needs no device), and the source's the same. Should the migration switch
# over before the hold (QEMU 10 may, at a sync that finds little dirty), the
# writer runs on the target until the test's "stop" reaches the guest there
# (sent as soon as the migration completed); then the source's memory must
# be what the fill and the pages written before the switchover left (the
# page the writer was at possibly in part), fewer than BAR2 holds short of
# the target's. The target's memory held another pattern before.
#
# The target QEMU starts paused (-S) and runs once the migration completed;
# with QEMU 7.2, only if the nested guest's RAM, dumped on both sides, is the
# same page for page: a guest that then fails on the target points at the
# device, not at a RAM page QEMU lost (see GUEST_RAM below).
#
# After the migration the guest on the target reads back the divisor, the
# scratch register, LCR, MCR, IER 0x04, its command register and data ready
# in LSR, then restores IER: the FIFO's text must arrive through the driver's
# interrupt, after the tty's unread text; the port must still echo a further
# message and take interrupts.
#
# The nested guest says "rmtty-live: ready" on its console and then reads
# lines on it: "stop" stops the writer, "go" (sent to the target QEMU's serial
# port, a socket chardev, once the migration has completed) runs the checks
# on the target. Every wait is bounded and scaled to the machine's speed (see
# rmtty_lib.sh); a time-out names its phase.

. "$(dirname "$0")/rmtty_lib.sh"

TTY_TEXT=rmtty-live-tty-unread
FIFO_TEXT=fifo-unread-42
AFTER_TEXT=rmtty-live-after
SCRATCH=165
BAUD=9600
DIVISOR=12
LCR=19
MCR=11
IER=4
SEED=0x11fe
TARGET_SEED=0x7a6e
REWRITES=16
PAGE=4096
BAR2=$(cd "$(dirname "$0")" && pwd)/rmtty_bar2
PORT=$(cd "$(dirname "$0")" && pwd)/rmtty_port

# Time limits, scaled to the machine's speed with rmtty_lib.sh's CPU loop.
# The boot to "ready" gets BOOT_TIMEOUT s, the migration MIGRATE_TIMEOUT, the
# comparison of the nested guest's RAM on both sides COMPARE_TIMEOUT, the
# guest's work on the target after it AFTER_TEXT, and a QEMU's exit
# QUIT_TIMEOUT; all scaled by the loop's slowdown (never less than 1), each
# capped at its MAX, and all of them together within the runner's limit
# (settings) less MARGIN.
# The boot took 808 s on a busy 2-core machine (two guests, loop 5784 ms).
BOOT_TIMEOUT=1200
MIGRATE_TIMEOUT=300
AFTER_TIMEOUT=300
COMPARE_TIMEOUT=120
QUIT_TIMEOUT=120
MAX_SCALE=4
MARGIN=120

# set_timeouts: scale the phases' time limits (in s) to this machine's speed.
set_timeouts() {
	local ms runner=${kselftest_timeout:-} scale100 sum

	ms=$(rmtty_loop_ms)
	scale100=$((100 * ms / RMTTY_REF_LOOP_MS))
	[ "$scale100" -ge 100 ] || scale100=100
	[ "$scale100" -le $((100 * MAX_SCALE)) ] || scale100=$((100 * MAX_SCALE))
	boot_timeout=$((BOOT_TIMEOUT * scale100 / 100))
	migrate_timeout=$((MIGRATE_TIMEOUT * scale100 / 100))
	after_timeout=$((AFTER_TIMEOUT * scale100 / 100))
	compare_timeout=$((COMPARE_TIMEOUT * scale100 / 100))
	quit_timeout=$((QUIT_TIMEOUT * scale100 / 100))
	sum=$((boot_timeout + migrate_timeout + after_timeout + compare_timeout + 2 * quit_timeout))
	if [[ "$runner" =~ ^[0-9]+$ ]] && [ "$runner" -gt "$MARGIN" ] &&
	   [ "$sum" -gt $((runner - MARGIN)) ]; then
		boot_timeout=$((boot_timeout * (runner - MARGIN) / sum))
		migrate_timeout=$((migrate_timeout * (runner - MARGIN) / sum))
		after_timeout=$((after_timeout * (runner - MARGIN) / sum))
		compare_timeout=$((compare_timeout * (runner - MARGIN) / sum))
		quit_timeout=$((quit_timeout * (runner - MARGIN) / sum))
	fi
	ktap_print_msg "time limits: boot $boot_timeout s, migration $migrate_timeout s," \
		"RAM compared $compare_timeout s, after it $after_timeout s, quit $quit_timeout s;" \
		"the CPU loop took $ms ms," \
		"$RMTTY_REF_LOOP_MS ms on an idle machine; the runner's limit: ${runner:-none}"
}

ktap_print_header
# All of these are part of the test setup: without them the run is broken.
rmtty_qemu_setup "$1"
rmtty_nested_guest_setup
# Units of 1 MiB: each device below has 1 MiB of memory (the SPEC's shape).
UNIT_MIB=1
rmtty_reload unit_mib=$UNIT_MIB
for prog in "$BAR2" "$PORT"; do
	[ -x "$prog" ] || ktap_exit_fail_msg "$(basename "$prog") is not built ($prog)"
done
# QEMU 7.2 dumps and compares the nested guest's RAM on both sides after the
# migration (see GUEST_RAM below): a case of its own, and its time limit.
case $QEMU_VERSION in
7.2) COMPARE_RAM=1 ;;
*) COMPARE_RAM=0 COMPARE_TIMEOUT=0 ;;
esac
# Fifteen tests, the RAM's with QEMU 7.2, and the unload
ktap_set_plan $((16 + COMPARE_RAM))
set_timeouts

src=$(rmtty_create 1 1) && tgt=$(rmtty_create 1 2) ||
	ktap_exit_fail_msg "creating the devices failed"
src_uuid=$(basename "$src")
tgt_uuid=$(basename "$tgt")
# The target's memory holds another pattern than any the source's will.
"$BAR2" fill "$tgt_uuid" "$TARGET_SEED" || ktap_exit_fail_msg "filling device B's memory failed"
# In the stream (migration-stream.md) the first pass over it is the 32-byte
# header and a 4116-byte record for each page; the stop-and-copy part ends
# with at least 320 bytes of config, UART and end records.
mem_size=$((UNIT_MIB << 20))
PAGE_RECORD=4116
first_pass=$((32 + mem_size / PAGE * PAGE_RECORD))
TAIL=320

# The nested guest's init. The rmtty port is ttyS1, the PCI one after the ISA
# ttyS0 (the console). Its registers are reached through the resource file of
# the BAR that holds the port's I/O address.
rmtty_initramfs "$tmp" "$BAR2" "$PORT" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t devtmpfs dev /dev
mount -t proc proc /proc
mount -t sysfs sys /sys
say() { echo "rmtty-live: \$*"; }
# fail: the kernel's last words too: the console only prints warnings. On
# stderr: a fail in \$(...) must reach the console too.
fail() { { say "error: \$*"; dmesg | tail -n 40; } >&2; sleep 2; poweroff -f; }
# regs ARGS...: the port's registers, through the resource file (rmtty_port).
regs() { rmtty_port \$res "\$@"; }
irqs() { grep ttyS1 /proc/interrupts | awk '{ print \$2 }'; }
# uart: the registers that the test checks on both sides.
uart() { regs uart \$pci/config || fail "reading the port's registers failed"; }

say "probe: \$(dmesg | grep -E 'ttyS1 at I/O .* is a')"
port=\$(cat /sys/class/tty/ttyS1/port) || fail "no ttyS1"
# The tty's device is the serial core's port; the PCI device is above it.
pci=\$(readlink -f /sys/class/tty/ttyS1/device)
while [ ! -e "\$pci/resource" ] && [ "\$pci" != /sys ]; do pci=\${pci%/*}; done
res=
n=0
while read -r start end flags; do
	[ \$((start)) = \$((port)) ] && [ \$((start)) != 0 ] && res=\$pci/resource\$n
	n=\$((n + 1))
done <\$pci/resource
[ -n "\$res" ] || fail "no BAR of \$pci holds the port \$port"
say "port: \$port, \$res"
res2=\$pci/resource2
[ -e \$res2 ] || fail "\$pci has no resource2"

exec 3<>/dev/ttyS1
stty raw -echo $BAUD <&3
say "stty before: \$(stty <&3 | head -n 1)"
# Echo: the port loops back, the driver reads it.
printf '%s' before >&3
say "echo before: \$(timeout 30 head -c 6 <&3)"
# Text through the tty that nobody reads.
printf '%s' $TTY_TEXT >&3
say "drained after \$(regs drained || fail "the port did not drain") polls"
say "irqs before: \$(irqs)"
say "irq line: \$(grep ttyS1 /proc/interrupts | tr -s ' ')"
# The port's receive interrupt off, then text straight into its FIFO.
ier=\$(regs get 1) && regs set 1 $IER && regs set 7 $SCRATCH && regs send $FIFO_TEXT ||
	fail "writing the port's registers failed"
say "ier saved: \$ier"
say "source: \$(uart)"
# The device's memory, then the writer that keeps rewriting it.
t=\$(date +%s)
rmtty_bar2 --resource \$res2 fill $SEED || fail "filling BAR2 failed"
say "bar2 filled in \$((\$(date +%s) - t)) s"
rmtty_bar2 --resource \$res2 dirty $SEED &
writer=\$!
say "ready"
read -r -t 3600 go || fail "no line on the console within an hour"
if [ "\$go" = stop ]; then
	kill -TERM \$writer
	wait \$writer || fail "the writer failed"
	read -r -t 3600 go || fail "no line on the console within an hour"
fi
if kill -TERM \$writer 2>/dev/null; then
	wait \$writer || fail "the writer failed"
fi
say "go: \$go"
say "target: \$(uart)"
say "stty after: \$(stty <&3 | head -n 1)"
say "irqs target: \$(irqs)"
# Interrupts back on: the driver takes the FIFO's text to the tty.
regs set 1 \$ier || fail "restoring IER failed"
say "unread: \$(timeout 30 head -c \$((${#TTY_TEXT} + ${#FIFO_TEXT})) <&3)"
printf '%s' $AFTER_TEXT >&3
say "echo after: \$(timeout 30 head -c ${#AFTER_TEXT} <&3)"
say "irqs after: \$(irqs)"
exec 3<&-
say "done"
# Let the console drain before the power goes.
sleep 2
poweroff -f
EOF

# The nested guest's machine. QEMU 7.2's pc (i440fx) computes the ACPI _PRT,
# the PCI interrupt routing, with an AML loop of 128 rounds. The nested guest
# runs under TCG twice over, and that loop can take longer than ACPICA's 30 s
# limit for a loop (AE_AML_LOOP_TIMEOUT in the guest's log): 8250_pci then
# "can't derive routing for PCI INT A" and uses the firmware's IRQ 10, while
# QEMU has the slot's INTA routed nowhere, and the port never interrupts.
# QEMU 9.2 made the pc's _PRT a precomputed table; q35's always was one.
case $QEMU_VERSION in
7.2) MACHINE=q35 ;;
*) MACHINE=pc ;;
esac
ktap_print_msg "the nested guest runs on QEMU's $MACHINE machine"

# The nested guest's RAM: 256 MiB less 8 KiB, not 256 MiB. QEMU before 9.0
# loses RAM writes under TCG in a live migration (QEMU commit 03bfc2188f06,
# "physmem: Fix migration dirty bitmap coherency with TCG memory access",
# not in 7.2's stable releases): syncing the dirty bitmap of a RAM block
# whose length is a multiple of 256 KiB clears its bits without making the
# vCPU's TLB mark the next write again, so the writes after that reach the
# target only if the TLB happens to be flushed. Hot kernel pages arrived
# stale and the target's kernel died at its first tick (a NULL call out of
# sched_tick, "scheduling while atomic: swapper/0") in about one migration
# in four. Any other length takes the path that resets the TLB; QEMU 10
# does not need it, and takes the same size so that the two tests match.
# With QEMU 7.2 the test proves it: the target starts paused (-S), both
# sides' RAM is dumped and compared page for page, and the target runs only
# if no page differs. QEMU 10 has the fix, and the comparison (35 s of the
# suite) is not made.
GUEST_RAM=262136K
GUEST_RAM_BYTES=$((262136 * 1024))

# QEMU 7.2 has no count of the device data VFIO sent in query-migrate (8.1
# added it): there, the test adds up the sizes of its vfio_save_buffer trace
# events, one for each buffer read from the device.
case $QEMU_VERSION in
7.2) SENT_TRACE=(-trace vfio_save_buffer) ;;
*) SENT_TRACE=() ;;
esac

# live_start NAME DEVICE ARGS...: start QEMU NAME running the nested guest
# with DEVICE (sysfs path) assigned, its serial port a socket chardev
# $tmp/NAME.con logged to $tmp/NAME.serial. Its console prints warnings and
# worse (loglevel=5: splats, ACPI errors), not the boot's 200 lines: under TCG
# twice over a console line takes a quarter of a second, and a boot printing
# all of them took 87 s where one printing only those took 60.
live_start() {
	local name=$1 dev=$2

	shift 2
	qemu_start "$name" -machine "$MACHINE" -m "$GUEST_RAM" -no-reboot \
		-kernel "$RMTTY_BZIMAGE" -initrd "$tmp/initramfs.gz" \
		-append "console=ttyS0 panic=-1 kmemleak=off loglevel=5" \
		-chardev "socket,id=con,path=$tmp/$name.con,server=on,wait=off,logfile=$tmp/$name.serial" \
		-serial chardev:con \
		-device "vfio-pci,sysfsdev=$dev,$QEMU_MIGRATION" \
		"${SENT_TRACE[@]}" "$@"
}

# device_sent: set sent to the bytes of device data the source QEMU has sent
# in the migration, and status to the migration's status; fails when QMP did.
device_sent() {
	local size

	qmp source 30 status || return
	read -r status sent <<<"$qmp_out"
	[ "${#SENT_TRACE[@]}" = 0 ] && return
	sent=0
	for size in $(sed -n 's/.*vfio_save_buffer .* size \(0x[0-9a-f]*\) .*/\1/p' "$tmp/source.trace"); do
		sent=$((sent + size))
	done
}

# compare_ram: set ram to how many 4 KiB pages of the nested guest's RAM
# differ between the source, stopped after the migration, and the target,
# which -S keeps paused until the test lets it run, and where the first few
# are; empty if a dump failed. The guest's RAM is QEMU's to migrate, not the
# device's: a page that differs is one QEMU lost, and the guest on the
# target would run on a stale copy of it. The source's dump is reduced to a
# hash a page before the target's is made: one dump at a time in $tmp.
compare_ram() {
	local name budget=$((compare_timeout / 2))

	ram=
	for name in source target; do
		qmp "$name" "$budget" hmp "pmemsave 0 $GUEST_RAM_BYTES \"$tmp/ram\"" &&
			[ -z "$qmp_out" ] || { msgs "$name: pmemsave: $qmp_out"; break; }
		ram=$(python3 - "$name" "$tmp/ram" "$tmp/ram.hashes" <<'PY'
import hashlib, sys
name, dump, hashes = sys.argv[1:4]
with open(dump, "rb") as f:
    pages = [hashlib.blake2b(p, digest_size=16).digest()
             for p in iter(lambda: f.read(4096), b"")]
if name == "source":
    with open(hashes, "wb") as f:
        f.write(b"".join(pages))
    sys.exit(0)
with open(hashes, "rb") as f:
    theirs = f.read()
source = [theirs[i:i + 16] for i in range(0, len(theirs), 16)]
differ = [i * 4096 for i in range(max(len(pages), len(source)))
          if i >= len(pages) or i >= len(source) or pages[i] != source[i]]
print(len(differ), " ".join(f"{at:#x}" for at in differ[:8]))
PY
) || { ram=; break; }
		rm -f "$tmp/ram"
	done
	rm -f "$tmp/ram" "$tmp/ram.hashes"
}

# console NAME LINE: send LINE to the nested guest's console on QEMU NAME.
console() {
	python3 - "$tmp/$1.con" "$2" <<-'PY'
	import socket, sys
	s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
	s.settimeout(30)
	s.connect(sys.argv[1])
	s.sendall(sys.argv[2].encode() + b"\n")
	s.close()
	PY
}

# stopped_on NAME: whether the writer said on QEMU NAME's console that it
# stopped, and how many pages it wrote (in written).
stopped_on() {
	written=$(sed -n 's/^rmtty-live: writer stopped: \([0-9]*\) pages.*/\1/p' "$tmp/$1.serial" |
		tr -d '\r')
	[ -n "$written" ]
}

# dirtied NAME: the pages the writer had written when it last said so on QEMU
# NAME's console.
dirtied() {
	local n

	n=$(sed -n 's/^rmtty-live: dirtied \([0-9]*\).*/\1/p' "$tmp/$1.serial" | tail -n 1)
	echo "${n:-0}"
}

# wait_line NAME PATTERN TIMEOUT: wait for a line matching PATTERN in QEMU
# NAME's serial output; fails when QEMU exits first or TIMEOUT s pass.
wait_line() {
	local end=$((SECONDS + $3))

	while [ "$SECONDS" -lt "$end" ]; do
		grep -qa "$2" "$tmp/$1.serial" 2>/dev/null && return 0
		qemu_running "$1" || { grep -qa "$2" "$tmp/$1.serial" 2>/dev/null; return; }
		sleep 0.5
	done
	return 1
}

# field NAME KEY: what the nested guest said on QEMU NAME's console as KEY.
field() { sed -n "s/^rmtty-live: $2: //p" "$tmp/$1.serial" 2>/dev/null | tr -d '\r' | tail -n 1; }

# report NAME: QEMU NAME's output and the device states it set, and what the
# nested guest said on its console, as diagnostics.
report() {
	qemu_report "$1"
	msgs "$(grep -a '^rmtty-live: ' "$tmp/$1.serial" 2>/dev/null | grep -av '^rmtty-live: dirtied' |
		tr -d '\r' | sed "s/^/$1 guest: /")"
}

rmtty_log_mark "$(basename "$0" .sh): the QEMUs start with $src_uuid and $tgt_uuid"

phase=
t0=$(now_ms)
live_start source "$src"
live_start target "$tgt" -S -incoming "unix:$tmp/migration.sock"

# Phase 1: the source boots the nested guest, which prepares the port.
if wait_line source '^rmtty-live: ready' "$boot_timeout"; then
	boot_time=$(since "$t0")
	ktap_print_msg "the nested guest was ready after $boot_time"
else
	phase="boot: no \"rmtty-live: ready\" after $(since "$t0") of $boot_timeout s ($(qemu_running source &&
		echo "source QEMU still running" || echo "source QEMU exited"))"
	msgs "$(tail -n 30 "$tmp/source.serial" 2>/dev/null | tr -d '\r' | sed 's/^/source console: /')"
fi
src_info=
if [ -z "$phase" ] && ! qemu_running target; then
	phase="the target QEMU exited before the migration"
fi
if [ -z "$phase" ]; then
	# Phase 2: the migration, live.
	t=$(now_ms)
	end=$((SECONDS + migrate_timeout))
	qmp source 30 set downtime-limit 1 && qmp source 30 start "unix:$tmp/migration.sock" ||
		phase="migration: starting it failed: $qmp_out"
	# A device that tracks no dirty page never gets there: after a
	# quarter of the time the test holds the migration all the same.
	gate=$((SECONDS + migrate_timeout / 4))
	while [ -z "$phase" ] && [ "$SECONDS" -lt "$gate" ] && device_sent &&
	      [[ "$status" =~ ^(setup|active)$ ]] &&
	      [ "$sent" -lt $((first_pass + REWRITES * PAGE_RECORD)) ]; do
		sleep 0.5
	done
	[ -n "$phase" ] || qmp source 30 set max-bandwidth 1024 ||
		phase="migration: limiting the bandwidth failed: $qmp_out"
	ktap_print_msg "migration: $(since "$t") later QEMU had sent ${sent:-?} bytes of device data (${status:-?})"
	if [ -z "$phase" ] && device_sent && [ "$status" = active ]; then
		console source stop || phase="migration: sending stop to the source's console failed"
		# Unless the migration switched over first: then the line waits
		# on a stopped guest.
		while [ -z "$phase" ] && ! stopped_on source && device_sent && [ "$status" = active ]; do
			[ "$SECONDS" -lt "$end" ] || phase="migration: the writer did not stop within $migrate_timeout s"
			sleep 0.5
		done
	fi
	[ -n "$phase" ] || { qmp source 30 set max-bandwidth 4294967296 && qmp source 30 set downtime-limit 2000; } ||
		phase="migration: lifting the limits failed: $qmp_out"
	[ -n "$phase" ] || qmp source $((end > SECONDS ? end - SECONDS : 1)) wait
	rc=$?
	src_info=$qmp_out
	ktap_print_msg "migration: the source's migrate ended after $(since "$t") ($rc)"
	[ "$rc" = 3 ] && phase="migration: no end within $migrate_timeout s"
	[ "$rc" = 0 ] || [ -n "$phase" ] || phase="migration: failed"
	device_sent || sent=
	# Switched over before the hold: the writer goes on on the target.
	if ! stopped_on source && qemu_running target; then
		console target stop
		ktap_print_msg "migration: it switched over before the hold; stop sent to the target"
	fi
fi
[ -z "$src_info" ] || msgs "$src_info"
grep -qx 'Migration status: completed' <<<"$src_info" && [ -z "$phase" ]
result "QEMU $QEMU_VERSION migrates the running nested guest with rmtty device A live (Migration status: completed)"
total=$(sed -n 's/^query-migrate: .*total-time \([0-9]*\).*/\1/p' <<<"$src_info")
downtime=$(sed -n 's/^query-migrate: .*downtime \([0-9]*\).*/\1/p' <<<"$src_info")
ktap_print_msg "migration total time: ${total:-unknown} ms, downtime: ${downtime:-unknown} ms"

tgt_info=
if [ -z "$phase" ]; then
	qmp target "$migrate_timeout" incoming
	rc=$?
	tgt_info=$qmp_out
	[ "$rc" = 0 ] || phase="migration: the target's incoming migration did not complete ($rc)"
	msgs "$(grep '^query-migrate:' <<<"$tgt_info")"
fi
if [ "$COMPARE_RAM" = 1 ]; then
	ram=
	if [ -z "$phase" ]; then
		t=$(now_ms)
		compare_ram
		ktap_print_msg "the nested guest's RAM dumped and compared in $(since "$t")"
		[ "${ram%% *}" = 0 ] ||
			phase="migration: the nested guest's RAM on the target is not the source's (${ram:-no dump})"
	fi
	read -r ram_pages ram_where <<<"${ram:-}"
	[ "${ram_pages:-}" = 0 ]
	result "the nested guest's RAM on the target is the source's ($((GUEST_RAM_BYTES / 4096)) pages, ${ram_pages:-?} differ${ram_where:+ from $ram_where})"
fi
if [ -z "$phase" ]; then
	qmp target 60 cont
	[ "$qmp_out" = running ] || phase="migration: the target does not run (${qmp_out:-no answer})"
fi
[ -z "$phase" ]
result "the target QEMU with rmtty device B completes the incoming migration and runs"

# Beyond the first pass and the tail, a stream holds dirty pages only.
again=$(( (${sent:-0} - first_pass - TAIL) / PAGE_RECORD ))
[ -n "$sent" ] && [ "$again" -ge "$REWRITES" ]
result "QEMU sends pages written in pre-copy again (${sent:-?} bytes of device data: $again page records beyond the first pass, at least $REWRITES)"
ktap_print_msg "the writer wrote $(dirtied source) pages or more on the source"

# Phase 4: the guest, now on the target, reads the port.
if [ -z "$phase" ]; then
	t=$(now_ms)
	console target go || phase="after: sending the line to the target's console failed"
	[ -n "$phase" ] || wait_line target '^rmtty-live: done' "$after_timeout" ||
		phase="after: no \"rmtty-live: done\" from the target within $after_timeout s"
	ktap_print_msg "the guest on the target ran $(since "$t") after the go line"
fi
if qemu_running target && [ -n "$phase" ]; then
	# It may never have had a guest to power off.
	qmp target "$quit_timeout" quit
	qemu_wait target "$quit_timeout"
elif qemu_running target; then
	qemu_wait target "$quit_timeout"
else
	qemu_wait target 1
fi
tgt_rc=$qemu_rc
[ "$tgt_rc" = killed ] && [ -z "$phase" ] && phase="after: the target QEMU did not power off within $quit_timeout s"
if qemu_running source; then
	qmp source "$quit_timeout" quit
fi
qemu_wait source "$quit_timeout"
src_rc=$qemu_rc
ktap_print_msg "QEMUs exited: source $src_rc, target $tgt_rc; $(since "$t0") in all"
[ -z "$phase" ] || ktap_print_msg "timed out or failed in phase: $phase"
report source
report target

[ "$(field target 'go')" = go ] && [ "$tgt_rc" = 0 ]
result "the guest continues on the target and powers off (QEMU exited $tgt_rc)"

exp_state="ier $IER, scratch $SCRATCH, divisor $DIVISOR, lcr $LCR, mcr $MCR, command "
before=$(field source source)
after=$(field target target)
command=${before#"$exp_state"}
command=${command%%,*}
[[ "$before" == "$exp_state"* ]] && [[ "$command" =~ ^[0-9]+$ ]] && (( (command & 3) == 3 )) &&
	[ "${after%, lsr *}" = "${before%, lsr *}" ]
result "IER ($IER), the scratch register ($SCRATCH), the divisor latch ($DIVISOR, $BAUD baud), LCR, MCR and the command register (I/O and memory on) survive"
ktap_print_msg "before: $before; after: $after"

lsr=${after##*lsr }
[[ "$lsr" =~ ^[0-9]+$ ]] && (( lsr & 1 ))
result "the target's port has data ready (LSR $lsr)"

[ "$(field target unread)" = "$TTY_TEXT$FIFO_TEXT" ]
result "the unread text (the tty's, then the device FIFO's) reads back on the target"
ktap_print_msg "unread: $(field target unread)"

# Linux's own driver on device A, before the migration.
irq_before=$(field source 'irqs before')
grep -q 'ttyS1 at I/O 0x[0-9a-f]* (irq = [0-9]*, base_baud = 115200) is a 16550A' \
	<<<"$(field source probe)" &&
	[[ "$irq_before" =~ ^[0-9]+$ ]] && [ "$irq_before" -gt 0 ]
result "8250_pci binds device A as a 16550A, and the port's interrupts reach the guest (ttyS1: ${irq_before:-none})"

[[ "$(field source 'stty before')" == "speed $BAUD baud"* ]] &&
	[[ "$(field target 'stty after')" == "speed $BAUD baud"* ]] &&
	[ "$(field source 'echo before')" = before ] &&
	[ "$(field target 'echo after')" = "$AFTER_TEXT" ]
result "the port echoes before and after the migration, at $BAUD baud"

irq_target=$(field target 'irqs target')
irq_after=$(field target 'irqs after')
[[ "$irq_target" =~ ^[0-9]+$ ]] && [[ "$irq_after" =~ ^[0-9]+$ ]] && [ "$irq_after" -gt "$irq_target" ]
result "the port interrupts on the target (ttyS1: $irq_target, then $irq_after)"

refusals=$(rmtty_refusals "$src_uuid" "$tgt_uuid")
[ -z "$refusals" ]
result "neither device refused a request of QEMU's"
msgs "$refusals"

# A splat is shown whole: the kernel's lines from its first line on.
splats=
for name in source target; do
	first=$(grep -naE 'WARNING:|BUG:|Oops|INFO: possible|Call Trace|ACPI Error' \
		"$tmp/$name.serial" 2>/dev/null | head -n 1 | cut -d: -f1)
	[ -z "$first" ] || splats+=$({ sed -n "${first}p" "$tmp/$name.serial"
		tail -n +$((first + 1)) "$tmp/$name.serial" | grep -a '^\[' | head -n 59; } |
		tr -d '\r' | sed "s/^/$name: /")$'\n'
done
errors=$(qemu_errors source; qemu_errors target)
[ -z "$splats" ] && [ -z "$errors" ]
result "no splat or ACPI error in the nested guest, no error from QEMU"
msgs "$splats"
msgs "$errors"

# Both QEMUs are gone: their devices' memories, which closing keeps, are as
# the migration (and the guest, if it ran the writer on the target) left
# them.
pages=$((mem_size / PAGE))
if stopped_on source; then
	where=source
elif stopped_on target; then
	where=target
else
	where=
fi
ktap_print_msg "the writer stopped on the ${where:-?} after ${written:-?} pages"
if [ -n "$where" ]; then
	verify=$("$BAR2" verify "$tgt_uuid" "$SEED" "$written" 2>&1)
else
	verify="the writer never said how many pages it wrote"
	false
fi
result "device B's memory holds the fill and the writer's pages (seed $SEED)"
msgs "$verify"
if [ "$where" = source ]; then
	# Nothing wrote device memory after the switchover.
	src_said=$("$BAR2" hash "$src_uuid" 2>&1) && tgt_said=$("$BAR2" hash "$tgt_uuid" 2>&1) &&
		[ "$src_said" = "$tgt_said" ]
	result "device A's memory is device B's as of the switchover"
	ktap_print_msg "memory hashes: device A $src_said, device B $tgt_said"
else
	# The pages written on the target, fewer than BAR2 holds (or they
	# would hide what the migration moved), make all the difference.
	src_said=$("$BAR2" written "$src_uuid" "$SEED" 2>&1)
	src_written=${src_said%% *}
	[[ "$src_written" =~ ^[0-9]+$ ]] && [ "$where" = target ] &&
		[ "$src_written" -ge "$(dirtied source)" ] && [ "$src_written" -le "$written" ] &&
		[ $((written - src_written)) -lt "$pages" ]
	result "device A's memory is device B's as of the switchover"
	ktap_print_msg "device A holds the fill and $src_said pages; the writer said $(dirtied source) on the source"
fi

echo 1 >"$src/remove" && echo 1 >"$tgt/remove"
result "both devices are removable after"

rmtty_finish
