#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Install everything rmtty's build and tests need, idempotently: Debian
# packages (the kernel source from trixie-backports), rust-src, bindgen and
# virtme-ng. Each step prints one line; a step with nothing to do is quick.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

APT_PACKAGES=(
	clang-19 lld-19 llvm-19 libclang-19-dev
	gcc libc6-dev flex bison bc cpio kmod rsync libelf-dev libssl-dev make xz-utils file patch
	udev busybox-static mdevctl python3-venv
	linux-source-7.2/trixie-backports
)

# The machine's qemu-utils is bookworm-backports' QEMU 10, which breaks
# bookworm's QEMU 7.2 system emulator: the guest VMM is the matching QEMU 10.
QEMU_PACKAGES=(qemu-system-x86)

# QEMU 7.2, the last QEMU that speaks VFIO's v1 migration protocol, is
# bookworm's own; qemu-utils 10 Breaks it, so its packages are unpacked into
# $RMTTY_QEMU72 instead of being installed. The binary finds its modules
# and data relative to itself; the libraries it needs are all the machine's.
QEMU72_PACKAGES=(qemu-system-x86 qemu-system-common qemu-system-data)

[ "$(id -u)" = 0 ] || die "deps: must run as root (apt-get, /dev/vfio in the guest)"

# The kernel source comes from trixie-backports and QEMU from
# bookworm-backports, which the machine's apt sources may not list. Reuse the
# mirror the machine already uses so that no host name is ever written down.
add_suite() {
	local suite=$1 list=/etc/apt/sources.list.d/rmtty-$1.sources uri
	grep -rqs -- "[[:space:]]$suite\([[:space:]]\|\$\)" /etc/apt/sources.list /etc/apt/sources.list.d/ && return 0
	uri=$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources 2>/dev/null |
	      grep -v -- '-security' | head -n 1 || true)
	if [ -z "$uri" ] && [ -e /etc/apt/sources.list ]; then
		uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) { print $i; exit } }' \
		      /etc/apt/sources.list)
	fi
	[ -n "$uri" ] || { echo "no Debian mirror found in the apt sources"; return 1; }
	# Backports suites are NotAutomatic: nothing else gets upgraded from them.
	printf '%s\n' 'Types: deb' "URIs: $uri" "Suites: $suite" 'Components: main' \
		'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' >"$list"
	rm -f "$RMTTY_CACHE/apt-updated"
}

# apt_install [-t SUITE] PACKAGE...: install what is not installed yet.
apt_install() {
	local missing=() p target=()
	if [ "$1" = -t ]; then
		target=(-t "$2")
		shift 2
	fi
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "${p%/*}" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} = 0 ] && return 0
	echo "installing: ${missing[*]}"
	if [ ! -e "$RMTTY_CACHE/apt-updated" ] ||
	   ! apt-get install -y --no-install-recommends "${target[@]}" "${missing[@]}"; then
		apt_update
		apt-get install -y --no-install-recommends "${target[@]}" "${missing[@]}"
	fi
}

apt_update() {
	apt-get update
	touch "$RMTTY_CACHE/apt-updated"
}

# qemu72_versions: set want to PACKAGE=VERSION for each of QEMU72_PACKAGES,
# with its version in the bookworm suite itself (not in bookworm-security or
# -backports); fails unless that is a QEMU 7.2.
qemu72_versions() {
	local versions p v

	versions=$(apt-cache madison "${QEMU72_PACKAGES[@]}" |
		awk -F ' [|] ' '$3 ~ /[[:space:]]bookworm\/main[[:space:]]/ { gsub(/ /, "", $1); print $1, $2 }')
	want=()
	for p in "${QEMU72_PACKAGES[@]}"; do
		v=$(awk -v p="$p" '$1 == p { print $2; exit }' <<<"$versions")
		[[ "$v" == 1:7.2+* ]] || { echo "the apt lists have no QEMU 7.2 $p in bookworm (${v:-none})"; return 1; }
		want+=("$p=$v")
	done
}

# qemu72: unpack bookworm's QEMU 7.2 into $RMTTY_QEMU72, unless the versions
# there are bookworm's current ones. The new prefix must run before it
# replaces the old one.
qemu72() {
	local want debs=$RMTTY_QEMU72.debs new=$RMTTY_QEMU72.new p version

	# Lists older than the archive may lack a version or name one the archive
	# no longer has: then once more after an update.
	qemu72_versions || { apt_update; qemu72_versions; }
	[ "$(cat "$RMTTY_QEMU72/versions" 2>/dev/null)" = "${want[*]}" ] && return 0
	echo "unpacking: ${want[*]}"
	rm -rf "$debs" "$new"
	mkdir -p "$debs" "$new"
	(cd "$debs" && apt-get download "${want[@]}") ||
		{ apt_update; qemu72_versions; (cd "$debs" && apt-get download "${want[@]}"); }
	for p in "$debs"/*.deb; do
		dpkg -x "$p" "$new"
	done
	rm -rf "$debs"
	if ldd "$new/usr/bin/qemu-system-x86_64" "$new"/usr/lib/*/qemu/accel-tcg-x86_64.so | grep 'not found'; then
		echo "QEMU 7.2 needs libraries the machine does not have"
		return 1
	fi
	version=$("$new/usr/bin/qemu-system-x86_64" --version)
	echo "$version"
	[[ "$version" == "QEMU emulator version 7.2."* ]] || { echo "this is not QEMU 7.2"; return 1; }
	printf '%s\n' "${want[*]}" >"$new/versions"
	rm -rf "$RMTTY_QEMU72"
	mv "$new" "$RMTTY_QEMU72"
}

rust_src() {
	rustup component list --installed | grep -q '^rust-src' || rustup component add rust-src
}

# 7.2 needs bindgen >= 0.71.1; bookworm's is far older.
bindgen_ok() {
	local v
	v=$(bindgen --version 2>/dev/null | awk '{print $2}') || return 1
	[ -n "$v" ] && printf '0.71.1\n%s\n' "$v" | sort -V -C
}

bindgen_install() {
	bindgen_ok || cargo install bindgen-cli --locked
	bindgen_ok
}

virtme_ng() {
	[ -x "$RMTTY_VENV/bin/vng" ] && return 0
	python3 -m venv "$RMTTY_VENV"
	"$RMTTY_VENV/bin/python" -m pip install --quiet 'virtme-ng==1.42'
}

export DEBIAN_FRONTEND=noninteractive
echo "rmtty: dependencies"
step "apt source trixie-backports" add_suite trixie-backports
step "apt source bookworm-backports" add_suite bookworm-backports
step "apt packages" apt_install "${APT_PACKAGES[@]}"
step "apt packages (QEMU 10)" apt_install -t bookworm-backports "${QEMU_PACKAGES[@]}"
step "QEMU 7.2 (bookworm, unpacked)" qemu72
step "rustup rust-src" rust_src
step "bindgen" bindgen_install
step "virtme-ng" virtme_ng
