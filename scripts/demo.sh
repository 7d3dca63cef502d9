#!/usr/bin/env bash
# Command one: on a fresh Debian 12 machine (as root), install what is
# missing, build and install eventstore, start a throwaway cluster with the
# library preloaded, create the extension and run a short demo.  The cluster
# keeps running so you can connect; the last lines say how, and how to stop it.
ES_PORT=${ES_PORT:-54330}
source "$(dirname "$0")/cluster.sh"
ES_PGDATA=${ES_PGDATA:-/tmp/eventstore-demo}
if [ -f "$ES_PGDATA/postmaster.pid" ]; then es_stop_cluster; fi
rm -rf "$ES_PGDATA"; mkdir -p "$ES_PGDATA"

es_install_deps
es_build_install
es_start_cluster
es_psql -d postgres -c 'CREATE DATABASE demo'
es_psql -d demo -e -v ON_ERROR_STOP=0 -f "$ES_ROOT/scripts/demo.sql"

cat <<MSG

The demo cluster is still running:
  connect:  psql -h $ES_SOCKDIR -p $ES_PORT -U postgres demo
  stop:     runuser -u postgres -- $(es_bindir)/pg_ctl -D $ES_PGDATA stop
MSG
