# shellcheck shell=bash
# The Debian packages of the image (sourced by build.sh; SUITE, kernel_pkg and board_pkgs per
# ARCH).
# shellcheck disable=SC2034,SC2154,SC2016
PACKAGES=(
	systemd systemd-sysv udev dbus systemd-timesyncd systemd-resolved
	"$kernel_pkg" initramfs-tools zstd e2fsprogs dosfstools
	python3 python3-venv ca-certificates iproute2 "${board_pkgs[@]}"
)
# Since Debian 13 systemd-repart (which makes the data partition on first boot) is a package of
# its own.
[[ $SUITE == bookworm ]] || PACKAGES+=(systemd-repart)
# build.sh BOOT_ONLY=1: what the boot partition is made from (kernel, initramfs, boot loader,
# board firmware).
BOOT_PACKAGES=("$kernel_pkg" initramfs-tools zstd "${board_pkgs[@]}")
# ... whose initramfs is only there to be named by config.txt and the loader entry: a small
# one (no drivers) spares minutes of module copying under qemu-user.
BOOT_ONLY_OPTS=(
	--setup-hook='mkdir -p "$1"/etc/initramfs-tools/conf.d && printf "MODULES=list\n" >"$1"/etc/initramfs-tools/conf.d/edge-relay-boot-only.conf'
)

# Leave out documentation and translations; make the mount points the hooks of some packages
# (raspi-firmware) expect.
MMDEBSTRAP_OPTS=(
	--dpkgopt='path-exclude=/usr/share/man/*'
	--dpkgopt='path-exclude=/usr/share/locale/*'
	--dpkgopt='path-include=/usr/share/locale/locale.alias'
	--dpkgopt='path-exclude=/usr/share/doc/*'
	--dpkgopt='path-include=/usr/share/doc/*/copyright'
	--dpkgopt='path-exclude=/usr/share/info/*'
	--setup-hook='mkdir -p "$1"/var/cache/apt/archives "$1"/boot/firmware "$1"/boot/efi'
)
