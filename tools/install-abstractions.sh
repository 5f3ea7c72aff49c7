#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Install rmtty's Rust VFIO/mdev abstractions into a kernel source tree, the
# way the series would apply upstream: new files under rust/kernel and
# rust/helpers, plus a few lines in files the tree already has (the kernel
# crate's module list, the bindgen and helper includes, and the Kconfig
# symbol that builds the mdev core into vmlinux).
#
# Idempotent, and a file whose content is unchanged is not touched, so kbuild
# rebuilds only what really changed (a fresh clone has new mtimes everywhere).
#
# Usage: install-abstractions.sh KSRC
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
ksrc=${1:?usage: install-abstractions.sh KSRC}
manifest=$ksrc/.rmtty-abstractions

# install_file REL: copy rust/REL from the project unless the tree has it already.
install_file() {
	local src=$top/rust/$1 dst=$ksrc/rust/$1
	mkdir -p "$(dirname "$dst")"
	cmp -s "$src" "$dst" || cp "$src" "$dst"
}

# insert_before FILE ANCHOR TEXT: put TEXT (one or more lines) before the
# first line matching the extended regex ANCHOR, unless TEXT is already there.
insert_before() {
	local file=$1 anchor=$2 text=$3
	grep -qxF -- "$(printf '%s\n' "$text" | tail -n 1)" "$file" && return 0
	grep -qE -- "$anchor" "$file" || { echo "anchor '$anchor' not found in $file" >&2; exit 1; }
	TEXT=$text ANCHOR=$anchor perl -0pi -e \
		's/^(?=$ENV{ANCHOR})/$ENV{TEXT}\n/m' "$file"
}

append_once() {
	local file=$1 marker=$2 text=$3
	grep -qF -- "$marker" "$file" || printf '\n%s\n' "$text" >>"$file"
}

# New files, and removal of those a previous install left but the project
# no longer has.
new_files=$(cd "$top/rust" && find kernel helpers -type f \( -name '*.rs' -o -name '*.c' \) | sort)
if [ -e "$manifest" ]; then
	comm -23 "$manifest" <(printf '%s\n' "$new_files") | while read -r old; do
		rm -f "$ksrc/rust/$old"
	done
fi
for f in $new_files; do
	install_file "$f"
done
printf '%s\n' "$new_files" >"$manifest"

insert_before "$ksrc/rust/kernel/lib.rs" '^pub mod miscdevice;' \
'#[cfg(CONFIG_RUST_VFIO_MDEV_ABSTRACTIONS)]
pub mod mdev;'
insert_before "$ksrc/rust/kernel/lib.rs" '^pub mod workqueue;' \
'#[cfg(CONFIG_RUST_VFIO_MDEV_ABSTRACTIONS)]
pub mod vfio;'

insert_before "$ksrc/rust/bindings/bindings_helper.h" '^#include <linux/mdio.h>' \
'#include <linux/mdev.h>'
insert_before "$ksrc/rust/bindings/bindings_helper.h" '^#include <linux/fdtable.h>' \
'#include <linux/eventfd.h>'
insert_before "$ksrc/rust/bindings/bindings_helper.h" '^#include <linux/wait.h>' \
'#include <linux/vfio.h>'

insert_before "$ksrc/rust/helpers/helpers.c" '^#include "mm.c"' \
'#include "mdev.c"'
insert_before "$ksrc/rust/helpers/helpers.c" '^#include "vmalloc.c"' \
'#include "vfio.c"'

append_once "$ksrc/drivers/vfio/mdev/Kconfig" 'config RUST_VFIO_MDEV_ABSTRACTIONS' \
'config RUST_VFIO_MDEV_ABSTRACTIONS
	bool "Rust VFIO mediated device abstractions"
	depends on RUST && VFIO = y
	select VFIO_MDEV
	help
	  Rust abstractions for VFIO devices and mediated device (mdev)
	  parent drivers. The mdev core is built into the kernel, since the
	  Rust kernel crate that calls it is.'
