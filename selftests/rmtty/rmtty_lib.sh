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

# msgs TEXT: TEXT, if any, as KTAP diagnostic lines.
msgs() {
	[ -n "$1" ] && printf '%s\n' "$1" | sed 's/^/#   /'
}

# now_ms: the wall clock in milliseconds.
now_ms() {
	local t=${EPOCHREALTIME//[.,]/}

	echo $((t / 1000))
}

# since MS: the seconds since now_ms said MS, with one decimal.
since() {
	local ms=$(($(now_ms) - $1))

	printf '%d.%d s' $((ms / 1000)) $((ms % 1000 / 100))
}

# running PID: whether PID is a child of this shell that has not exited.
running() {
	local stat state ppid

	[ -n "$1" ] && stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	read -r state ppid _ <<<"${stat##*) }"
	[ "$ppid" = "$$" ] && [ "$state" != Z ]
}

# A nested guest's time limits follow how fast this machine is right now: a
# fixed CPU-bound loop is timed in this (outer) guest, and a limit scales with
# its time over RMTTY_REF_LOOP_MS, the loop's time in the check's guest (TCG,
# 2 CPUs) on a machine running nothing else: 4704 ms in the guest of a
# `make check` on this project's 2-CPU machine (December 2026).
RMTTY_LOOP_ITERATIONS=100000
RMTTY_REF_LOOP_MS=4700

# rmtty_loop_ms: the milliseconds the CPU-bound loop takes.
rmtty_loop_ms() {
	local start end i

	start=${EPOCHREALTIME//[.,]/}
	for ((i = 0; i < RMTTY_LOOP_ITERATIONS; i++)); do :; done
	end=${EPOCHREALTIME//[.,]/}
	echo $(((end - start) / 1000))
}

# How long a test waits for the nested guests' kernel, which the host may
# still be building when the suite starts (tools/check.sh), in s.
RMTTY_NESTED_WAIT=${RMTTY_NESTED_WAIT:-900}

# rmtty_nested_guest_setup: fail every test without what a nested guest
# needs: busybox and the nested guests' kernel image. The host puts the
# image at RMTTY_BZIMAGE when it is built, or a file "failed" beside it with
# the build's last lines: wait for one of them.
rmtty_nested_guest_setup() {
	local dir waited=0

	command -v busybox >/dev/null || ktap_exit_fail_msg "busybox is not installed"
	[ -n "${RMTTY_BZIMAGE:-}" ] ||
		ktap_exit_fail_msg "RMTTY_BZIMAGE is not set: it must name the nested guests' kernel (bzImage)"
	dir=$(dirname "$RMTTY_BZIMAGE")
	while [ ! -e "$RMTTY_BZIMAGE" ] && [ ! -e "$dir/failed" ] && [ "$waited" -lt "$RMTTY_NESTED_WAIT" ]; do
		sleep 2
		waited=$((waited + 2))
	done
	[ ! -e "$dir/failed" ] ||
		ktap_exit_fail_msg "the nested guests' kernel did not build: $(tail -n 3 "$dir/failed" | tr '\n' ' ')"
	[ -r "$RMTTY_BZIMAGE" ] ||
		ktap_exit_fail_msg "RMTTY_BZIMAGE=$RMTTY_BZIMAGE cannot be read (waited $waited s for it)"
	[ "$waited" = 0 ] || ktap_print_msg "waited $waited s for the nested guests' kernel to be built"
}

# rmtty_initramfs DIR [PROGRAM...]: DIR/initramfs.gz, a busybox initramfs
# for a nested guest whose /init is the script on stdin, with the (static)
# PROGRAMs in /bin; the tree is DIR/root.
rmtty_initramfs() {
	local dir=$1

	shift
	mkdir -p "$dir/root/bin" "$dir/root/dev" "$dir/root/proc" "$dir/root/sys"
	cp "$(command -v busybox)" "$@" "$dir/root/bin/"
	set -- "$dir"
	cat >"$1/root/init"
	chmod +x "$1/root/init"
	(cd "$1/root" && find . | busybox cpio -o -H newc 2>/dev/null) | gzip >"$1/initramfs.gz"
}

# rmtty_log_mark TEXT: write TEXT to the kernel log. Earlier tests make the
# devices of these names refuse requests on purpose: only what the kernel
# logs after the last mark is the current test's.
rmtty_log_mark() {
	rmtty_mark=$1
	echo "$1" >/dev/kmsg
}

# rmtty_log_since_mark [MARK]: the kernel log after the last line holding
# MARK, by default the last mark. Fails, printing nothing, if the log holds no
# such line: the mark rotated out of the log buffer (or was never logged), and
# what came after it cannot be told from what came before.
rmtty_log_since_mark() {
	local mark=${1:-${rmtty_mark:-}}

	[ -n "$mark" ] || return 1
	dmesg | awk -v m="$mark" '
		index($0, m) { found = 1; n = 0; next }
		found { line[n++] = $0 }
		END { for (i = 0; i < n; i++) print line[i]; exit !found }'
}

# rmtty_refusals UUID...: the requests of these devices refused since the mark.
# If the kernel log no longer holds the mark, fails and prints a line saying
# so instead: a check that expects no refusal must not pass for want of a log.
rmtty_refusals() {
	local uuid log pattern=()

	for uuid; do
		pattern+=(-e "$uuid")
	done
	if ! log=$(rmtty_log_since_mark); then
		echo "the kernel log does not hold the mark '${rmtty_mark:-}': the refusals since cannot be told"
		return 1
	fi
	grep -F "${pattern[@]}" <<<"$log" | grep -F refused
	return 0
}

# Tests that run QEMUs: each QEMU has a NAME; its QMP socket is $tmp/NAME.sock,
# its output $tmp/NAME.log and the device states it sets (its trace)
# $tmp/NAME.trace. qemu_pids maps the names of the QEMUs not waited for yet
# to their process ids.
declare -A qemu_pids

# rmtty_qemu_setup VERSION: set QEMU to the qemu-system-x86_64 of QEMU
# VERSION, 10 (the machine's) or 7.2 (unpacked by tools/deps.sh into
# RMTTY_QEMU72), QEMU_ARGS to what it always needs, QEMU_MIGRATION to the
# vfio-pci property that enables migration and QEMU_VERSION to VERSION;
# create tmp, which goes at exit with any QEMU still running. Without that
# QEMU or the QMP driver every test fails.
rmtty_qemu_setup() {
	QEMU_VERSION=$1
	case $1 in
	10)
		QEMU=qemu-system-x86_64
		QEMU_ARGS=()
		command -v "$QEMU" >/dev/null || ktap_exit_fail_msg "$QEMU is not installed"
		QEMU_MIGRATION=enable-migration=on
		QEMU_STATE_TRACE=vfio_migration_set_device_state
		# A migration can go to a file and come from it.
		QEMU_SAVE_URI=file:%s
		QEMU_LOAD_URI=file:%s
		;;
	7.2)
		[ -n "${RMTTY_QEMU72:-}" ] ||
			ktap_exit_fail_msg "RMTTY_QEMU72 is not set: it must name the prefix QEMU 7.2 is unpacked into"
		QEMU=$RMTTY_QEMU72/usr/bin/qemu-system-x86_64
		[ -x "$QEMU" ] || ktap_exit_fail_msg "$QEMU is missing: tools/deps.sh unpacks QEMU 7.2"
		[[ "$("$QEMU" --version)" == "QEMU emulator version 7.2."* ]] ||
			ktap_exit_fail_msg "$QEMU is not QEMU 7.2: $("$QEMU" --version 2>&1 | head -n 1)"
		# Its own data (found relative to the binary anyway) and the
		# machine's SeaBIOS: the BIOS is all pc and q35 need with -nodefaults.
		QEMU_ARGS=(-L "$RMTTY_QEMU72/usr/share/qemu" -L /usr/share/seabios)
		QEMU_MIGRATION=x-enable-migration=on
		QEMU_STATE_TRACE=vfio_migration_set_state
		# file: migration came with QEMU 8.2.
		QEMU_SAVE_URI='exec:cat >%s'
		QEMU_LOAD_URI='exec:cat %s'
		;;
	*)
		ktap_exit_fail_msg "rmtty_qemu_setup: no QEMU $1"
		;;
	esac
	command -v python3 >/dev/null || ktap_exit_fail_msg "python3 is not installed"
	QMP=$(cd "$(dirname "$0")" && pwd)/rmtty_qmp.py
	[ -r "$QMP" ] || ktap_exit_fail_msg "$QMP is missing: it is installed with the tests"
	ktap_print_msg "$("$QEMU" --version | head -n 1)"
	tmp=$(mktemp -d)
	trap qemu_cleanup EXIT
	# Firmware that does nothing: 64 KiB of HLT. A loaded VM that runs
	# (cont) then halts at the reset vector with interrupts off, and
	# nothing but the test touches the device's registers.
	head -c 65536 /dev/zero | tr '\0' '\364' >"$tmp/hlt.bin"
}

