#!/usr/bin/env bash
# Create .venv-numpy1 from locks/numpy1.txt (numpy 1.x, wheels only) when it is missing or its lock changed: proposal
# pickles written by this project must load in the published training's stack. Used by .ci/run and the proposal
# pickle test. Prints the venv's python on the last line.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GRACO_NUMPY1_VENV:-$ROOT/.venv-numpy1}"
LOCK="$ROOT/locks/numpy1.txt"
STAMP="$VENV/.lock.sha256"
want="$(sha256sum "$LOCK" | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "[setup] creating $VENV from locks/numpy1.txt" >&2
  if [ -f "$VENV/pyvenv.cfg" ]; then rm -rf "$VENV"; fi  # an older venv; never a folder that is not one
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --require-hashes --only-binary=:all: -r "$LOCK" >&2
  echo "$want" > "$STAMP"
fi
echo "$VENV/bin/python"
