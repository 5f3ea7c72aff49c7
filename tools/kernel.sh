#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build rmtty's test kernel: Linux 7.2 from Debian's linux-source-7.2 with
# LLVM=-19, the project's config fragment merged onto tinyconfig and the
# project's Rust abstractions installed into the kernel crate; and the nested
# guests' kernel, the same source with its own small fragment (nested.config),
# built with gcc.
#
# Each kernel's extracted source and O= build directory are cached outside
# the repository, keyed by the source package's version and a hash of the
# options its fragment sets: a changed option gets a fresh build of its
# kernel, changed abstractions only rebuild what depends on them in the test
# kernel.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
kernel_paths

extract() {
	[ -e "$KSRC/Makefile" ] && return 0
	local tmp=$KCACHE/src.tmp
	rm -rf "$tmp"
	mkdir -p "$tmp"
	tar -C "$tmp" -xf /usr/src/linux-source-7.2.tar.xz
	mv "$tmp"/linux-source-7.2 "$KSRC"
	rmdir "$tmp"
}

# configure FRAGMENT: the stamp says a configuration was made whole; a run
# stopped half-way leaves none, and the next run configures again. (A tree
# configured before the stamp existed has a vmlinux.)
configure() {
	if [ -e "$KOUT/.rmtty-configured" ] || [ -e "$KOUT/vmlinux" ]; then
		return 0
	fi
	mkdir -p "$KOUT"
	kmake tinyconfig
	"$KSRC"/scripts/kconfig/merge_config.sh -m -O "$KOUT" "$KOUT/.config" "$1"
	kmake olddefconfig
	touch "$KOUT/.rmtty-configured"
}

