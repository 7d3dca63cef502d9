/*
 * outbox.c
 *		The transactional outbox: routes, the outbox rows an append writes for
 *		matching events, and eventstore.enqueue() for plain messages.
 *
 * Outbox rows are written in the appending transaction, so they exist if and
 * only if the events do.  Their ids come from a sequence through horizon.c,
 * so the relay can publish them in id order without skipping one whose
 * transaction commits late.  A transaction that wrote outbox rows wakes the
 * relay worker of its database when it commits (relay_worker.c).
 *
 * The routes (eventstore.routes) are a registry (registry.c), cached per
 * backend.  With no route the append path costs one cached test.  A route
 * belongs to a store (routes.store) and matches that store's events only;
 * the outbox rows of a store's events name it (outbox.store), and a
 * message of enqueue() belongs to none.  Channel names are unique per
 * database, whatever the store.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "eventstore.h"
#include "access/htup_details.h"
#include "funcapi.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/syscache.h"

/* eventstore.events has 9 columns; room for a few more added to every store */
#define ES_EVENT_COLUMNS_MAX 32

PG_FUNCTION_INFO_V1(eventstore_enqueue);
PG_FUNCTION_INFO_V1(eventstore_add_route);
PG_FUNCTION_INFO_V1(eventstore_remove_route);
PG_FUNCTION_INFO_V1(eventstore_channel_arg);
PG_FUNCTION_INFO_V1(eventstore_outbox_event);
PG_FUNCTION_INFO_V1(eventstore_outbox_shown);

typedef struct EsRoute
{
	char	   *channel;
	int			ntypes;			/* -1: every event type */
	char	  **types;
	int			ncategories;	/* -1: every category */
	char	  **categories;
	bool		with_data;		/* false: NOTIFY payloads carry ids only */
	Oid			store;			/* InvalidOid: the default store (schema before 0.6.0) */
} EsRoute;

typedef struct EsRoutes
{
	int			n;
	EsRoute    *items;
} EsRoutes;

static void es_routes_fill(EsRegistry *reg, SPITupleTable *rows, MemoryContext cxt);

/*
 * The routes query, since 0.6.0 (routes.store) and before: then every route
 * is the default store's, and routes.with_data (0.5.0 on) is read by name
 * from the row as jsonb, so that a 0.4.0 schema (no such column: every
 * route sends data) is read too.
 */
#define ES_ROUTES_QUERY(with_data, store) \
	"SELECT r.channel, r.event_types, r.categories, " with_data ", " store \
	" FROM eventstore.routes r ORDER BY r.channel COLLATE pg_catalog.\"C\""

static EsRegistry es_routes_registry = {
	.relname = "routes",
	.query = ES_ROUTES_QUERY("r.with_data", "r.store::pg_catalog.oid"),
	.since_column = "store",
	.query_before = ES_ROUTES_QUERY("COALESCE((pg_catalog.to_jsonb(r) OPERATOR(pg_catalog.->>) 'with_data')::pg_catalog.bool, true)",
									"NULL::pg_catalog.oid"),
	.fill = es_routes_fill,
};

/*
 * Outbox inserts; [1]: with the with_data column, only needed for false;
 * [2]: with with_data and store, for the events of a store other than the
 * default one (column default) and messages (NULL) in a 0.6.0 schema.
 */
static SPIPlanPtr es_plan_route_insert[3] = {NULL, NULL, NULL};
static SPIPlanPtr es_plan_enqueue[3] = {NULL, NULL, NULL};

void
es_outbox_init(void)
{
	es_registry_init(&es_routes_registry);
}

/*
 * Load the routes (the registry reads routes.with_data if the schema has it:
 * a database not yet updated to 0.5.0 has none, and every route sends data).
 */
static EsRoutes *
es_routes_load(void)
{
	es_registry_load(&es_routes_registry);
	return es_routes_registry.cache;
}

/* Whether messages of channel are published with their data. */
static bool
es_channel_with_data(text *channel)
{
	EsRoutes   *routes = es_routes_load();
	int			len = VARSIZE_ANY_EXHDR(channel);

	for (int r = 0; r < routes->n; r++)
		if ((int) strlen(routes->items[r].channel) == len &&
			memcmp(routes->items[r].channel, VARDATA_ANY(channel), len) == 0)
			return routes->items[r].with_data;
	return true;
}

