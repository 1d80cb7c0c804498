#!/usr/bin/env bash
# Runs one long setup step and keeps saying it is still at work, so a first `make demo`
# never sits silent for minutes:
#   tools/with-progress.sh LABEL USUALLY COMMAND [ARGS...]
# prints "[LABEL] still at work after N s (usually USUALLY)" every 30 s (PROGRESS_EVERY) while
# COMMAND runs, and "[LABEL] done in N s" at the end (when it took 3 s or more); exits with COMMAND's status.
# With PROGRESS_LOG=FILE, COMMAND's output goes to FILE and its last lines are shown when
# it fails.
set -uo pipefail
label=$1 usually=$2
shift 2
every=${PROGRESS_EVERY:-30}
t0=$(date +%s)
if [[ -n ${PROGRESS_LOG:-} ]]; then
  "$@" >"$PROGRESS_LOG" 2>&1 &
else
  "$@" &
fi
pid=$!
(
  # sleep's own output to /dev/null: killed below, the ticker must not leave a sleep holding
  # the caller's stderr open (`make demo | tee` would wait for it)
  while sleep "$every" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || exit 0
    printf '[%s] still at work after %d s (usually %s)\n' "$label" $(($(date +%s) - t0)) "$usually" >&2
  done
) &
ticker=$!
wait "$pid"
rc=$?
kill "$ticker" 2>/dev/null
wait "$ticker" 2>/dev/null
elapsed=$(($(date +%s) - t0))
if [[ $rc -eq 0 ]]; then
  # a quick step (warm caches) stays quiet
  [[ $elapsed -lt 3 ]] ||
  printf '[%s] done in %d s\n' "$label" $(($(date +%s) - t0)) >&2
else
  printf '[%s] FAILED (exit %d) after %d s\n' "$label" "$rc" $(($(date +%s) - t0)) >&2
  if [[ -n ${PROGRESS_LOG:-} ]]; then
    tail -n 20 "$PROGRESS_LOG" | sed "s/^/[$label]   /" >&2
    printf '[%s] full output: %s\n' "$label" "$PROGRESS_LOG" >&2
  fi
fi
exit "$rc"
