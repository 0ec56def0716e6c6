#!/usr/bin/env bash
# Build the edge-relay appliance disk image for one architecture.
#
#   firmware-image/build.sh amd64|arm64
#
# Output in firmware-image/build/<arch>/: disk.img (GPT: boot/ESP FAT32 + ext4 root; the data
# partition is created on the device by systemd-repart at first boot), vmlinuz and initrd.img
# (for QEMU direct kernel boot), manifest.txt (packages), inputs.sha256 (the cache key).
# No loop devices, no mounts: mkfs.vfat -C + mcopy, mkfs.ext4 -d, sfdisk on a sparse file.
# A build whose inputs (this directory, the relay's source, pyproject.toml, ARCH) hash to the
# same value as the existing one is reused; FORCE=1 rebuilds.

# mmdebstrap hooks and dpkg-query formats take literal $1 / ${...}:
# shellcheck disable=SC2016
set -euo pipefail

main() {
ARCH=${1:-${ARCH:-amd64}}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
# BOOT_ONLY=1: only the boot partition (build/ARCH-boot/boot.img), from a root filesystem of
# just the kernel and the boot packages, through the same steps as the whole image. `make test`
# checks the Raspberry Pi boot partition this way: a whole arm64 image configures every package
# under qemu-user, which takes far longer.
BOOT_ONLY=${BOOT_ONLY:-0}
flavour=$ARCH
[[ $BOOT_ONLY == 1 ]] && flavour=$ARCH-boot
out="$here/build/$flavour"
# Root filesystem trees live outside the source tree (setuptools' package discovery and other
# tools walk it): the base cache (shared, keyed by content) and this checkout's scratch tree.
cache=${EDGE_RELAY_IMAGE_CACHE:-/var/cache/edge-relay-image}
work="$cache/work-$(echo "$top" | sha256sum | cut -c1-8)-$flavour"
# Debian stable (13, trixie), with its point-release updates and security updates: the image
# is built from, and on the device upgrades from, all three.
SUITE=${SUITE:-trixie}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
# The Python of $SUITE, for the wheels of the relay's dependencies.
case "$SUITE" in
bookworm) PYTHON_VERSION=3.11 ;;
trixie) PYTHON_VERSION=3.13 ;;
*)
	echo "build.sh: SUITE must be bookworm or trixie, not ${SUITE@Q}" >&2
	exit 2
	;;
esac

# Fixed identifiers: every image of a release has the same ones; the data partition and the
# machine id are made per device on first boot.
ROOT_FS_UUID=5c3b2b36-7e0c-4bd8-9a0d-5a3f1c1e0a01
BOOT_SIZE_MIB=256

log() { printf '[image %s] %s\n' "$ARCH" "$*" >&2; }

# Remove root filesystem trees. An interrupted mmdebstrap can leave /proc, /sys and /dev/pts
# mounted inside its tree: unmount them first, and never cross into another file system.
remove_trees() {
	local tree m
	for tree in "$@"; do
		[[ -e $tree ]] || continue
		awk -v t="$tree/" 'index($2 "/", t) == 1 {print $2}' /proc/mounts | sort -r |
			while read -r m; do umount -l "$m"; done
		rm -rf --one-file-system "$tree"
	done
}

extra_sources=()
case "$ARCH" in
amd64)
	kernel_pkg=linux-image-amd64
	root_type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709 # root, x86-64
	wheel_platforms=(manylinux_2_41_x86_64 manylinux_2_39_x86_64 manylinux_2_38_x86_64
		manylinux_2_36_x86_64 manylinux_2_34_x86_64 manylinux_2_28_x86_64 manylinux_2_17_x86_64
		manylinux2014_x86_64 linux_x86_64)
	board_pkgs=(systemd-boot-efi)
	components=main
	;;
arm64)
	# The kernel of Debian's backports for stable: the Raspberry Pi 5 (BCM2712: its SD
	# controller, RP1 Ethernet and USB) needs a newer kernel than stable's 6.12.
	kernel_pkg=linux-image-arm64/$SUITE-backports
	extra_sources=("deb $MIRROR $SUITE-backports main non-free-firmware")
	root_type=B921B045-1DF0-41C3-AF44-4C6F280D3FAE # root, arm64
	wheel_platforms=(manylinux_2_41_aarch64 manylinux_2_39_aarch64 manylinux_2_38_aarch64
		manylinux_2_36_aarch64 manylinux_2_34_aarch64 manylinux_2_28_aarch64 manylinux_2_17_aarch64
		manylinux2014_aarch64 linux_aarch64)
	board_pkgs=(raspi-firmware systemd-boot-efi)
	components=main,non-free-firmware
	;;
