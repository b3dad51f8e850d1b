#!/usr/bin/env bash
# Time to first token through the default detectors on a slowly streamed answer (issue 17,
# item 8): the mock upstream streams about 1 KB in 50 chunks, 20 ms apart (one second in
# all); the gateway runs the default guards (PII, secrets redacting, invisible text). Each
# request is timed from send to its first content chunk and to its last, directly against
# the mock and through the gateway; the chunks the client receives are counted.
#
#   benches/stream_ttft.sh [REQUESTS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p aegis-gateway --bin aegis --example mock_upstream
BIN="$CARGO_TARGET_DIR/release"
MOCK=127.0.0.1:9110
GW=127.0.0.1:9210
KEY=bench-key-0123456789
tmp=$(mktemp -d)
cat > "$tmp/aegis.toml" <<TOML
[server]
listen = "$GW"
database_url = "sqlite://$tmp/aegis.db"

[[providers]]
id = "mock"
type = "openai"
config = { base_url = "http://$MOCK/v1" }

[[authenticators]]
id = "keys"
type = "static_keys"
config = { keys = [{ key = "secret://env/BENCH_KEY", principal = "bench" }] }

# The guards of the shipped default config (aegis-gateway/src/bootstrap.rs, DEFAULT_CONFIG).
[[guardrails]]
id = "pii"
type = "pii"

[[guardrails]]
id = "secrets"
type = "secrets"
config = { action = "redact" }

[[guardrails]]
id = "invisible"
type = "invisible_text"
config = { action = "strip" }
TOML
cleanup() { kill "${MOCK_PID:-}" "${GW_PID:-}" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
MOCK_CHUNKS=50 MOCK_CHUNK_DELAY_MS=20 MOCK_PROSE=1 "$BIN/examples/mock_upstream" "$MOCK" > /dev/null & MOCK_PID=$!
BENCH_KEY=$KEY AEGIS_LOG=warn "$BIN/aegis" serve --config "$tmp/aegis.toml" > "$tmp/gw.log" 2>&1 & GW_PID=$!
for _ in $(seq 1 50); do curl -sf "http://$GW/healthz" >/dev/null && break; sleep 0.2; done
python3 - "$MOCK" "$GW" "$KEY" "$N" <<'PY'
import http.client, json, statistics, sys, time

mock, gw, key, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

def one(addr):
    host, port = addr.split(":")
    conn = http.client.HTTPConnection(host, int(port))
    body = json.dumps({"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    t0 = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body, {"content-type": "application/json", "authorization": f"Bearer {key}"})
    resp = conn.getresponse()
    first = last = None
    chunks, text = 0, ""
    for line in resp:
        line = line.strip()
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        ev = json.loads(line[6:])
        for c in ev.get("choices", []):
            t = (c.get("delta") or {}).get("content")
            if t:
                now = time.perf_counter()
                first = first or now
                last = now
                chunks += 1
                text += t
    conn.close()
    return (first - t0) * 1000, (last - t0) * 1000, chunks, len(text)

for label, addr in (("direct", mock), ("gateway", gw)):
    one(addr)  # warm up
    runs = [one(addr) for _ in range(n)]
    ttft = sorted(r[0] for r in runs)
    end = sorted(r[1] for r in runs)
    chunks = statistics.median(r[2] for r in runs)
    size = runs[0][3]
    p90 = ttft[int(0.9 * (len(ttft) - 1))]
    print(f"| {label} | {statistics.median(ttft):.2f} / {p90:.2f} | {statistics.median(end):.0f} | {chunks:.0f} | {size} |")
PY
