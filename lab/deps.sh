#!/usr/bin/env bash
# Installs the system packages the lab and the tests need on a fresh Debian 12 (as root).
# Quick when everything is present already.
#   lab/deps.sh [GROUP...]   groups: images (mmdebstrap, busybox: what lab/images.sh builds
#                            with), lab (the daemons and tools), test (qemu-user-static: the
#                            arm64 binary's tests; chromium: the audit page's tests); default: all three
# Two invocations at once wait for each other (apt's lock), so lab/lab.sh installs the
# small images group first and builds the Debian image while the rest installs.
set -euo pipefail
declare -A GROUPS_PACKAGES=(
  [images]="mmdebstrap busybox-static"
  [lab]="incus openssh-server openssh-client libvirt-daemon libvirt-clients gnutls-bin acl iproute2 curl ca-certificates xz-utils python3-venv openssl"
  [test]="qemu-user-static chromium"
)
groups=("$@")
[[ ${#groups[@]} -gt 0 ]] || groups=(images lab test)
PACKAGES=()
for g in "${groups[@]}"; do
  [[ -n ${GROUPS_PACKAGES[$g]:-} ]] || { echo "lab/deps.sh: unknown group '$g' (images, lab, test)" >&2; exit 2; }
  read -ra ps <<<"${GROUPS_PACKAGES[$g]}"
  PACKAGES+=("${ps[@]}")
done
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo "deb http://deb.debian.org/debian bookworm-backports main" >/etc/apt/sources.list.d/bookworm-backports.list
fi
export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -q -o DPkg::Lock::Timeout=600)
here=$(dirname "$0")
# apt's own output goes to a log, shown when a step fails
LOGDIR=${LAB_STATE:-/var/lib/incus-access-lab}/logs
mkdir -p "$LOGDIR"
# one index refresh per hour is enough (lab.sh calls this twice in a row on a new machine)
if [[ -z $(find /var/lib/apt/lists -maxdepth 1 -name '*bookworm-backports*InRelease' -mmin -60 2>/dev/null) ]]; then
  PROGRESS_LOG=$LOGDIR/apt-update.log "$here/../tools/with-progress.sh" "apt update" "10-30 s" "${APT[@]}" update
fi
# incus is in bookworm-backports only; everything else from bookworm itself (the versions
# the lab was measured with, e.g. libvirt 9.0)
others=()
for p in "${missing[@]}"; do [[ $p == incus ]] || others+=("$p"); done
echo "[apt] installing ${missing[*]}" >&2
if [[ ${#others[@]} -gt 0 ]]; then
  PROGRESS_LOG=$LOGDIR/apt-install-$$.log "$here/../tools/with-progress.sh" "apt install" \
    "$([[ ${#others[@]} -gt 3 ]] && echo "1-2 min" || echo "10-30 s")" \
    "${APT[@]}" install -y --no-install-recommends "${others[@]}"
fi
if [[ " ${missing[*]} " == *" incus "* ]]; then
  PROGRESS_LOG=$LOGDIR/apt-install-incus.log "$here/../tools/with-progress.sh" "apt install incus" "30-60 s" \
    "${APT[@]}" install -y --no-install-recommends -t bookworm-backports incus
fi
