/*
 * projection.c
 *		Synchronous projections: handlers called inside the appending
 *		transaction for every stored event, their registry, rebuild, and the
 *		C hook for other extensions.
 *
 * The registry is the table eventstore.projections, cached per backend like
 * every registry (registry.c): the enabled projections with a ready FmgrInfo
 * per handler, so dispatching an event plans no SQL.  A projection belongs to
 * one store and sees the events appended to it, and only those; names are
 * unique in the database, so a projection is managed by its name alone.
 *
 * During a dispatch the projections of an event are those cached when the
 * event's turn came: a handler that changes the registry affects the next
 * event, not the remaining projections of this one.  The registry is pinned
 * while handlers run (registry.c), so a cache replaced meanwhile is kept
 * until the outermost dispatch ends, since a handler of it may still be
 * executing.
 *
 * Handlers run as their owner (the role that owned the handler when it was
 * registered), like SECURITY DEFINER functions: the appending user lends
 * them no privileges.  An error in a handler aborts
 * the append and everything it did.  A handler may append; the nesting is
 * bounded by eventstore.max_projection_depth.  A projection whose handler has
 * been dropped fails the appends of the event types it matches, and only
 * those.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "compat.h"
#include "eventstore.h"
#include "eventstore_hooks.h"

PG_FUNCTION_INFO_V1(eventstore_register_projection);
PG_FUNCTION_INFO_V1(eventstore_unregister_projection);
PG_FUNCTION_INFO_V1(eventstore_enable_projection);
PG_FUNCTION_INFO_V1(eventstore_disable_projection);
PG_FUNCTION_INFO_V1(eventstore_rebuild_projection);

typedef struct EsProjection
{
	Oid			store;
	char	   *name;
	EsHandler	handler;
	int			ntypes;			/* -1: every event type */
	char	  **types;
} EsProjection;

/* The cache of enabled projections, in name order. */
typedef struct EsProjectionCache
{
	EsProjection *items;
	int			n;
} EsProjectionCache;

static int	es_proj_depth = 0;

static eventstore_event_appended_hook_type *es_hook_slot = NULL;

static void es_projections_fill(EsRegistry *reg, SPITupleTable *rows, MemoryContext cxt);

static EsRegistry es_projections_registry = {
	.relname = "projections",
	.query = "SELECT p.name, p.handler, pg_catalog.to_regprocedure(p.handler)::pg_catalog.oid,"
	" p.event_types, p.handler_owner::pg_catalog.oid, p.store::pg_catalog.oid"
	" FROM eventstore.projections p WHERE p.enabled"
	" ORDER BY p.name COLLATE pg_catalog.\"C\"",

	/*
	 * Before 0.6.0: no store column, every projection is the default
	 * store's; before 0.5.0 not even handler_owner (read through to_jsonb,
	 * which names no column), then the function's current owner.
	 */
	.since_column = "store",
	.query_before = "SELECT p.name, p.handler, pg_catalog.to_regprocedure(p.handler)::pg_catalog.oid,"
	" p.event_types,"
	" COALESCE((pg_catalog.to_jsonb(p) OPERATOR(pg_catalog.->>) 'handler_owner')::pg_catalog.regrole::pg_catalog.oid,"
	" (SELECT f.proowner FROM pg_catalog.pg_proc f"
	" WHERE f.oid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure(p.handler)::pg_catalog.oid)),"
	" 'eventstore.events'::pg_catalog.regclass::pg_catalog.oid"
	" FROM eventstore.projections p WHERE p.enabled"
	" ORDER BY p.name COLLATE pg_catalog.\"C\"",
	.fill = es_projections_fill,
};

void
es_projection_init(void)
{
	es_hook_slot = (eventstore_event_appended_hook_type *)
		find_rendezvous_variable(EVENTSTORE_HOOK_RENDEZVOUS);
	es_registry_init(&es_projections_registry);
}

