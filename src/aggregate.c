/*
 * aggregate.c
 *		Aggregates: snapshots of a stream's folded state, folding a stream
 *		through a reducer (from the newest usable snapshot, up to a version or
 *		a time), and snapshot policies that take snapshots as streams grow.
 *
 * A reducer is a function (state jsonb, e eventstore.events) RETURNS jsonb.
 * Folding reads the stream from its store through the store's upcasters, so
 * reducers see upcast events.  A snapshot at version v is the fold of events 1..v; the
 * fold from it is the same as the fold from the start as long as the reducer
 * (and the upcasters) are the same -- change them and take new snapshots.
 *
 * Snapshots are written as the extension's owner: save_snapshot (granted to
 * writers) and the policies are the only ways in.  A snapshot type that a
 * policy owns is the policy's alone: save_snapshot refuses it, and folds of
 * it build only on rows the policy wrote (snapshots.by_policy).  A policy's
 * reducer runs as its owner (the role that owned it when the policy was
 * set), inside the appending transaction, after the projections;
 * aggregate()'s reducer, named by the caller, runs as the caller.
 *
 * Snapshots and policies belong to a store: a policy takes snapshots of the
 * streams of its store only, and a fold of a store builds only on that
 * store's snapshots.  Reading a store's snapshots (load_snapshot, aggregate)
 * takes SELECT on the store, saving one INSERT; the snapshot table itself is
 * read and written as the extension's owner.  A policy's fold reads the
 * stream as the store's owner: an appender needs no SELECT on the store.
 *
 * A snapshot names its store twice: by OID (store) and by name (store_name,
 * 0.7.0 on).  A store that is not distributed reads its snapshots by OID, so
 * a renamed store keeps them.  A distributed store (Citus) reads them by
 * name: eventstore.snapshots is then distributed by stream_id, co-located
 * with the stores, and a shard move copies its rows in binary, OID and all,
 * to a node where that OID names another table or none; the name means the
 * same store on every node.  The key is by name, so a moved row is still the
 * one row of its stream, type and version on its new node.  A snapshot
 * written at a version that a store renamed since has a row of under its old
 * name replaces that row (es_write_snapshot), so a store keeps one row per
 * version either way.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "eventstore.h"

PG_FUNCTION_INFO_V1(eventstore_aggregate);
PG_FUNCTION_INFO_V1(eventstore_save_snapshot);
PG_FUNCTION_INFO_V1(eventstore_set_snapshot_policy);
PG_FUNCTION_INFO_V1(eventstore_remove_snapshot_policy);
PG_FUNCTION_INFO_V1(eventstore_load_snapshot);
PG_FUNCTION_INFO_V1(eventstore_stream_version_at);

typedef struct EsPolicy
{
	Oid			store;
	char	   *snapshot_type;
	EsHandler	reducer;
	int64		every;
	Datum		initial;		/* jsonb, in the cache's context */
	int			ncategories;	/* -1: every category */
	char	  **categories;
} EsPolicy;

typedef struct EsPolicies
{
	int			n;
	EsPolicy   *items;
} EsPolicies;

static void es_policies_fill(EsRegistry *reg, SPITupleTable *rows, MemoryContext cxt);

static EsRegistry es_policies_registry = {
	.relname = "snapshot_policies",
	.query = "SELECT p.snapshot_type, p.reducer, pg_catalog.to_regprocedure(p.reducer)::pg_catalog.oid,"
	" p.every, p.initial, p.categories, p.reducer_owner::pg_catalog.oid, p.store::pg_catalog.oid"
	" FROM eventstore.snapshot_policies p"
	" ORDER BY p.snapshot_type COLLATE pg_catalog.\"C\"",

	/*
	 * Before 0.6.0: no store column, every policy is the default store's;
	 * before 0.5.0 not even reducer_owner (read through to_jsonb, which
	 * names no column), then the function's current owner.
	 */
	.since_column = "store",
	.query_before = "SELECT p.snapshot_type, p.reducer, pg_catalog.to_regprocedure(p.reducer)::pg_catalog.oid,"
	" p.every, p.initial, p.categories,"
	" COALESCE((pg_catalog.to_jsonb(p) OPERATOR(pg_catalog.->>) 'reducer_owner')::pg_catalog.regrole::pg_catalog.oid,"
	" (SELECT f.proowner FROM pg_catalog.pg_proc f"
	" WHERE f.oid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure(p.reducer)::pg_catalog.oid)),"
	" 'eventstore.events'::pg_catalog.regclass::pg_catalog.oid"
	" FROM eventstore.snapshot_policies p"
	" ORDER BY p.snapshot_type COLLATE pg_catalog.\"C\"",
	.fill = es_policies_fill,
};