# By hand, while debugging: RMTTY_QEMU_TRACE=FILE adds the trace events FILE
# names to every QEMU's trace; RMTTY_QEMU_KEEP=DIR keeps each run's QEMU logs,
# traces and consoles in a new directory under DIR.
qemu_cleanup() {
	local name

	for name in "${!qemu_pids[@]}"; do
		running "${qemu_pids[$name]}" && kill -KILL "${qemu_pids[$name]}"
	done
	if [ -n "${RMTTY_QEMU_KEEP:-}" ]; then
		mkdir -p "$RMTTY_QEMU_KEEP" &&
			cp -r "$tmp" "$(mktemp -d "$RMTTY_QEMU_KEEP/$(basename "$0" .sh)-XXXX")"
	fi
	rm -rf "$tmp"
}

# qemu_start NAME ARGS...: start QEMU NAME with ARGS and no default devices
# nor display (not in a subshell: this shell must be its parent).
qemu_start() {
	local name=$1

	shift
	rm -f "$tmp/$name.sock"
	"$QEMU" "${QEMU_ARGS[@]}" -nodefaults -display none \
		-qmp "unix:$tmp/$name.sock,server=on,wait=off" \
		-D "$tmp/$name.trace" -trace "$QEMU_STATE_TRACE" \
		-trace 'vfio_intx_*' -trace 'vfio_msi_*' -trace vfio_pci_reset \
		${RMTTY_QEMU_TRACE:+-trace "events=$RMTTY_QEMU_TRACE"} \
		"$@" >"$tmp/$name.log" 2>&1 </dev/null &
	qemu_pids[$name]=$!
}

