#!/usr/bin/env bash
# Make sure a headless browser is there for the web dashboard's tests (tests/web): Debian's
# chromium, installed with apt-get when it is missing and we are root. Playwright drives it
# through executable_path; its own browser download is never used. Without root and without
# chromium this only says so: tests/web then skips with that reason.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "== installing chromium (apt-get) for the browser tests"
  started=$(date +%s)
  export DEBIAN_FRONTEND=noninteractive
  if apt-get update -qq && apt-get install -y -qq chromium >/dev/null; then
    echo "chromium installed in $(( $(date +%s) - started )) s: $(chromium --version 2>/dev/null || echo '?')"
  else
    echo "could not install chromium: tests/web will be skipped" >&2
  fi
else
  echo "no chromium and cannot install it (needs root and apt-get): tests/web will be skipped" >&2
fi