void
es_aggregate_init(void)
{
	es_registry_init(&es_policies_registry);
}

static void
es_policies_fill(EsRegistry *reg, SPITupleTable *rows, MemoryContext cxt)
{
	EsPolicies *cache = MemoryContextAllocZero(cxt, sizeof(EsPolicies));
	uint64		n = rows ? rows->numvals : 0;
	Oid			argtypes[2] = {JSONBOID, get_rel_type_id(es_events_relid())};

	cache->items = MemoryContextAllocZero(cxt, sizeof(EsPolicy) * Max(n, 1));
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = rows->vals[i];
		TupleDesc	desc = rows->tupdesc;
		EsPolicy   *p = &cache->items[i];
		bool		isnull;
		bool		fn_null;
		Datum		d;
		MemoryContext old;

		p->snapshot_type = MemoryContextStrdup(cxt, TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull)));
		d = SPI_getbinval(tup, desc, 3, &fn_null);
		es_handler_resolve(&p->reducer, TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull)),
						   d, fn_null, DatumGetObjectId(SPI_getbinval(tup, desc, 7, &isnull)),
						   2, argtypes, JSONBOID, cxt);
		p->every = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
		d = SPI_getbinval(tup, desc, 5, &isnull);
		old = MemoryContextSwitchTo(cxt);
		p->initial = isnull ? (Datum) 0 : PointerGetDatum(PG_DETOAST_DATUM_COPY(d));
		MemoryContextSwitchTo(old);
		d = SPI_getbinval(tup, desc, 6, &isnull);
		p->ncategories = es_copy_text_array(d, isnull, cxt, &p->categories);
		p->store = DatumGetObjectId(SPI_getbinval(tup, desc, 8, &isnull));
	}
	cache->n = (int) n;
	reg->cache = cache;
}

/* Check a reducer: (jsonb, eventstore.events) RETURNS jsonb. */
static char *
es_check_reducer(Oid fn)
{
	Oid			argtypes[2] = {JSONBOID, get_rel_type_id(es_events_relid())};

	return es_check_function(fn, "reducer", 2, argtypes, JSONBOID);
}

/*
 * Whether the snapshot tables have their store column (0.6.0 on).  Before
 * ALTER EXTENSION ... UPDATE they do not, and there is only the default
 * store: folds, policies and load_snapshot then leave the store out.
 */
static bool
es_snapshots_per_store(void)
{
	Oid			rel = get_relname_relid("snapshots", es_schema_oid());

	return OidIsValid(rel) && get_attnum(rel, "store") != InvalidAttrNumber;
}

/* Whether the snapshots table has its store_name column (0.7.0 on). */
static bool
es_snapshots_named(void)
{
	Oid			rel = get_relname_relid("snapshots", es_schema_oid());

	return OidIsValid(rel) && get_attnum(rel, "store_name") != InvalidAttrNumber;
}

/*
 * The condition, on snapshots s, that picks the snapshots of store st, for
 * SQL text: by name for a distributed store (a row moved with its shard
 * keeps another node's OID), else by OID as parameter $param (regclass).
 */
char *
es_snapshots_of_store(EsStore *st, int param)
{
	if (st->distributed && es_snapshots_named())
		return psprintf("s.store_name OPERATOR(pg_catalog.=) %s", quote_literal_cstr(st->name));
	return psprintf("s.store OPERATOR(pg_catalog.=) $%d", param);
}

/*
 * The newest usable snapshot of stream/type in store st at or below
 * max_version, if any (its version, state and time).  Of a type that a
 * snapshot policy of st owns, only the policy's snapshots are usable:
 * nothing else can be told from a forgery.  Read as the extension's owner
 * (the caller has been checked for SELECT on st); must be called inside an
 * SPI connection.
 */
