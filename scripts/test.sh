#!/usr/bin/env bash
# Run the test suite (creates .venv when missing). Extra arguments go to pytest.
# Real data and weights are used when GRACO_TEST_DATA / GRACO_TEST_WEIGHTS point at them; tests skip otherwise.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
exec python -m pytest -q tests "$@"
