#!/usr/bin/env bash
# Set everything up and run the main job: load the SaaS demo and print the dashboard JSON.
# Extra arguments go to `kpidash demo` (e.g. --watch, --out board.json).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/kpidash demo "$@"