# qemu_running NAME: whether QEMU NAME still runs.
qemu_running() {
	running "${qemu_pids[$1]:-}"
}

# qmp NAME TIMEOUT COMMAND [ARG]: rmtty_qmp.py's COMMAND on QEMU NAME; its
# output in qmp_out, its status returned.
qmp() {
	local name=$1

	shift
	qmp_out=$(RMTTY_QMP_PID=${qemu_pids[$name]:-} python3 "$QMP" "$tmp/$name.sock" "$@" 2>&1)
}

# qemu_wait NAME TIMEOUT: wait for QEMU NAME to exit, kill it after TIMEOUT
# s; sets qemu_rc to its exit status ("killed" if it had to be).
qemu_wait() {
	local pid=${qemu_pids[$1]:-} end=$((SECONDS + $2))

	while [ "$SECONDS" -lt "$end" ]; do
		running "$pid" || break
		sleep 0.2
	done
	if running "$pid"; then
		kill -KILL "$pid"
		wait "$pid" 2>/dev/null
		qemu_rc=killed
	else
		wait "$pid"
		qemu_rc=$?
	fi
	unset "qemu_pids[$1]"
}

# qemu_errors NAME: what QEMU NAME printed besides warnings.
qemu_errors() {
	grep -v -e 'warning:' -e '^[[:space:]]*$' "$tmp/$1.log" 2>/dev/null
}

# qemu_states NAME: the device states QEMU NAME set, in order. QEMU 7.2's v1
# states are numbers: they print as their three bits, RESUMING SAVING
# RUNNING.
qemu_states() {
	sed -n "s/.*$QEMU_STATE_TRACE *([^)]*) *\(state \)\?//p" "$tmp/$1.trace" 2>/dev/null |
		awk '/^[0-7]$/ { $0 = int($0 / 4) int($0 / 2) % 2 $0 % 2 } 1' | tr '\n' ' '
}