*)
	echo "build.sh: ARCH must be amd64 or arm64, not ${ARCH@Q}" >&2
	exit 2
	;;
esac

hash_files() { # hash_files PATH... (relative to the top): one hash of their names and contents
	(
		cd "$top"
		find "$@" \( -path firmware-image/build -o -name __pycache__ \) -prune -o \
			-type f -not -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum | sha256sum |
			cut -d' ' -f1
	)
}

# Two stages, each cached by the hash of its inputs:
#  base: the Debian packages (mmdebstrap), from lib/packages.sh (+ boards/rpi for arm64);
#  image: base + the relay's wheels + rootfs/ + configuration + the disk assembly, from
#         everything (firmware-image/, relay/, store/, pyproject.toml).
base_inputs=(firmware-image/lib/packages.sh)
[[ $ARCH == arm64 ]] && base_inputs+=(firmware-image/boards/rpi)
base_hash=$(echo "$flavour $SUITE $kernel_pkg ${extra_sources[*]} $(hash_files "${base_inputs[@]}")" |
	sha256sum | cut -c1-16)
if [[ $BOOT_ONLY == 1 ]]; then
	product=boot.img
	want=$(echo "$flavour $SUITE $(hash_files firmware-image)" | sha256sum | cut -d' ' -f1)
else
	product=disk.img
	want=$(echo "$ARCH $SUITE $(hash_files firmware-image relay store pyproject.toml)" |
		sha256sum | cut -d' ' -f1)
fi

mkdir -p "$out" "$cache"
# One build at a time per architecture (tests and `make image` may race).
exec 9>"$out.lock"
flock 9

if [[ -z ${FORCE:-} && -f $out/$product && -f $out/inputs.sha256 &&
	$(cat "$out/inputs.sha256") == "$want" ]]; then
	log "up to date ($want): $out/$product"
	exit 0
fi

"$here/lib/host-deps.sh" "$ARCH"

started=$(date +%s)
remove_trees "$work"
rm -f "$out/$product" "$out/inputs.sha256"
mkdir -p "$work/wheels" "$cache/apt-$ARCH"

# 1. The base root filesystem: Debian packages only.
base="$cache/rootfs-$flavour-$base_hash"
exec 8>"$cache/base-$flavour.lock"
flock 8
# The base is rebuilt once a week even when the package list is unchanged: it holds the
# security updates of the day it was made.
if [[ -f $base.done && -n $(find "$base.done" -mtime +6) ]]; then
	log "base rootfs older than a week: rebuilding for updates"
	rm -f "$base.done"
fi
if [[ ! -f $base.done ]]; then
	log "base rootfs ($SUITE, mmdebstrap)"
	remove_trees "$cache/rootfs-$flavour-"*
	# shellcheck source=lib/packages.sh
	source "$here/lib/packages.sh"
	if [[ $BOOT_ONLY == 1 ]]; then
		PACKAGES=("${BOOT_PACKAGES[@]}")
		MMDEBSTRAP_OPTS+=("${BOOT_ONLY_OPTS[@]}")
	fi
	include=$(IFS=,; echo "${PACKAGES[*]}")
	board_hooks=()
	if [[ $ARCH == arm64 ]]; then
		# Debian's raspi-firmware hooks write /boot/firmware (firmware, device trees, kernel,
		# config.txt, cmdline.txt) from /etc/default/raspi-firmware*; they run again on every
		# kernel upgrade on the device, so the board's settings live there.
		rpi="$here/boards/rpi"
		board_hooks=(
			--customize-hook="sed 's/@ROOT_FS_UUID@/$ROOT_FS_UUID/' '$rpi/raspi-firmware' >\"\$1/etc/default/raspi-firmware\""
			--customize-hook="cp '$rpi/config.txt' \"\$1/etc/default/raspi-firmware-custom\""
			--customize-hook="cp '$rpi/cmdline.txt' \"\$1/etc/default/raspi-extra-cmdline\""
			--customize-hook='chroot "$1" env DEB_MAINT_PARAMS=configure /etc/kernel/postinst.d/z50-raspi-firmware'
		)
	fi
	mkdir -p "$base"
	mmdebstrap --variant=minbase --architectures="$ARCH" --components="$components" \
		--include="$include" "${MMDEBSTRAP_OPTS[@]}" \
		--setup-hook="sync-in '$cache/apt-$ARCH' /var/cache/apt/archives/" \
		--customize-hook="sync-out /var/cache/apt/archives '$cache/apt-$ARCH'" \
		"${board_hooks[@]}" \
		--customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*' \
		"$SUITE" "$base" \
		"deb $MIRROR $SUITE ${components//,/ }" \
		"deb $MIRROR $SUITE-updates ${components//,/ }" \
		"deb $SECURITY_MIRROR $SUITE-security ${components//,/ }" \
		"${extra_sources[@]}"
	touch "$base.done"
	log "base rootfs done in $(($(date +%s) - started)) s"
