#!/usr/bin/env bash
# Runs inside the image's root filesystem (chroot) at the end of mmdebstrap.
# Environment: ARCH (amd64|arm64), SUITE, ROOT_FS_UUID, KERNEL_CMDLINE (systemd-boot's).
set -euo pipefail

# The relay, from the project's wheel, in its own venv; dependencies are the wheels beside it.
python3 -m venv /opt/edge-relay/venv
/opt/edge-relay/venv/bin/pip install -q --no-index --find-links /tmp/wheels --no-cache-dir \
	edge-relay
/opt/edge-relay/venv/bin/pip uninstall -q -y pip setuptools 2>/dev/null || true
/opt/edge-relay/venv/bin/relay --version

# Its user; its data on the data partition.
useradd --system --user-group --home-dir /var/lib/edge-relay --no-create-home \
	--shell /usr/sbin/nologin relay
mkdir -p /var/lib/edge-relay
chmod 0755 /var/lib/edge-relay

bash /tmp/configure-esp.sh
# The boot partition's mount point, as configure-esp.sh chose it for ARCH.
# shellcheck disable=SC1091
boot_mnt=$(. /etc/default/edge-relay-esp && echo "$ESP")
# The boot partition (FAT, no journal) is written rarely (provisioning, kernel updates) and
# synchronously: a power cut right after a write must not leave its FAT behind its files.
cat >/etc/fstab <<FSTAB
# <file system>            <mount point>        <type> <options>                                   <dump> <pass>
UUID=$ROOT_FS_UUID  /                    ext4   defaults,noatime,errors=remount-ro          0      1
PARTLABEL=boot              $boot_mnt     vfat   umask=0077,noatime,sync,nofail,x-systemd.device-timeout=90s 0 0
# Created by systemd-repart on first boot (/etc/repart.d/50-edge-relay-data.conf).
PARTLABEL=edge-relay-data   /var/lib/edge-relay  ext4   defaults,noatime,nofail,x-systemd.device-timeout=90s 0 2
FSTAB

# No password anywhere: root is locked, there is no other login user and no SSH server.
passwd -l root >/dev/null
echo edge-relay >/etc/hostname
printf '127.0.0.1\tlocalhost\n127.0.1.1\tedge-relay\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
	>/etc/hosts
# A machine id per device, made on first boot.
echo uninitialized >/etc/machine-id
rm -f /var/lib/dbus/machine-id

systemctl enable systemd-networkd.service systemd-resolved.service systemd-timesyncd.service \
	relay.service edge-relay-provision.service >/dev/null 2>&1
# Not needed on the appliance, and each costs seconds of CPU on a small board at boot: the
# cleanup of ext4 online-check snapshots (never taken here), foreign binary formats.
systemctl mask e2scrub_reap.service systemd-binfmt.service >/dev/null 2>&1
ln -sf /run/systemd/resolve/stub-resolv.conf /etc/resolv.conf
mkdir -p /var/log/journal

# Shrink: apt lists, caches.
rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /var/log/*.log /root/.cache

# Everything ConditionNeedsUpdate= would redo on the device's first boot (ldconfig, hwdb,
# journal catalog: slow on a small board) is done here.
ldconfig
systemd-hwdb update
journalctl --update-catalog 2>/dev/null || true
touch /etc/.updated /var/.updated