static bool
es_load_snapshot(EsStore *st, Datum stream_id, Datum type, int64 max_version,
				 int64 *version, Datum *state, Datum *created_at)
{
	Oid			argtypes[4] = {TEXTOID, TEXTOID, INT8OID, REGCLASSOID};
	Datum		values[4] = {stream_id, type, Int64GetDatum(max_version), ObjectIdGetDatum(st->relid)};
	bool		isnull;
	Oid			save_userid;
	int			save_sec;
	int			rc;
	bool		per_store = es_snapshots_per_store();
	char	   *sql;

	sql = psprintf("SELECT s.stream_version, s.state, s.created_at FROM eventstore.snapshots s"
				   " WHERE %s%s s.stream_id OPERATOR(pg_catalog.=) $1"
				   " AND s.snapshot_type OPERATOR(pg_catalog.=) $2"
				   " AND s.stream_version OPERATOR(pg_catalog.<=) $3"
				   " AND (s.by_policy OR NOT EXISTS (SELECT FROM eventstore.snapshot_policies p"
				   " WHERE %s p.snapshot_type OPERATOR(pg_catalog.=) $2))"
				   " ORDER BY s.stream_version DESC LIMIT 1",
				   per_store ? es_snapshots_of_store(st, 4) : "", per_store ? " AND" : "",
				   per_store ? "p.store OPERATOR(pg_catalog.=) $4 AND" : "");
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(es_events_owner(), save_sec | SECURITY_LOCAL_USERID_CHANGE);
	rc = SPI_execute_with_args(sql, per_store ? 4 : 3, argtypes, values, NULL, true, 1);
	SetUserIdAndSecContext(save_userid, save_sec);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "eventstore: reading snapshots failed");
	if (SPI_processed == 0)
		return false;
	*version = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	*state = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	*state = isnull ? (Datum) 0 : PointerGetDatum(SPI_datumTransfer(*state, false, -1));
	if (created_at)
		*created_at = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
	return true;
}

/*
 * The prepared statement on st that returns the events of stream $1 from
 * version $2 to $3, upcast when st has upcasters, in version order.
 */
static SPIPlanPtr
es_fold_plan(EsStore *st, bool upcast)
{
	EsPlanSlot	slot = ES_PLAN_FOLD + upcast;
	Oid			argtypes[3] = {TEXTOID, INT8OID, INT8OID};

	if (st->plans[slot] == NULL)
	{
		/*
		 * Through read_stream, so a fold sees exactly what a read of the
		 * stream sees: upcast, without what the stream's lifecycle hides,
		 * decrypted (or forgotten) -- one read path (read.c).
		 */
		char	   *sql;

		if (OidIsValid(es_store_type()))
			sql = psprintf("SELECT r.* FROM eventstore.read_stream($1, $2, NULL, %u::pg_catalog.regclass) r"
						   " WHERE r.stream_version OPERATOR(pg_catalog.<=) $3"
						   " ORDER BY r.stream_version", st->relid);
		else					/* a catalog from before 0.6.0, not updated yet */
			sql = psprintf("SELECT %s FROM %s e%s"
						   " WHERE e.stream_id OPERATOR(pg_catalog.=) $1"
						   " AND e.stream_version OPERATOR(pg_catalog.>=) $2"
						   " AND e.stream_version OPERATOR(pg_catalog.<=) $3"
						   " ORDER BY e.stream_version",
						   upcast ? "u.*" : "e.*", st->name,
						   upcast ? es_upcast_sql(st, NULL) : "");

		(void) es_store_plan(st, slot, sql, 3, argtypes, 0);
		pfree(sql);
	}
	return st->plans[slot];
}

/*
 * Fold stream_id's events in store st (max_version at most) through
 * reducer, starting at the newest usable snapshot of snapshot_type (when not
 * 0) or at initial.  With own_writes, read with a new command id so this
 * transaction's latest appends are seen (a policy right after an append);
 * else with the active snapshot.  The events are read as read_as (InvalidOid:
 * the current user), the reducer runs as run_as.  Must be called inside an SPI
 * connection.  Returns the state, in the current memory context; NULL as
 * (Datum) 0.
 *
 * Memory stays bounded by the size of one state, however long the stream:
 * rows are fetched in batches, each reducer call runs in a context reset
 * after the call, and the state is copied into one of two contexts that
 * alternate, so only the current state (and the one it was made from) is
 * kept.
 */
