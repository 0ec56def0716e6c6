#!/usr/bin/env bash
# Install the host's Debian packages that GROUPs need (tools/host/packages.txt), only those
# missing; as root with apt. Prints nothing when everything is there.
#   tools/host/deps.sh run|test|image-amd64|image-arm64 ...
#   tools/host/deps.sh --list GROUP...   the packages of those groups, one a line
#   tools/host/deps.sh --missing GROUP... the ones missing here
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}

mode=install
case ${1:-} in
--list | --missing)
	mode=${1#--}
	shift
	;;
esac
(($#)) || {
	echo "usage: $0 [--list|--missing] GROUP..." >&2
	exit 2
}

present() { # present CHECK
	case $1 in
	python:*) "$PYTHON" -c "import ${1#python:}" >/dev/null 2>&1 ;;
	/*) [[ -e $1 ]] ;;
	*) command -v "$1" >/dev/null 2>&1 || [[ -x /usr/sbin/$1 || -x /sbin/$1 ]] ;;
	esac
}

packages=()
missing=()
known=" "
while read -r group package check _; do
	[[ -z $group || $group == \#* ]] && continue
	[[ " $* " == *" $group "* ]] || continue
	known+="$group "
	[[ " ${packages[*]} " == *" $package "* ]] || packages+=("$package")
	if ! present "$check" && [[ " ${missing[*]} " != *" $package "* ]]; then
		missing+=("$package")
	fi
done <"$here/packages.txt"
for group in "$@"; do
	[[ $known == *" $group "* ]] || {
		echo "$0: no group ${group@Q} in $here/packages.txt" >&2
		exit 2
	}
done

case $mode in
list) printf '%s\n' "${packages[@]}" ;;
missing) ((${#missing[@]} == 0)) || printf '%s\n' "${missing[@]}" ;;
install)
	((${#missing[@]})) || exit 0
	echo "[host] installing Debian packages: ${missing[*]}" >&2
	if [[ $(id -u) != 0 ]]; then
		echo "[host] not root: install them yourself: apt-get install ${missing[*]}" >&2
		exit 2
	fi
	export DEBIAN_FRONTEND=noninteractive
	# Another apt (an unattended upgrade, a second build) may hold its locks: wait for them.
	apt=(apt-get -qq -o DPkg::Lock::Timeout=600)
	for try in 1 2 3; do
		"${apt[@]}" update && break
		((try < 3)) || exit 1
		sleep 10
	done
	"${apt[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null
	still=()
	for package in "${missing[@]}"; do
		[[ $(dpkg-query -W -f '${db:Status-Status}' "$package" 2>/dev/null) == installed ]] ||
			still+=("$package")
	done
	((${#still[@]} == 0)) || {
		echo "[host] still missing after apt-get install: ${still[*]}" >&2
		exit 1
	}
	;;
esac
