#!/usr/bin/env bash
# Re-resolve every lock in locks/ from its source, with today's registry: exact versions of every package, with
# hashes. Run it for a new torch, a security fix or a changed range in requirements.txt, pyproject.toml or
# locks/*.in; then run the whole CI (bash .ci/run), which rebuilds every venv whose lock changed.
# The resolver is uv (PyPI), at the version below, in a throwaway venv.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UV_VERSION="0.13.10"
tools="$(mktemp -d)"
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools/venv"
"$tools/venv/bin/python" -m pip install -q "uv==$UV_VERSION"
cd "$ROOT"
# Universal locks (markers for other platforms and Pythons), resolved for Python 3.11 and newer; tested on 3.11,
# Linux x86_64. The header of each lock is the command that made it.
compile() { "$tools/venv/bin/uv" pip compile --quiet --universal --python-version 3.11 --generate-hashes \
  --custom-compile-command "bash scripts/update_locks.sh" "$@"; }
# the project's venv (.venv): requirements.txt holds the package's dependencies and every extra
compile requirements.txt -o locks/main.txt
# the Hugging Face Space: the package's dependencies and the [web] extra, at the versions of the main lock
compile pyproject.toml --extra web -c locks/main.txt -o locks/space.txt
compile locks/labelstudio.in -o locks/labelstudio.txt
compile locks/numpy1.in -o locks/numpy1.txt
echo "[locks] written: $(ls locks/*.txt | tr '\n' ' ')"
