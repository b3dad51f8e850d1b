#!/usr/bin/env bash
# The Node binding's tests: builds the addon with napi-rs (`npm run build:debug`; CI builds
# the whole stack and an optimized build would double its time), packs the package,
# installs the tarball with npm into a temporary project, and runs the node:test suite
# there — against the package as a user gets it, not the source tree.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/bindings/node"

npm ci --no-audit --no-fund --silent
npm run --silent "${AEGIS_NODE_BUILD:-build:debug}"
project="$(mktemp -d /tmp/aegis-node.XXXXXX)"
trap 'rm -rf "$project"' EXIT
tarball="$(npm pack --silent --pack-destination "$project")"
cp -r __test__ "$project/"
cd "$project"
npm init -y >/dev/null
npm install --no-audit --no-fund --silent "./$tarball"
AEGIS_GOLDEN_SUITE="$root/tests/golden/suite.json" AEGIS_NODE_README="$root/bindings/node/README.md" \
  node --test __test__/*.test.mjs
