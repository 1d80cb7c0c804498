#!/usr/bin/env bash
# make demo: run host-incus-update twice against the lab (lab/lab.sh up has run) and print
# what a person wants to see: per host, what each part did, and that the second run changed
# nothing. Full logs stay in $LAB_STATE/demo/.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$LAB_ROOT"
OUT=$LAB_STATE/demo
mkdir -p "$OUT"
export ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 ANSIBLE_CALLBACK_RESULT_FORMAT=json

run() { # N: one run of the playbook, progress on stderr, full output in run-N.log
  local n=$1 t0=$SECONDS rc=0
  log "host-incus-update run $n (usually 15-40 s; log $OUT/run-$n.log)"
  ansible-playbook playbooks/host-incus-update.yaml >"$OUT/run-$n.log" 2>&1 || rc=$?
  log "run $n finished in $((SECONDS - t0)) s (exit $rc)"
  return $rc
}

summary() { # N
  python3 - "$OUT/run-$1.log" "$1" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read()
run = sys.argv[2]
lines = {}
# The update_summary role's debug output: "ok: [host] => {json}" after its TASK header.
for block in re.split(r'\nTASK \[', text):
    if not block.startswith('incus_access.fleet.update_summary : Summarize this host'):
        continue
    for m in re.finditer(r'^ok: \[([^\]]+)\] => (\{.*?\n\})', block, re.S | re.M):
        lines[m.group(1)] = json.loads(m.group(2))['msg']
recap = dict(re.findall(r'^(\S+)\s+: (ok=.*)$', text, re.M))
print(f"\n== run {run}")
for host in sorted(set(lines) | set(recap)):
    stats = dict(kv.split('=') for kv in recap.get(host, '').split())
    print(f"  {host}: changed={stats.get('changed', '?')} failed={stats.get('failed', '?')} "
          f"unreachable={stats.get('unreachable', '?')}")
    for line in lines.get(host, ['(no summary: the host did not reach the end of the play)']):
        print(f"    {line}")
PY
}

# The playbook listed every host's client DN in each libvirtd's tls_allowed_dn_list and
# restarted it: a TLS handshake from each host's client certificate to each host.
libvirtd_check() {
  local n m
  for n in 1 2; do
    for m in 1 2; do
      if lab/libvirtd.sh check-host "$n" "$m" >/dev/null 2>&1; then
        echo "  libvirtd on lab-host$n accepts lab-host$m's client certificate (TLS handshake)"
      else
        echo "  libvirtd on lab-host$n REFUSES lab-host$m's client certificate"
        return 1
      fi
    done
  done
}

rc=0
run 1 || rc=1
summary 1
[[ $rc -eq 0 ]] || die "the first run failed: see $OUT/run-1.log"
echo
libvirtd_check || die "libvirtd refused a certificate the playbook issued"
run 2 || die "the second run failed: see $OUT/run-2.log"
summary 2
changed=$(grep -E '^\S+\s+: ok=' "$OUT/run-2.log" | grep -vc ' changed=0 ' || true)
echo
if [[ $changed -eq 0 ]]; then
  echo "second run: nothing changed on any host or instance (idempotent)"
else
  die "second run changed something on $changed host(s): see $OUT/run-2.log"
fi