static void
es_routes_fill(EsRegistry *reg, SPITupleTable *rows, MemoryContext cxt)
{
	EsRoutes   *routes = MemoryContextAllocZero(cxt, sizeof(EsRoutes));
	uint64		n = rows ? rows->numvals : 0;

	routes->items = MemoryContextAllocZero(cxt, sizeof(EsRoute) * Max(n, 1));
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = rows->vals[i];
		TupleDesc	desc = rows->tupdesc;
		EsRoute    *r = &routes->items[i];
		bool		isnull;
		Datum		d;

		r->channel = MemoryContextStrdup(cxt, TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull)));
		d = SPI_getbinval(tup, desc, 2, &isnull);
		r->ntypes = es_copy_text_array(d, isnull, cxt, &r->types);
		d = SPI_getbinval(tup, desc, 3, &isnull);
		r->ncategories = es_copy_text_array(d, isnull, cxt, &r->categories);
		d = SPI_getbinval(tup, desc, 4, &isnull);
		r->with_data = isnull || DatumGetBool(d);
		d = SPI_getbinval(tup, desc, 5, &isnull);
		r->store = isnull ? InvalidOid : DatumGetObjectId(d);
	}
	routes->n = (int) n;
	reg->cache = routes;
}

/* Whether s (len bytes) is in list (n < 0: a list of everything). */
bool
es_in_list(char **list, int n, const char *s, int len)
{
	if (n < 0)
		return true;
	for (int i = 0; i < n; i++)
		if (list[i] != NULL && (int) strlen(list[i]) == len && memcmp(list[i], s, len) == 0)
			return true;
	return false;
}

/* Whether route r matches the events of store st. */
static inline bool
es_route_of_store(EsRoute *r, EsStore *st)
{
	return OidIsValid(r->store) ? r->store == st->relid : st->is_default;
}

/*
 * Write the outbox rows of one append to store st: for each event (in
 * order), one row per matching route of st.  Runs inside the append's SPI
 * connection; the rows are written as the extension's owner (the store's
 * owner, which the append runs as, need not be able to write the outbox).
 */