# qemu_report NAME: QEMU NAME's output, warnings included, and the states it
# set the device to, as diagnostics.
qemu_report() {
	local states

	msgs "$(sed "s/^/$1: /" "$tmp/$1.log" 2>/dev/null)"
	states=$(qemu_states "$1")
	ktap_print_msg "$1: device states set: ${states:-none}"
	ktap_print_msg "$1: interrupt events: $(qemu_irq_events "$1")"
}

# qemu_irq_events NAME: how often QEMU NAME traced each of its vfio-pci
# interrupt events (INTx taken and EOIed, set-ups, resets), in the order of
# their first occurrence.
qemu_irq_events() {
	grep -oE '(vfio_intx|vfio_msi)_[a-z_]+|vfio_pci_reset' "$tmp/$1.trace" 2>/dev/null |
		awk '!($0 in n) { order[k++] = $0 } { n[$0]++ }
		     END { for (i = 0; i < k; i++) printf "%s %d%s", order[i], n[order[i]], i + 1 < k ? ", " : ""
			   if (!k) printf "none" }'
}

# Migrations of a paused VM through a file: the time limits in seconds for a
# QEMU to come up and answer on its QMP socket, for a save or a load to end,
# and for a QEMU to exit once told to quit. A QEMU still running after its
# last step is killed. Each phase's time is reported.
START_TIMEOUT=300
MIGRATE_TIMEOUT=600
QUIT_TIMEOUT=120

# device_args DEVICE BACKEND: QEMU's arguments assigning DEVICE (its sysfs
# path), migratable, through the group and a type1 container, or through
# iommufd, in slot DEV_SLOT of bus 0.
DEV_SLOT=4
device_args() {
	local dev="vfio-pci,sysfsdev=$1,$QEMU_MIGRATION,addr=$DEV_SLOT.0"

	case $2 in
	container) echo "-device $dev" ;;
	iommufd) echo "-object iommufd,id=iommufd0 -device $dev,iommufd=iommufd0" ;;
	esac
}

# mem_hash UUID: set mem to the hash of the device's memory, read through
# VFIO by $BAR2 (rmtty_bar2); on failure, empty, and why is reported.
mem_hash() {
	if mem=$("$BAR2" hash "$1" 2>&1) && [[ "$mem" =~ ^[0-9a-f]{16}$ ]]; then
		return 0
	fi
	ktap_print_msg "rmtty_bar2 hash $1 failed:"
	msgs "$mem"
	mem=
	return 1
}

# The paused-VM migrations move registers as well as memory: on the source,
# before the save, the test programs the device's configuration space through
# the machine's configuration ports (0xcf8/0xcfc, HMP o and i) and its UART
# through the I/O BAR it placed, to values other than power-on's:
#   - command: I/O, memory and bus master (power-on: I/O only); BAR0 at
#     IO_BASE, BAR2 at MEM_BASE (power-on: 0); interrupt line 11 (0);
#   - UART: divisor 0x0301, LCR 0x1b (8 bits, even parity), FIFO on,
#     IER 0x04 (line status only: nothing it enables is pending), MCR 0x0b,
#     scratch 0x5a, and UART_TEXT looped back into the receive FIFO (all 0 and
#     empty at power-on).
# A device's registers are read through the running QEMU: opening a device
# resets them. The firmware is HLT alone, so the loaded VM, once it runs,
# leaves them as they are.
IO_BASE=0xc000
MEM_BASE=0xc0000000
UART_TEXT=rmtty
UART_SET="ier 0x04 lcr 0x1b mcr 0x0b scr 0x5a"
REGS_KEYS="command bar0 bar2 line ier iir lcr mcr lsr msr scr rbr"

# cfg_addr OFFSET: the configuration address of OFFSET of the device.
cfg_addr() {
	printf '0x%x' $((0x80000000 | DEV_SLOT << 11 | $1))
}

# io PORT: IO_BASE + PORT.
io() {
	printf '0x%x' $((IO_BASE + $1))
}

