#!/usr/bin/env bash
# The whole GraCo pipeline at toy scale on the CPU (about 15 minutes on 2 cores); report in outputs/quickstart/.
# Creates the virtual environment first when it is missing. Options: --out DIR, --smoke, --seed N, --threads N.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
exec python scripts/quickstart.py "$@"
