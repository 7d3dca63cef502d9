/*
 * upcast.c
 *		Event upcasting: stored events never change, but reads, projections
 *		and reducers see them through registered upcasters.
 *
 * An upcaster is a function (eventstore.events) RETURNS eventstore.events
 * registered for one event type.  It may change the type, data and metadata;
 * if the new type has an upcaster too, that one runs next (v1 -> v2 -> v3).
 * A chain that comes back to a type it has been through is an error, and so
 * is an upcaster that changes an event's identity (position, stream,
 * version, id).  The registry is eventstore.upcasters, cached per backend
 * (registry.c); with no upcaster registered the read functions skip the
 * upcasting branch of their query altogether (eventstore._upcasting() is a
 * one-time filter), so it costs nothing.
 *
 * Upcasters belong to a store: those registered on a store apply to the
 * events read from it, and only to those.  Rows of any store reach the
 * upcasters (and the handlers after them) as rows of type eventstore.events:
 * every store is a table of type eventstore.event_store, so the columns are
 * the same, in the same order.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/typcache.h"
#include "utils/uuid.h"

#include "eventstore.h"

PG_FUNCTION_INFO_V1(eventstore_upcast);
PG_FUNCTION_INFO_V1(eventstore_upcast_in);
PG_FUNCTION_INFO_V1(eventstore_upcasting);
PG_FUNCTION_INFO_V1(eventstore_register_upcaster);
PG_FUNCTION_INFO_V1(eventstore_unregister_upcaster);

/* Longest chain of upcasters applied to one event. */
#define ES_MAX_UPCAST_CHAIN 32

typedef struct EsUpcaster
{
	Oid			store;
	char	   *event_type;
	EsHandler	handler;
} EsUpcaster;

typedef struct EsUpcasters
{
	int			n;
	EsUpcaster *items;
} EsUpcasters;

static void es_upcasters_fill(EsRegistry *reg, SPITupleTable *rows, MemoryContext cxt);

static EsRegistry es_upcasters_registry = {
	.relname = "upcasters",
	.query = "SELECT u.event_type, u.handler, pg_catalog.to_regprocedure(u.handler)::pg_catalog.oid,"
	" u.handler_owner::pg_catalog.oid, u.store::pg_catalog.oid FROM eventstore.upcasters u",

	/*
	 * Before 0.6.0: no store column, every upcaster is the default store's;
	 * before 0.5.0 not even handler_owner (read through to_jsonb, which
	 * names no column), then the function's current owner.
	 */
	.since_column = "store",
	.query_before = "SELECT u.event_type, u.handler, pg_catalog.to_regprocedure(u.handler)::pg_catalog.oid,"
	" COALESCE((pg_catalog.to_jsonb(u) OPERATOR(pg_catalog.->>) 'handler_owner')::pg_catalog.regrole::pg_catalog.oid,"
	" (SELECT f.proowner FROM pg_catalog.pg_proc f"
	" WHERE f.oid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure(u.handler)::pg_catalog.oid)),"
	" 'eventstore.events'::pg_catalog.regclass::pg_catalog.oid"
	" FROM eventstore.upcasters u",
	.fill = es_upcasters_fill,
};

void
es_upcast_init(void)
{
	es_registry_init(&es_upcasters_registry);
}

static void
es_upcasters_fill(EsRegistry *reg, SPITupleTable *rows, MemoryContext cxt)
{
	EsUpcasters *cache = MemoryContextAllocZero(cxt, sizeof(EsUpcasters));
	uint64		n = rows ? rows->numvals : 0;
	Oid			rowtype = get_rel_type_id(es_events_relid());

	cache->items = MemoryContextAllocZero(cxt, sizeof(EsUpcaster) * Max(n, 1));
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = rows->vals[i];
		TupleDesc	desc = rows->tupdesc;
		EsUpcaster *u = &cache->items[i];
		bool		isnull;
		bool		fn_null;
		Datum		fn;
		Oid			owner;

		u->event_type = MemoryContextStrdup(cxt, TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull)));
		fn = SPI_getbinval(tup, desc, 3, &fn_null);
		owner = DatumGetObjectId(SPI_getbinval(tup, desc, 4, &isnull));
		u->store = DatumGetObjectId(SPI_getbinval(tup, desc, 5, &isnull));
		es_handler_resolve(&u->handler, TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull)),
						   fn, fn_null, owner, 1, &rowtype, rowtype, cxt);
	}
	cache->n = (int) n;
	reg->cache = cache;
}

static EsUpcasters *
es_upcasters(void)
{
	es_registry_load(&es_upcasters_registry);
	return es_upcasters_registry.cache;
}

/* True when at least one upcaster is registered on store st. */
bool
es_upcasting(EsStore *st)
{
	EsUpcasters *cache = es_upcasters();

	for (int i = 0; i < cache->n; i++)
		if (cache->items[i].store == st->relid)
			return true;
	return false;
}

