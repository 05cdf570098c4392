#!/usr/bin/env bash
# Create .venv-labelstudio with the Label Studio server (its pins clash with ours: it lives in its own venv).
# Used by .ci/run and by tests/test_labelstudio_e2e.py. Prints the venv's python on the last line.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GRACO_LABEL_STUDIO_VENV:-$ROOT/.venv-labelstudio}"
VERSION="${GRACO_LABEL_STUDIO_VERSION:-1.23.2}"
STAMP="$VENV/.label-studio-$VERSION"
if [ ! -f "$STAMP" ]; then
  echo "[setup] creating $VENV with label-studio==$VERSION (a few minutes the first time)" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >&2
  "$VENV/bin/python" -m pip install -q "label-studio==$VERSION" >&2
  touch "$STAMP"
fi
echo "$VENV/bin/python"
