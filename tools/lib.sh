# SPDX-License-Identifier: GPL-2.0
# Shared helpers for rmtty's build and guest scripts. Sourced, not run.

# Where everything built outside the repository lives. A fresh clone on a
# machine that already built once finds its kernel here.
RMTTY_CACHE=${RMTTY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rmtty}
RMTTY_VENV=$RMTTY_CACHE/venv
RMTTY_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RMTTY_LLVM=-19
export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-19/lib}
export PATH=$RMTTY_VENV/bin:$HOME/.cargo/bin:$PATH

mkdir -p "$RMTTY_CACHE/logs"

# step NAME CMD...: run CMD quietly, print one line with its wall time, and on
# failure name the step, show the end of its log and exit.
step() {
	local name=$1 t0=$SECONDS log rc errexit=${-//[^e]/}
	shift
	log=$RMTTY_CACHE/logs/$(printf '%s' "$name" | tr -c 'a-zA-Z0-9_-' '_').log
	# Not as an if condition: bash ignores set -e in what a condition runs,
	# and the step must stop at its first failing command.
	set +e
	(set -e; "$@") >"$log" 2>&1
	rc=$?
	[ -n "$errexit" ] && set -e
	if [ "$rc" = 0 ]; then
		printf '  %-44s %5ds\n' "$name" $((SECONDS - t0))
	else
		printf '  %-44s FAILED after %ds\n' "$name" $((SECONDS - t0)) >&2
		echo "---- last lines of $log ----" >&2
		tail -n 40 "$log" >&2
		exit 1
	fi
}

die() {
	echo "rmtty: $*" >&2
	exit 1
}

RMTTY_FRAGMENT=$RMTTY_TOP/tools/kernel/rmtty.config
RMTTY_NESTED_FRAGMENT=$RMTTY_TOP/tools/kernel/nested.config

# fragment_key FRAGMENT: what names a kernel's cache: a hash of the options
# FRAGMENT sets or unsets, not of its comments, which a rebuild would not
# change.
fragment_key() {
	grep -E '^(CONFIG_|# CONFIG_[A-Za-z0-9_]+ is not set)' "$1" | sha256sum | cut -c1-12
}

# kernel_paths: set KVERSION, KCACHE, KSRC and KOUT for the installed
# linux-source-7.2 and the current config fragment, and NCACHE, NSRC and
# NOUT for the nested guests' kernel: a tree of its own, keyed by its own
# fragment, so that a change to one kernel's options rebuilds that kernel.
kernel_paths() {
	KVERSION=$(dpkg-query -W -f='${Version}' linux-source-7.2 2>/dev/null) ||
		die "linux-source-7.2 is not installed (run tools/deps.sh)"
	KCACHE=$RMTTY_CACHE/linux-$KVERSION-$(fragment_key "$RMTTY_FRAGMENT")
	KSRC=$KCACHE/src
	KOUT=$KCACHE/build
	NCACHE=$RMTTY_CACHE/linux-$KVERSION-nested-$(fragment_key "$RMTTY_NESTED_FRAGMENT")
	NSRC=$NCACHE/src
	NOUT=$NCACHE/build
}

# kmake ARGS...: make in the kernel tree KSRC, O=KOUT, with LLVM=$RMTTY_LLVM:
# LLVM 19 for the test kernel, whose Rust needs it; an empty RMTTY_LLVM is
# make's LLVM=, the machine's gcc.
kmake() {
	make -C "$KSRC" O="$KOUT" LLVM="$RMTTY_LLVM" "$@"
}

# Build outputs of this clone that the guest also needs (selftests and their
# kselftest install layout) live in the clone, which the guest sees as is.
RMTTY_BUILD=$RMTTY_TOP/build
RMTTY_KO=$RMTTY_TOP/samples/rmtty/rmtty.ko
RMTTY_TEST_MODULES=$RMTTY_TOP/selftests/rmtty/modules
# What the guest writes for the host (the kernel log, the kmemleak report):
# the one directory of the clone the guest may write to.
RMTTY_GUEST_OUT=$RMTTY_BUILD/guest
# The nested guests' kernel as the guest finds it (tools/kernel.sh puts it
# there once built, or a file "failed" saying why not), in a directory the
# guest mounts apart from its root, uncached: a kernel that arrives while the
# guest runs is seen (tools/check.sh lets it build during the suite).
RMTTY_NESTED_DIR=$RMTTY_BUILD/nested
RMTTY_COMPAT=$RMTTY_TOP/tools/target/release/rmtty-compat
# QEMU 7.2, the last QEMU that speaks VFIO's v1 migration protocol: bookworm's
# packages unpacked into a prefix of their own (tools/deps.sh), beside the
# machine's QEMU 10.
RMTTY_QEMU72=$RMTTY_CACHE/qemu-7.2

# kill_tree PID: PID and every process under it.
kill_tree() {
	local child

	for child in $(pgrep -P "$1"); do
		kill_tree "$child"
	done
	kill "$1" 2>/dev/null || true
}

# stop_nested_build: stop the nested guests' kernel's build that
# tools/kernel.sh left running in the background (RMTTY_NESTED_DIR/pid), if
# it still runs.
stop_nested_build() {
	local pid

	pid=$(cat "$RMTTY_NESTED_DIR/pid" 2>/dev/null) || return 0
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && kill_tree "$pid"
	return 0
}

# sh_quote STR: STR quoted for any POSIX shell (the guest's /bin/sh is dash).
sh_quote() {
	printf "'%s'" "${1//\'/\'\\\'\'}"
}

# guest_env: the environment every guest command starts with.
guest_env() {
	printf 'export RMTTY_TOP=%s RMTTY_KO=%s RMTTY_TEST_MODULES=%s RMTTY_COMPAT=%s RMTTY_KHDR=%s RMTTY_KSFT=%s RMTTY_BZIMAGE=%s RMTTY_GUEST_OUT=%s RMTTY_QEMU72=%s; cd %s\n' \
		"$(sh_quote "$RMTTY_TOP")" "$(sh_quote "$RMTTY_KO")" "$(sh_quote "$RMTTY_TEST_MODULES")" \
		"$(sh_quote "$RMTTY_COMPAT")" "$(sh_quote "$KOUT/usr/include")" \
		"$(sh_quote "$RMTTY_BUILD/ksft")" "$(sh_quote "$RMTTY_NESTED_DIR/bzImage")" \
		"$(sh_quote "$RMTTY_GUEST_OUT")" "$(sh_quote "$RMTTY_QEMU72")" "$(sh_quote "$RMTTY_TOP")"
}

# The guest kernel's log buffer holds the whole boot and more, so that the
# tests' copy of the log, which starts after the boot, misses nothing.
#
# The test guest's root is the host's, over 9p (--force-9p: virtme-ng would
# take virtiofs where it finds a virtiofsd, and these rootflags are 9p's).
# virtme-ng mounts it uncached, so that every exec, shared library and Python
# module is read from the host again, each time through 9p. The root is
# read-only to the guest and nothing on the host changes it while the guest
# runs, so the guest may keep what it read: cache=loose (a later rootflags=
# replaces virtme-ng's). Measured on the KASAN kernel: five Python starts
# 13.0 -> 4.9 s, QEMU 7.2 up to its monitor 13.4 -> 2.1 s, 200 execs
# 42 -> 29 s.
RMTTY_GUEST_CMDLINE="log_buf_len=16M rootflags=version=9p2000.L,trans=virtio,access=any,msize=524288,cache=loose"

# The guest's memory (RMTTY_GUEST_MEMORY to change it).
# rmtty_sysfs_test's largest pool is 1 GiB of device memory, which KASAN's
# shadow and quarantine make more than a 2 GiB guest holds (the OOM killer
# ended the suite there).
RMTTY_GUEST_MEMORY=${RMTTY_GUEST_MEMORY:-4G}

# run_guest CMD: boot the test kernel in a virtme-ng guest (TCG: this
# machine's /dev/kvm cannot run ordinary guests), run CMD there with bash as
# root and return its exit status. CMD goes through a script file in the
# clone, which the guest sees: virtme-ng would put it on the kernel command
# line, which is limited to 2 KiB. The guest's output (stdout and stderr,
# merged) is piped, never left pointing at a file: QEMU reopens the file and
# truncates it, and two ports writing to it overwrite each other.
# RMTTY_GUEST_APPEND adds to the kernel command line.
run_guest() {
	local rc script
	rm -rf "$RMTTY_GUEST_OUT"
	mkdir -p "$RMTTY_BUILD" "$RMTTY_GUEST_OUT" "$RMTTY_NESTED_DIR"
	script=$(mktemp "$RMTTY_BUILD/guest-XXXXXX.sh")
	{ guest_env; printf '%s\n' "$1"; } >"$script"
	timeout -k 30 "${RMTTY_GUEST_TIMEOUT:-3900}" \
		vng --disable-kvm --force-9p --run "$KOUT" --memory "$RMTTY_GUEST_MEMORY" --cpus 2 \
		    --append "root=/dev/root $RMTTY_GUEST_CMDLINE ${RMTTY_GUEST_APPEND:-}" \
		    --rwdir "$RMTTY_GUEST_OUT" --rodir "$RMTTY_NESTED_DIR" \
		    --exec "bash $(sh_quote "$script")" 2>&1 | cat
	rc=${PIPESTATUS[0]}
	rm -f "$script"
	[ "$rc" = 124 ] && echo "rmtty: the guest timed out" >&2
	return "$rc"
}