else
	log "base rootfs cached ($base)"
fi
cp -a "$base" "$work/rootfs"
flock -u 8

cmdline="root=UUID=$ROOT_FS_UUID ro rootwait"
if [[ $ARCH == amd64 ]]; then
	efi_cmdline="$cmdline console=tty0 console=ttyS0,115200 quiet"
else
	# Generic arm64 (UEFI): the firmware's tables name the console.
	efi_cmdline="$cmdline quiet"
fi
rootfs="$work/rootfs"
chroot_env=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 ARCH="$ARCH" SUITE="$SUITE"
	ROOT_FS_UUID="$ROOT_FS_UUID" KERNEL_CMDLINE="$efi_cmdline")
cp -a "$here/rootfs/." "$rootfs/"
cp "$here/lib/configure-rootfs.sh" "$here/lib/configure-esp.sh" "$rootfs/tmp/"
if [[ $BOOT_ONLY == 1 ]]; then
	log "configure the boot files"
	"${chroot_env[@]}" chroot "$rootfs" bash /tmp/configure-esp.sh
else
	configure_image
fi
# systemd-boot, the kernel and initramfs and the loader entry onto the ESP's future contents,
# by the same script that keeps them current on the device.
"${chroot_env[@]}" EDGE_RELAY_ESP_UNMOUNTED=1 chroot "$rootfs" /usr/local/lib/edge-relay/esp-kernel
rm -f "$rootfs/tmp/configure-rootfs.sh" "$rootfs/tmp/configure-esp.sh"
boot_partition
if [[ $BOOT_ONLY == 1 ]]; then
	mv "$work/boot.img" "$out/"
	echo "$kver" >"$out/kernel-version"
	echo "$cmdline" >"$out/cmdline.txt"
	remove_trees "$work"
	echo "$want" >"$out/inputs.sha256"
	log "done in $(($(date +%s) - started)) s: $out/boot.img"
	exit 0
fi
root_partition_and_disk
}

configure_image() {
# 2. The relay as a wheel, and its dependencies as wheels for the target platform, pinned to
#    the versions of the development venv the tests ran against.
log "wheels"
py="$top/.venv/bin/python"
[[ -x $py ]] || { echo "build.sh: $py missing: run 'make setup' first" >&2; exit 2; }
export PIP_DISABLE_PIP_VERSION_CHECK=1
# From a copy of just the package's sources: setuptools' package discovery would otherwise
# walk the whole tree, this build directory (a Debian root filesystem) included.
mkdir -p "$work/src"
cp -a "$top/pyproject.toml" "$top/README.md" "$top/relay" "$top/store" "$work/src/"
find "$work/src" -name __pycache__ -prune -exec rm -rf {} +
"$py" -m pip wheel -q --no-deps "$work/src" -w "$work/wheels" 2>&1 |
	grep -v "^WARNING: Location" >&2 || true
"$py" -m pip freeze --exclude-editable | grep -v '^edge-relay' >"$work/constraints.txt"
platform_args=()
for p in "${wheel_platforms[@]}"; do platform_args+=(--platform "$p"); done
# The registry can fail a download under load: try again before giving up (the configure
# step below installs from these wheels only, with no index).
for attempt in 1 2 3; do
	if "$py" -m pip download -q --only-binary=:all: --python-version "$PYTHON_VERSION" \
		--implementation cp "${platform_args[@]}" -c "$work/constraints.txt" \
		-d "$work/wheels" "$work"/wheels/edge_relay-*.whl 2> >(grep -v "^WARNING: Location" >&2); then
		break
	fi
	log "wheels: download failed (attempt $attempt of 3)"
	[[ $attempt == 3 ]] && { echo "build.sh: the relay's dependencies could not be downloaded" >&2; exit 1; }
	sleep 10
done
ls "$work"/wheels/edge_relay-*.whl >/dev/null

# 3. The image's root filesystem: base + relay + configuration, in a chroot (no mounts needed).
log "configure rootfs"
cp -a "$work/wheels" "$rootfs/tmp/wheels"
"${chroot_env[@]}" chroot "$rootfs" bash /tmp/configure-rootfs.sh
rm -rf "$rootfs/tmp/wheels"
chroot "$rootfs" dpkg-query -W -f '${Package} ${Version}\n' >"$work/manifest.txt"
for d in "$rootfs"/opt/edge-relay/venv/lib/python3*/site-packages/*.dist-info; do
	d=${d##*/}
	echo "pypi:${d%.dist-info}" >>"$work/manifest.txt"
