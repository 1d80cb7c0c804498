#!/usr/bin/env bash
# The collection tarball (make collection): its size, the size it would have with a copy of
# the binary in plugins/modules/<module> instead of the markers, its size installed, and
# the time `ansible-galaxy collection install` takes (median of BENCH_COLLECTION_ROUNDS, 5).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
make -s collection >/dev/null
version=$(sed -n 's/^version: *//p' galaxy.yml)
tarball=dist/incus_access-fleet-$version.tar.gz
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
: >"$work/empty.cfg"
modules=$(ls -d modules/*/ | wc -l)
one=$(gzip -6 -c bin/linux-amd64/incus-access-modules | wc -c)
size=$(stat -c %s "$tarball")
markers=$(tar -tzvf "$tarball" | awk '$6 ~ /^plugins\/modules\/[a-z_]+$/ {s += $3} END {print s}')
echo "tarball: $size bytes ($tarball)"
echo "  with the amd64 binary in plugins/modules/ for each of the $modules modules instead of markers ($markers bytes): about $((size + modules * one)) bytes"
times=()
for _ in $(seq "${BENCH_COLLECTION_ROUNDS:-5}"); do
  rm -rf "$work/c"
  t0=$(date +%s%N)
  ANSIBLE_CONFIG=$work/empty.cfg ANSIBLE_COLLECTIONS_PATH=$work/c .venv/bin/ansible-galaxy collection install -p "$work/c" "$tarball" >/dev/null
  times+=($(( ($(date +%s%N) - t0) / 1000000 )))
done
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
echo "installed: $(du -sb "$work/c/ansible_collections/incus_access/fleet" | cut -f1) bytes"
echo "ansible-galaxy collection install: median ${sorted[$(( ${#sorted[@]} / 2 ))]} ms (runs: ${times[*]} ms)"
