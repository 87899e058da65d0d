#!/usr/bin/env bash
# A trace from the local stack into a real OTLP backend: Jaeger.
#
# Builds Jaeger v1.76.0 once (about 5 minutes, 121 MB) in a throw-away module
# under ~/.cache/nbtrace/jaeger (never in this project's go.mod), starts it on
# 127.0.0.1 (its own ports: OTLP/HTTP 4318, query API 16686), runs the local
# stack on free ports with its sink forwarding every export to Jaeger, sends
# one notebook request, and checks through Jaeger's query API that the whole
# trace arrived with its tree intact: every span, every parent present. Not
# part of .ci/run.
#
#   bash dev/jaeger/run.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/nbtrace/jaeger
jaeger=$cache/bin/jaeger
if [ ! -x "$jaeger" ]; then
  echo "building Jaeger v1.76.0 into $cache (once; about 5 minutes)…"
  mkdir -p "$cache"
  (cd "$cache" && { [ -f go.mod ] || go mod init jaegerbuild >/dev/null; } \
    && go get -tool github.com/jaegertracing/jaeger/cmd/jaeger@v1.76.0 \
    && go build -o bin/jaeger github.com/jaegertracing/jaeger/cmd/jaeger)
fi
work=$(mktemp -d)
cleanup() { kill "${stack_pid:-}" "${jaeger_pid:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
"$jaeger" >"$work/jaeger.log" 2>&1 &
jaeger_pid=$!
for _ in $(seq 1 100); do curl -fs http://127.0.0.1:16686/api/services >/dev/null 2>&1 && break; sleep 0.2; done
curl -fs http://127.0.0.1:16686/api/services >/dev/null || { echo "Jaeger did not start:"; tail "$work/jaeger.log"; exit 1; }

(cd "$root" && go run ./dev -addr 127.0.0.1:0 -otlp 127.0.0.1:0 -forward http://127.0.0.1:4318 >"$work/stack.out" 2>"$work/stack.err") &
stack_pid=$!
url=
for _ in $(seq 1 600); do # the stack prints the host's URL once it is ready
  url=$(sed -n 's|^  Functions host stand-in  *\(http://[^ ]*\).*|\1|p' "$work/stack.out")
  [ -n "$url" ] && break
  sleep 0.5
done
[ -n "$url" ] || { echo "the stack did not start:"; tail "$work/stack.err"; exit 1; }

answer=$(curl -fs -X POST "$url/api/notebook?wait=120s" -H 'Content-Type: application/json' \
  -d '{"dataset":"sales","date":"2026-11-25","rowCount":1200,"parameters":{"extract_seconds":"0.2","transform_seconds":"0.2","load_seconds":"0.2"}}')
trace=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["traceId"])' "$answer")
echo "trace $trace; waiting for Jaeger to have it…"
sleep 5
curl -fs "http://127.0.0.1:16686/api/traces/$trace" >"$work/trace.json"
python3 - "$work/trace.json" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))["data"]
assert len(data) == 1, f"{len(data)} traces"
trace = data[0]
spans = trace["spans"]
ids = {s["spanID"] for s in spans}
services = {trace["processes"][s["processID"]]["serviceName"] for s in spans}
roots, orphans = [], []
for s in spans:
    parents = [r["spanID"] for r in s.get("references", []) if r["refType"] == "CHILD_OF"]
    if not parents:
        roots.append(s["operationName"])
    elif parents[0] not in ids:
        orphans.append(s["operationName"])
print(f"Jaeger has {len(spans)} spans from {sorted(services)}; root: {roots}; spans whose parent is missing: {orphans}")
assert len(roots) == 1 and not orphans, "the tree is not intact"
assert {"functions-host", "nbtrace", "databricks-notebook"} <= services, services
print("the trace arrived in Jaeger with its tree intact")
PY
