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
 * another; for a store distributed with Citus, the node's own shards of it:
 * a subscription on a cluster is consumed per worker, citus.c), at or below the read
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
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"

#include "compat.h"
#include "eventstore.h"

PG_FUNCTION_INFO_V1(eventstore_log_horizon);
PG_FUNCTION_INFO_V1(eventstore_create_subscription);
PG_FUNCTION_INFO_V1(eventstore_alter_subscription);
PG_FUNCTION_INFO_V1(eventstore_drop_subscription);
PG_FUNCTION_INFO_V1(eventstore_reset_subscription);
PG_FUNCTION_INFO_V1(eventstore_poll);
PG_FUNCTION_INFO_V1(eventstore_subscription_deliver);
PG_FUNCTION_INFO_V1(eventstore_subscription_events);
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

	EsStore    *st = es_store_arg(fcinfo, 11, ACL_SELECT);

	/* a distributed store: on a worker, its log there; refused on the coordinator */
	if (st->distributed)
		(void) es_store_local_sql(st, "create_subscription", ES_CITUS_SUBSCRIPTION_HINT);
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

/*
 * The delivery query of poll on store st: the events of the partitions
 * given, in log order, at most $11; marks each partition's run in flight
 * (delivered_to, delivered_at = $12) and renews its lease (from $12).  First the replayed parked events of
 * the partitions $2 (at or below their checkpoints), then the partitions'
 * events after their checkpoints ($10, by partition + 1) and up to the
 * horizon $7 ($6: the lowest checkpoint), of the categories $8 and event
 * types $9, keyed by $4 into $5 partitions; $3: are there retries (an
 * event's attempt counts them).  $1 is the subscription.
 *
 * With lifecycle rows for the store, what reads hide is never delivered and
 * data is decrypted like a read's; with upcasters, the delivered events
 * (only) are upcast, after decryption.  Prepared once per store and
 * (lifecycle, upcast), kept in the store's cache (a generic plan: nothing in
 * it depends on the values).
 */
static SPIPlanPtr
es_subscription_deliver_plan(EsStore *st, bool lifecycle, bool upcast, Oid *argtypes)
{
	EsPlanSlot	slot = ES_PLAN_SUB_DELIVER + lifecycle * 2 + upcast;

	if (st->plans[slot] == NULL)
	{
		char	   *visible = "true";
		char	   *data = "e.data";
		char	   *upcaster = "";
		char	   *sql;

		if (lifecycle)
		{
			visible = psprintf("eventstore._visible(%s::pg_catalog.regclass,"
							   " e.stream_id, e.stream_version, e.created_at)",
							   quote_literal_cstr(st->name));
			data = psprintf("eventstore.decrypt(e.data, %s::pg_catalog.regclass)",
							quote_literal_cstr(st->name));
		}
		if (upcast)
			upcaster = psprintf(" CROSS JOIN LATERAL eventstore._upcast(ROW(b.global_position, b.stream_id,"
								" b.stream_version, b.event_id, b.event_type, b.data, b.metadata, b.created_at,"
								" b.tags)::eventstore.events, %s::pg_catalog.regclass) u",
								quote_literal_cstr(st->name));
		sql = psprintf(
			"WITH batch AS ("
			" SELECT b.* FROM ("
			"  SELECT r.partition AS part, e.global_position, e.stream_id, e.stream_version, e.event_type,"
			"         %3$s AS data, e.metadata, e.created_at, r.attempts OPERATOR(pg_catalog.+) 1 AS attempt,"
			"         true AS replay, e.event_id, e.tags"
			"    FROM eventstore.subscription_retries r"
			"    JOIN %1$s e ON e.global_position OPERATOR(pg_catalog.=) r.global_position"
			"   WHERE r.subscription OPERATOR(pg_catalog.=) $1"
			"     AND r.partition OPERATOR(pg_catalog.=) ANY ($2)"
			"     AND r.global_position OPERATOR(pg_catalog.<=) (SELECT x.checkpoint"
			"           FROM eventstore.subscription_partitions x"
			"          WHERE x.subscription OPERATOR(pg_catalog.=) $1"
			"            AND x.partition OPERATOR(pg_catalog.=) r.partition)"
			"     AND %2$s"
			"  UNION ALL"
			"  (SELECT k.part, e.global_position, e.stream_id, e.stream_version, e.event_type, %3$s AS data,"
			"          e.metadata, e.created_at,"
			"          CASE WHEN $3 THEN"
			"              COALESCE((SELECT r.attempts FROM eventstore.subscription_retries r"
			"                         WHERE r.subscription OPERATOR(pg_catalog.=) $1"
			"                           AND r.global_position OPERATOR(pg_catalog.=) e.global_position), 0)"
			"              OPERATOR(pg_catalog.+) 1"
			"          ELSE 1 END,"
			"          false, e.event_id, e.tags"
			"     FROM %1$s e"
			"    CROSS JOIN LATERAL (SELECT eventstore._subscription_partition("
			"            eventstore._subscription_key($4, e.stream_id, e.metadata, e.global_position),"
			"            $5) AS part) k"
			"    WHERE e.global_position OPERATOR(pg_catalog.>) $6"
			"      AND e.global_position OPERATOR(pg_catalog.<=) $7"
			"      AND ($8 IS NULL"
			"           OR pg_catalog.split_part(e.stream_id, '-', 1) OPERATOR(pg_catalog.=) ANY ($8))"
			"      AND ($9 IS NULL OR e.event_type OPERATOR(pg_catalog.=) ANY ($9))"
			"      AND e.global_position OPERATOR(pg_catalog.>) ($10)[k.part OPERATOR(pg_catalog.+) 1]"
			"      AND %2$s"
			"    ORDER BY e.global_position"
			"    LIMIT $11)) b"
			"  ORDER BY b.replay DESC, b.global_position"
			"  LIMIT $11),"
			" marked AS ("
			"  UPDATE eventstore.subscription_partitions x"
			"     SET delivered_to = m.last, delivered_at = $12,"
			"         lease_until = $12 OPERATOR(pg_catalog.+) (SELECT s.lease FROM eventstore.subscriptions s"
			"                                                     WHERE s.name OPERATOR(pg_catalog.=) $1)"
			"    FROM (SELECT bb.part, pg_catalog.max(bb.global_position) AS last FROM batch bb GROUP BY bb.part) m"
			"   WHERE x.subscription OPERATOR(pg_catalog.=) $1 AND x.partition OPERATOR(pg_catalog.=) m.part"
			"  RETURNING x.partition)"
			" SELECT b.part, b.global_position, b.stream_id, b.stream_version, %5$s.event_type, %5$s.data,"
			"        %5$s.metadata, b.created_at, b.attempt"
			"   FROM batch b%4$s"
			"  WHERE (SELECT pg_catalog.count(*) FROM marked) OPERATOR(pg_catalog.>=) 0"
			"  ORDER BY b.replay DESC, b.global_position",
			es_store_local_sql(st, "poll", ES_CITUS_SUBSCRIPTION_HINT), visible, data, upcaster,
			upcast ? "u" : "b");
		(void) es_store_plan(st, slot, sql, 12, argtypes, 0);
		pfree(sql);
	}
	return st->plans[slot];
}

