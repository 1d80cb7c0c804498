#!/usr/bin/env bash
# make bench: runs every bench/*.sh (except this one); each prints its own figures.
set -uo pipefail
cd "$(dirname "$0")"
rc=0
for b in ./*.sh; do
  [[ $(basename "$b") == run.sh ]] && continue
  echo "== bench/${b#./}"
  bash "$b" || { echo "FAILED: bench/${b#./}" >&2; rc=1; }
done
exit $rc
