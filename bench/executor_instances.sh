#!/usr/bin/env bash
# The instance part with and without the module cache: see bench/executor_instances.py.
# Env: BENCH_EXEC_INSTANCES (20), BENCH_EXEC_ROUNDS (2 here).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[[ -S ${LAB_HOST1_SOCKET:-} ]] || { echo "bench/executor_instances.sh: LAB_HOST1_SOCKET is not a socket (make lab-up; eval \"\$(lab/lab.sh env)\")" >&2; exit 1; }
exec "$ROOT/.venv/bin/python" "$ROOT/bench/executor_instances.py" "${BENCH_EXEC_INSTANCES:-20}" "${BENCH_EXEC_ROUNDS:-2}"
