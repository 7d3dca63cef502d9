/*
 * subscription.c
 *		Subscriptions: consumer groups over the log (README, "Subscriptions").
 *
 * The logic is SQL (the install script's section "Subscriptions"): the
 * public functions here take the caller's role and run the owner-only
 * bodies eventstore._subscription_*() as the extension's owner, like the
 * durable consumers (consumer.c, es_consumer_call).  A subscription belongs
 * to the role that created it; a body checks the caller against it.
 *
 * Events are read from the subscription's store (subscriptions.store, the
 * default store eventstore.events unless create_subscription named
 * another), at or below the read
 * horizon (eventstore._log_horizon()), so a partition's checkpoint never
 * passes an event that commits late.  poll() reads with statement
 * snapshots taken after the horizon, which see every event at or below it
 * that will ever be visible; a transaction snapshot (REPEATABLE READ,
 * SERIALIZABLE) may be older than the horizon, so poll() refuses it.
 *
 * Wake-ups: the subscriptions are a registry (registry.c), cached per
 * backend.  An append whose events match a subscription of its store asks,
 * at commit, for the relay worker with the append's last position
 * (es_relay_wake_position); the worker's pass notifies the channel of each
 * subscription with events between the last published log horizon and the
 * new one (eventstore._subscription_wake, called by relay.c).  The append
 * writes nothing and sends no NOTIFY itself: with no subscription on the
 * store it costs one cached test.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"

#include "eventstore.h"

PG_FUNCTION_INFO_V1(eventstore_log_horizon);
PG_FUNCTION_INFO_V1(eventstore_create_subscription);
PG_FUNCTION_INFO_V1(eventstore_alter_subscription);
PG_FUNCTION_INFO_V1(eventstore_drop_subscription);
PG_FUNCTION_INFO_V1(eventstore_reset_subscription);
PG_FUNCTION_INFO_V1(eventstore_poll);
PG_FUNCTION_INFO_V1(eventstore_ack);
PG_FUNCTION_INFO_V1(eventstore_ack_many);
PG_FUNCTION_INFO_V1(eventstore_nack);
PG_FUNCTION_INFO_V1(eventstore_parked);
PG_FUNCTION_INFO_V1(eventstore_replay_parked);
PG_FUNCTION_INFO_V1(eventstore_subscription_status);

/* A subscription as the wake-up check needs it. */
typedef struct EsSubFilter
{
	Oid			store;
	int			ntypes;			/* -1: every event type */
	char	  **types;
	int			ncategories;	/* -1: every category */
	char	  **categories;
} EsSubFilter;

typedef struct EsSubFilters
{
	int			n;
	EsSubFilter *items;
} EsSubFilters;

static void es_subscriptions_fill(EsRegistry *reg, SPITupleTable *rows, MemoryContext cxt);

/* subscriptions.store exists from 0.6.0 on; before, every one reads the default store */
static EsRegistry es_subscriptions_registry = {
	.relname = "subscriptions",
	.query = "SELECT s.store::pg_catalog.oid, s.event_types, s.categories FROM eventstore.subscriptions s",
	.since_column = "store",
	.query_before = "SELECT NULL::pg_catalog.oid, s.event_types, s.categories FROM eventstore.subscriptions s",
	.fill = es_subscriptions_fill,
};

void
es_subscription_init(void)
{
	es_registry_init(&es_subscriptions_registry);
}

static void
es_subscriptions_fill(EsRegistry *reg, SPITupleTable *rows, MemoryContext cxt)
{
	EsSubFilters *subs = MemoryContextAllocZero(cxt, sizeof(EsSubFilters));
	uint64		n = rows ? rows->numvals : 0;

	subs->items = MemoryContextAllocZero(cxt, sizeof(EsSubFilter) * Max(n, 1));
	for (uint64 i = 0; i < n; i++)
	{
		EsSubFilter *f = &subs->items[i];
		bool		isnull;
		Datum		d;

		d = SPI_getbinval(rows->vals[i], rows->tupdesc, 1, &isnull);
		f->store = isnull ? InvalidOid : DatumGetObjectId(d);
		d = SPI_getbinval(rows->vals[i], rows->tupdesc, 2, &isnull);
		f->ntypes = es_copy_text_array(d, isnull, cxt, &f->types);
		d = SPI_getbinval(rows->vals[i], rows->tupdesc, 3, &isnull);
		f->ncategories = es_copy_text_array(d, isnull, cxt, &f->categories);
	}
	subs->n = (int) n;
	reg->cache = subs;
}

