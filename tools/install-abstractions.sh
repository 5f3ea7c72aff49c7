#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Install rmtty's Rust VFIO/mdev abstractions into a kernel source tree, the
# way the series would apply upstream: new files under rust/kernel and
# rust/helpers, a few lines in files the tree already has (the kernel crate's
# module list, the bindgen and helper includes, an accessor in the driver
# core, a vma's page offset, the Kconfig symbol that builds the mdev core
# into vmlinux), and the patches under tools/kernel/patches.
#
# Idempotent: edited files are regenerated from a pristine copy saved at the
# first install, and a file whose content is unchanged is not touched, so
# kbuild rebuilds only what really changed (a fresh clone has new mtimes).
#
# Usage: install-abstractions.sh KSRC
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
ksrc=${1:?usage: install-abstractions.sh KSRC}
manifest=$ksrc/.rmtty-abstractions
pristine=$ksrc/.rmtty-pristine
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# update DST SRC: make DST's content SRC's, leaving DST alone if it is already.
update() {
	mkdir -p "$(dirname "$1")"
	cmp -s "$2" "$1" || cp "$2" "$1"
}

# edit REL: start an edit of the tree's file REL from its pristine content;
# insert_before and append then change the working copy $work/REL.
edit() {
	if [ ! -e "$pristine/$1" ]; then
		mkdir -p "$(dirname "$pristine/$1")"
		cp "$ksrc/$1" "$pristine/$1"
	fi
	mkdir -p "$(dirname "$work/$1")"
	cp "$pristine/$1" "$work/$1"
	edited+=("$1")
}

# insert_before REL ANCHOR TEXT: put TEXT before the first line of REL that
# matches the extended regex ANCHOR.
insert_before() {
	grep -qE -- "$2" "$work/$1" || { echo "anchor '$2' not found in $1" >&2; exit 1; }
	TEXT=$3 ANCHOR=$2 perl -0pi -e 's/^(?=$ENV{ANCHOR})/$ENV{TEXT}\n/m' "$work/$1"
}

append() {
	printf '\n%s\n' "$2" >>"$work/$1"
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
	update "$ksrc/rust/$f" "$top/rust/$f"
done
printf '%s\n' "$new_files" >"$manifest"

edited=()
edit rust/kernel/lib.rs
insert_before rust/kernel/lib.rs '^#\[cfg\(CONFIG_AUXILIARY_BUS\)\]' \
'pub mod anon_inode;'

insert_before rust/kernel/lib.rs '^pub mod cred;' \
'#[cfg(CONFIG_CRC32)]
pub mod crc;'

insert_before rust/kernel/lib.rs '^pub mod faux;' \
'#[cfg(CONFIG_EVENTFD)]
pub mod eventfd;'

insert_before rust/kernel/lib.rs '^pub mod miscdevice;' \
'#[cfg(CONFIG_RUST_MDEV_ABSTRACTIONS)]
pub mod mdev;'

insert_before rust/kernel/lib.rs '^pub mod rbtree;' \
'pub mod ratelimit;'

insert_before rust/kernel/lib.rs '^pub mod task;' \
'pub mod sysfs;'

insert_before rust/kernel/lib.rs '^pub mod workqueue;' \
'#[cfg(CONFIG_RUST_VFIO_ABSTRACTIONS)]
pub mod vfio;'

edit rust/bindings/bindings_helper.h
insert_before rust/bindings/bindings_helper.h '^#include <linux/auxiliary_bus.h>' \
'#include <linux/anon_inodes.h>'
insert_before rust/bindings/bindings_helper.h '^#include <linux/cred.h>' \
'#include <linux/crc32.h>'
insert_before rust/bindings/bindings_helper.h '^#include <linux/ethtool.h>' \
'#include <linux/eventfd.h>'
insert_before rust/bindings/bindings_helper.h '^#include <linux/mdio.h>' \
'#include <linux/mdev.h>'
insert_before rust/bindings/bindings_helper.h '^#include <linux/refcount.h>' \
'#include <linux/ratelimit.h>'
insert_before rust/bindings/bindings_helper.h '^#include <linux/wait.h>' \
'#include <linux/vfio.h>'

edit rust/uapi/uapi_helper.h
append rust/uapi/uapi_helper.h '#include <uapi/linux/vfio.h>'

edit rust/helpers/helpers.c
insert_before rust/helpers/helpers.c '^#include "mutex.c"' \
'#include "module.c"'
insert_before rust/helpers/helpers.c '^#include "rbtree.c"' \
'#include "ratelimit.c"'
insert_before rust/helpers/helpers.c '^#include "task.c"' \
'#include "sysfs.c"'
insert_before rust/helpers/helpers.c '^#include "vmalloc.c"' \
'#include "vfio.c"'

# Bus abstractions pass their registered driver structure to C (an mdev
# parent names the driver its devices bind to).
edit rust/kernel/driver.rs
append rust/kernel/driver.rs \
'impl<T: RegistrationOps> Registration<T> {
    /// Returns the registered driver structure, for C APIs that take the driver.
    pub(crate) fn as_raw(&self) -> *mut T::DriverType {
        self.reg.get()
    }
}'