static void
es_projections_fill(EsRegistry *reg, SPITupleTable *rows, MemoryContext cxt)
{
	EsProjectionCache *cache = MemoryContextAllocZero(cxt, sizeof(EsProjectionCache));
	uint64		n = rows ? rows->numvals : 0;
	Oid			rowtype = get_rel_type_id(es_events_relid());

	cache->items = MemoryContextAllocZero(cxt, sizeof(EsProjection) * Max(n, 1));
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = rows->vals[i];
		TupleDesc	desc = rows->tupdesc;
		EsProjection *p = &cache->items[i];
		bool		isnull;
		bool		fn_null;
		Datum		d;

		p->name = MemoryContextStrdup(cxt, TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull)));
		d = SPI_getbinval(tup, desc, 3, &fn_null);
		es_handler_resolve(&p->handler, TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull)),
						   d, fn_null, DatumGetObjectId(SPI_getbinval(tup, desc, 5, &isnull)),
						   1, &rowtype, InvalidOid, cxt);
		d = SPI_getbinval(tup, desc, 4, &isnull);
		p->ntypes = es_copy_text_array(d, isnull, cxt, &p->types);
		p->store = DatumGetObjectId(SPI_getbinval(tup, desc, 6, &isnull));
	}
	cache->n = (int) n;
	reg->cache = cache;
}

/* The current cache, loaded if needed. */
static EsProjectionCache *
es_projections(void)
{
	es_registry_load(&es_projections_registry);
	return es_projections_registry.cache;
}

static bool
es_type_matches(EsProjection *p, const char *type)
{
	if (p->ntypes < 0)
		return true;
	for (int i = 0; i < p->ntypes; i++)
		if (p->types[i] != NULL && strcmp(p->types[i], type) == 0)
			return true;
	return false;
}

/*
 * True when anything wants the stored rows of an append of these event types
 * (text datums) to store st: the C hook, or an enabled projection of st
 * matching one of them.
 */
bool
es_projections_wanted(EsStore *st, Datum *event_types, int n)
{
	EsProjectionCache *cache;
	bool		any = false;

	if (es_hook_slot != NULL && *es_hook_slot != NULL)
		return true;
	cache = es_projections();
	for (int i = 0; i < cache->n && !any; i++)
		any = cache->items[i].store == st->relid;
	if (!any)
		return false;
	if (es_upcasting(st))
		return true;			/* upcasting may turn any type into a projected one */
	for (int i = 0; i < cache->n; i++)
	{
		if (cache->items[i].store != st->relid)
			continue;
		if (cache->items[i].ntypes < 0)
			return true;
		for (int e = 0; e < n; e++)
		{
			char	   *type = TextDatumGetCString(event_types[e]);
			bool		match = es_type_matches(&cache->items[i], type);

			pfree(type);
			if (match)
				return true;
		}
	}
	return false;
}

/*
 * Call a handler with one argument (or none), as its owner.  Unlike
 * FunctionCall1, a NULL result is fine: a handler's result is ignored, and a
 * void SQL function returns NULL.
 */
