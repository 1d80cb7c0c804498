#!/usr/bin/env bash
# Builds the lab's container images locally (there is no image server) and imports them
# into both lab daemons:
#   debian  - mmdebstrap minbase bookworm + python3, acl, sudo, openssh-server, iproute2; users
#             rocky (uid 1000) and app (uid 1001); an init that brings lo up and runs sshd.
#   busybox - Debian's busybox-static with every applet linked and a getent shim; no Python.
# Built tarballs are cached in $LAB_CACHE/images/<name>-<version>/: bump a version when
# its recipe changes.
# Usage: lab/images.sh build|up   (build: the cached tarballs only, no daemon needed;
#                                  up: build when missing, then import into both daemons)
set -euo pipefail
source "$(dirname "$0")/common.sh"

DEBIAN_VERSION=4
BUSYBOX_VERSION=3
MIRROR=${LAB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
ARCH=$(uname -m)

# A shell init: incus stop sends SIGPWR to PID 1, so trap it and exit.
INIT='#!/bin/sh
trap "exit 0" PWR TERM INT
# no NIC in the lab profile, and nothing else brings loopback up (sshd checks in verify
# and the tests connect to 127.0.0.1 inside the instance)
ip link set lo up 2>/dev/null
# the hostname is the instance name: make it resolvable (sudo asks)
h=$(hostname)
grep -q " $h\$" /etc/hosts 2>/dev/null || printf "127.0.0.1 localhost\n127.0.1.1 %s\n" "$h" >>/etc/hosts
if [ -x /usr/sbin/sshd ]; then
  mkdir -p /run/sshd
  ssh-keygen -A >/dev/null 2>&1
  /usr/sbin/sshd
fi
while :; do sleep 3600 & wait $!; done'

metadata() { # name description outdir
  local tmp; tmp=$(mktemp -d)
  cat >"$tmp/metadata.yaml" <<META
architecture: $ARCH
creation_date: $(date +%s)
properties:
  os: $1
  description: "$2"
META
  tar -C "$tmp" -cf "$3/meta.tar" metadata.yaml
  rm -rf "$tmp"
}

build_debian() {
  local out=$1 root
  root=$(mktemp -d "$LAB_CACHE/images/debian-build.XXXXXX")
  log "debian image: mmdebstrap --variant=minbase bookworm (usually about a minute; cached afterwards)"
  local t0=$SECONDS
  # mmdebstrap, not debootstrap: apt downloads in parallel and installs in one pass
  # (medians of runs in turn here: 39 s against debootstrap's 60 s, 0.65x); no man pages,
  # translations or docs (a quarter of the image, copied for every instance launched)
  rmdir "$root"   # mmdebstrap wants to create its target
  PROGRESS_LOG=$root.log "$LAB_ROOT/tools/with-progress.sh" "lab: mmdebstrap" "about a minute" \
    mmdebstrap --variant=minbase --include=python3,acl,sudo,openssh-server,libpam-modules,iproute2 \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    bookworm "$root" "$MIRROR" || die "mmdebstrap failed (log $root.log)"
  chroot "$root" /bin/sh -c 'useradd -m -u 1000 -s /bin/bash rocky && useradd -m -u 1001 -s /bin/bash app' 
  chroot "$root" apt-get clean
  rm -rf "$root"/var/lib/apt/lists/* "$root"/etc/ssh/ssh_host_*
  printf '%s\n' "$INIT" >"$root/sbin/init.lab"
  chmod 755 "$root/sbin/init.lab"
  ln -sf /sbin/init.lab "$root/sbin/init"
  echo lab-debian >"$root/etc/hostname"
  chmod 755 "$root"   # mktemp made it 0700: unprivileged users could not reach /
  tar --numeric-owner -C "$root" -cf "$out/rootfs.tar" .
  metadata debian "Debian bookworm minbase (incus-access lab)" "$out"
  rm -rf "$root" "$root.log"
  log "debian image built in $((SECONDS - t0)) s"
}

build_busybox() {
  local out=$1 root
  root=$(mktemp -d "$LAB_CACHE/images/busybox-build.XXXXXX")
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,proc,sys,dev,run,var/tmp}
  chmod 1777 "$root/tmp" "$root/var/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list-full); do
    [[ -e $root/$applet ]] || ln -s /bin/busybox "$root/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
  printf 'root:x:0:\n' >"$root/etc/group"
  rm -f "$root/usr/bin/getent" "$root/bin/getent"
  # getent shim: the ssh2incus gateway runs `getent passwd USER` before every session.
  cat >"$root/usr/bin/getent" <<'SHIM'
#!/bin/sh
[ "$1" = passwd ] || { echo "getent shim: only passwd" >&2; exit 2; }
shift
[ $# -eq 0 ] && exec cat /etc/passwd
rc=2
for u in "$@"; do grep -E "^$u:" /etc/passwd && rc=0; done
exit $rc
SHIM
  chmod 755 "$root/usr/bin/getent"
  # sbin/init is an applet symlink to /bin/busybox: writing through it would overwrite
  # the HOST's busybox, so replace the link with a file.
  rm -f "$root/sbin/init"
  printf '%s\n' "$INIT" >"$root/sbin/init"
  chmod 755 "$root/sbin/init" "$root"
  tar --numeric-owner -C "$root" -cf "$out/rootfs.tar" .
  metadata busybox "busybox-static (incus-access lab)" "$out"
  rm -rf "$root"
}

ensure_built() { # name version
  local dir=$LAB_CACHE/images/$1-$2
  if [[ ! -f $dir/rootfs.tar || ! -f $dir/meta.tar ]]; then
    mkdir -p "$dir"
    "build_$1" "$dir"
  fi
  echo "$dir"
}

import() { # host name dir version
  local fp
  if incus_on "$1" image show "$2" >/dev/null 2>&1; then
    # re-import only when the cached build is newer than the image (recipe bumped)
    [[ $(incus_on "$1" image get-property "$2" lab_version 2>/dev/null || true) == "$4" ]] && return 0
    incus_on "$1" image delete "$2"
  fi
  log "importing image $2 into host$1"
  incus_on "$1" image import "$3/meta.tar" "$3/rootfs.tar" --alias "$2" >/dev/null
  incus_on "$1" image set-property "$2" lab_version "$4"
}

case ${1:-up} in
  build)
    mkdir -p "$LAB_CACHE/images"
    ensure_built debian "$DEBIAN_VERSION" >/dev/null
    ensure_built busybox "$BUSYBOX_VERSION" >/dev/null
    ;;
  up)
    mkdir -p "$LAB_CACHE/images"
    deb=$(ensure_built debian "$DEBIAN_VERSION")
    bb=$(ensure_built busybox "$BUSYBOX_VERSION")
    for n in 1 2; do
      import "$n" debian "$deb" "$DEBIAN_VERSION"
      import "$n" busybox "$bb" "$BUSYBOX_VERSION"
    done
    ;;
  *) die "usage: $0 build|up" ;;
esac