/*
 * An append to store st of n events (stream stream_id, types event_types,
 * the last at position last) is about to finish: if any event matches a
 * subscription of st, ask for the relay worker at commit, with the
 * position, so that it notifies the subscription's channel once the
 * position is below the horizon.
 */
void
es_subscriptions_wake(EsStore *st, Datum stream_id, Datum *event_types, int n, int64 last)
{
	EsSubFilters *subs;
	text	   *sid;
	const char *dash;
	int			catlen;

	es_registry_load(&es_subscriptions_registry);
	subs = es_subscriptions_registry.cache;
	if (subs->n == 0)
		return;
	sid = DatumGetTextPP(stream_id);
	dash = memchr(VARDATA_ANY(sid), '-', VARSIZE_ANY_EXHDR(sid));
	catlen = dash ? (int) (dash - VARDATA_ANY(sid)) : (int) VARSIZE_ANY_EXHDR(sid);
	for (int s = 0; s < subs->n; s++)
	{
		EsSubFilter *f = &subs->items[s];

		if (OidIsValid(f->store) ? f->store != st->relid : !st->is_default)
			continue;
		if (!es_in_list(f->categories, f->ncategories, VARDATA_ANY(sid), catlen))
			continue;
		for (int i = 0; i < n; i++)
		{
			text	   *type = DatumGetTextPP(event_types[i]);

			if (es_in_list(f->types, f->ntypes, VARDATA_ANY(type), VARSIZE_ANY_EXHDR(type)))
			{
				es_relay_wake_position(last);
				return;
			}
		}
	}
}

/*
 * eventstore._log_horizon() RETURNS bigint: the read horizon of the log: no
 * position at or below it can still become visible, also to a snapshot
 * taken later (the poll's statement): es_settled_horizon.  (It used to be
 * es_read_horizon alone, "no limit" when nothing was in flight: a position
 * taken right after could commit behind a later one, the poll delivered the
 * later one and moved its checkpoint past the first -- subscriptions_chaos.sh
 * caught it once.)
 */
Datum
eventstore_log_horizon(PG_FUNCTION_ARGS)
{
	(void) fcinfo;
	PG_RETURN_INT64(es_settled_horizon(ES_COUNTER_POSITION, es_position_seqid()));
}

/*
 * create_subscription(name, categories, event_types, start, start_position, start_time,
 *					   partition_by, partitions, max_attempts, backoff, lease, store):
 * the caller must be able to read the store (SELECT on it).
 */
Datum
eventstore_create_subscription(PG_FUNCTION_ARGS)
{
	static const Oid argtypes[12] = {TEXTOID, TEXTARRAYOID, TEXTARRAYOID, TEXTOID, INT8OID,
	TIMESTAMPTZOID, TEXTOID, INT4OID, INT4OID, INTERVALOID, INTERVALOID, REGCLASSOID};
	static SPIPlanPtr plan = NULL;
	static SPIPlanPtr plan_before = NULL;

	(void) es_store_arg(fcinfo, 11, ACL_SELECT);
	if (PG_NARGS() > 11)
		es_consumer_call(fcinfo, &plan,
						 "SELECT eventstore._subscription_create($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
						 argtypes, false, false);
	else						/* the 0.5.0 function, before the schema has stores */
		es_consumer_call(fcinfo, &plan_before,
						 "SELECT eventstore._subscription_create($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
						 argtypes, false, false);
	PG_RETURN_VOID();
}

/* alter_subscription(name, categories, event_types, max_attempts, backoff, lease) */
Datum
eventstore_alter_subscription(PG_FUNCTION_ARGS)
{
	static const Oid argtypes[6] = {TEXTOID, TEXTARRAYOID, TEXTARRAYOID, INT4OID, INTERVALOID, INTERVALOID};
	static SPIPlanPtr plan = NULL;

	es_consumer_call(fcinfo, &plan, "SELECT eventstore._subscription_alter($1, $2, $3, $4, $5, $6, $7)",
					 argtypes, false, false);
	PG_RETURN_VOID();
}

