# eventstore: PGXS build.  The version lives in eventstore.control only.
EXTENSION  = eventstore
EXTVERSION = $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" $(srcdir)/$(EXTENSION).control)

MODULE_big = eventstore
OBJS = src/eventstore.o src/catalog.o src/horizon.o src/append.o src/read.o \
       src/registry.o src/projection.o src/upcast.o src/aggregate.o \
       src/outbox.o src/consumer.o src/relay.o src/relay_launcher.o src/relay_worker.o src/immutable.o \
       src/stats.o src/import.o src/subscription.o src/subscription_lease.o src/dcb.o src/store.o src/citus.o src/lifecycle.o src/shred.o \
       src/stream_head.o
HEADERS = include/eventstore_hooks.h

# relative to $(srcdir), which is not . in out-of-tree builds (pg_buildext, debian/)
DATA = $(patsubst $(srcdir)/%,%,$(wildcard $(srcdir)/sql/$(EXTENSION)--*.sql))

# pg_regress suites (sql/*.sql -> expected/*.out)
REGRESS = core append expected_version idempotency metadata validation reads immutable prepare search_path projections outbox aggregates aggregates_crash hijack temporal_prefix consumers outbox_payloads snapshot_upgrade stats registry_handlers import subscriptions category_plan dcb dcb_direct stores_registries stores_outbox lifecycle lifecycle_derived insert_path stream_head
REGRESS_OPTS = --inputdir=. --load-extension=pgtap

# isolation specs (specs/*.spec -> expected/*.out)
ISOLATION = append_race append_race_any read_all_inflight read_all_unrelated projection_cache projection_rebuild outbox_order upcaster_cache snapshot_policy_rr horizon_seq_lock retry_lock consumer_claim horizon_status import_race subscription_group dcb_race stores_race lifecycle_race stream_head_truncate stream_head_inval
ISOLATION_OPTS = --inputdir=.

PG_CONFIG ?= pg_config
# Server headers as system headers: -Wextra then judges our code, not theirs.
PG_CPPFLAGS = -I$(srcdir)/include -isystem $(shell $(PG_CONFIG) --includedir-server)
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Every object depends on the shared headers (PGXS tracks no header
# dependencies): a changed struct must not leave stale objects behind.
$(OBJS): $(srcdir)/src/eventstore.h $(srcdir)/src/compat.h $(srcdir)/include/eventstore_hooks.h

# Out-of-tree (VPATH) builds, as pg_buildext makes them: the objects go to
# src/ of the build directory, which must exist.
ifneq ($(srcdir),.)
$(shell mkdir -p src)
endif

.PHONY: prove stress bench bench-quick bench-scale
prove:
	pg_prove --ext .sql -r test/pgtap

stress:
	bash test/scripts/stress.sh

bench:
	BENCH_MODE=full bash bench/run.sh

bench-quick:
	BENCH_MODE=quick bash bench/run.sh

# Growth: the same figures at 0, 10^6 and 10^7 events (~30 min; not in CI).
bench-scale:
	bash bench/scale.sh