static Datum
es_fold(EsStore *st, Datum stream_id, Oid reducer, Oid run_as, Oid read_as, Datum initial,
		int64 max_version, Datum snapshot_type, bool own_writes)
{
	Datum		state = initial;
	int64		from = 1;
	bool		pushed = false;
	Datum		values[3];
	SPIPlanPtr	plan;
	Oid			save_userid;
	int			save_sec;
	Portal		portal;
	FmgrInfo	flinfo;
	Oid			rowtype = get_rel_type_id(es_events_relid());
	MemoryContext fold_cxt = CurrentMemoryContext;
	MemoryContext row_cxt;
	MemoryContext state_cxt[2];
	int			cur = 0;

	/*
	 * A policy folds right after an append, with the stream lock held: read
	 * the committed stream and this transaction's rows, whatever the
	 * isolation level's snapshot says.
	 */
	if (own_writes)
	{
		CommandCounterIncrement();
		PushActiveSnapshot(GetLatestSnapshot());
		pushed = true;
	}

	if (snapshot_type != (Datum) 0)
	{
		int64		v;
		Datum		s;

		if (es_load_snapshot(st, stream_id, snapshot_type, max_version, &v, &s, NULL))
		{
			state = s;
			from = v + 1;
		}
	}
	if (from > max_version)
	{
		if (pushed)
			PopActiveSnapshot();
		return state;
	}

	fmgr_info(reducer, &flinfo);
	values[0] = stream_id;
	values[1] = Int64GetDatum(from);
	values[2] = Int64GetDatum(max_version);
	plan = es_fold_plan(st, es_upcasting(st));
	GetUserIdAndSecContext(&save_userid, &save_sec);
	if (OidIsValid(read_as))
		SetUserIdAndSecContext(read_as, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	portal = SPI_cursor_open(NULL, plan, values, NULL, true);
	SetUserIdAndSecContext(save_userid, save_sec);
	if (pushed)
		PopActiveSnapshot();

	row_cxt = AllocSetContextCreate(fold_cxt, "eventstore fold row", ALLOCSET_DEFAULT_SIZES);
	state_cxt[0] = AllocSetContextCreate(fold_cxt, "eventstore fold state", ALLOCSET_DEFAULT_SIZES);
	state_cxt[1] = AllocSetContextCreate(fold_cxt, "eventstore fold state", ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		SPITupleTable *batch;
		uint64		nbatch;

		SPI_cursor_fetch(portal, true, 1000);
		batch = SPI_tuptable;
		nbatch = SPI_processed;
		if (nbatch == 0)
			break;
		for (uint64 r = 0; r < nbatch; r++)
		{
			LOCAL_FCINFO(fcinfo, 2);
			MemoryContext old;
			Datum		row;
			Datum		next;

			if (flinfo.fn_strict && state == (Datum) 0)
				continue;		/* a strict reducer keeps a NULL state NULL */
			old = MemoryContextSwitchTo(row_cxt);
			row = heap_copy_tuple_as_datum(batch->vals[r], batch->tupdesc);
			HeapTupleHeaderSetTypeId(DatumGetHeapTupleHeader(row), rowtype);
			HeapTupleHeaderSetTypMod(DatumGetHeapTupleHeader(row), -1);
			InitFunctionCallInfoData(*fcinfo, &flinfo, 2, InvalidOid, NULL, NULL);
			fcinfo->args[0].value = state;
			fcinfo->args[0].isnull = state == (Datum) 0;
			fcinfo->args[1].value = row;
			fcinfo->args[1].isnull = false;
			next = es_call_as(run_as, fcinfo);

			/*
			 * The result may point into the row context or at the state
			 * passed in: copy it into the other state context (which holds
			 * the state before the current one, referenced by no one), then
			 * drop the row's memory.
			 */
			if (fcinfo->isnull)
				state = (Datum) 0;
			else
			{
				MemoryContextReset(state_cxt[1 - cur]);
				MemoryContextSwitchTo(state_cxt[1 - cur]);
				state = PointerGetDatum(PG_DETOAST_DATUM_COPY(next));
				cur = 1 - cur;
			}
			MemoryContextSwitchTo(old);
			MemoryContextReset(row_cxt);
		}
		SPI_freetuptable(batch);
	}
	SPI_cursor_close(portal);

	/* The final state into the caller's context; drop the rest. */
	if (state != (Datum) 0)
		state = datumCopy(state, false, -1);
	MemoryContextDelete(row_cxt);
	MemoryContextDelete(state_cxt[0]);
	MemoryContextDelete(state_cxt[1]);
	return state;
}

/*
 * The last version of stream_id in store st appended at or before at (0 if
 * none).  Must be called inside an SPI connection.
 */
static int64
es_version_at(EsStore *st, Datum stream_id, Datum at)
{
	Oid			argtypes[2] = {TEXTOID, TIMESTAMPTZOID};
	Datum		values[2] = {stream_id, at};
	bool		isnull;
	Datum		v;
	SPIPlanPtr	plan = st->plans[ES_PLAN_VERSION_AT];

	if (plan == NULL)
	{
		char	   *sql = psprintf("SELECT COALESCE(pg_catalog.max(e.stream_version), 0) FROM %s e"
								   " WHERE e.stream_id OPERATOR(pg_catalog.=) $1"
								   " AND e.created_at OPERATOR(pg_catalog.<=) $2", st->name);

		plan = es_store_plan(st, ES_PLAN_VERSION_AT, sql, 2, argtypes, 0);
		pfree(sql);
	}
	if (SPI_execute_plan(plan, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "eventstore: reading the version at a time failed");
	v = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : DatumGetInt64(v);
}

/*
 * eventstore.stream_version_at(stream_id text, at timestamptz, store regclass
 * DEFAULT 'eventstore.events') RETURNS bigint: the last version appended at
 * or before at (0 if none), for a caller who may read the store.
 */
Datum
eventstore_stream_version_at(PG_FUNCTION_ARGS)
{
	text	   *stream_id = es_stream_id_arg(fcinfo, 0);
	EsStore    *st = es_store_arg(fcinfo, 2, ACL_SELECT);
	int64		v;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the time must not be null")));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "eventstore: SPI_connect failed");
	v = es_version_at(st, PointerGetDatum(stream_id), PG_GETARG_DATUM(1));
	SPI_finish();
	PG_RETURN_INT64(v);
}

/*
 * eventstore.aggregate(stream_id text, reducer regprocedure, initial jsonb
 *		DEFAULT '{}', until_version bigint DEFAULT NULL, until_time
 *		timestamptz DEFAULT NULL, snapshot_type text DEFAULT NULL, store
 *		regclass DEFAULT 'eventstore.events') RETURNS jsonb
 */
Datum
eventstore_aggregate(PG_FUNCTION_ARGS)
{
	text	   *stream_id;
	Oid			reducer;
	int64		max_version = PG_INT64_MAX;
	Datum		state;
	Datum		snapshot_type = (Datum) 0;
	Oid			argtypes[2] = {JSONBOID, get_rel_type_id(es_events_relid())};
	MemoryContext caller_cxt = CurrentMemoryContext;
	EsStore    *st = es_store_arg(fcinfo, 6, ACL_SELECT);

	stream_id = es_stream_id_arg(fcinfo, 0);
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("reducer must not be null")));
	reducer = PG_GETARG_OID(1);
	es_check_callable(reducer, "reducer", 2, argtypes, JSONBOID);
	if (!PG_ARGISNULL(3))
	{
		max_version = PG_GETARG_INT64(3);
		if (max_version < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("until_version must not be negative")));
	}
	if (!PG_ARGISNULL(5))
		snapshot_type = PointerGetDatum(es_name_arg(fcinfo, 5, "snapshot_type"));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "eventstore: SPI_connect failed");
	if (!PG_ARGISNULL(4))
		max_version = Min(max_version, es_version_at(st, PointerGetDatum(stream_id), PG_GETARG_DATUM(4)));
	state = es_fold(st, PointerGetDatum(stream_id), reducer, GetUserId(), InvalidOid,
					PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2),
					max_version, snapshot_type, false);
	if (state != (Datum) 0)
	{
		MemoryContext old = MemoryContextSwitchTo(caller_cxt);

		state = PointerGetDatum(PG_DETOAST_DATUM_COPY(state));
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	if (state == (Datum) 0)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(state);
}

