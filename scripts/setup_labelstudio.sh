#!/usr/bin/env bash
# Create .venv-labelstudio from locks/labelstudio.txt (the Label Studio server; its pins clash with ours, so it lives
# in its own venv) when it is missing or its lock changed. Used by .ci/run and the Label Studio tests. Prints the
# venv's python on the last line.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GRACO_LABEL_STUDIO_VENV:-$ROOT/.venv-labelstudio}"
LOCK="$ROOT/locks/labelstudio.txt"
STAMP="$VENV/.lock.sha256"
want="$(sha256sum "$LOCK" | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "[setup] creating $VENV from locks/labelstudio.txt (a few minutes the first time)" >&2
  if [ -f "$VENV/pyvenv.cfg" ]; then rm -rf "$VENV"; fi  # an older venv; never a folder that is not one
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --require-hashes -r "$LOCK" >&2
  echo "$want" > "$STAMP"
fi
echo "$VENV/bin/python"
