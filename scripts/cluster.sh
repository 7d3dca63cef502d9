#!/usr/bin/env bash
# Helpers shared by demo.sh, test.sh and the benchmarks: install what is
# missing, build and install the extension, start and stop a throwaway
# PostgreSQL cluster run by the postgres OS user.  Source it; do not run it.
#
#   ES_PGDATA   data directory   (default: a fresh mktemp directory)
#   ES_PORT     port             (default: 54329)
#   ES_PRELOAD  1 to preload the library (default), 0 not to
#   ES_PG_CONFIG  pg_config of the PostgreSQL installation to use (default:
#               /usr/lib/postgresql/$ES_PG_MAJOR/bin/pg_config)

set -euo pipefail

ES_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ES_PORT=${ES_PORT:-54329}
ES_PRELOAD=${ES_PRELOAD:-1}
ES_PG_MAJOR=${ES_PG_MAJOR:-15}

es_log() { printf '== %s\n' "$*" >&2; }

# Install the Debian packages the build and the tests need, if missing.
es_install_deps() {
    local pkgs=(postgresql-$ES_PG_MAJOR postgresql-server-dev-$ES_PG_MAJOR
                postgresql-$ES_PG_MAJOR-pgtap libtap-parser-sourcehandler-pgtap-perl
                make gcc)
    local missing=()
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" != 0 ]; then
            echo "missing packages: ${missing[*]} (run as root to install them)" >&2
            return 1
        fi
        es_log "installing ${missing[*]}"
        # Debian's postgresql-common would create and start a 15/main cluster: don't.
        mkdir -p /etc/postgresql-common
        grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf ||
            echo 'create_main_cluster = false' >> /etc/postgresql-common/createcluster.conf
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

es_bindir() { "$(es_pg_config)" --bindir; }
es_pg_config() {
    if [ -n "${ES_PG_CONFIG:-}" ]; then
        echo "$ES_PG_CONFIG"
    elif [ -x /usr/lib/postgresql/$ES_PG_MAJOR/bin/pg_config ]; then
        echo /usr/lib/postgresql/$ES_PG_MAJOR/bin/pg_config
    else
        command -v pg_config
    fi
}

# Build with warnings as errors and install into the server's directories.
es_build_install() {
    es_log "building and installing eventstore"
    make -C "$ES_ROOT" -s PG_CONFIG="$(es_pg_config)" PG_CFLAGS="${ES_CFLAGS:--Wall -Wextra -Werror}" clean all >/dev/null
    make -C "$ES_ROOT" -s PG_CONFIG="$(es_pg_config)" install >/dev/null
}

# Run a command as the postgres OS user (we are usually root).
es_as_pg() {
    if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

# initdb and start a throwaway cluster on $ES_PORT; sets ES_PGDATA, ES_SOCKDIR.
es_start_cluster() {
    local bindir; bindir=$(es_bindir)
    ES_PGDATA=${ES_PGDATA:-$(mktemp -d /tmp/eventstore-pg.XXXXXX)}
    ES_SOCKDIR=$ES_PGDATA/sock
    chown postgres: "$ES_PGDATA" 2>/dev/null || true
    chmod 700 "$ES_PGDATA"
    if [ ! -f "$ES_PGDATA/PG_VERSION" ]; then
        es_as_pg "$bindir/initdb" -D "$ES_PGDATA" -A trust -U postgres --no-sync >/dev/null
    fi
    es_as_pg mkdir -p "$ES_SOCKDIR"
    {
        echo "port = $ES_PORT"
        echo "listen_addresses = ''"
        echo "unix_socket_directories = '$ES_SOCKDIR'"
        echo "max_prepared_transactions = 4"
        echo "fsync = ${ES_FSYNC:-on}"
        if [ "$ES_PRELOAD" = 1 ]; then echo "shared_preload_libraries = 'eventstore'"; fi
    } | es_as_pg tee "$ES_PGDATA/postgresql.auto.conf" >/dev/null
    es_as_pg "$bindir/pg_ctl" -D "$ES_PGDATA" -l "$ES_PGDATA/server.log" -w -t 60 start >/dev/null
    export PGHOST=$ES_SOCKDIR PGPORT=$ES_PORT PGUSER=postgres
    es_log "cluster up: data $ES_PGDATA, port $ES_PORT, socket $ES_SOCKDIR"
}

es_stop_cluster() {
    [ -n "${ES_PGDATA:-}" ] && [ -f "$ES_PGDATA/postmaster.pid" ] &&
        es_as_pg "$(es_bindir)/pg_ctl" -D "$ES_PGDATA" -m fast -w stop >/dev/null || true
}

es_psql() { "$(es_bindir)/psql" -X -v ON_ERROR_STOP=1 -q "$@"; }
