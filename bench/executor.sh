#!/usr/bin/env bash
# The executor (module cache on the target) against the stock binary-module path and ping:
# per-task time, bytes sent per task, first task on a cold cache. See bench/executor.py.
# Env: BENCH_EXEC_ROUNDS (5), BENCH_EXEC_TASKS (10).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[[ -S ${LAB_HOST1_SOCKET:-} ]] || { echo "bench/executor.sh: LAB_HOST1_SOCKET is not a socket (make lab-up; eval \"\$(lab/lab.sh env)\")" >&2; exit 1; }
exec "$ROOT/.venv/bin/python" "$ROOT/bench/executor.py" "${BENCH_EXEC_ROUNDS:-5}" "${BENCH_EXEC_TASKS:-10}"
