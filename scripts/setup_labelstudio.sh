#!/usr/bin/env bash
# Create .venv-labelstudio from locks/labelstudio.txt (the Label Studio server; its pins clash with ours, so it lives
# in its own venv) when it is missing or its lock changed. Used by .ci/run and the Label Studio tests. Prints the
# venv's python on the last line.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec bash "$ROOT/scripts/venv_from_lock.sh" "${GRACO_LABEL_STUDIO_VENV:-$ROOT/.venv-labelstudio}" \
  "$ROOT/locks/labelstudio.txt"
