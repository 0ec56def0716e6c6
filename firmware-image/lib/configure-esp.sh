#!/usr/bin/env bash
# Runs inside the image's root filesystem (chroot): what the boot partition is made from.
# systemd-boot on the boot partition (the ESP) boots the newest kernel with KERNEL_CMDLINE;
# /usr/local/lib/edge-relay/esp-kernel (rootfs/) lays it out now and keeps it in step on kernel
# upgrades. On arm64 the Pi firmware boots from the same partition through config.txt
# (Debian's raspi-firmware hooks); generic arm64 boards and VMs use UEFI.
# Environment: ARCH (amd64|arm64), SUITE, KERNEL_CMDLINE. Used by configure-rootfs.sh and by
# build.sh's BOOT_ONLY build.
set -euo pipefail

if [[ $ARCH == amd64 ]]; then
	boot_mnt=/boot/efi efi_name=BOOTX64.EFI pi=0
else
	boot_mnt=/boot/firmware efi_name=BOOTAA64.EFI pi=1
fi
mkdir -p "$boot_mnt" /etc/kernel
printf '# Read by /usr/local/lib/edge-relay/esp-kernel.\nESP=%s\nEFI_NAME=%s\nPI_DEVICE_TREES=%s\n' \
	"$boot_mnt" "$efi_name" "$pi" >/etc/default/edge-relay-esp
echo "$KERNEL_CMDLINE" >/etc/kernel/cmdline
if [[ $ARCH == arm64 ]]; then
	# The kernel came from backports (the Pi 5 needs it): its upgrades come from there too.
	cat >/etc/apt/preferences.d/edge-relay-kernel <<PREF
Package: linux-image-arm64 linux-image-*-arm64 linux-base-*-arm64 linux-binary-*-arm64 linux-modules-*-arm64 linux-base
Pin: release n=$SUITE-backports
Pin-Priority: 500
PREF
fi
