#!/usr/bin/env bash
# Client certificates for the seed's four trust scenarios (full admin, CI production-only,
# developer default-only, automation multi-project). Keys stay in $LAB_STATE/client-certs;
# the public certificates go where the lab inventory expects them
# (inventory/lab/incus/trusted-client-certs/, git-ignored). Generated once.
# Also the controller identity for the inventory plugin (see the end).
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

# The controller's own identity (issue 12): the incus_instances inventory plugin asks both
# lab hosts' API over HTTPS with it. incus_trust manages it like any other client (it is in
# inventory/lab's incus_trusted_clients); trusted here too, so the very first run lists the
# instances. The lab inventory points at the key in inventory/lab/group_vars/incus.yml.
CONTROLLER=incus-access-controller
if [[ ! -f $KEYS/$CONTROLLER.crt ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=$CONTROLLER" -addext extendedKeyUsage=clientAuth \
    -keyout "$KEYS/$CONTROLLER.key" -out "$KEYS/$CONTROLLER.crt" 2>/dev/null
fi
cmp -s "$KEYS/$CONTROLLER.crt" "$PUB/$CONTROLLER.crt" || cp "$KEYS/$CONTROLLER.crt" "$PUB/$CONTROLLER.crt"
fp=$(openssl x509 -in "$KEYS/$CONTROLLER.crt" -outform der | sha256sum | cut -d' ' -f1)
for n in 1 2; do
  if ! incus_on "$n" query "/1.0/certificates/$fp" >/dev/null 2>&1; then
    log "trusting the controller certificate $CONTROLLER on host$n"
    incus_on "$n" config trust add-certificate "$KEYS/$CONTROLLER.crt" --name "$CONTROLLER" \
      --description "incus-access controller (inventory plugin incus_instances)" </dev/null >/dev/null
  fi
done
