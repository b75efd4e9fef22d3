#!/usr/bin/env bash
# Tests of the JavaScript client (clients/js): unit tests against a scripted fake WebSocket, a
# type check of src/index.d.ts, and integration tests against real vrouter replicas (three of
# them over a redis-server the tests start on a free loopback port).
#
#   VROUTER_BIN=build/release/router/vrouter clients/js/run-tests.sh
#
# Installs the dev dependencies (ws, typescript) on first use: npm ci, from package-lock.json.
# These tests need no simulated video server (the fleet is declared unmonitored). redis-server is
# taken from
# /usr/bin/redis-server, or REDIS_SERVER_BIN.
set -euo pipefail

: "${VROUTER_BIN:?set VROUTER_BIN to the vrouter binary}"
if [[ ! -x $VROUTER_BIN ]]; then
  echo "run-tests.sh: VROUTER_BIN=$VROUTER_BIN is not an executable" >&2
  exit 1
fi
# Relative to the caller's directory, before moving to this one.
VROUTER_BIN=$(realpath "$VROUTER_BIN")
export VROUTER_BIN
cd "$(dirname "$0")"
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

node_modules/.bin/tsc -p test/tsconfig.json
echo "types: ok (tsc -p test/tsconfig.json)"
# One test file at a time: the integration files each start their own replicas and Redis.
exec node --test --test-concurrency=1 test/*.test.mjs
