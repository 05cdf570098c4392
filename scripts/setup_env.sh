#!/usr/bin/env bash
# Create .venv (Python 3.11) with requirements.txt when it is missing or out of date, and install the isegm package
# into it in editable mode (pip install -e .). Sourced by the other scripts.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.requirements.sha256"
EDITABLE_STAMP="$VENV/.editable"
want="$(sha256sum "$ROOT/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "[setup] creating $VENV and installing requirements.txt (a few minutes the first time)"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip "setuptools>=70.1" wheel
  "$VENV/bin/python" -m pip install -q -r <(grep -vE '^sam2\b' "$ROOT/requirements.txt")
  # sam2 is source only: build it against the torch just installed (not a second one fetched into an isolated
  # build environment) and without its optional CUDA extension.
  SAM2_BUILD_CUDA=0 "$VENV/bin/python" -m pip install -q --no-build-isolation $(grep -E '^sam2\b' "$ROOT/requirements.txt")
  echo "$want" > "$STAMP"
fi
# the package itself: editable, so the checkout's code and configs/ are what runs
editable="$ROOT $(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
if [ "$(cat "$EDITABLE_STAMP" 2>/dev/null)" != "$editable" ]; then
  echo "[setup] pip install -e $ROOT"
  "$VENV/bin/python" -m pip install -q --no-deps -e "$ROOT"
  echo "$editable" > "$EDITABLE_STAMP"
fi
export PATH="$VENV/bin:$PATH"