/*
 * Write a snapshot of a stream of store st (upsert), as the extension's
 * owner; by_policy: written by the policy of its type.
 */
static void
es_write_snapshot(EsStore *st, Datum stream_id, int64 version, Datum state, Datum type, bool by_policy)
{
	Oid			argtypes[7] = {TEXTOID, TEXTOID, INT8OID, JSONBOID, BOOLOID, REGCLASSOID, TEXTOID};
	Datum		values[7] = {stream_id, type, Int64GetDatum(version), state, BoolGetDatum(by_policy),
	ObjectIdGetDatum(st->relid), CStringGetTextDatum(st->name)};
	bool		per_store = es_snapshots_per_store();
	bool		named = per_store && es_snapshots_named();

	/*
	 * created_at is the new row's default (now()): Citus refuses a function
	 * in DO UPDATE SET of a distributed table.  The conflict is by name where
	 * there is one: store takes the writer's OID of the store.  A store that
	 * is not distributed first drops its row of the version under another
	 * name (written before a rename), found by OID through the index.
	 */
	(void) es_registry_write(psprintf("%sINSERT INTO eventstore.snapshots"
									  " (stream_id, snapshot_type, stream_version, state, by_policy%s)"
									  " VALUES ($1, $2, $3, $4, $5%s)"
									  " ON CONFLICT ON CONSTRAINT snapshots_pkey DO UPDATE"
									  " SET state = EXCLUDED.state, by_policy = EXCLUDED.by_policy,"
									  " created_at = EXCLUDED.created_at%s",
									  named && !st->distributed ?
									  "WITH renamed AS (DELETE FROM eventstore.snapshots s"
									  " WHERE s.store OPERATOR(pg_catalog.=) $6 AND s.stream_id OPERATOR(pg_catalog.=) $1"
									  " AND s.snapshot_type OPERATOR(pg_catalog.=) $2"
									  " AND s.stream_version OPERATOR(pg_catalog.=) $3"
									  " AND s.store_name OPERATOR(pg_catalog.<>) $7) " : "",
									  named ? ", store, store_name" : per_store ? ", store" : "",
									  named ? ", $6, $7" : per_store ? ", $6" : "",
									  named ? ", store = EXCLUDED.store" : ""),
							 named ? 7 : per_store ? 6 : 5, argtypes, values, NULL);
}