static void
es_call_handler(EsHandler *handler, int nargs, Datum arg)
{
	LOCAL_FCINFO(fcinfo, 1);

	InitFunctionCallInfoData(*fcinfo, &handler->flinfo, nargs, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = arg;
	fcinfo->args[0].isnull = false;
	(void) es_call_as(handler->owner, fcinfo);
}

/* A stored row as a Datum of type eventstore.events. */
static Datum
es_row_datum(HeapTuple tup, TupleDesc desc, Oid rowtype)
{
	Datum		row = heap_copy_tuple_as_datum(tup, desc);

	HeapTupleHeaderSetTypeId(DatumGetHeapTupleHeader(row), rowtype);
	HeapTupleHeaderSetTypMod(DatumGetHeapTupleHeader(row), -1);
	return row;
}

/*
 * The event type of a row of store st and the row as a Datum of type
 * eventstore.events, as handlers see it: upcast when st has upcasters (then
 * built at once), else built only when first needed (*row stays 0).
 */
static char *
es_row_for_handlers(EsStore *st, HeapTuple tup, TupleDesc desc, Oid rowtype, int type_att, Datum *row)
{
	bool		isnull;

	*row = (Datum) 0;
	if (es_upcasting(st))
	{
		*row = es_upcast_row(st, es_row_datum(tup, desc, rowtype));
		return TextDatumGetCString(GetAttributeByName(DatumGetHeapTupleHeader(*row),
													  "event_type", &isnull));
	}
	return TextDatumGetCString(heap_getattr(tup, type_att, desc, &isnull));
}

/* Call the projections of cache on store st that match one row stored in it. */
static void
es_project_row(EsProjectionCache *cache, EsStore *st, HeapTuple tup, TupleDesc desc, Oid rowtype,
			   int type_att)
{
	Datum		row;
	char	   *type;
	bool		any = false;

	for (int i = 0; i < cache->n && !any; i++)
		any = cache->items[i].store == st->relid;
	if (!any)
		return;
	type = es_row_for_handlers(st, tup, desc, rowtype, type_att, &row);
	for (int i = 0; i < cache->n; i++)
	{
		EsProjection *p = &cache->items[i];

		if (p->store != st->relid || !es_type_matches(p, type))
			continue;
		if (!OidIsValid(p->handler.fn))
			es_handler_require(&p->handler, "handler", psprintf("projection \"%s\"", p->name),
							   "Unregister or disable the projection, or create the function again (as its registered owner).");
		if (row == (Datum) 0)
			row = es_row_datum(tup, desc, rowtype);
		{
			instr_time	start = es_stats_start();

			es_call_handler(&p->handler, 1, row);
			es_stats_projection(p->name, start);
		}
	}
	pfree(type);
}

/*
 * Call the hook and every matching projection of st for each row, in order.
 * rows are rows of st as returned by INSERT ... RETURNING *: of the same
 * columns as eventstore.events, as every store.
 */
void
es_projections_dispatch(EsStore *st, HeapTuple *rows, uint64 nrows, TupleDesc desc)
{
	Oid			rowtype = get_rel_type_id(es_events_relid());
	TupleDesc	reldesc = lookup_rowtype_tupdesc(rowtype, -1);
	int			natts = reldesc->natts;
	int			type_att = SPI_fnumber(desc, "event_type");

	ReleaseTupleDesc(reldesc);
	if (natts != desc->natts)
		elog(ERROR, "eventstore: events row has %d columns, expected %d", desc->natts, natts);

	if (es_proj_depth >= es_max_projection_depth)
		ereport(ERROR,
				(errcode(ERRCODE_STATEMENT_TOO_COMPLEX),
				 errmsg("projections nested deeper than eventstore.max_projection_depth (%d)",
						es_max_projection_depth),
				 errdetail("A projection handler appended events whose projections appended events, and so on."),
				 errhint("Check the projections for a cycle, or raise eventstore.max_projection_depth.")));

	es_proj_depth++;
	(void) es_registry_pin(&es_projections_registry);
	PG_TRY();
	{
		for (uint64 r = 0; r < nrows; r++)
		{
			if (es_hook_slot != NULL && *es_hook_slot != NULL)
				(*es_hook_slot) (st->relid, rows[r], desc);
			es_project_row(es_projections(), st, rows[r], desc, rowtype, type_att);
		}
	}
	PG_FINALLY();
	{
		es_proj_depth--;
		es_registry_unpin(&es_projections_registry);
	}
	PG_END_TRY();
}

/*
 * eventstore.register_projection(name text, handler regprocedure,
 *		event_types text[] DEFAULT NULL, reset_handler regprocedure DEFAULT NULL,
 *		store regclass DEFAULT 'eventstore.events')
 */
Datum
eventstore_register_projection(PG_FUNCTION_ARGS)
{
	text	   *name = es_name_arg(fcinfo, 0, "projection name");
	Datum		types = es_text_list_arg(fcinfo, 2, "event_types");
	EsStore    *st = es_registry_store_arg(fcinfo, 4, "projections");
	char	   *handler;
	char	   *reset = NULL;
	Oid			owner;
	Oid			argtypes[6] = {TEXTOID, TEXTOID, TEXTARRAYOID, TEXTOID, REGROLEOID, REGCLASSOID};
	Datum		values[6];
	char		nulls[6] = "      ";

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("handler must not be null")));
	{
		Oid			rowtype = get_rel_type_id(es_events_relid());

		handler = es_check_function(PG_GETARG_OID(1), "projection handler", 1, &rowtype, InvalidOid);
		owner = es_function_owner(PG_GETARG_OID(1));
		if (!PG_ARGISNULL(3))
		{
			reset = es_check_function(PG_GETARG_OID(3), "reset handler", 0, NULL, InvalidOid);
			if (es_function_owner(PG_GETARG_OID(3)) != owner)
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("reset handler %s and handler %s must have the same owner", reset, handler),
						 errdetail("Both run as the owner of the handler.")));
		}
	}

	values[0] = PointerGetDatum(name);
	if (es_registry_write("SELECT FROM eventstore.projections p WHERE p.name OPERATOR(pg_catalog.=) $1",
						  1, argtypes, values, NULL) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("projection \"%s\" already exists", text_to_cstring(name))));

	values[1] = CStringGetTextDatum(handler);
	values[2] = types;
	if (types == (Datum) 0)
		nulls[2] = 'n';
	values[3] = reset ? CStringGetTextDatum(reset) : (Datum) 0;
	if (reset == NULL)
		nulls[3] = 'n';
	values[4] = ObjectIdGetDatum(owner);
	values[5] = ObjectIdGetDatum(st->relid);
	(void) es_registry_write("INSERT INTO eventstore.projections"
							 " (name, handler, event_types, reset_handler, handler_owner, store)"
							 " VALUES ($1, $2, $3, $4, $5, $6)", 6, argtypes, values, nulls);
	PG_RETURN_VOID();
}

