#!/usr/bin/env bash
# Set everything up and run the checks: ruff, mypy (typed packages), import contracts, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ruff";          .venv/bin/ruff check src tests benchmarks
echo "== mypy (core, notify, store, auth, api)";   .venv/bin/mypy
echo "== import rules";  .venv/bin/lint-imports
bash scripts/browser.sh  # Debian chromium for tests/web
bash scripts/postgres.sh # Debian postgresql for the store suite's "postgres" param
echo "== pytest";        .venv/bin/pytest -q -p no:cacheprovider "$@"
