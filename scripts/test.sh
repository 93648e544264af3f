#!/usr/bin/env bash
# The whole test suite, from a fresh clone: setup (idempotent), lint (ruff, the import layers), Chromium for
# the report's browser test, then pytest (unit + end-to-end on the tiny family shipped in the package; caches
# go to .cache/tunesmith unless TUNESMITH_HOME is set).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/lint-imports  # the layer contract in pyproject.toml (also run by tests/unit/test_layers.py)
# tests/e2e/test_report_browser.py opens the run report in Debian's headless Chromium (playwright drives it)
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq chromium
    else
        echo "scripts/test.sh: /usr/bin/chromium is missing — install it with: sudo apt-get install -y chromium" >&2
    fi
fi
# the distributed-sweep tests start a real PostgreSQL server on loopback (tests/unit/test_sweeps_workers.py):
# install Debian's server where initdb is missing, and put its binaries on PATH (Debian keeps them out of it)
if ! command -v initdb >/dev/null 2>&1; then
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$pg_bin" ]; then
        if [ "$(id -u)" = 0 ]; then
            apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
            pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
        else
            echo "scripts/test.sh: PostgreSQL is missing — install it with: sudo apt-get install -y postgresql" >&2
        fi
    fi
    [ -n "$pg_bin" ] && export PATH="$PATH:$pg_bin"
fi
# --durations: the 25 slowest tests, printed at the end of every run
.venv/bin/python -m pytest --durations=25 "$@"
