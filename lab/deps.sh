#!/usr/bin/env bash
# Installs the system packages the lab and the tests need on a fresh Debian 12 (as root).
# Quick when everything is present already.
set -euo pipefail
PACKAGES=(
  incus openssh-server openssh-client debootstrap busybox-static
  libvirt-daemon libvirt-clients gnutls-bin acl iproute2 curl ca-certificates xz-utils
  python3-venv openssl qemu-user-static
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo "deb http://deb.debian.org/debian bookworm-backports main" >/etc/apt/sources.list.d/bookworm-backports.list
fi
echo "[deps] installing: ${missing[*]} (usually 1-2 min)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# incus is in bookworm-backports only; everything else from bookworm itself (the versions
# the lab was measured with, e.g. libvirt 9.0)
others=()
for p in "${missing[@]}"; do [[ $p == incus ]] || others+=("$p"); done
if [[ ${#others[@]} -gt 0 ]]; then apt-get install -y -q --no-install-recommends "${others[@]}"; fi
if [[ " ${missing[*]} " == *" incus "* ]]; then
  apt-get install -y -q --no-install-recommends -t bookworm-backports incus
fi
