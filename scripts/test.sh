#!/usr/bin/env bash
# The test command: sets up what the suites need, then runs every test of the workspace.
# Works on a fresh machine with Rust installed; PostgreSQL-backed tests run when
# AEGIS_TEST_DATABASE_URL is set.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --all-features --no-fail-fast "$@"
