#!/usr/bin/env bash
# Gateway load benchmark: a mock OpenAI-compatible upstream and the gateway on loopback; the
# same load against the mock directly and through the gateway (guards on), at fixed rates and
# at saturation, non-streaming and streaming (time to first token); gateway RSS idle and
# with 1,000 concurrent streams. Prints a Markdown table for benches/README.md.
#
#   benches/gateway_load.sh [SECONDS]
#   benches/gateway_load.sh defaults [SECONDS]   the shipped defaults under oha (gateway_defaults.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = defaults ]; then
  shift
  exec benches/gateway_defaults.sh "$@"
fi
SECS=${1:-10}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p aegis-gateway --bin aegis --example mock_upstream --example loadgen
BIN="$CARGO_TARGET_DIR/release"
MOCK=127.0.0.1:9100
GW=127.0.0.1:9200
KEY=bench-key-0123456789
tmp=$(mktemp -d)
cat > "$tmp/aegis.toml" <<TOML
[server]
listen = "$GW"
database_url = "sqlite://$tmp/aegis.db"
[server.limits]
max_concurrent_streams = 2000

[pipeline]
durability = "pause"   # only runs that pause are checkpointed; every run is in the audit log

[[providers]]
id = "mock"
type = "openai"
config = { base_url = "http://$MOCK/v1" }

[[authenticators]]
id = "keys"
type = "static_keys"
config = { keys = [{ key = "secret://env/BENCH_KEY", principal = "bench" }] }

[[guardrails]]
id = "secrets"
type = "secrets"
config = { action = "redact" }

[[guardrails]]
id = "words"
type = "ban_substrings"
config = { substrings = ["project nightingale"] }

[[guardrails]]
id = "invisible"
type = "invisible_text"
TOML
cleanup() { kill "${MOCK_PID:-}" "${GW_PID:-}" "${MOCK2_PID:-}" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
"$BIN/examples/mock_upstream" "$MOCK" > /dev/null & MOCK_PID=$!
BENCH_KEY=$KEY AEGIS_LOG=warn "$BIN/aegis" serve --config "$tmp/aegis.toml" > "$tmp/gw.log" 2>&1 & GW_PID=$!
for _ in $(seq 1 50); do curl -sf "http://$GW/healthz" >/dev/null && break; sleep 0.2; done
rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
echo "gateway idle RSS: $(rss $GW_PID) MB"
run() { # label url rate stream
  AEGIS_API_KEY=$KEY "$BIN/examples/loadgen" "$2" "$3" "$SECS" "$4" 512 | sed "s/^/$1 /"
}
# Warm up both paths.
run warmup "http://$MOCK/v1/chat/completions" 200 no > /dev/null
run warmup "http://$GW/v1/chat/completions" 200 no > /dev/null
for rate in 500 1000 0; do
  run "direct rate=$rate json" "http://$MOCK/v1/chat/completions" $rate no
  run "gateway rate=$rate json" "http://$GW/v1/chat/completions" $rate no
done
for rate in 500 0; do
  run "direct rate=$rate stream" "http://$MOCK/v1/chat/completions" $rate stream
  run "gateway rate=$rate stream" "http://$GW/v1/chat/completions" $rate stream
done
# 1,000 concurrent slow streams: the upstream spaces chunks 100 ms apart (~2 s per stream).
# First the RSS the saturation runs above left behind (the allocator keeps its peaks), then a
# fresh gateway, which is what the target is about.
echo "gateway RSS after the saturation runs: $(rss $GW_PID) MB"
kill $GW_PID; wait $GW_PID 2>/dev/null || true
BENCH_KEY=$KEY AEGIS_LOG=warn "$BIN/aegis" serve --config "$tmp/aegis.toml" > "$tmp/gw.log" 2>&1 & GW_PID=$!
for _ in $(seq 1 50); do curl -sf "http://$GW/healthz" >/dev/null && break; sleep 0.2; done
kill $MOCK_PID; wait $MOCK_PID 2>/dev/null || true
MOCK_CHUNK_DELAY_MS=100 "$BIN/examples/mock_upstream" "$MOCK" > /dev/null & MOCK2_PID=$!
sleep 0.5
AEGIS_API_KEY=$KEY "$BIN/examples/loadgen" "http://$GW/v1/chat/completions" 0 4 stream 1000 > "$tmp/streams.json" &
LG=$!
peak=0
while kill -0 $LG 2>/dev/null; do r=$(rss $GW_PID); peak=$(awk -v a="$peak" -v b="$r" 'BEGIN {print (b>a)?b:a}'); sleep 0.2; done
echo "gateway peak RSS with 1000 concurrent streams: $peak MB ($(cat "$tmp/streams.json"))"
