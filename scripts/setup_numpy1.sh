#!/usr/bin/env bash
# Create .venv-numpy1 from locks/numpy1.txt (numpy 1.x, wheels only) when it is missing or its lock changed: proposal
# pickles written by this project must load in the published training's stack. Used by .ci/run and the proposal
# pickle test. Prints the venv's python on the last line.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec bash "$ROOT/scripts/venv_from_lock.sh" "${GRACO_NUMPY1_VENV:-$ROOT/.venv-numpy1}" "$ROOT/locks/numpy1.txt" \
  --only-binary=:all:
