#!/usr/bin/env bash
# The Python binding's tests: builds the wheel with maturin, installs it into a fresh
# virtualenv (with pinned test dependencies), and runs the pytest suite against the
# installed package — not the source tree.
#
# AEGIS_WHEEL_PROFILE picks the Cargo profile (default `dev`: CI builds the whole stack
# and an optimized build would double its time; `pip install ./bindings/python` builds
# `release`).
set -euo pipefail
cd "$(dirname "$0")/../bindings/python"

venv="$(mktemp -d /tmp/aegis-python.XXXXXX)"
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check \
  maturin==1.16.0 pytest==9.2.0 langchain-core==1.8.3 numpy==2.4.6
"$venv/bin/maturin" build --quiet --locked --profile "${AEGIS_WHEEL_PROFILE:-dev}" --out "$venv/wheels"
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-index --find-links "$venv/wheels" aegis-pipeline
installed="$("$venv/bin/python" -c 'import aegis; print(aegis.__file__)')"
case "$installed" in
  "$venv"/*) ;;
  *) echo "the tests would import $installed, not the installed wheel" >&2; exit 1 ;;
esac
cd tests
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
