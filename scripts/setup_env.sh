#!/usr/bin/env bash
# Create .venv (Python 3.11) from locks/main.txt when it is missing or its lock changed, and install the isegm
# package into it in editable mode (pip install -e .). Sourced by the other scripts.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
LOCK="$ROOT/locks/main.txt"
STAMP="$VENV/.lock.sha256"
EDITABLE_STAMP="$VENV/.editable"
# lock_part LOCK yes|no PACKAGE: the lock's entries for PACKAGE alone (yes) or all the others (no)
lock_part() { awk -v pkg="$3==" -v want="$2" '/^[^ #]/ {mine = (index($0, pkg) == 1)} (want == "yes") == mine' "$1"; }
want="$(sha256sum "$LOCK" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "[setup] creating $VENV from locks/main.txt (a few minutes the first time)"
  if [ -f "$VENV/pyvenv.cfg" ]; then rm -rf "$VENV"; fi  # an older venv; never a folder that is not one
  python3 -m venv "$VENV"
  # every package at the locked version, checked against the locked hashes
  "$VENV/bin/python" -m pip install -q --require-hashes -r <(lock_part "$LOCK" no sam2)
  # sam2 is source only: build it against the torch just installed (not a second one fetched into an isolated
  # build environment) and without its optional CUDA extension; its dependencies came with the lock above.
  SAM2_BUILD_CUDA=0 "$VENV/bin/python" -m pip install -q --require-hashes --no-deps --no-build-isolation \
    -r <(lock_part "$LOCK" yes sam2)
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