void
es_outbox_route(EsStore *st, Datum stream_id, Datum *event_types, int64 *positions, int n)
{
	text	   *sid = DatumGetTextPP(stream_id);
	const char *sdata = VARDATA_ANY(sid);
	int			slen = VARSIZE_ANY_EXHDR(sid);
	const char *dash = memchr(sdata, '-', slen);
	int			catlen = dash ? (int) (dash - sdata) : slen;
	Oid			seq;
	Datum	   *ids;
	Datum	   *channels;
	Datum	   *poss;
	Datum	   *with_data;
	bool		all_with_data = true;
	int			nrows = 0;
	EsRoutes   *routes;
	bool		any = false;
	Oid			save_userid;
	int			save_sec;

	routes = es_routes_load();
	for (int r = 0; r < routes->n && !any; r++)
		any = es_route_of_store(&routes->items[r], st);
	if (!any)
		return;

	ids = palloc(sizeof(Datum) * n * routes->n);
	channels = palloc(sizeof(Datum) * n * routes->n);
	poss = palloc(sizeof(Datum) * n * routes->n);
	with_data = palloc(sizeof(Datum) * n * routes->n);
	seq = es_outbox_seqid();

	for (int i = 0; i < n; i++)
	{
		text	   *type = DatumGetTextPP(event_types[i]);

		for (int r = 0; r < routes->n; r++)
		{
			EsRoute    *route = &routes->items[r];

			if (!es_route_of_store(route, st))
				continue;
			if (!es_in_list(route->types, route->ntypes, VARDATA_ANY(type), VARSIZE_ANY_EXHDR(type)))
				continue;
			if (!es_in_list(route->categories, route->ncategories, sdata, catlen))
				continue;
			ids[nrows] = (Datum) 0;	/* allocated below, as the extension's owner */
			channels[nrows] = CStringGetTextDatum(route->channel);
			poss[nrows] = Int64GetDatum(positions[i]);
			with_data[nrows] = BoolGetDatum(route->with_data);
			all_with_data &= route->with_data;
			nrows++;
		}
	}
	if (nrows == 0)
		return;

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(es_events_owner(), save_sec | SECURITY_LOCAL_USERID_CHANGE);
	for (int i = 0; i < nrows; i++)
		ids[i] = Int64GetDatum(es_allocate(ES_COUNTER_OUTBOX, seq));
	{
		/*
		 * with_data is named only when a row needs false (a 0.5.0 schema),
		 * store only for a store other than the default one (a 0.6.0 schema).
		 */
		int			w = !st->is_default ? 2 : all_with_data ? 0 : 1;
		Oid			argtypes[5] = {INT8ARRAYOID, TEXTARRAYOID, INT8ARRAYOID, BOOLARRAYOID, REGCLASSOID};
		Datum		values[5];

		if (es_plan_route_insert[w] == NULL)
		{
			es_plan_route_insert[w] = w == 0 ?
				SPI_prepare("INSERT INTO eventstore.outbox (id, channel, global_position)"
							" SELECT u.i, u.c, u.p FROM ROWS FROM (pg_catalog.unnest($1),"
							" pg_catalog.unnest($2), pg_catalog.unnest($3)) AS u(i, c, p)",
							3, argtypes) :
				w == 1 ?
				SPI_prepare("INSERT INTO eventstore.outbox (id, channel, global_position, with_data)"
							" SELECT u.i, u.c, u.p, u.w FROM ROWS FROM (pg_catalog.unnest($1),"
							" pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4))"
							" AS u(i, c, p, w)",
							4, argtypes) :
				SPI_prepare("INSERT INTO eventstore.outbox (id, channel, global_position, with_data, store)"
							" SELECT u.i, u.c, u.p, u.w, $5 FROM ROWS FROM (pg_catalog.unnest($1),"
							" pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4))"
							" AS u(i, c, p, w)",
							5, argtypes);
			if (es_plan_route_insert[w] == NULL)
				elog(ERROR, "eventstore: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
			SPI_keepplan(es_plan_route_insert[w]);
		}
		values[0] = PointerGetDatum(construct_array(ids, nrows, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		values[1] = PointerGetDatum(construct_array(channels, nrows, TEXTOID, -1, false, TYPALIGN_INT));
		values[2] = PointerGetDatum(construct_array(poss, nrows, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		values[3] = PointerGetDatum(construct_array(with_data, nrows, BOOLOID, 1, true, TYPALIGN_CHAR));
		values[4] = ObjectIdGetDatum(st->relid);
		if (SPI_execute_plan(es_plan_route_insert[w], values, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "eventstore: writing outbox rows failed");
	}
	SetUserIdAndSecContext(save_userid, save_sec);
	es_relay_wakeup_at_commit();
}

/* A NOTIFY channel name argument: not NULL or empty, shorter than NAMEDATALEN bytes. */
text *
es_channel_arg(FunctionCallInfo fcinfo, int argno)
{
	text	   *channel = es_name_arg(fcinfo, argno, "channel");
	int			len = VARSIZE_ANY_EXHDR(channel);

	if (len >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("channel name is too long"),
				 errdetail("The channel has %d bytes; NOTIFY channels must be shorter than %d.",
						   len, NAMEDATALEN)));
	return channel;
}

/* eventstore._channel_arg(channel text) RETURNS text: the channel, checked. */
Datum
eventstore_channel_arg(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(es_channel_arg(fcinfo, 0));
}

/*
 * eventstore.add_route(channel text, event_types text[] DEFAULT NULL,
 *						categories text[] DEFAULT NULL, with_data boolean DEFAULT true,
 *						store regclass DEFAULT 'eventstore.events')
 * A route on a store other than the default one is its owner's to add.
 */
Datum
eventstore_add_route(PG_FUNCTION_ARGS)
{
	text	   *channel = es_channel_arg(fcinfo, 0);
	Datum		types = es_text_list_arg(fcinfo, 1, "event_types");
	Datum		categories = es_text_list_arg(fcinfo, 2, "categories");
	EsStore    *st;
	Oid			argtypes[5] = {TEXTOID, TEXTARRAYOID, TEXTARRAYOID, BOOLOID, REGCLASSOID};
	Datum		values[5] = {PointerGetDatum(channel), types, categories, (Datum) 0, (Datum) 0};
	char		nulls[5] = {' ', types ? ' ' : 'n', categories ? ' ' : 'n', ' ', ' '};

	if (PG_NARGS() < 4 || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("with_data must not be null")));
	values[3] = PG_GETARG_DATUM(3);
	st = es_store_arg(fcinfo, 4, 0);
	if (!st->is_default && !has_privs_of_role(GetUserId(), st->owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to add a route on store %s", st->name),
				 errdetail("Routes on a store are registered by its owner, %s.",
						   GetUserNameFromId(st->owner, false))));
	values[4] = ObjectIdGetDatum(st->relid);

	if (es_registry_write("SELECT FROM eventstore.routes r WHERE r.channel OPERATOR(pg_catalog.=) $1",
						  1, argtypes, values, NULL) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("route for channel \"%s\" already exists", text_to_cstring(channel))));
	/* the 0.5.0 function (four arguments) is called before the schema has routes.store */
	if (PG_NARGS() > 4)
		(void) es_registry_write("INSERT INTO eventstore.routes (channel, event_types, categories, with_data, store)"
								 " VALUES ($1, $2, $3, $4, $5)", 5, argtypes, values, nulls);
	else
		(void) es_registry_write("INSERT INTO eventstore.routes (channel, event_types, categories, with_data)"
								 " VALUES ($1, $2, $3, $4)", 4, argtypes, values, nulls);
	PG_RETURN_VOID();
}

/* eventstore.remove_route(channel text) */
Datum
eventstore_remove_route(PG_FUNCTION_ARGS)
{
	text	   *channel = es_channel_arg(fcinfo, 0);
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {PointerGetDatum(channel)};

	if (es_registry_write("DELETE FROM eventstore.routes r WHERE r.channel OPERATOR(pg_catalog.=) $1",
						  1, argtypes, values, NULL) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("route for channel \"%s\" does not exist", text_to_cstring(channel))));
	PG_RETURN_VOID();
}

/*
 * eventstore.enqueue(channel text, payload jsonb, headers jsonb DEFAULT NULL)
 * RETURNS bigint: a plain message, written to the outbox in this transaction.
 */
Datum
eventstore_enqueue(PG_FUNCTION_ARGS)
{
	text	   *channel;
	Oid			argtypes[5] = {INT8OID, TEXTOID, JSONBOID, JSONBOID, BOOLOID};
	Datum		values[5];
	char		nulls[5] = "     ";
	int			w;
	int64		id;
	Oid			save_userid;
	int			save_sec;
	Jsonb	   *payload;
	Jsonb	   *headers;
	Size		size;

	channel = es_channel_arg(fcinfo, 0);
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("payload must not be null")));

	/*
	 * Measure the message itself, as append does: an argument read from a
	 * table can be a compressed or out-of-line datum far smaller than it is.
	 */
	payload = PG_GETARG_JSONB_P(1);
	headers = PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2);
	size = VARSIZE(payload) + (headers ? VARSIZE(headers) : 0);
	if (size > (Size) es_max_event_size)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("message is too large"),
				 errdetail("The message has %zu bytes; eventstore.max_event_size is %d bytes.",
						   size, es_max_event_size)));

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(es_events_owner(), save_sec | SECURITY_LOCAL_USERID_CHANGE);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "eventstore: SPI_connect failed");
	/*
	 * A message on a channel whose route publishes ids only goes without data
	 * too.  Since 0.6.0 a message belongs to no store (outbox.store NULL).
	 */
	if (get_attnum(get_relname_relid("outbox", es_schema_oid()), "store") != InvalidAttrNumber)
		w = 2;
	else
		w = es_channel_with_data(channel) ? 0 : 1;
	if (es_plan_enqueue[w] == NULL)
	{
		es_plan_enqueue[w] = w == 0 ?
			SPI_prepare("INSERT INTO eventstore.outbox (id, channel, payload, headers)"
						" VALUES ($1, $2, $3, $4)", 4, argtypes) :
			w == 1 ?
			SPI_prepare("INSERT INTO eventstore.outbox (id, channel, payload, headers, with_data)"
						" VALUES ($1, $2, $3, $4, $5)", 5, argtypes) :
			SPI_prepare("INSERT INTO eventstore.outbox (id, channel, payload, headers, with_data, store)"
						" VALUES ($1, $2, $3, $4, $5, NULL)", 5, argtypes);
		if (es_plan_enqueue[w] == NULL)
			elog(ERROR, "eventstore: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(es_plan_enqueue[w]);
	}
	id = es_allocate(ES_COUNTER_OUTBOX, es_outbox_seqid());
	values[0] = Int64GetDatum(id);
	values[1] = PointerGetDatum(channel);
	values[2] = JsonbPGetDatum(payload);
	values[3] = headers ? JsonbPGetDatum(headers) : (Datum) 0;
	if (headers == NULL)
		nulls[3] = 'n';
	values[4] = BoolGetDatum(w == 2 ? es_channel_with_data(channel) : false);
	if (SPI_execute_plan(es_plan_enqueue[w], values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "eventstore: writing the outbox row failed");
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec);
	es_relay_wakeup_at_commit();
	PG_RETURN_INT64(id);
}