/*
 * The store of projection name, for es_registry_store_check; InvalidOid when
 * there is no such projection.
 */
static Oid
es_projection_store(text *name)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {PointerGetDatum(name)};
	Oid			store = InvalidOid;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "eventstore: SPI_connect failed");
	if (SPI_execute_with_args("SELECT p.store::pg_catalog.oid FROM eventstore.projections p"
							  " WHERE p.name OPERATOR(pg_catalog.=) $1",
							  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "eventstore: reading eventstore.projections failed");
	if (SPI_processed > 0)
	{
		bool		isnull;

		store = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	SPI_finish();
	return store;
}

/* Enable, disable or (drop) unregister a projection by name. */
static void
es_set_projection(FunctionCallInfo fcinfo, bool enabled, bool drop)
{
	text	   *name = es_name_arg(fcinfo, 0, "projection name");
	Oid			argtypes[2] = {TEXTOID, BOOLOID};
	Datum		values[2] = {PointerGetDatum(name), BoolGetDatum(enabled)};
	Oid			store = es_projection_store(name);
	uint64		n;

	if (OidIsValid(store))
		es_registry_store_check(store, "projections");

	if (drop)
		n = es_registry_write("DELETE FROM eventstore.projections p WHERE p.name OPERATOR(pg_catalog.=) $1",
							  1, argtypes, values, NULL);
	else
		n = es_registry_write("UPDATE eventstore.projections p SET enabled = $2"
							  " WHERE p.name OPERATOR(pg_catalog.=) $1",
							  2, argtypes, values, NULL);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("projection \"%s\" does not exist", text_to_cstring(name))));
}

/* eventstore.unregister_projection(name text) */
Datum
eventstore_unregister_projection(PG_FUNCTION_ARGS)
{
	es_set_projection(fcinfo, false, true);
	PG_RETURN_VOID();
}

/* eventstore.enable_projection(name text) */
Datum
eventstore_enable_projection(PG_FUNCTION_ARGS)
{
	es_set_projection(fcinfo, true, false);
	PG_RETURN_VOID();
}

/* eventstore.disable_projection(name text) */
Datum
eventstore_disable_projection(PG_FUNCTION_ARGS)
{
	es_set_projection(fcinfo, false, false);
	PG_RETURN_VOID();
}

/*
 * eventstore.rebuild_projection(name) RETURNS bigint: reset, then replay the
 * whole log of the projection's store through the handler, as read_all reads
 * it: without the events the lifecycle hides, with data decrypted.  Appends wait for
 * the rebuild: it locks the store's table in SHARE mode, which waits for open
 * appending transactions and holds new ones back until the rebuilding
 * transaction ends, then reads every committed event with a fresh snapshot.
 * The caller must be able to read the store.
 */
