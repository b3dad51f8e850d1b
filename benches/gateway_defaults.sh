#!/usr/bin/env bash
# The gateway as a user gets it, under an independent load generator: the exact `aegis serve`
# built-in defaults (virtual keys, invisible-text + PII + secrets guards, SQLite in the
# working directory, default durability), with only the provider pointed at a mock
# OpenAI-compatible upstream on loopback. `oha` (cargo install oha) offers load open-loop
# with latency correction, at fixed rates and at saturation; the same load straight at the
# mock gives the baseline. The gateway's CPU per request comes from /proc (user + system
# time over the requests answered). With DATABASE_URL set (postgres://…), the store is
# PostgreSQL instead.
#
#   benches/gateway_defaults.sh [SECONDS]      (also: benches/gateway_load.sh defaults)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
command -v oha >/dev/null || { echo "needs oha: cargo install oha" >&2; exit 1; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p aegis-gateway --bin aegis --example mock_upstream
BIN="$CARGO_TARGET_DIR/release"
MOCK=127.0.0.1:9110
GW=127.0.0.1:9210
tmp=$(mktemp -d)
# DEFAULT_CONFIG of aegis-gateway/src/bootstrap.rs, but for the provider.
cat > "$tmp/aegis.toml" <<TOML
[server]
listen = "$GW"
${DATABASE_URL:+database_url = \"$DATABASE_URL\"}

[[providers]]
id = "mock"
type = "openai"
config = { base_url = "http://$MOCK/v1" }

[[authenticators]]
id = "keys"
type = "virtual_keys"

[[guardrails]]
id = "invisible"
type = "invisible_text"
config = { action = "strip" }

[[guardrails]]
id = "pii"
type = "pii"

[[guardrails]]
id = "secrets"
type = "secrets"
config = { action = "redact" }
TOML
cleanup() { kill "${MOCK_PID:-}" "${GW_PID:-}" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
"$BIN/examples/mock_upstream" "$MOCK" > /dev/null & MOCK_PID=$!
(cd "$tmp" && AEGIS_LOG=warn exec "$BIN/aegis" serve --config aegis.toml > gw.out 2> gw.log) & GW_PID=$!
for _ in $(seq 1 100); do grep -q "listening on" "$tmp/gw.out" 2>/dev/null && break; sleep 0.1; done
KEY=$(sed -n 's/.*first admin key (shown once, store it now): //p' "$tmp/gw.out")
[ -n "$KEY" ] || { echo "no admin key printed (a store that already has keys?)" >&2; cat "$tmp/gw.out" >&2; exit 1; }
BODY='{"model":"mock/gpt-4o-mini","messages":[{"role":"user","content":"Summarize the quarterly report for the board in three sentences, please."}]}'
SBODY='{"model":"mock/gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Summarize the quarterly report for the board in three sentences, please."}]}'
cpu() { awk '{print $14 + $15}' "/proc/$GW_PID/stat"; }   # clock ticks
tick=$(getconf CLK_TCK)
# label url rate(0 = saturate) body
run() {
  local rate_args=() before after
  [ "$3" != 0 ] && rate_args=(-q "$3" --latency-correction)
  before=$(cpu)
  oha -z "${SECS}s" -c 64 "${rate_args[@]}" --no-tui --output-format json -m POST \
    -H "authorization: Bearer $KEY" -H "content-type: application/json" -d "$4" "$2" > "$tmp/r.json"
  after=$(cpu)
  python3 - "$1" "$tmp/r.json" "$before" "$after" "$tick" "$2" <<'PY'
import json, sys
label, path, before, after, tick, url = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
r = json.load(open(path))
s, p = r["summary"], r["latencyPercentiles"]
codes = r.get("statusCodeDistribution", {})
ok = codes.get("200", 0)
total = sum(codes.values()) or 1
cpu = ""
if ":9210/" in url and ok:
    cpu = f" gateway_cpu_ms_per_req={(after - before) * 1000 / tick / ok:.3f}"
print(f"{label}: rps={s['requestsPerSec']:.0f} ok={ok}/{total} p50={p['p50'] * 1000:.2f}ms p99={p['p99'] * 1000:.2f}ms{cpu}")
PY
}
run warmup "http://$GW/v1/chat/completions" 200 "$BODY" > /dev/null
for rate in 10 1000 0; do
  run "direct rate=$rate json" "http://$MOCK/v1/chat/completions" $rate "$BODY"
  run "gateway rate=$rate json" "http://$GW/v1/chat/completions" $rate "$BODY"
done
for rate in 1000 0; do
  run "direct rate=$rate stream" "http://$MOCK/v1/chat/completions" $rate "$SBODY"
  run "gateway rate=$rate stream" "http://$GW/v1/chat/completions" $rate "$SBODY"
done