# verify_config FRAGMENT: Kconfig silently drops what has unmet dependencies:
# name every option the fragment asks for that the resulting .config does not
# have.
verify_config() {
	local line opt want have bad=()
	kmake olddefconfig
	while IFS= read -r line; do
		case "$line" in CONFIG_*=*) ;; *) continue ;; esac
		opt=${line%%=*}
		want=${line#*=}
		have=$(grep -E "^$opt=" "$KOUT/.config" | cut -d= -f2- || true)
		[ "$want" = n ] && want=
		[ "$have" = "$want" ] || bad+=("$opt (wanted ${want:-n}, got ${have:-n})")
	done <"$1"
	if [ ${#bad[@]} != 0 ]; then
		echo "Kconfig did not keep these options of $1:"
		printf '  %s\n' "${bad[@]}"
		return 1
	fi
}

# The kernel crate is linted as it is built (CLIPPY=1). Its warnings in the
# project's files are recorded whenever it is rebuilt, so that the test
# command can report them even when nothing needed rebuilding.
build() {
	local out=$KCACHE/build.out files
	kmake -j"$(nproc)" CLIPPY=1 bzImage modules 2>&1 | tee "$out"
	[ "${PIPESTATUS[0]}" = 0 ] || return 1
	kmake headers
	if grep -qE '^  (CLIPPY|RUSTC) L rust/kernel.o' "$out"; then
		files=$(sed 's|^|rust/|' "$KSRC/.rmtty-abstractions" | paste -sd'|')
		awk -v files="$files" '
			/^(warning|error)/ { block = $0; keep = 0; next }
			block != "" && /^ *$/ { if (keep) print block "\n"; block = ""; next }
			block != "" { block = block "\n" $0; if ($0 ~ files) keep = 1 }
		' "$out" >"$KCACHE/abstractions.warnings"
		grep -E "^($files).*(warning|error):" "$out" >>"$KCACHE/abstractions.warnings" || true
	fi
	# objtool checks vmlinux.o whenever it is relinked: our symbols' mangled names hold
	# 4mdev / 4vfio.
	if grep -q 'vmlinux.o' "$out"; then
		grep -E 'warning: objtool: .*_(4mdev|4vfio)' "$out" >>"$KCACHE/abstractions.warnings" || true
	fi
}

# The nested guests' kernel: no modules, no headers, no Rust.
build_nested() {
	kmake -j"$(nproc)" bzImage
}

# The test kernel's sources need the project's abstractions.
install_abstractions() {
	"$RMTTY_TOP/tools/install-abstractions.sh" "$KSRC"
}

# one_kernel NAME PREFIX FRAGMENT PREPARE BUILD WHAT: extract, PREPARE (or
# nothing, if it is "-"), configure with FRAGMENT, check and BUILD the kernel
# in KCACHE/KSRC/KOUT; PREFIX starts each step's name, WHAT says what BUILD
# builds. Clones on one machine share the cache: one of them at a time
# prepares a source tree and builds it, under the cache's lock.
one_kernel() {
	local name=$1 prefix=$2 fragment=$3 prepare=$4 build=$5 what=$6

	echo "rmtty: $name $KVERSION (cache $KCACHE)"
	mkdir -p "$KCACHE"
	exec 9>"$KCACHE/.lock"
	flock 9
	step "${prefix}extract kernel source" extract
	[ "$prepare" = - ] || step "${prefix}install Rust abstractions" "$prepare"
	step "${prefix}configure (tinyconfig + fragment)" configure "$fragment"
	step "${prefix}verify kernel config" verify_config "$fragment"
	step "${prefix}build kernel ($what)" "$build"
	exec 9>&-
}

# gcc builds the nested kernel, which has no Rust, in 223 s where clang took
# 277 (this machine, 2 cores).
nested_kernel() {
	local KCACHE=$NCACHE KSRC=$NSRC KOUT=$NOUT RMTTY_LLVM=

	one_kernel "nested guests' kernel" "nested: " "$RMTTY_NESTED_FRAGMENT" - build_nested bzImage
}

# publish_nested RC: put the nested kernel where the guest finds it
# (RMTTY_NESTED_DIR), or, if its build failed with RC, the build's last lines
# in "failed" there. The guest waits for one of the two.
publish_nested() {
	# A build that a later run replaced publishes nothing.
	[ "$(cat "$RMTTY_NESTED_DIR/pid" 2>/dev/null)" = "$BASHPID" ] || return 0
	if [ "$1" = 0 ]; then
		cp "$NOUT/arch/x86/boot/bzImage" "$RMTTY_NESTED_DIR/bzImage.tmp" &&
			mv "$RMTTY_NESTED_DIR/bzImage.tmp" "$RMTTY_NESTED_DIR/bzImage" && return
	fi
	tail -n 40 "$nested_out" >"$RMTTY_NESTED_DIR/failed.tmp"
	mv "$RMTTY_NESTED_DIR/failed.tmp" "$RMTTY_NESTED_DIR/failed"
}

# The nested kernel is built beside the test kernel, at the lowest priority:
# it takes the CPU time the test kernel's build leaves idle (its Rust crates
# and links are one process each) and little else. Its lines follow the test
# kernel's. With RMTTY_NESTED_BACKGROUND=1 (the test command), a build still
# running when the test kernel is done goes on while the suite runs: only
# the live migration tests, late in the suite, need it, and they wait for it.
# Otherwise, if this script is stopped, so is the nested build.
# A build an earlier run left running in the background is stopped first.
stop_nested_build
rm -rf "$RMTTY_NESTED_DIR"
mkdir -p "$RMTTY_NESTED_DIR"
nested_out=$RMTTY_NESTED_DIR/build.log
(
	renice -n 19 -p "$BASHPID" >/dev/null
	# Not as a condition, which would turn set -e off in the steps; the
	# result is published however the build ends.
	set +e
	(set -e; nested_kernel)
	rc=$?
	publish_nested "$rc"
	exit "$rc"
) >"$nested_out" 2>&1 &
nested_pid=$!
echo "$nested_pid" >"$RMTTY_NESTED_DIR/pid"
# In the background too: as a condition, the test kernel's steps would run
# with set -e ignored (see step).
one_kernel "test kernel" "" "$RMTTY_FRAGMENT" install_abstractions build "bzImage, modules, headers" &
test_pid=$!
trap 'kill_tree "$test_pid"; kill_tree "$nested_pid"' EXIT
test_rc=0
wait "$test_pid" || test_rc=$?
if kill -0 "$nested_pid" 2>/dev/null; then
	if [ "$test_rc" = 0 ] && [ "${RMTTY_NESTED_BACKGROUND:-}" = 1 ]; then
		echo "rmtty: the nested guests' kernel goes on building during the suite" \
		     "(log: $nested_out)"
		trap - EXIT
		exit 0
	fi
	echo "rmtty: waiting for the nested guests' kernel"
fi
nested_rc=0
wait "$nested_pid" || nested_rc=$?
if [ "$nested_rc" = 0 ]; then
	cat "$nested_out"
else
	cat "$nested_out" >&2
fi
[ "$test_rc" = 0 ] && [ "$nested_rc" = 0 ]
