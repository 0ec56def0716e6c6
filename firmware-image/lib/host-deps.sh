#!/usr/bin/env bash
# The host side of an image build or boot test: the Debian packages of group image-ARCH in
# tools/host/packages.txt (the project's one list), then, for arm64 on another architecture,
# a binfmt_misc handler so that mmdebstrap can run arm64 maintainer scripts under qemu-user.
#   lib/host-deps.sh amd64|arm64
set -euo pipefail
ARCH=${1:-amd64}
top=$(cd "$(dirname "$0")/../.." && pwd)

"$top/tools/host/deps.sh" "image-$ARCH"

if [[ $ARCH == arm64 && $(uname -m) != aarch64 ]]; then
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