done
}

boot_partition() {
# 4. The boot partition: kernel + initrd (+ systemd-boot on amd64, + Pi firmware on arm64).
log "boot partition"
bootdir="$work/boot"
mkdir -p "$bootdir"
kver=$(basename "$(find "$rootfs/lib/modules" -mindepth 1 -maxdepth 1 | sort -V | tail -1)")
# (Newer Debian kernel packages keep it in /usr/lib/modules/<version>/vmlinuz.)
cp "$rootfs/boot/vmlinuz-$kver" "$work/vmlinuz" 2>/dev/null ||
	cp "$rootfs/usr/lib/modules/$kver/vmlinuz" "$work/vmlinuz"
cp "$rootfs/boot/initrd.img-$kver" "$work/initrd.img"
cp "$here/relay-provision.toml.example" "$bootdir/relay-provision.toml.example"
if [[ $ARCH == amd64 ]]; then
	cp -r "$rootfs/boot/efi/." "$bootdir/"
	find "$rootfs/boot/efi" -mindepth 1 -delete
else
	"$here/boards/rpi/assemble.sh" "$rootfs" "$kver" "$bootdir"
	find "$rootfs/boot/firmware" -mindepth 1 -delete
fi

boot_img="$work/boot.img"
mkfs.vfat -C -F 32 -n EDGE-BOOT "$boot_img" $((BOOT_SIZE_MIB * 1024)) >/dev/null
mcopy -s -Q -m -i "$boot_img" "$bootdir"/* ::/
}

root_partition_and_disk() {
# 5. The root partition, sized to its content plus headroom for updates and logs.
log "root partition"
used_mib=$(du -s -B1M "$rootfs" | cut -f1)
root_mib=$((used_mib * 115 / 100 + 160))
root_img="$work/root.img"
mkfs.ext4 -q -F -L root -U "$ROOT_FS_UUID" -d "$rootfs" "$root_img" "${root_mib}M"

# 6. The GPT disk: boot at 1 MiB, root after it, 1 MiB for the backup GPT. The data
#    partition is not in the image: systemd-repart adds it in the free space of the device.
log "disk image"
disk="$work/disk.img"
total_mib=$((1 + BOOT_SIZE_MIB + root_mib + 1))
truncate -s "${total_mib}M" "$disk"
sfdisk -q "$disk" <<SFDISK
label: gpt
first-lba: 2048
start=1MiB, size=${BOOT_SIZE_MIB}MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=boot
start=$((1 + BOOT_SIZE_MIB))MiB, size=${root_mib}MiB, type=$root_type, name=root
SFDISK
dd if="$boot_img" of="$disk" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$root_img" of="$disk" bs=1M seek=$((1 + BOOT_SIZE_MIB)) conv=notrunc,sparse status=none

mv "$disk" "$work/vmlinuz" "$work/initrd.img" "$work/manifest.txt" "$out/"
echo "$cmdline" >"$out/cmdline.txt"
remove_trees "$work"
echo "$want" >"$out/inputs.sha256"
apparent=$(du -m --apparent-size "$out/disk.img" | cut -f1)
allocated=$(du -m "$out/disk.img" | cut -f1)
log "done in $(($(date +%s) - started)) s: $out/disk.img (${apparent} MiB, ${allocated} MiB allocated)"
}

# (All in a function: bash has read the whole file before running it.)
main "$@"
