#!/usr/bin/env bash
# The GPU check (scripts/gpu_check.py): one table, under 8 minutes on a GPU machine, nothing needed from outside.
#   bash scripts/gpu_check.sh                      # on a GPU machine (two or more GPUs add the multi-process rows)
#   bash scripts/gpu_check.sh --tiny --device cpu  # the same steps with a tiny model on the CPU (CI)
# PYTHON=/path/to/python uses that interpreter instead of the project's .venv.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${PYTHON:-}" ]; then
  source "$ROOT/scripts/setup_env.sh"
  PYTHON=python
fi
cd "$ROOT"
exec "$PYTHON" scripts/gpu_check.py "$@"
