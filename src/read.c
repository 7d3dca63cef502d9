/*
 * read.c
 *		Reading the store: one stream forwards or backwards, the global log,
 *		one category of it.
 *
 * Reads never write, so they run on a hot standby too.  Every read is one
 * statement prepared per store (catalog.c keeps it with the store).
 * read_stream, read_stream_backwards and stream_version read with the
 * caller's snapshot.  read_all and read_category stop at the read
 * horizon (horizon.c) and read with the snapshot taken together with it, so a
 * reader that resumes after the last position it saw never skips an event
 * that commits late.  Their rows go from the executor straight into the
 * function's result tuplestore.  A store with stream metadata or deleted
 * streams (lifecycle.c) or keys (shred.c) is read with a query that filters
 * every row through eventstore._visible() and decrypts its data; a store
 * without is read as before.  On a Citus cluster read_all and read_category
 * of a distributed store read the node's own shards on a worker and are
 * refused on the coordinator (es_read_source).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "executor/spi.h"
#include "nodes/parsenodes.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "eventstore.h"

PG_FUNCTION_INFO_V1(eventstore_stream_arg);
PG_FUNCTION_INFO_V1(eventstore_count_arg);
PG_FUNCTION_INFO_V1(eventstore_read_all);
PG_FUNCTION_INFO_V1(eventstore_read_all_until);
PG_FUNCTION_INFO_V1(eventstore_read_category);
PG_FUNCTION_INFO_V1(eventstore_read_stream);
PG_FUNCTION_INFO_V1(eventstore_read_stream_backwards);
PG_FUNCTION_INFO_V1(eventstore_stream_version);

typedef enum EsReadKind
{
	ES_READ_ALL,
	ES_READ_CATEGORY,
	ES_READ_STREAM,				/* stores other than the default (read_stream) */
	ES_READ_STREAM_BACKWARDS,
	ES_READ_KINDS
} EsReadKind;

/*
 * Each read is one prepared query per store: key $1, positions in ($2, $3]
 * (versions for a stream), limit $4, in position (version) order.  The
 * condition differs by kind; with upcasters registered the rows go through
 * eventstore._upcast().  A time limit is not a condition of the query: the
 * rows' receiver stops it (EsUntilReceiver).
 *
 * A category read is written as a range of (category, position) pairs in
 * that order, which only the (category, position) index can scan or return
 * in order.  Written as "category = $1 AND position in ($2, $3] ORDER BY
 * position", the planner may instead walk the position index and filter by
 * category, expecting the category's events spread evenly over the log; a
 * category whose events are all recent (a burst, then ANALYZE: 5% of the
 * log) then read the whole log before them (make bench-scale: 7 reads/s at
 * 200,000 events; sql/category_plan.sql).
 */
static const char *const es_read_cond[ES_READ_KINDS] = {
	[ES_READ_ALL] = "true",
	[ES_READ_CATEGORY] = "true",
	[ES_READ_STREAM] = "e.stream_id OPERATOR(pg_catalog.=) $1",
	[ES_READ_STREAM_BACKWARDS] = "e.stream_id OPERATOR(pg_catalog.=) $1",
};

static const char *const es_read_range[ES_READ_KINDS] = {
	[ES_READ_ALL] = "e.global_position OPERATOR(pg_catalog.>) $2"
	" AND e.global_position OPERATOR(pg_catalog.<=) $3 ORDER BY e.global_position",
	[ES_READ_CATEGORY] = "(pg_catalog.split_part(e.stream_id, '-', 1), e.global_position) OPERATOR(pg_catalog.>) ($1, $2)"
	" AND (pg_catalog.split_part(e.stream_id, '-', 1), e.global_position) OPERATOR(pg_catalog.<=) ($1, $3)"
	" ORDER BY pg_catalog.split_part(e.stream_id, '-', 1), e.global_position",
	[ES_READ_STREAM] = "e.stream_version OPERATOR(pg_catalog.>) $2"
	" AND e.stream_version OPERATOR(pg_catalog.<=) $3 ORDER BY e.stream_version",
	[ES_READ_STREAM_BACKWARDS] = "e.stream_version OPERATOR(pg_catalog.>) $2"
	" AND e.stream_version OPERATOR(pg_catalog.<=) $3 ORDER BY e.stream_version DESC",
};

/*
 * The lifecycle read of store st (lifecycle.c, shred.c): the columns of a row
 * of e with its data decrypted (or the forgotten marker), and the condition
 * that keeps only the rows the metadata lets be read (" AND ...").  The
 * reads, read_query (dcb.c) and rebuild_projection (projection.c) replay
 * exactly these rows.
 */
