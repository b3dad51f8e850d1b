#!/usr/bin/env bash
# Structured, property-based fuzzing of the request parser (and admission), the streamed-
# answer parsers (SSE framing and every provider's decoder), the PII engine and the secrets
# scanner: each target runs for SECONDS (default 600) in the release profile. Not part of CI.
# A failure prints the shrunk input; it becomes a regression test.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-600}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(fuzz_request_parser fuzz_stream_parsers fuzz_pii_engine fuzz_secrets_scanner)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
# Build once, then run the test binaries directly (cargo would hold the build lock for the
# whole run).
bin() { # package test-name
  cargo test --release -q -p "$1" --test "$2" --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])' "$2"
}
STREAMS=$(bin aegis-providers fuzz_streams)
OTHERS=$(bin aegis fuzz_targets)
status=0
for t in "${TARGETS[@]}"; do
  case "$t" in
    fuzz_stream_parsers) exe=$STREAMS ;;
    *) exe=$OTHERS ;;
  esac
  echo "== $t (${SECS}s)"
  AEGIS_FUZZ_SECS=$SECS "$exe" --ignored --exact "$t" --nocapture 2>&1 \
    | grep -E "cases|panicked|found a failure|test result" || true
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
done
exit $status
