#!/usr/bin/env bash
# Set everything up and run the main job: the API server on localhost with the SaaS demo data,
# refreshing in the background; it prints the URL and a demo login (shown once).
# Extra arguments go to `kpidash serve --demo` (e.g. --port 9000, --days 365).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/kpidash serve --demo "$@"
