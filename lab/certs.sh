#!/usr/bin/env bash
# Client certificates for the seed's four trust scenarios (full admin, CI production-only,
# developer default-only, automation multi-project). Keys stay in $LAB_STATE/client-certs;
# the public certificates go where the lab inventory expects them
# (inventory/lab/incus/trusted-client-certs/, git-ignored). Generated once.
# Usage: lab/certs.sh up
set -euo pipefail
source "$(dirname "$0")/common.sh"
NAMES="workstation-admin ci-pipeline-production dev-alice-workstation automation-scripts"
KEYS=$LAB_STATE/client-certs
PUB=$LAB_ROOT/inventory/lab/incus/trusted-client-certs

mkdir -p "$KEYS" "$PUB"
chmod 700 "$KEYS"
for name in $NAMES; do
  if [[ ! -f $KEYS/$name.crt ]]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
      -subj "/CN=$name" -addext extendedKeyUsage=clientAuth \
      -keyout "$KEYS/$name.key" -out "$KEYS/$name.crt" 2>/dev/null
  fi
  cmp -s "$KEYS/$name.crt" "$PUB/$name.crt" || cp "$KEYS/$name.crt" "$PUB/$name.crt"
done