# A device's mmap op needs the page offset the mapping starts at.
edit rust/kernel/mm/virt.rs
append rust/kernel/mm/virt.rs \
'impl VmaRef {
    /// Returns the offset in what the area maps of its first page, in pages (`vm_pgoff`).
    #[inline]
    pub fn pgoff(&self) -> usize {
        // SAFETY: By the type invariants, the caller holds at least the mmap read lock, so this
        // access is not a data race.
        unsafe { (*self.as_ptr()).vm_pgoff }
    }
}'

# A registration checks that a release it waits for has already run.
edit rust/kernel/sync/completion.rs
append rust/kernel/sync/completion.rs \
'impl Completion {
    /// Returns whether the completion is done: whether a wait for it would return at once.
    #[inline]
    pub fn is_done(&self) -> bool {
        // SAFETY: `self.as_raw()` is a pointer to a valid `struct completion`.
        unsafe { bindings::completion_done(self.as_raw()) }
    }
}'

# The VFIO abstractions are not mdev-specific: a symbol each. Both need the
# C code they call built in, since the kernel crate is part of vmlinux.
edit drivers/vfio/Kconfig
insert_before drivers/vfio/Kconfig '^source "drivers/vfio/fsl-mc/Kconfig"' \
'config RUST_VFIO_ABSTRACTIONS
	bool "Rust abstractions for emulated VFIO devices"
	depends on RUST && VFIO = y
	select EVENTFD
	help
	  Rust abstractions for VFIO devices that the kernel emulates and
	  registers with an emulated IOMMU, such as mediated devices: their
	  ops, regions, interrupts and migration. VFIO must be built in,
	  since the Rust kernel crate that calls it is part of the kernel
	  image.
'

edit drivers/vfio/mdev/Kconfig
append drivers/vfio/mdev/Kconfig \
'config RUST_MDEV_ABSTRACTIONS
	bool "Rust mediated device abstractions"
	depends on RUST_VFIO_ABSTRACTIONS
	select VFIO_MDEV
	help
	  Rust abstractions for the parent drivers of mediated devices
	  (mdev): their types, attributes and devices. They select the mdev
	  core, built in for the same reason as VFIO.'

# The samples' entries: rmtty and rmmem are built out of this tree (make M=),
# but their dependencies are stated where the kernel states a sample's.
edit samples/rust/Kconfig
insert_before samples/rust/Kconfig '^config SAMPLE_RUST_HOSTPROGS' \
'config SAMPLE_RUST_RMTTY
	tristate "Mediated serial device with aggregation and migration"
	depends on RUST_MDEV_ABSTRACTIONS
	select CRC32
	help
	  This option builds rmtty, the Rust sibling of the mtty sample: an
	  mdev parent with aggregatable types, migration_version and the
	  VFIO migration region and protocol.

	  To compile this as a module, choose M here:
	  the module will be called rmtty.

	  If unsure, say N.

config SAMPLE_RUST_RMMEM
	tristate "Mediated devices of plain memory"
	depends on RUST_MDEV_ABSTRACTIONS
	help
	  This option builds rmmem, an mdev parent whose types are learned at
	  load time and whose devices are one region of memory each.

	  To compile this as a module, choose M here:
	  the module will be called rmmem.

	  If unsure, say N.
'

# Patches of the series (tools/kernel/patches), applied to pristine copies.
for patch in "$top"/tools/kernel/patches/*.patch; do
	[ -e "$patch" ] || continue
	# A file an earlier patch (or edit) changed keeps its changes.
	for rel in $(sed -n 's|^+++ b/\([^[:space:]]*\).*|\1|p' "$patch"); do
		[ -e "$work/$rel" ] || edit "$rel"
	done
	patch -d "$work" -p1 -s --no-backup-if-mismatch <"$patch" ||
		{ echo "$(basename "$patch") does not apply to this kernel" >&2; exit 1; }
done

# Files edited by an earlier install but no longer: back to pristine.
if [ -d "$pristine" ]; then
	(cd "$pristine" && find . -type f | sed 's|^\./||') | while read -r rel; do
		[ -e "$work/$rel" ] || update "$ksrc/$rel" "$pristine/$rel"
	done
fi
for rel in "${edited[@]}"; do
	update "$ksrc/$rel" "$work/$rel"
done
