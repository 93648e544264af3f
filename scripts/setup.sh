#!/usr/bin/env bash
# Idempotent setup: a virtual environment in .venv with torch (CPU wheel) first, then tunesmith.
#   bash scripts/setup.sh        tunesmith and what it needs to run (the demo: scripts/demo.sh)
#   bash scripts/setup.sh dev    tunesmith[dev]: also the test, lint, sweep and lm-eval tools (scripts/test.sh)
# Re-runs in a second when nothing changed (a stamp keyed on pyproject.toml and the level; dev covers both).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
level=${1:-run}
case "$level" in
  run) target="." ;;
  dev) target=".[dev]" ;;
  *) echo "scripts/setup.sh: unknown level '$level' — use no argument (run) or 'dev'" >&2; exit 2 ;;
esac
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.setup-stamp
hash=$(sha256sum pyproject.toml | cut -d' ' -f1)
have=$(cat "$stamp" 2>/dev/null || true)
if [ "$have" != "$hash dev" ] && [ "$have" != "$hash $level" ]; then
  echo "setup: installing torch==2.13.0 (CPU) and tunesmith$([ "$level" = dev ] && echo '[dev]') into .venv ..."
  # --no-compile: no bytecode for the thousands of modules never imported (Python compiles what it imports,
  # once); measured on this 2-core machine it is the larger part of installing torch
  pip=(.venv/bin/python -m pip install -q --no-compile --disable-pip-version-check)
  # torch first, pinned: any other spec pulls a multi-GB CUDA build on this machine kind.
  "${pip[@]}" torch==2.13.0 2>&1 | grep -v '^WARNING: Location' || true
  "${pip[@]}" -e "$target" 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -c "import torch, transformers, trl, peft, tunesmith" || { echo "setup: install failed" >&2; exit 1; }
  echo "$hash $level" > "$stamp"
fi
