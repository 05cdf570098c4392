#!/usr/bin/env bash
# venv_from_lock.sh VENV LOCK [PIP OPTIONS...]: create VENV from the lock LOCK (exact versions, hashes checked) when
# it is missing or was made from another version of LOCK (a stamp in VENV holds the lock's hash); an older venv
# there is replaced. Prints VENV's python on the last line. Used by setup_labelstudio.sh and setup_numpy1.sh.
set -euo pipefail
VENV="$1"
LOCK="$2"
shift 2
STAMP="$VENV/.lock.sha256"
want="$(sha256sum "$LOCK" | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "[setup] creating $VENV from $LOCK" >&2
  if [ -f "$VENV/pyvenv.cfg" ]; then rm -rf "$VENV"; fi  # an older venv; never a folder that is not one
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --require-hashes "$@" -r "$LOCK" >&2
  echo "$want" > "$STAMP"
fi
echo "$VENV/bin/python"