/*
 * eventstore.save_snapshot(stream_id text, stream_version bigint, state jsonb,
 *		snapshot_type text DEFAULT 'default', store regclass DEFAULT
 *		'eventstore.events'): INSERT on the store is the privilege to save.
 */
Datum
eventstore_save_snapshot(PG_FUNCTION_ARGS)
{
	text	   *stream_id;
	int64		version;
	text	   *type = es_name_arg(fcinfo, 3, "snapshot_type");
	EsStore    *st = es_store_arg(fcinfo, 4, ACL_INSERT);

	stream_id = es_stream_id_arg(fcinfo, 0);
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("stream_version and state must not be null")));
	version = PG_GETARG_INT64(1);

	/*
	 * A type that a snapshot policy owns is the policy's alone: folds build
	 * on its snapshots, so a writer must not put a state of its choosing
	 * under it.  (A policy set concurrently is covered too: folds of its type
	 * ignore rows not written by it.)
	 */
	{
		Oid			argtypes[2] = {TEXTOID, REGCLASSOID};
		Datum		values[2] = {PointerGetDatum(type), ObjectIdGetDatum(st->relid)};
		bool		per_store = es_snapshots_per_store();

		if (es_registry_write(psprintf("SELECT FROM eventstore.snapshot_policies p"
									   " WHERE p.snapshot_type OPERATOR(pg_catalog.=) $1%s",
									   per_store ? " AND p.store OPERATOR(pg_catalog.=) $2" : ""),
							  per_store ? 2 : 1, argtypes, values, NULL) > 0)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("snapshot type \"%s\" belongs to a snapshot policy",
							text_to_cstring(type)),
					 errdetail("Only the policy writes snapshots of this type."),
					 errhint("Save under another snapshot type.")));
	}

	/*
	 * The version must exist in the stream (as this transaction sees it);
	 * looked up as the store's owner: the writer may have INSERT alone.
	 */
	{
		Oid			argtypes[2] = {TEXTOID, INT8OID};
		Datum		values[2] = {PointerGetDatum(stream_id), Int64GetDatum(version)};
		SPIPlanPtr	plan;
		Oid			save_userid;
		int			save_sec;
		uint64		found;

		GetUserIdAndSecContext(&save_userid, &save_sec);
		SetUserIdAndSecContext(st->owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "eventstore: SPI_connect failed");
		plan = st->plans[ES_PLAN_HAS_VERSION];
		if (plan == NULL)
		{
			char	   *sql = psprintf("SELECT FROM %s e WHERE e.stream_id OPERATOR(pg_catalog.=) $1"
									   " AND e.stream_version OPERATOR(pg_catalog.=) $2", st->name);

			plan = es_store_plan(st, ES_PLAN_HAS_VERSION, sql, 2, argtypes, 0);
			pfree(sql);
		}
		if (SPI_execute_plan(plan, values, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "eventstore: reading the stream failed");
		found = SPI_processed;
		SPI_finish();
		SetUserIdAndSecContext(save_userid, save_sec);
		if (found == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("stream \"%s\" has no version " INT64_FORMAT,
							text_to_cstring(stream_id), version)));
	}
	es_write_snapshot(st, PointerGetDatum(stream_id), version, PG_GETARG_DATUM(2), PointerGetDatum(type), false);
	PG_RETURN_VOID();
}