# regs_set NAME: program QEMU NAME's device (above); fails if HMP did.
regs_set() {
	local cmds=() c

	cmds+=("o /w 0xcf8 $(cfg_addr 0x10)" "o /w 0xcfc $IO_BASE")
	cmds+=("o /w 0xcf8 $(cfg_addr 0x18)" "o /w 0xcfc $MEM_BASE")
	cmds+=("o /w 0xcf8 $(cfg_addr 0x3c)" "o /b 0xcfc 11")
	cmds+=("o /w 0xcf8 $(cfg_addr 0x04)" "o /h 0xcfc 0x7")
	cmds+=("o /b $(io 3) 0x80" "o /b $(io 0) 0x01" "o /b $(io 1) 0x03" "o /b $(io 3) 0x1b")
	cmds+=("o /b $(io 2) 0x07" "o /b $(io 1) 0x04" "o /b $(io 4) 0x0b" "o /b $(io 7) 0x5a")
	for c in $(printf '%s' "$UART_TEXT" | od -An -tu1); do
		cmds+=("o /b $(io 0) $c")
	done
	qmp "$1" "$START_TIMEOUT" hmp "${cmds[@]}" && [ -z "$qmp_out" ]
}

# regs_read NAME [drain]: echo QEMU NAME's device registers as "KEY VALUE"
# pairs, REGS_KEYS in order, each register read once (RBR: the oldest byte of
# the FIFO). With drain, which changes the port: the divisor latch and the
# rest of the FIFO (the text it held, and LSR once it is read).
regs_read() {
	local cmds=() keys=($REGS_KEYS) values i

	cmds+=("o /w 0xcf8 $(cfg_addr 0x04)" "i /w 0xcfc" "o /w 0xcf8 $(cfg_addr 0x10)" "i /w 0xcfc")
	cmds+=("o /w 0xcf8 $(cfg_addr 0x18)" "i /w 0xcfc" "o /w 0xcf8 $(cfg_addr 0x3c)" "i /b 0xcfc")
	for i in 1 2 3 4 5 6 7 0; do
		cmds+=("i /b $(io $i)")
	done
	if [ "${2:-}" = drain ]; then
		keys+=(dll dlm)
		cmds+=("o /b $(io 3) 0x9b" "i /b $(io 0)" "i /b $(io 1)" "o /b $(io 3) 0x1b")
		for ((i = 1; i < ${#UART_TEXT}; i++)); do
			keys+=(rbr$i)
			cmds+=("i /b $(io 0)")
		done
		keys+=(lsr_after)
		cmds+=("i /b $(io 5)")
	fi
	qmp "$1" "$START_TIMEOUT" hmp "${cmds[@]}" || { echo "unread: $qmp_out"; return 1; }
	values=($(sed -n 's/^port.\[0x[0-9a-f]*\] = //p' <<<"$qmp_out"))
	[ "${#values[@]}" = "${#keys[@]}" ] || { echo "unread: $qmp_out"; return 1; }
	for i in "${!keys[@]}"; do
		printf '%s %s ' "${keys[$i]}" "${values[$i]}"
	done
}

# reg DUMP KEY: the value of KEY in a regs_read dump, as a number.
reg() {
	local dump=($1) i

	for ((i = 0; i + 1 < ${#dump[@]}; i += 2)); do
		[ "${dump[$i]}" = "$2" ] && echo $((dump[i + 1])) && return
	done
	echo none
}

# regs_common DUMP: the part of a dump every regs_read has.
regs_common() {
	local dump=($1)

	echo "${dump[@]:0:$((2 * $(wc -w <<<"$REGS_KEYS")))}"
}

# migration_save LABEL DEVICE BACKEND [regs]: a paused (-S) QEMU with DEVICE
# assigned saves its VM to $tmp/LABEL.state; the QEMU is LABEL-source. With
# regs, the test sets the device's registers first (regs_set) and reads them
# into src_regs after the save. Sets save_info (the migration's report, with
# HMP's `info migrate`) and returns 0 if the QEMU came up and the save ran to
# its end.
migration_save() {
	local label=$1 name=$1-source t0 t up rc uri regs=${4:-}
	local -a args

	read -ra args <<<"$(device_args "$2" "$3")"
	# shellcheck disable=SC2059 # the format is the QEMU's
	printf -v uri "$QEMU_SAVE_URI" "$tmp/$label.state"
	t0=$(now_ms)
	src_regs=
	qemu_start "$name" -machine q35 -m 64 -S -bios "$tmp/hlt.bin" "${args[@]}"
	qmp "$name" "$START_TIMEOUT" ready
	rc=$?
	up="up (${qmp_out:-no answer}) after $(since "$t0")"
	save_info=$qmp_out
	if [ "$rc" = 0 ] && [ -n "$regs" ] && ! regs_set "$name"; then
		rc=1
		save_info="setting the registers through HMP failed: $qmp_out"
	fi
	if [ "$rc" = 0 ]; then
		t=$(now_ms)
		qmp "$name" "$MIGRATE_TIMEOUT" migrate "$uri"
		rc=$?
		save_info=$qmp_out
		up+=", saved in $(since "$t")"
		# The device is stopped now: reading its registers changes nothing.
		[ -z "$regs" ] || src_regs=$(regs_read "$name")
	fi
	t=$(now_ms)
	qmp "$name" "$QUIT_TIMEOUT" quit
	qemu_wait "$name" "$QUIT_TIMEOUT"
	ktap_print_msg "$label: source QEMU: $up, exited ($qemu_rc) $(since "$t") after quit;" \
		"$(since "$t0") in all; $(grep -m1 '^query-migrate:' <<<"$save_info");" \
		"state file: $(stat -c %s "$tmp/$label.state" 2>/dev/null || echo none) bytes"
	return "$rc"
}

# migration_load LABEL DEVICE BACKEND: a QEMU with DEVICE assigned loads the
# VM from $tmp/LABEL.state (-incoming) and, if the load completed, runs it
# (cont): the source was paused, so the VM stays paused after the load and
# QEMU moves the device out of RESUMING, which commits the loaded state, only
# when the VM starts. The QEMU is LABEL-target. With regs, the device's
# registers are read into tgt_regs once the VM runs (regs_read, drain). Sets
# load_info; returns 0 if the load completed and the VM ran. Without a state
# file no QEMU starts (QEMU 7.2 would wait for its exec: stream's first byte
# forever).
migration_load() {
	local label=$1 name=$1-target t0 t up rc uri regs=${4:-}
	local -a args

	tgt_regs=
	if [ ! -s "$tmp/$label.state" ]; then
		load_info="there is no state file to load"
		qemu_rc=none
		ktap_print_msg "$label: no target QEMU: the save left no state file"
		return 1
	fi
	read -ra args <<<"$(device_args "$2" "$3")"
	# shellcheck disable=SC2059 # the format is the QEMU's
	printf -v uri "$QEMU_LOAD_URI" "$tmp/$label.state"
	t0=$(now_ms)
	qemu_start "$name" -machine q35 -m 64 -bios "$tmp/hlt.bin" -incoming "$uri" "${args[@]}"
	qmp "$name" "$START_TIMEOUT" ready
	rc=$?
	up="up (${qmp_out:-no answer}) after $(since "$t0")"
	load_info=$qmp_out
	if [ "$rc" = 0 ]; then
		qmp "$name" "$MIGRATE_TIMEOUT" incoming
		rc=$?
		load_info=$qmp_out
		up+=", load ended $(since "$t0") after the start"
	fi
	if [ "$rc" = 0 ]; then
		t=$(now_ms)
		qmp "$name" "$START_TIMEOUT" cont
		rc=$?
		[ "$qmp_out" = running ] || rc=1
		up+=", cont: ${qmp_out:-no answer} in $(since "$t")"
		[ -z "$regs" ] || tgt_regs=$(regs_read "$name" drain)
	fi
	t=$(now_ms)
	qemu_running "$name" && qmp "$name" "$QUIT_TIMEOUT" quit
	qemu_wait "$name" "$QUIT_TIMEOUT"
	ktap_print_msg "$label: target QEMU: $up, exited ($qemu_rc) $(since "$t") later;" \
		"$(since "$t0") in all; $(grep -m1 '^query-migrate:' <<<"$load_info")"
	return "$rc"
}

# migration_same_shape BACKEND N: migrate a paused VM with rmtty-1 x4
# (device N) to one with rmtty-4 (device N+1) through BACKEND, with the
# registers set (regs_set); seven tests. The target's memory is filled with
# another pattern first, so that the load must change it.
migration_same_shape() {
	local backend=$1 src tgt src_uuid tgt_uuid seed=$((0x5eed0000 + $2)) ok
	local src_hash tgt_before src_after tgt_after refusals errors k bad text

	src=$(rmtty_create 1 "$2" 4) && tgt=$(rmtty_create 4 $(($2 + 1))) ||
		ktap_exit_fail_msg "creating the devices failed"
	src_uuid=$(basename "$src")
	tgt_uuid=$(basename "$tgt")
	"$BAR2" fill "$src_uuid" "$seed" || ktap_exit_fail_msg "filling $src_uuid's memory failed"
	"$BAR2" fill "$tgt_uuid" $((seed + 0x100)) || ktap_exit_fail_msg "filling $tgt_uuid's memory failed"
	mem_hash "$src_uuid"
	src_hash=$mem
	mem_hash "$tgt_uuid"
	tgt_before=$mem
	ktap_print_msg "$backend: source $src_uuid (rmtty-1 x4) filled with seed $seed, memory hash" \
		"${src_hash:-unknown}; target $tgt_uuid (rmtty-4) filled with seed $((seed + 0x100))," \
		"memory hash ${tgt_before:-unknown}"

	rmtty_log_mark "$(basename "$0" .sh): $backend: the QEMUs start"
	migration_save "$backend" "$src" "$backend" regs
	ok=$?
	grep -qx 'Migration status: completed' <<<"$save_info" && [ "$ok" = 0 ]
	result "$backend: QEMU saves the paused VM with rmtty-1 x4 (Migration status: completed)"
	[ "$ok" = 0 ] || msgs "$save_info"
	qemu_report "$backend-source"

	migration_load "$backend" "$tgt" "$backend" regs
	ok=$?
	[ "$ok" = 0 ]
	result "$backend: another QEMU loads it onto rmtty-4 (incoming migration completed) and runs it"
	[ "$ok" = 0 ] || msgs "$load_info"
	qemu_report "$backend-target"

	mem_hash "$src_uuid"
	src_after=$mem
	mem_hash "$tgt_uuid"
	tgt_after=$mem
	ktap_print_msg "$backend: memory hashes after: source ${src_after:-unknown}, target ${tgt_after:-unknown}"
	[ -n "$src_hash" ] && [ "$src_hash" != "$tgt_before" ] &&
		[ "$src_after" = "$src_hash" ] && [ "$tgt_after" = "$src_hash" ]
	result "$backend: the target's memory is the source's, which the save left as it was"
	[ "$tgt_after" = "$src_hash" ] || msgs "$("$BAR2" verify "$tgt_uuid" "$seed" 2>&1)"

	# The UART: what the test wrote, on the source after the save and on
	# the target; the rest of the registers as the source's were.
	ktap_print_msg "$backend: registers of the source after the save: ${src_regs:-none}"
	ktap_print_msg "$backend: registers of the target: ${tgt_regs:-none}"
	bad=
	for k in ier lcr mcr scr; do
		[ "$(reg "$src_regs" "$k")" = $(($(sed -n "s/.*$k \(0x[0-9a-f]*\).*/\1/p" <<<"$UART_SET"))) ] ||
			bad+=" source $k"
	done
	[ "$(reg "$src_regs" rbr)" = "$(printf '%d' "'${UART_TEXT:0:1}")" ] || bad+=" source rbr"
	[ "$(reg "$tgt_regs" dlm)" = 3 ] && [ "$(reg "$tgt_regs" dll)" = 1 ] || bad+=" target divisor"
	text=$(for k in rbr rbr1 rbr2 rbr3 rbr4; do printf "\\$(printf %03o "$(reg "$tgt_regs" $k)")"; done 2>/dev/null)
	[ "$text" = "$UART_TEXT" ] && [ $(($(reg "$tgt_regs" lsr_after) & 1)) = 0 ] || bad+=" target FIFO ($text)"
	[ -n "$src_regs" ] && [ "$(regs_common "$tgt_regs" | cut -d' ' -f9-)" = "$(regs_common "$src_regs" | cut -d' ' -f9-)" ] ||
		bad+=" target UART differs from source"
	[ -z "$bad" ]
	result "$backend: the target's UART holds the source's registers, divisor and FIFO text, none at power-on"
	[ -z "$bad" ] || ktap_print_msg "$backend: wrong:$bad"

	# Configuration space: the source's after the save, as the test set it.
	bad=
	[ $(($(reg "$src_regs" command) & 0x7)) = 7 ] || bad+=" command"
	[ "$(reg "$src_regs" bar0)" = $((IO_BASE | 1)) ] || bad+=" BAR0"
	[ "$(reg "$src_regs" bar2)" = $((MEM_BASE)) ] || bad+=" BAR2"
	[ "$(reg "$src_regs" line)" = 11 ] || bad+=" interrupt line"
	[ "$(regs_common "$tgt_regs" | cut -d' ' -f1-8)" = "$(regs_common "$src_regs" | cut -d' ' -f1-8)" ] ||
		bad+=" target differs from source"
	[ -z "$bad" ]
	result "$backend: the target's configuration space holds the source's command, BARs and interrupt line"
	[ -z "$bad" ] || ktap_print_msg "$backend: wrong:$bad"

	refusals=$(rmtty_refusals "$src_uuid" "$tgt_uuid") && [ -z "$refusals" ]
	result "$backend: neither device refused a request of QEMU's"
	msgs "$refusals"

	errors=$(qemu_errors "$backend-source"; qemu_errors "$backend-target")
	[ -z "$errors" ]
	result "$backend: QEMU printed no error"
	msgs "$errors"

	echo 1 >"$src/remove" && echo 1 >"$tgt/remove" ||
		ktap_exit_fail_msg "removing the devices failed"
}

# migration_other_shape N: a paused VM with rmtty-1 x4 (4 MiB, device N) is
# saved, and loading it onto rmtty-2 (2 MiB, device N+1) must fail, through
# the container; four tests.
migration_other_shape() {
	local label=shape src tgt src_uuid tgt_uuid seed=$((0x5eed0000 + $1)) ok
	local tgt_before tgt_after refusals errors

	src=$(rmtty_create 1 "$1" 4) && tgt=$(rmtty_create 2 $(($1 + 1))) ||
		ktap_exit_fail_msg "creating the devices failed"
	src_uuid=$(basename "$src")
	tgt_uuid=$(basename "$tgt")
	"$BAR2" fill "$src_uuid" "$seed" || ktap_exit_fail_msg "filling $src_uuid's memory failed"
	"$BAR2" fill "$tgt_uuid" $((seed + 1)) || ktap_exit_fail_msg "filling $tgt_uuid's memory failed"
	mem_hash "$tgt_uuid"
	tgt_before=$mem
	ktap_print_msg "$label: source $src_uuid (rmtty-1 x4, 4 MiB), target $tgt_uuid (rmtty-2, 2 MiB)" \
		"with memory hash ${tgt_before:-unknown}"

	rmtty_log_mark "$(basename "$0" .sh): $label: the QEMUs start"
	migration_save "$label" "$src" container
	ok=$?
	grep -qx 'Migration status: completed' <<<"$save_info" && [ "$ok" = 0 ]
	result "$label: QEMU saves the paused VM with rmtty-1 x4 (Migration status: completed)"
	[ "$ok" = 0 ] || msgs "$save_info"
	qemu_report "$label-source"

	migration_load "$label" "$tgt" container
	ok=$?
	errors=$(qemu_errors "$label-target")
	[ "$ok" != 0 ] && [ "$qemu_rc" != 0 ] && [ "$qemu_rc" != killed ] && [ -n "$errors" ]
	result "$label: another QEMU fails to load it onto rmtty-2, with an error (exit status $qemu_rc)"
	msgs "$load_info"
	qemu_report "$label-target"

	refusals=$(rmtty_refusals "$src_uuid" "$tgt_uuid")
	grep -qF "$tgt_uuid: migration stream refused: shape 1 port(s) and 4 MiB, this device has 1 port(s) and 2 MiB" <<<"$refusals"
	result "$label: the target refuses the stream for its shape (kernel log)"
	msgs "$refusals"

	mem_hash "$tgt_uuid"
	tgt_after=$mem
	[ -n "$tgt_before" ] && [ "$tgt_after" = "$tgt_before" ]
	result "$label: the target's memory is as it was before"
	ktap_print_msg "$label: target memory hash after: ${tgt_after:-unknown}"

	echo 1 >"$src/remove" && echo 1 >"$tgt/remove" || ktap_exit_fail_msg "removing the devices failed"
}
