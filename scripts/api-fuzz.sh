#!/usr/bin/env bash
# Property-based fuzz of the public REST API against its own OpenAPI document
# (schemathesis): a real regtest node with a few blocks and a pending transaction; every
# generated request must get an answer that is not a 5xx, conforms to the documented
# status codes and content types, and the node must still be alive at the end.
#
# Usage: scripts/api-fuzz.sh [LODE_BINARY]   (default: target/debug/lode)
# Needs `schemathesis` on PATH or in $SCHEMATHESIS (.ci/run installs it in a venv).
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
lode="${1:-${CARGO_TARGET_DIR:-$here/target}/debug/lode}"
st="${SCHEMATHESIS:-schemathesis}"
work="$(mktemp -d)"
node_pid=""
cleanup() {
    if [ -n "$node_pid" ]; then kill "$node_pid" 2>/dev/null || true; wait "$node_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

"$lode" node --network regtest --data-dir "$work/node" --p2p-listen /ip4/127.0.0.1/tcp/0 \
    --rpc-listen 127.0.0.1:0 --rpc-rate-limit 0 --no-mdns --log-format json >"$work/node.log" 2>&1 &
node_pid=$!
for _ in $(seq 1 200); do
    [ -s "$work/node/rpc_url" ] && break
    kill -0 "$node_pid" 2>/dev/null || { cat "$work/node.log"; echo "api-fuzz: node died" >&2; exit 1; }
    sleep 0.1
done
url="$(tr -d '\n' <"$work/node/rpc_url")"
# Core's cookie format, __cookie__:TOKEN; the token also works as a Bearer token.
cookie="$(cut -d: -f2 "$work/node/.cookie")"
call() {
    python3 - "$url" "$cookie" "$1" "$2" <<'PY'
import json, sys, urllib.request
url, token, method, params = sys.argv[1:5]
req = urllib.request.Request(url + "/rpc", data=json.dumps(
    {"jsonrpc": "2.0", "id": 1, "method": method, "params": json.loads(params)}).encode(),
    headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
out = json.load(urllib.request.urlopen(req, timeout=60))
if out.get("error"):
    sys.exit(f"{method}: {out['error']}")
print(json.dumps(out["result"]))
PY
}
# Some chain to explore: 12 blocks, a payment in the mempool.
call generate '[12]' >/dev/null
addr="$(call getnewaddress '[]' | tr -d '"')"
call sendtoaddress "[\"$addr\", 1.0]" >/dev/null   # JSON-RPC amounts are coins, as Core

"$st" run "$url/api/v1/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --phases examples,coverage,fuzzing --max-examples 60 --workers 2 \
    --wait-for-schema 10 --warnings off
# Still serving after the fuzz.
call getblockcount '[]' >/dev/null
echo "api-fuzz: no server errors; node still serving"
