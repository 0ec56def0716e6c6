#!/usr/bin/env bash
# Install the host tools the image build and boot test need (Debian packages), only if missing.
#   lib/host-deps.sh amd64|arm64
set -euo pipefail
ARCH=${1:-amd64}

need=()
want() { # want COMMAND PACKAGE
	command -v "$1" >/dev/null 2>&1 || [[ -x /usr/sbin/$1 || -x /sbin/$1 ]] || need+=("$2")
}
want mmdebstrap mmdebstrap
want mkfs.vfat dosfstools
want mcopy mtools
want mkfs.ext4 e2fsprogs
want debugfs e2fsprogs
want sfdisk fdisk
want qemu-img qemu-utils
want qemu-system-x86_64 qemu-system-x86
want_file() { # want_file PATH PACKAGE
	[[ -e $1 ]] || need+=("$2")
}
# UEFI firmware for the boot test's firmware boots (systemd-boot on the ESP).
want_file /usr/share/OVMF/OVMF_CODE_4M.fd ovmf
if [[ $ARCH == arm64 ]]; then
	want qemu-system-aarch64 qemu-system-arm
	want qemu-aarch64-static qemu-user-static
	want update-binfmts binfmt-support
	want_file /usr/share/AAVMF/AAVMF_CODE.fd qemu-efi-aarch64
fi
if ((${#need[@]})); then
	echo "[image] installing host packages: ${need[*]}" >&2
	if [[ $(id -u) != 0 ]]; then
		echo "[image] not root: install them yourself (apt-get install ${need[*]})" >&2
		exit 2
	fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [[ $ARCH == arm64 && $(uname -m) != aarch64 ]]; then
	# mmdebstrap runs the arm64 maintainer scripts through binfmt_misc + qemu-user-static.
	if [[ ! -e /proc/sys/fs/binfmt_misc/status ]]; then
		mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
	fi
	if [[ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]]; then
		update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
	fi
	if [[ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]]; then
		echo "[image] binfmt_misc has no qemu-aarch64 handler: cannot build arm64 here" >&2
		exit 2
	fi
fi
