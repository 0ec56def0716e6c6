#!/usr/bin/env bash
# Lay out the Raspberry Pi boot partition from the arm64 root filesystem.
#   boards/rpi/assemble.sh ROOTFS KERNEL_VERSION BOOTDIR
# Debian's raspi-firmware populated ROOTFS/boot/firmware when the kernel and firmware were
# installed (firmware blobs, device trees, vmlinuz/initrd, config.txt, cmdline.txt from
# /etc/default/raspi-firmware*); this copies it to BOOTDIR and checks it against
# firmware-files.txt.
set -euo pipefail
rootfs=$1 kver=$2 bootdir=$3
here=$(cd "$(dirname "$0")" && pwd)

src="$rootfs/boot/firmware"
[[ -f $src/config.txt ]] || { echo "assemble.sh: $src/config.txt missing" >&2; exit 1; }
cp -r "$src/." "$bootdir/"

missing=0
while read -r line; do
	[[ -z $line || $line == \#* ]] && continue
	optional=0
	if [[ $line == \?* ]]; then optional=1; line=${line#\?}; fi
	name=${line//<version>/$kver}
	if [[ ! -e $bootdir/$name ]]; then
		if ((optional)); then
			echo "assemble.sh: warning: $name not available (see firmware-files.txt)" >&2
		else
			echo "assemble.sh: $name missing from the boot partition" >&2
			missing=1
		fi
	fi
done <"$here/firmware-files.txt"
grep -q "^kernel=vmlinuz-$kver\$" "$bootdir/config.txt" || {
	echo "assemble.sh: config.txt does not boot vmlinuz-$kver" >&2
	missing=1
}
grep -q "root=UUID=" "$bootdir/cmdline.txt" || {
	echo "assemble.sh: cmdline.txt has no root=UUID=" >&2
	missing=1
}
exit "$missing"