Datum
eventstore_rebuild_projection(PG_FUNCTION_ARGS)
{
	text	   *name;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	EsHandler	reset;
	bool		isnull;
	bool		reset_null;
	int			ntypes;
	char	  **types = NULL;
	EsProjection proj;
	Portal		portal;
	Snapshot	snapshot;
	int64		count = 0;
	int			type_att;
	Oid			rowtype = get_rel_type_id(es_events_relid());
	MemoryContext row_cxt;
	EsStore    *st;
	char	   *sql;

	name = es_name_arg(fcinfo, 0, "projection name");
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("rebuild_projection must run in a READ COMMITTED transaction"),
				 errdetail("It waits for open appends; an older transaction snapshot would not see them.")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "eventstore: SPI_connect failed");
	values[0] = PointerGetDatum(name);
	if (SPI_execute_with_args("SELECT p.handler, pg_catalog.to_regprocedure(p.handler)::pg_catalog.oid,"
							  " p.reset_handler, pg_catalog.to_regprocedure(p.reset_handler)::pg_catalog.oid,"
							  " p.event_types, p.handler_owner::pg_catalog.oid, p.store::pg_catalog.oid"
							  " FROM eventstore.projections p WHERE p.name OPERATOR(pg_catalog.=) $1",
							  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "eventstore: reading eventstore.projections failed");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("projection \"%s\" does not exist", text_to_cstring(name))));
	memset(&proj, 0, sizeof(proj));
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		Oid			owner = DatumGetObjectId(SPI_getbinval(tup, desc, 6, &isnull));
		char	   *of = psprintf("projection \"%s\"", text_to_cstring(name));
		const char *hint = "Create the function again (as the projection's registered owner), or register the projection again.";
		Datum		fn;
		bool		fn_null;
		Datum		t;
		Oid			store = DatumGetObjectId(SPI_getbinval(tup, desc, 7, &isnull));

		es_registry_store_check(store, "projections");
		st = es_store(store);
		es_store_check(st, ACL_SELECT);

		/* checked like the cache's handlers: the same function, the same owner */
		fn = SPI_getbinval(tup, desc, 2, &fn_null);
		es_handler_resolve(&proj.handler, TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull)),
						   fn, fn_null, owner, 1, &rowtype, InvalidOid, CurrentMemoryContext);
		es_handler_require(&proj.handler, "handler", of, hint);
		t = SPI_getbinval(tup, desc, 3, &reset_null);
		if (!reset_null)
		{
			fn = SPI_getbinval(tup, desc, 4, &fn_null);
			es_handler_resolve(&reset, TextDatumGetCString(t), fn, fn_null, owner, 0, NULL,
							   InvalidOid, CurrentMemoryContext);
			es_handler_require(&reset, "reset handler", of, hint);
		}
		t = SPI_getbinval(tup, desc, 5, &isnull);
		ntypes = es_copy_text_array(t, isnull, CurrentMemoryContext, &types);
	}

	/* Hold appends back and wait for the open ones. */
	LockRelationOid(st->relid, ShareLock);

	if (!reset_null)
		es_call_handler(&reset, 0, (Datum) 0);

	proj.ntypes = ntypes;
	proj.types = types;

	snapshot = RegisterSnapshot(GetLatestSnapshot());
	PushActiveSnapshot(snapshot);
	/* what read_all returns: hidden events skipped, data decrypted or forgotten */
	if (es_lifecycle_active(st->relid, snapshot))
		sql = psprintf("SELECT %s FROM %s e WHERE true%s ORDER BY e.global_position",
					   es_lifecycle_row_sql(st), st->name, es_lifecycle_filter_sql(st));
	else
		sql = psprintf("SELECT e.* FROM %s e ORDER BY e.global_position", st->name);
	portal = SPI_cursor_open_with_args(NULL, sql, 0, NULL, NULL, NULL, true, 0);
	PopActiveSnapshot();

	/*
	 * Memory stays bounded however long the log: rows come in batches, and
	 * each row (its copy, its upcasting, its handler call) runs in a context
	 * reset after it.
	 */
	row_cxt = AllocSetContextCreate(CurrentMemoryContext, "eventstore rebuild row",
									ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		SPITupleTable *batch;
		uint64		nbatch;

		SPI_cursor_fetch(portal, true, 1000);
		batch = SPI_tuptable;
		nbatch = SPI_processed;
		if (nbatch == 0)
			break;
		type_att = SPI_fnumber(batch->tupdesc, "event_type");
		for (uint64 r = 0; r < nbatch; r++)
		{
			MemoryContext old = MemoryContextSwitchTo(row_cxt);
			Datum		row;
			char	   *type = es_row_for_handlers(st, batch->vals[r], batch->tupdesc, rowtype,
												   type_att, &row);

			if (es_type_matches(&proj, type))
			{
				if (row == (Datum) 0)
					row = es_row_datum(batch->vals[r], batch->tupdesc, rowtype);
				es_call_handler(&proj.handler, 1, row);
				count++;
			}
			MemoryContextSwitchTo(old);
			MemoryContextReset(row_cxt);
		}
		SPI_freetuptable(batch);
	}
	MemoryContextDelete(row_cxt);
	SPI_cursor_close(portal);
	UnregisterSnapshot(snapshot);
	SPI_finish();
	PG_RETURN_INT64(count);
}
