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

build() {
	kmake -j"$(nproc)" bzImage modules
	kmake headers
}

echo "rmtty: test kernel $KVERSION (cache $KCACHE)"
step "extract kernel source" extract
step "install Rust abstractions" "$RMTTY_TOP/tools/install-abstractions.sh" "$KSRC"
step "configure (tinyconfig + fragment)" configure
step "verify kernel config" verify_config
step "build kernel (bzImage, modules, headers)" build
