#!/usr/bin/env bash
# Make sure PostgreSQL's server binaries are there for the PostgreSQL store's tests (the
# "postgres" param of the store fixture; tests/pgserver.py starts a throwaway server with
# initdb/pg_ctl): Debian's postgresql package, installed with apt-get when
# /usr/lib/postgresql/*/bin/initdb is missing and we are root. The package's own cluster is
# not used; the tests run their own server on a free port. Without root and without the
# binaries this only says so: the postgres tests then skip with that reason.
set -euo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || [ -n "${KPIDASH_PG_BINDIR:-}" ] \
   || [ -n "${KPIDASH_TEST_PG_URL:-}" ]; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "== installing postgresql (apt-get) for the PostgreSQL store tests"
  started=$(date +%s)
  export DEBIAN_FRONTEND=noninteractive
  if apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql >/dev/null; then
    echo "postgresql installed in $(( $(date +%s) - started )) s:" \
         "$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | tr '\n' ' ')"
  else
    echo "could not install postgresql: the postgres store tests will be skipped" >&2
    # in CI the PostgreSQL store must be tested, not skipped
    [ -z "${CI:-}" ] || exit 1
  fi
else
  echo "no PostgreSQL server binaries and cannot install them (needs root and apt-get):" \
       "the postgres store tests will be skipped" >&2
  [ -z "${CI:-}" ] || exit 1
fi