char *
es_lifecycle_row_sql(EsStore *st)
{
	return psprintf("e.global_position, e.stream_id, e.stream_version, e.event_id,"
					" e.event_type, eventstore.decrypt(e.data, %u::pg_catalog.oid::pg_catalog.regclass),"
					" e.metadata, e.created_at, e.tags", st->relid);
}

char *
es_lifecycle_filter_sql(EsStore *st)
{
	return psprintf(" AND eventstore._visible(%u::pg_catalog.oid::pg_catalog.regclass,"
					" e.stream_id, e.stream_version, e.created_at)", st->relid);
}

/*
 * The parts of a read of store st that depend on upcasters and lifecycle
 * (read_query, dcb.c, uses them too): the select list, what follows
 * "FROM store e", and a condition to AND to the WHERE clause (or "").
 */
void
es_read_sql_parts(EsStore *st, bool upcast, bool lifecycle,
				  const char **cols, const char **from, const char **filter)
{
	*cols = upcast ? "u.*" : "e.*";
	*from = upcast ? es_upcast_sql(st, NULL) : "";
	*filter = "";

	/*
	 * With lifecycle rows for the store (lifecycle.c), every stored row is
	 * checked against its stream's metadata before it is upcast or counted
	 * against the limit, and its data decrypted (shred.c), before
	 * upcasting: the columns are those of eventstore.event_store, 0.6.0 on.
	 */
	if (lifecycle)
	{
		char	   *row = es_lifecycle_row_sql(st);

		*filter = es_lifecycle_filter_sql(st);
		if (upcast)
			*from = es_upcast_sql(st, row);
		else
			*cols = row;
	}
}

/*
 * What a read of kind reads from: a stream is read from the store (on a
 * Citus cluster, Citus routes it to the stream's shard); the log and a
 * category from this node's log of the store (citus.c): on a worker its own
 * shards, up to the node's horizon like read_node; refused on the
 * coordinator, where it would mix the nodes' logs under one horizon.
 */
static const char *
es_read_source(EsStore *st, EsReadKind kind)
{
	if (kind == ES_READ_STREAM || kind == ES_READ_STREAM_BACKWARDS)
		return st->name;
	return es_store_local_sql(st, kind == ES_READ_ALL ? "read_all" : "read_category", ES_CITUS_LOG_HINT);
}

static SPIPlanPtr
es_read_plan(EsStore *st, EsReadKind kind, bool upcast, bool lifecycle, Oid *argtypes)
{
	EsPlanSlot	slot = (lifecycle ? ES_PLAN_READ_LIFECYCLE : ES_PLAN_READ) + kind * 2 + upcast;

	if (st->plans[slot] == NULL)
	{
		const char *cols;
		const char *from;
		const char *filter;
		char	   *sql;

		es_read_sql_parts(st, upcast, lifecycle, &cols, &from, &filter);
		sql = psprintf("SELECT %s FROM %s e%s"
					   " WHERE %s%s AND %s LIMIT $4",
					   cols, es_read_source(st, kind), from,
					   es_read_cond[kind], filter, es_read_range[kind]);
		/*
		 * A category read is planned for each call's values: a generic plan
		 * cannot tell a rare category from a common one and, once the plan
		 * cache settles on it, walks the position index filtering by
		 * category -- the whole log for a rare one (make bench-scale: 2
		 * reads/s at 10^6 events).  With the value known, a rare category
		 * uses the (category, position) index.  read_all has nothing to
		 * choose and keeps its generic plan.
		 */
		(void) es_store_plan(st, slot, sql, 4, argtypes,
							 kind == ES_READ_CATEGORY ? CURSOR_OPT_CUSTOM_PLAN : 0);
		pfree(sql);
	}
	return st->plans[slot];
}

/* max_count argument: NULL means no limit; negative is an error. */
static bool
es_limit_arg(FunctionCallInfo fcinfo, int argno, int64 *limit)
{
	int32		n;

	if (PG_ARGISNULL(argno))
		return false;
	n = PG_GETARG_INT32(argno);
	if (n < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_count must not be negative")));
	*limit = n;
	return true;
}

/*
 * A receiver that passes rows on to another one until the first row whose
 * created_at is later than until, and there stops the query.  Rows arrive in
 * position order, so what gets through is a prefix of the log: a reader that
 * continues after the last position it got skips nothing.  (created_at is
 * taken before the position, so a later position can carry an earlier time;
 * filtering on time instead would return it without the lower one.)
 * Upcasters cannot change created_at (upcast.c), so the row's value is the
 * stored one.
 */
typedef struct EsUntilReceiver
{
	DestReceiver pub;
	DestReceiver *inner;
	TimestampTz until;
	int			attno;			/* created_at's column in the rows, 1-based */
} EsUntilReceiver;

static void
es_until_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	EsUntilReceiver *r = (EsUntilReceiver *) self;

	r->attno = 0;
	for (int i = 0; i < typeinfo->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(typeinfo, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), "created_at") == 0)
			r->attno = i + 1;
	}
	if (r->attno == 0)
		elog(ERROR, "eventstore: read query returns no created_at column");
	r->inner->rStartup(r->inner, operation, typeinfo);
}