/*
 * The FROM-clause addition that upcasts row e of st into u (of type
 * eventstore.events); with row, the columns of the row to upcast instead of
 * e's (the lifecycle read's, with data decrypted).  The default store's rows
 * are of that type already; another store's are made into it, and name
 * their store to _upcast, which applies that store's upcasters.
 */
const char *
es_upcast_sql(EsStore *st, const char *row)
{
	if (row == NULL && st->is_default)
		return " CROSS JOIN LATERAL eventstore._upcast(e) u";
	if (row == NULL)
		row = "e.*";
	if (st->is_default)
		return psprintf(" CROSS JOIN LATERAL eventstore._upcast(ROW(%s)::eventstore.events) u", row);
	return psprintf(" CROSS JOIN LATERAL eventstore._upcast(ROW(%s)::eventstore.events,"
					" %u::pg_catalog.oid::pg_catalog.regclass) u", row, st->relid);
}

static EsUpcaster *
es_find_upcaster(EsUpcasters *cache, Oid store, const char *type)
{
	for (int i = 0; i < cache->n; i++)
		if (cache->items[i].store == store && strcmp(cache->items[i].event_type, type) == 0)
			return &cache->items[i];
	return NULL;
}

static Datum
es_row_field(HeapTupleHeader row, const char *name, bool *isnull)
{
	return GetAttributeByName(row, name, isnull);
}

/* True when a and b are the same event (position, stream, version, id). */
static bool
es_same_identity(HeapTupleHeader a, HeapTupleHeader b)
{
	static const char *const keys[] = {"global_position", "stream_id", "stream_version", "event_id",
	"created_at"};

	for (int i = 0; i < (int) lengthof(keys); i++)
	{
		bool		anull,
					bnull;
		Datum		av = es_row_field(a, keys[i], &anull);
		Datum		bv = es_row_field(b, keys[i], &bnull);

		if (anull || bnull)
			return false;
		if (i == 1)
		{
			if (!datumIsEqual(av, bv, false, -1))
				return false;
		}
		else if (i == 3)
		{
			if (memcmp(DatumGetUUIDP(av), DatumGetUUIDP(bv), UUID_LEN) != 0)
				return false;
		}
		else if (DatumGetInt64(av) != DatumGetInt64(bv))	/* int8, timestamptz */
			return false;
	}
	return true;
}

/*
 * Apply cache's upcasters to row (see es_upcast_row); the cache is pinned
 * by the caller, since the upcasters run user code.
 */
static Datum
es_upcast_pinned(EsUpcasters *cache, Oid store, Datum row)
{
	char	   *seen[ES_MAX_UPCAST_CHAIN];
	int			nseen = 0;
	const char *last_handler = NULL;

	for (;;)
	{
		HeapTupleHeader td = DatumGetHeapTupleHeader(row);
		bool		type_null;
		bool		data_null;
		Datum		type_datum = es_row_field(td, "event_type", &type_null);
		char	   *type;
		EsUpcaster *u;
		LOCAL_FCINFO(fcinfo, 1);
		Datum		result;

		(void) es_row_field(td, "data", &data_null);
		if (type_null || data_null)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("upcaster %s returned an event without %s",
							last_handler ? last_handler : "?",
							type_null ? "event_type" : "data")));
		type = TextDatumGetCString(type_datum);
		u = es_find_upcaster(cache, store, type);

		if (u == NULL)
			return row;
		for (int i = 0; i < nseen; i++)
			if (strcmp(seen[i], type) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_RECURSION),
						 errmsg("upcasters form a cycle at event type \"%s\"", type),
						 errhint("Unregister one of the upcasters of the cycle.")));
		if (nseen == ES_MAX_UPCAST_CHAIN)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("more than %d upcasters chained for one event", ES_MAX_UPCAST_CHAIN)));
		seen[nseen++] = type;
		if (!OidIsValid(u->handler.fn))
			es_handler_require(&u->handler, "upcaster", psprintf("event type \"%s\"", type),
					   "Unregister the upcaster, or create the function again (as its registered owner).");

		InitFunctionCallInfoData(*fcinfo, &u->handler.flinfo, 1, InvalidOid, NULL, NULL);
		fcinfo->args[0].value = row;
		fcinfo->args[0].isnull = false;
		{
			instr_time	start = es_stats_start();

			result = es_call_as(u->handler.owner, fcinfo);
			es_stats_timed(ES_TIMER_UPCASTER, start);
		}
		if (fcinfo->isnull)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("upcaster %s returned NULL for an event of type \"%s\"", u->handler.name, type)));
		if (!es_same_identity(td, DatumGetHeapTupleHeader(result)))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("upcaster %s changed the identity of an event of type \"%s\"",
							u->handler.name, type),
					 errdetail("An upcaster may change event_type, data and metadata, not the position, stream, version, event id or time.")));
		row = result;
		last_handler = u->handler.name;
	}
}