/*
 * eventstore._outbox_event(store regclass, position bigint) RETURNS SETOF
 * eventstore.events: the event of an outbox row of a store other than the
 * default one, for eventstore.outbox_messages (which joins the default
 * store's events itself).  Whoever may read outbox_messages reads the events
 * the stores' owners routed to it, as the relay publishes them: the event is
 * read as the store's owner.  Others need SELECT on the store.  Nothing when
 * the table is gone.
 */
/*
 * The store relid for a reader of outbox_messages: checked that the caller
 * may read the view or the store; NULL when the table is gone.
 */
EsStore *
es_outbox_reader_store(Oid relid)
{
	EsStore    *st;
	Oid			view;

	LockRelationOid(relid, AccessShareLock);
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		return NULL;
	st = es_store(relid);
	view = get_relname_relid("outbox_messages", es_schema_oid());
	if (!OidIsValid(view) || pg_class_aclcheck(view, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		es_store_check(st, ACL_SELECT);
	return st;
}

/*
 * eventstore._outbox_shown(store regclass, stream_id text, stream_version
 * bigint, created_at timestamptz): does outbox_messages show this event's
 * row?  Not when the store's lifecycle hides the event (lifecycle.c); a
 * message's row (NULLs) and the row of an event gone with its table are
 * shown.  Whoever may read outbox_messages or the store may call it.
 */
Datum
eventstore_outbox_shown(PG_FUNCTION_ARGS)
{
	EsVisibleCache **cachep = (EsVisibleCache **) &fcinfo->flinfo->fn_extra;
	Oid			relid;
	EsStore    *st;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		PG_RETURN_BOOL(true);
	relid = PG_GETARG_OID(0);
	if (!es_lifecycle_active_cached(relid))
		PG_RETURN_BOOL(true);
	/* the privilege is checked once per store and query (the cache is of one store) */
	if (*cachep == NULL || es_lifecycle_visible_store(*cachep) != relid)
	{
		st = es_outbox_reader_store(relid);
		if (st == NULL)
			PG_RETURN_BOOL(true);
	}
	else
		st = es_store(relid);
	PG_RETURN_BOOL(es_lifecycle_visible(cachep, fcinfo->flinfo->fn_mcxt, st, PG_GETARG_TEXT_PP(1),
										PG_GETARG_INT64(2), PG_GETARG_TIMESTAMPTZ(3)));
}

Datum
eventstore_outbox_event(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			relid;
	EsStore    *st;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	Oid			save_userid;
	int			save_sec;
	SPIPlanPtr	plan;

	InitMaterializedSRF(fcinfo, 0);
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		return (Datum) 0;
	relid = PG_GETARG_OID(0);
	if ((st = es_outbox_reader_store(relid)) == NULL)
		return (Datum) 0;

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(st->owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "eventstore: SPI_connect failed");
	plan = es_store_plan(st, ES_PLAN_OUTBOX_EVENT,
						 psprintf("SELECT e.* FROM %s e WHERE e.global_position OPERATOR(pg_catalog.=) $1",
								  st->name),
						 1, argtypes, 0);
	values[0] = PG_GETARG_DATUM(1);
	if (SPI_execute_plan(plan, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "eventstore: reading an event of store %s failed", st->name);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		Datum		cols[ES_EVENT_COLUMNS_MAX];
		bool		nulls[ES_EVENT_COLUMNS_MAX];

		if (SPI_tuptable->tupdesc->natts != rsinfo->setDesc->natts ||
			rsinfo->setDesc->natts > ES_EVENT_COLUMNS_MAX)
			elog(ERROR, "eventstore: store %s does not have the columns of eventstore.events", st->name);
		heap_deform_tuple(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, cols, nulls);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, cols, nulls);
	}
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec);
	return (Datum) 0;
}