static bool
es_until_receive(TupleTableSlot *slot, DestReceiver *self)
{
	EsUntilReceiver *r = (EsUntilReceiver *) self;
	bool		isnull;
	Datum		t = slot_getattr(slot, r->attno, &isnull);

	if (!isnull && DatumGetTimestampTz(t) > r->until)
		return false;			/* the prefix ends before this row */
	return r->inner->receiveSlot(slot, r->inner);
}

static void
es_until_shutdown(DestReceiver *self)
{
	EsUntilReceiver *r = (EsUntilReceiver *) self;

	r->inner->rShutdown(r->inner);
}

static void
es_until_destroy(DestReceiver *self)
{
	EsUntilReceiver *r = (EsUntilReceiver *) self;

	r->inner->rDestroy(r->inner);
	pfree(r);
}

static DestReceiver *
es_until_receiver(DestReceiver *inner, TimestampTz until)
{
	EsUntilReceiver *r = palloc0(sizeof(EsUntilReceiver));

	r->pub.receiveSlot = es_until_receive;
	r->pub.rStartup = es_until_startup;
	r->pub.rShutdown = es_until_shutdown;
	r->pub.rDestroy = es_until_destroy;
	r->pub.mydest = inner->mydest;	/* SPI reports SPI_OK_UTILITY for DestNone */
	r->inner = inner;
	r->until = until;
	return &r->pub;
}

/*
 * Run read query kind (see es_read_plan) into the function's result, stopping
 * at the first row later than until (DT_NOEND: no time limit).  With snapshot
 * given, the query reads with it.
 */
static void
es_read(FunctionCallInfo fcinfo, EsStore *st, EsReadKind kind, Datum key, int64 lo, int64 hi,
		bool limited, int64 limit, TimestampTz until, Snapshot snapshot)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			argtypes[4] = {TEXTOID, INT8OID, INT8OID, INT8OID};
	Datum		values[4] = {key, Int64GetDatum(lo), Int64GetDatum(hi), Int64GetDatum(limit)};
	bool		nulls[4] = {false, false, false, !limited};
	SPIPlanPtr	plan;
	DestReceiver *dest;

	InitMaterializedSRF(fcinfo, 0);
	if (lo >= hi)
		return;					/* nothing can be in an empty range */

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "eventstore: SPI_connect failed");
	plan = es_read_plan(st, kind, es_upcasting(st),
						es_lifecycle_active(st->relid, snapshot ? snapshot : GetActiveSnapshot()),
						argtypes);
	dest = CreateTuplestoreDestReceiver();
	es_tuplestore_dest_params(dest, rsinfo->setResult,
							  rsinfo->econtext->ecxt_per_query_memory);
	if (!TIMESTAMP_IS_NOEND(until))
		dest = es_until_receiver(dest, until);
	if (snapshot != NULL)
		PushActiveSnapshot(snapshot);
	es_spi_into_dest(plan, 4, argtypes, values, nulls, dest);
	if (snapshot != NULL)
		PopActiveSnapshot();
	dest->rDestroy(dest);
	SPI_finish();
}

/*
 * eventstore._stream_arg(stream_id text) RETURNS text: stream_id, checked
 * (not NULL, not empty, not too long).  The read_stream functions wrap their
 * argument in it.
 */
Datum
eventstore_stream_arg(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(es_stream_id_arg(fcinfo, 0));
}

/* eventstore._count_arg(max_count integer) RETURNS bigint: NULL (no limit) or >= 0. */
Datum
eventstore_count_arg(PG_FUNCTION_ARGS)
{
	int64		limit;

	if (!es_limit_arg(fcinfo, 0, &limit))
		PG_RETURN_NULL();
	PG_RETURN_INT64(limit);
}

/*
 * The shared body of read_all and read_category (and their _until forms):
 * after_position is argument argno, max_count the next one, and with
 * until_argno >= 0 the time to stop at.  Reads stop at the horizon.
 */