/*
 * eventstore.set_snapshot_policy(snapshot_type text, reducer regprocedure,
 *		every bigint, initial jsonb DEFAULT '{}', categories text[] DEFAULT NULL,
 *		store regclass DEFAULT 'eventstore.events')
 */
Datum
eventstore_set_snapshot_policy(PG_FUNCTION_ARGS)
{
	text	   *type = es_name_arg(fcinfo, 0, "snapshot_type");
	char	   *reducer;
	Datum		categories = es_text_list_arg(fcinfo, 4, "categories");
	EsStore    *st = es_registry_store_arg(fcinfo, 5, "snapshot policies");
	Oid			argtypes[7] = {TEXTOID, TEXTOID, INT8OID, JSONBOID, TEXTARRAYOID, REGROLEOID, REGCLASSOID};
	Datum		values[7];
	char		nulls[7] = "       ";

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("reducer and every must not be null")));
	if (PG_GETARG_INT64(2) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("every must be positive")));
	reducer = es_check_reducer(PG_GETARG_OID(1));
	values[0] = PointerGetDatum(type);
	values[1] = CStringGetTextDatum(reducer);
	values[2] = PG_GETARG_DATUM(2);
	values[3] = PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3);
	if (PG_ARGISNULL(3))
		nulls[3] = 'n';
	values[4] = categories;
	if (categories == (Datum) 0)
		nulls[4] = 'n';
	values[5] = ObjectIdGetDatum(es_function_owner(PG_GETARG_OID(1)));
	values[6] = ObjectIdGetDatum(st->relid);
	(void) es_registry_write("INSERT INTO eventstore.snapshot_policies"
							 " (snapshot_type, reducer, every, initial, categories, reducer_owner, store)"
							 " VALUES ($1, $2, $3, $4, $5, $6, $7)"
							 " ON CONFLICT ON CONSTRAINT snapshot_policies_pkey DO UPDATE"
							 " SET reducer = EXCLUDED.reducer, every = EXCLUDED.every,"
							 " initial = EXCLUDED.initial, categories = EXCLUDED.categories,"
							 " reducer_owner = EXCLUDED.reducer_owner",
							 7, argtypes, values, nulls);
	PG_RETURN_VOID();
}

/* eventstore.remove_snapshot_policy(snapshot_type text, store regclass DEFAULT 'eventstore.events') */
Datum
eventstore_remove_snapshot_policy(PG_FUNCTION_ARGS)
{
	text	   *type = es_name_arg(fcinfo, 0, "snapshot_type");
	EsStore    *st = es_registry_store_arg(fcinfo, 1, "snapshot policies");
	Oid			argtypes[2] = {TEXTOID, REGCLASSOID};
	Datum		values[2] = {PointerGetDatum(type), ObjectIdGetDatum(st->relid)};

	if (es_registry_write("DELETE FROM eventstore.snapshot_policies p"
						  " WHERE p.snapshot_type OPERATOR(pg_catalog.=) $1"
						  " AND p.store OPERATOR(pg_catalog.=) $2",
						  2, argtypes, values, NULL) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("snapshot policy \"%s\" does not exist", text_to_cstring(type))));
	PG_RETURN_VOID();
}

