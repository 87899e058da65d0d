#!/usr/bin/env bash
# Contract tests: schemathesis (pinned in notebooks/requirements.txt) against
# the local stack, generating requests from the OpenAPI document served at
# /api/openapi.json and checking every answer against it. Bounded in
# examples and time; loopback only. Run by .ci/run; by hand: bash dev/contract.sh
#
# The stack checks function keys here (-function-key), and Databricks runs
# succeed at once (-runner none): the notebook itself has its own tests.
# Two checks are off, each for a reason:
#   positive_data_acceptance: a request can match the schema and still be
#     refused by a rule the schema cannot state (a date in the future fails
#     service A's check: 422, as documented);
#   unsupported_method: the Functions host answers 404, not 405, for a
#     method a function does not allow, and the host stand-in does the same.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
work=$(mktemp -d)
go build -o "$work/dev" ./dev
# Free ports, so that neither a stack left running nor another run of this
# script is in the way; the stack prints the host's URL once it is ready
# (dev/main_test.go checks that line).
"$work/dev" -addr 127.0.0.1:0 -otlp 127.0.0.1:0 -function-key contract-key -runner none >"$work/stack.log" 2>&1 &
stack=$!
trap 'kill "$stack" 2>/dev/null; wait "$stack" 2>/dev/null; rm -rf "$work"' EXIT
url=
for _ in $(seq 1 600); do # 5 minutes: the first build of the handler is slow
  url=$(sed -n 's|^  Functions host stand-in  *\(http://[^ ]*\).*|\1|p' "$work/stack.log")
  [ -n "$url" ] && break
  kill -0 "$stack" 2>/dev/null || { cat "$work/stack.log"; exit 1; }
  sleep 0.5
done
[ -n "$url" ] || { echo "the stack printed no URL within 5 minutes:"; cat "$work/stack.log"; exit 1; }
.venv/bin/schemathesis run "$url/api/openapi.json" \
  --header 'x-functions-key: contract-key' \
  --checks all --exclude-checks positive_data_acceptance,unsupported_method \
  --max-examples "${CONTRACT_EXAMPLES:-25}" --max-time "${CONTRACT_SECONDS:-300}" \
  --seed 42 --request-timeout 30 --report-dir "$root/.nbtrace/schemathesis"
