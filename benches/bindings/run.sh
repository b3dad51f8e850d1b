#!/usr/bin/env bash
# The bindings bench: the same governed echo calls from Rust, Python and Node, release
# builds, sequential calls (p50 / p99 of 5,000 after 500 warm-up). Numbers go to
# benches/README.md by hand, with the machine's state.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aegis/target}"

cargo run --quiet --release --example binding_baseline

work="$(mktemp -d /tmp/aegis-bindings-bench.XXXXXX)"
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check maturin==1.16.0
(cd bindings/python && "$work/venv/bin/maturin" build --quiet --locked --release --out "$work/wheels")
"$work/venv/bin/pip" install --quiet --no-index --find-links "$work/wheels" aegis-pipeline
"$work/venv/bin/python" benches/bindings/bench.py

(cd bindings/node && npm ci --no-audit --no-fund --silent && npm run --silent build)
tarball="$(cd bindings/node && npm pack --silent --pack-destination "$work")"
(cd "$work" && npm init -y >/dev/null && npm install --no-audit --no-fund --silent "./$tarball")
cp benches/bindings/bench.mjs "$work/"
(cd "$work" && node bench.mjs)