/*
 * After an append moved stream_id of store st from old_version to
 * new_version: for each policy of st whose period was crossed, fold the
 * stream (from its newest snapshot) and save a snapshot at new_version.  Each
 * reducer runs as its owner.  The policies' cache is pinned while reducers
 * run (they may read or append).
 */
static void
es_snapshot_policies_run(EsPolicies *policies, EsStore *st, Datum stream_id, int64 old_version,
						 int64 new_version)
{
	text	   *sid = DatumGetTextPP(stream_id);
	const char *sdata = VARDATA_ANY(sid);
	int			slen = VARSIZE_ANY_EXHDR(sid);
	const char *dash = memchr(sdata, '-', slen);
	int			catlen = dash ? (int) (dash - sdata) : slen;

	for (int i = 0; i < policies->n; i++)
	{
		EsPolicy   *p = &policies->items[i];
		bool		in_category = p->ncategories < 0;
		Datum		state;
		Datum		type;
		instr_time	start;

		if (p->store != st->relid || old_version / p->every == new_version / p->every)
			continue;
		for (int c = 0; !in_category && c < p->ncategories; c++)
			in_category = p->categories[c] != NULL && (int) strlen(p->categories[c]) == catlen &&
				memcmp(p->categories[c], sdata, catlen) == 0;
		if (!in_category)
			continue;
		if (!OidIsValid(p->reducer.fn))
			es_handler_require(&p->reducer, "reducer", psprintf("snapshot policy \"%s\"", p->snapshot_type),
							   "Remove the policy, or create the function again (as its registered owner).");
		type = CStringGetTextDatum(p->snapshot_type);
		start = es_stats_start();
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "eventstore: SPI_connect failed");
		state = es_fold(st, stream_id, p->reducer.fn, p->reducer.owner, st->owner, p->initial,
						new_version, type, true);
		if (state != (Datum) 0)
			state = SPI_datumTransfer(state, false, -1);	/* out of SPI memory */
		SPI_finish();
		if (state != (Datum) 0)
			es_write_snapshot(st, stream_id, new_version, state, type, true);
		es_stats_timed(ES_TIMER_POLICY, start);
	}
}

void
es_snapshot_after_append(EsStore *st, Datum stream_id, int64 old_version, int64 new_version)
{
	EsPolicies *policies;
	bool		any = false;

	es_registry_load(&es_policies_registry);
	policies = es_policies_registry.cache;
	for (int i = 0; i < policies->n && !any; i++)
		any = policies->items[i].store == st->relid;
	if (!any)
		return;
	policies = es_registry_pin(&es_policies_registry);
	PG_TRY();
	{
		es_snapshot_policies_run(policies, st, stream_id, old_version, new_version);
	}
	PG_FINALLY();
	{
		es_registry_unpin(&es_policies_registry);
	}
	PG_END_TRY();
}

/*
 * eventstore.load_snapshot(stream_id text, snapshot_type text DEFAULT
 *		'default', max_version bigint DEFAULT NULL, store regclass DEFAULT
 *		'eventstore.events') RETURNS TABLE (stream_version bigint, state jsonb,
 *		created_at timestamptz): the newest usable snapshot, for a caller who
 *		may read the store.  No row for a NULL snapshot_type.
 */
Datum
eventstore_load_snapshot(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	text	   *stream_id = es_stream_id_arg(fcinfo, 0);
	EsStore    *st = es_store_arg(fcinfo, 3, ACL_SELECT);
	int64		max_version = PG_ARGISNULL(2) ? PG_INT64_MAX : PG_GETARG_INT64(2);
	int64		version;
	Datum		state;
	Datum		created_at;

	InitMaterializedSRF(fcinfo, 0);
	if (PG_ARGISNULL(1))
		return (Datum) 0;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "eventstore: SPI_connect failed");
	if (es_load_snapshot(st, PointerGetDatum(stream_id), PG_GETARG_DATUM(1), max_version,
						 &version, &state, &created_at))
	{
		Datum		values[3];
		bool		nulls[3] = {false, state == (Datum) 0, false};

		values[0] = Int64GetDatum(version);
		values[1] = state;
		values[2] = created_at;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}