static void
es_read_log(FunctionCallInfo fcinfo, EsReadKind kind, Datum key, int argno, int until_argno,
			int store_argno)
{
	EsStore    *st = es_store_arg(fcinfo, store_argno, ACL_SELECT);
	int64		after = PG_ARGISNULL(argno) ? 0 : PG_GETARG_INT64(argno);
	int64		limit = 0;
	bool		limited = es_limit_arg(fcinfo, argno + 1, &limit);
	TimestampTz until = DT_NOEND;
	Snapshot	snapshot;
	int64		horizon;

	if (until_argno >= 0)
	{
		if (PG_ARGISNULL(until_argno))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("until_time must not be null")));
		until = PG_GETARG_TIMESTAMPTZ(until_argno);
	}
	horizon = es_read_horizon(ES_COUNTER_POSITION, es_position_seqid(), &snapshot);
	es_read(fcinfo, st, kind, key, after, horizon, limited, limit, until, snapshot);
	UnregisterSnapshot(snapshot);
}

/* eventstore.read_all(after_position DEFAULT 0, max_count DEFAULT 1000, store) */
Datum
eventstore_read_all(PG_FUNCTION_ARGS)
{
	es_read_log(fcinfo, ES_READ_ALL, CStringGetTextDatum(""), 0, -1, 2);
	return (Datum) 0;
}

/* eventstore.read_all_until(until_time, after_position DEFAULT 0, max_count DEFAULT 1000, store) */
Datum
eventstore_read_all_until(PG_FUNCTION_ARGS)
{
	es_read_log(fcinfo, ES_READ_ALL, CStringGetTextDatum(""), 1, 0, 3);
	return (Datum) 0;
}

/* eventstore.read_category(category, after_position DEFAULT 0, max_count DEFAULT 1000, store) */
Datum
eventstore_read_category(PG_FUNCTION_ARGS)
{
	text	   *category = es_name_arg(fcinfo, 0, "category");

	es_read_log(fcinfo, ES_READ_CATEGORY, PointerGetDatum(category), 1, -1, 3);
	return (Datum) 0;
}

/*
 * read_stream and read_stream_backwards(stream_id, from_version, max_count,
 * store): a stream of a store, in version order, with the caller's snapshot
 * (like any query).  from_version NULL: from the first (forwards) or the
 * last (backwards) version.  They are C functions rather than SQL the
 * planner would inline because a query names every table it may read, and
 * PostgreSQL checks the privileges on all of them: one SQL body for every
 * store would make a tenant of a store need SELECT on the default one.
 */
static void
es_read_stream(FunctionCallInfo fcinfo, bool backwards)
{
	text	   *stream_id = es_stream_id_arg(fcinfo, 0);
	EsStore    *st = es_store_arg(fcinfo, 3, ACL_SELECT);
	int64		limit = 0;
	bool		limited = es_limit_arg(fcinfo, 2, &limit);
	int64		lo = 0;
	int64		hi = PG_INT64_MAX;

	if (!PG_ARGISNULL(1))
	{
		int64		from = PG_GETARG_INT64(1);

		if (backwards)
			hi = from;
		else
			lo = from > PG_INT64_MIN ? from - 1 : from;
	}
	es_read(fcinfo, st, backwards ? ES_READ_STREAM_BACKWARDS : ES_READ_STREAM,
			PointerGetDatum(stream_id), lo, hi, limited, limit, DT_NOEND, NULL);
}

Datum
eventstore_read_stream(PG_FUNCTION_ARGS)
{
	es_read_stream(fcinfo, false);
	return (Datum) 0;
}

Datum
eventstore_read_stream_backwards(PG_FUNCTION_ARGS)
{
	es_read_stream(fcinfo, true);
	return (Datum) 0;
}

/*
 * eventstore.stream_version(stream_id, store): the stream's version in the
 * caller's snapshot, 0 when it has no events; NULL for a NULL stream_id.
 */
Datum
eventstore_stream_version(PG_FUNCTION_ARGS)
{
	EsStore    *st;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	SPIPlanPtr	plan;
	bool		isnull;
	int64		version;

	st = es_store_arg(fcinfo, 1, ACL_SELECT);
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	values[0] = PG_GETARG_DATUM(0);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "eventstore: SPI_connect failed");
	plan = st->plans[ES_PLAN_STREAM_VERSION];
	if (plan == NULL)
	{
		char	   *sql = psprintf("SELECT COALESCE(pg_catalog.max(e.stream_version), 0) FROM %s e"
								   " WHERE e.stream_id OPERATOR(pg_catalog.=) $1", st->name);

		plan = es_store_plan(st, ES_PLAN_STREAM_VERSION, sql, 1, argtypes, 0);
	}
	if (SPI_execute_plan(plan, values, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "eventstore: reading the stream version failed");
	version = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	/* a deleted, truncated or purged stream keeps the version it reached */
	version = Max(version, es_lifecycle_version_floor(st, PG_GETARG_TEXT_PP(0)));
	PG_RETURN_INT64(version);
}