/*
 * eventstore._subscription_deliver(store regclass, subscription text,
 *		replays integer[], retrying boolean, partition_by text, partitions integer,
 *		lo bigint, horizon bigint, categories text[], event_types text[],
 *		checkpoints bigint[], max_count integer, clock timestamptz):
 * the last step of poll (_subscription_poll, which has taken the
 * partitions and worked out the rest): run the store's delivery query
 * (es_subscription_deliver_plan, $1..$12 the arguments after the store).
 * Owner-only; called as the extension's owner.
 */
Datum
eventstore_subscription_deliver(PG_FUNCTION_ARGS)
{
	Oid			argtypes[12] = {TEXTOID, INT4ARRAYOID, BOOLOID, TEXTOID, INT4OID, INT8OID,
	INT8OID, TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID, INT4OID, TIMESTAMPTZOID};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ParamListInfo params = makeParamList(12);
	SPIExecuteOptions options;
	DestReceiver *dest;
	SPIPlanPtr	plan;
	EsStore    *st;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("store must not be null")));
	st = es_store(PG_GETARG_OID(0));
	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < 12; i++)
	{
		params->params[i].value = PG_ARGISNULL(i + 1) ? (Datum) 0 : PG_GETARG_DATUM(i + 1);
		params->params[i].isnull = PG_ARGISNULL(i + 1);
		params->params[i].pflags = PARAM_FLAG_CONST;
		params->params[i].ptype = argtypes[i];
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "eventstore: SPI_connect failed");
	plan = es_subscription_deliver_plan(st, es_lifecycle_active(st->relid, GetActiveSnapshot()),
										es_upcasting(st), argtypes);
	dest = CreateTuplestoreDestReceiver();
	es_tuplestore_dest_params(dest, rsinfo->setResult, rsinfo->econtext->ecxt_per_query_memory);
	memset(&options, 0, sizeof(options));
	options.params = params;
	options.read_only = false;
	options.dest = dest;
	if (SPI_execute_plan_extended(plan, &options) < 0)
		elog(ERROR, "eventstore: the delivery query of poll failed");
	dest->rDestroy(dest);
	SPI_finish();
	return (Datum) 0;
}

/*
 * eventstore._subscription_events(store regclass, positions bigint[])
 *		RETURNS TABLE (global_position bigint, stream_id text, event_type text, metadata jsonb):
 * the events of store at positions (those that exist), with what a
 * subscription's filters and partition keys need; ack_many looks its
 * positions up with it.  A statement prepared once per store.  Owner-only.
 */
Datum
eventstore_subscription_events(PG_FUNCTION_ARGS)
{
	Oid			argtypes[1] = {INT8ARRAYOID};
	Datum		values[1];
	bool		nulls[1] = {false};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DestReceiver *dest;
	EsStore    *st;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("store and positions must not be null")));
	st = es_store(PG_GETARG_OID(0));
	values[0] = PG_GETARG_DATUM(1);
	InitMaterializedSRF(fcinfo, 0);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "eventstore: SPI_connect failed");
	if (st->plans[ES_PLAN_SUB_EVENTS] == NULL)
	{
		char	   *sql = psprintf("SELECT e.global_position, e.stream_id, e.event_type, e.metadata FROM %s e"
								   " WHERE e.global_position OPERATOR(pg_catalog.=) ANY ($1)",
								   es_store_local_sql(st, "ack_many", ES_CITUS_SUBSCRIPTION_HINT));

		(void) es_store_plan(st, ES_PLAN_SUB_EVENTS, sql, 1, argtypes, 0);
		pfree(sql);
	}
	dest = CreateTuplestoreDestReceiver();
	es_tuplestore_dest_params(dest, rsinfo->setResult, rsinfo->econtext->ecxt_per_query_memory);
	es_spi_into_dest(st->plans[ES_PLAN_SUB_EVENTS], 1, argtypes, values, nulls, dest);
	dest->rDestroy(dest);
	SPI_finish();
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