/*
 * The event row (a Datum of type eventstore.events) read from store st as
 * st's upcasters make it; the row itself when no upcaster applies.  The upcasters' cache stays
 * pinned while they run: an upcaster that reads, appends or otherwise lets
 * an invalidation in makes the next event use a new cache, and this one
 * stays valid until it is done.
 */
Datum
es_upcast_row(EsStore *st, Datum row)
{
	EsUpcasters *cache;
	volatile Datum result = row;

	if (!es_upcasting(st))
		return row;
	cache = es_registry_pin(&es_upcasters_registry);
	PG_TRY();
	{
		result = es_upcast_pinned(cache, st->relid, result);
	}
	PG_FINALLY();
	{
		es_registry_unpin(&es_upcasters_registry);
	}
	PG_END_TRY();
	return result;
}

/* eventstore._upcast(e eventstore.events) RETURNS eventstore.events: the default store's upcasters */
Datum
eventstore_upcast(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATUM(es_upcast_row(es_default_store(), PG_GETARG_DATUM(0)));
}

/*
 * eventstore._upcast(e eventstore.events, store regclass) RETURNS
 * eventstore.events: store's upcasters, for a caller who may read store.
 */
Datum
eventstore_upcast_in(PG_FUNCTION_ARGS)
{
	EsStore    *st = es_store_arg(fcinfo, 1, ACL_SELECT);

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	PG_RETURN_DATUM(es_upcast_row(st, PG_GETARG_DATUM(0)));
}

/* eventstore._upcasting() RETURNS boolean: is any upcaster registered? */
Datum
eventstore_upcasting(PG_FUNCTION_ARGS)
{
	(void) fcinfo;
	PG_RETURN_BOOL(es_upcasting(es_default_store()));
}

/*
 * eventstore.register_upcaster(event_type text, handler regprocedure, store
 * regclass DEFAULT 'eventstore.events').  Plans that read the store are
 * invalidated, so none keeps a folded "no upcaster" (eventstore._upcasting()).
 */
Datum
eventstore_register_upcaster(PG_FUNCTION_ARGS)
{
	text	   *type = es_name_arg(fcinfo, 0, "event_type");
	EsStore    *st = es_registry_store_arg(fcinfo, 2, "upcasters");
	Oid			rowtype = get_rel_type_id(es_events_relid());
	Oid			argtypes[4] = {TEXTOID, TEXTOID, REGROLEOID, REGCLASSOID};
	Datum		values[4];
	char	   *handler;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("handler must not be null")));
	handler = es_check_function(PG_GETARG_OID(1), "upcaster", 1, &rowtype, rowtype);
	values[0] = PointerGetDatum(type);
	values[1] = CStringGetTextDatum(handler);
	values[2] = ObjectIdGetDatum(es_function_owner(PG_GETARG_OID(1)));
	values[3] = ObjectIdGetDatum(st->relid);
	if (es_registry_write("SELECT FROM eventstore.upcasters u WHERE u.event_type OPERATOR(pg_catalog.=) $1"
						  " AND u.store OPERATOR(pg_catalog.=) $4",
						  4, argtypes, values, NULL) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("an upcaster for event type \"%s\" already exists in store %s",
						text_to_cstring(type), st->name)));
	(void) es_registry_write("INSERT INTO eventstore.upcasters (event_type, handler, handler_owner, store)"
							 " VALUES ($1, $2, $3, $4)", 4, argtypes, values, NULL);
	CacheInvalidateRelcacheByRelid(st->relid);
	PG_RETURN_VOID();
}

/* eventstore.unregister_upcaster(event_type text, store regclass DEFAULT 'eventstore.events') */
Datum
eventstore_unregister_upcaster(PG_FUNCTION_ARGS)
{
	text	   *type = es_name_arg(fcinfo, 0, "event_type");
	EsStore    *st = es_registry_store_arg(fcinfo, 1, "upcasters");
	Oid			argtypes[2] = {TEXTOID, REGCLASSOID};
	Datum		values[2] = {PointerGetDatum(type), ObjectIdGetDatum(st->relid)};

	if (es_registry_write("DELETE FROM eventstore.upcasters u WHERE u.event_type OPERATOR(pg_catalog.=) $1"
						  " AND u.store OPERATOR(pg_catalog.=) $2",
						  2, argtypes, values, NULL) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("no upcaster for event type \"%s\" exists in store %s",
						text_to_cstring(type), st->name)));
	CacheInvalidateRelcacheByRelid(st->relid);
	PG_RETURN_VOID();
}