/* drop_subscription(name) */
Datum
eventstore_drop_subscription(PG_FUNCTION_ARGS)
{
	static const Oid argtypes[1] = {TEXTOID};
	static SPIPlanPtr plan = NULL;

	es_consumer_call(fcinfo, &plan, "SELECT eventstore._subscription_drop($1, $2)", argtypes, false, false);
	PG_RETURN_VOID();
}

/* reset_subscription(name, position, at) */
Datum
eventstore_reset_subscription(PG_FUNCTION_ARGS)
{
	static const Oid argtypes[3] = {TEXTOID, INT8OID, TIMESTAMPTZOID};
	static SPIPlanPtr plan = NULL;

	es_consumer_call(fcinfo, &plan, "SELECT eventstore._subscription_reset($1, $2, $3, $4)",
					 argtypes, false, false);
	PG_RETURN_VOID();
}

/* poll(subscription, consumer, max_count) */
Datum
eventstore_poll(PG_FUNCTION_ARGS)
{
	static const Oid argtypes[3] = {TEXTOID, TEXTOID, INT4OID};
	static SPIPlanPtr plan = NULL;

	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("poll must run at READ COMMITTED"),
				 errdetail("A transaction snapshot can be older than the read horizon, and events below it would be passed over."),
				 errhint("Call poll in its own READ COMMITTED transaction; ack may run in any transaction.")));
	es_consumer_call(fcinfo, &plan, "SELECT * FROM eventstore._subscription_poll($1, $2, $3, $4)",
					 argtypes, true, false);
	return (Datum) 0;
}

/* ack(subscription, consumer, global_position) */
Datum
eventstore_ack(PG_FUNCTION_ARGS)
{
	static const Oid argtypes[3] = {TEXTOID, TEXTOID, INT8OID};
	static SPIPlanPtr plan = NULL;

	es_consumer_call(fcinfo, &plan, "SELECT eventstore._subscription_ack($1, $2, $3, $4)",
					 argtypes, false, false);
	PG_RETURN_VOID();
}

/* ack(subscription, consumer, global_positions bigint[]): every position, in one statement */
Datum
eventstore_ack_many(PG_FUNCTION_ARGS)
{
	static const Oid argtypes[3] = {TEXTOID, TEXTOID, INT8ARRAYOID};
	static SPIPlanPtr plan = NULL;

	es_consumer_call(fcinfo, &plan, "SELECT eventstore._subscription_ack_many($1, $2, $3, $4)",
					 argtypes, false, false);
	PG_RETURN_VOID();
}

/* nack(subscription, consumer, global_position, retry_after, reason) */
Datum
eventstore_nack(PG_FUNCTION_ARGS)
{
	static const Oid argtypes[5] = {TEXTOID, TEXTOID, INT8OID, INTERVALOID, TEXTOID};
	static SPIPlanPtr plan = NULL;

	es_consumer_call(fcinfo, &plan, "SELECT eventstore._subscription_nack($1, $2, $3, $4, $5, $6)",
					 argtypes, false, false);
	PG_RETURN_VOID();
}

/* parked(subscription) */
Datum
eventstore_parked(PG_FUNCTION_ARGS)
{
	static const Oid argtypes[1] = {TEXTOID};
	static SPIPlanPtr plan = NULL;

	es_consumer_call(fcinfo, &plan, "SELECT * FROM eventstore._subscription_list_parked($1, $2)",
					 argtypes, true, true);
	return (Datum) 0;
}

/* replay_parked(subscription, global_position) */
Datum
eventstore_replay_parked(PG_FUNCTION_ARGS)
{
	static const Oid argtypes[2] = {TEXTOID, INT8OID};
	static SPIPlanPtr plan = NULL;

	es_consumer_call(fcinfo, &plan, "SELECT eventstore._subscription_replay($1, $2, $3)",
					 argtypes, false, false);
	PG_RETURN_VOID();
}

/* subscription_status(): the partitions of the subscriptions the caller may use */
Datum
eventstore_subscription_status(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;

	es_consumer_call(fcinfo, &plan, "SELECT * FROM eventstore._subscription_state($1)", NULL, true, true);
	return (Datum) 0;
}
