#!/usr/bin/env bash
# `aegis scan` start-up, per call: the median wall time of RUNS (default 30) process runs of
# the release binary for each built-in pack alone and for the default chain, on a short
# clean text and on one with a phone number, an e-mail and a connection string (which
# compiles the numbering plans and secret rules those need).
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-30}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aegis/target}"
cargo build --release -q -p aegis-gateway --bin aegis
bin="$CARGO_TARGET_DIR/release/aegis"
python3 - "$bin" "$runs" <<'PY'
import subprocess, sys, time
bin, runs = sys.argv[1], int(sys.argv[2])
clean = "what's the weather like in Lisbon tomorrow?"
mixed = ("call me on +44 20 7946 0958, mail ann@example.org, "
         "DATABASE_URL=postgres://app:Sunflower9910Q@db.internal:5432/app")
def median(args, text):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([bin, *args], input=text.encode(), stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2] * 1000
print("| command | clean text | phone, e-mail, connection string |")
print("|---|---|---|")
for args in (["--version"], ["scan", "--pack", "invisible"], ["scan", "--pack", "secrets"],
             ["scan", "--pack", "pii"], ["scan", "--pack", "injection"], ["scan"]):
    print(f"| `aegis {' '.join(args)}` | {median(args, clean):.1f} ms | {median(args, mixed):.1f} ms |")
PY
