#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build rmtty's test kernel: Linux 7.2 from Debian's linux-source-7.2 with
# LLVM=-19, the project's config fragment merged onto tinyconfig and the
# project's Rust abstractions installed into the kernel crate.
#
# The extracted source and the O= build directory are cached outside the
# repository, keyed by the source package's version and the fragment's hash:
# a changed fragment gets a fresh build, changed abstractions only rebuild
# what depends on them.
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

configure() {
	[ -e "$KOUT/.config" ] && return 0
	mkdir -p "$KOUT"
	kmake tinyconfig
	"$KSRC"/scripts/kconfig/merge_config.sh -m -O "$KOUT" "$KOUT/.config" "$RMTTY_FRAGMENT"
	kmake olddefconfig
}

# Kconfig silently drops what has unmet dependencies: name every option the
# fragment asks for that the resulting .config does not have.
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
	done <"$RMTTY_FRAGMENT"
	if [ ${#bad[@]} != 0 ]; then
		echo "Kconfig did not keep these options of $RMTTY_FRAGMENT:"
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

echo "rmtty: test kernel $KVERSION (cache $KCACHE)"
# Clones on one machine share the cache: one of them at a time installs into
# the source tree and builds it.
mkdir -p "$KCACHE"
exec 9>"$KCACHE/.lock"
flock 9
step "extract kernel source" extract
step "install Rust abstractions" "$RMTTY_TOP/tools/install-abstractions.sh" "$KSRC"
step "configure (tinyconfig + fragment)" configure
step "verify kernel config" verify_config
step "build kernel (bzImage, modules, headers)" build
