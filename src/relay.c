/*
 * relay.c
 *		One relay pass: publish pending outbox rows with NOTIFY, in id order,
 *		and mark them published in the same transaction; prune what every
 *		consumer has acknowledged.  eventstore.relay_once() runs a pass from
 *		SQL; the background worker (relay_worker.c) runs the same function.
 *
 * Rules:
 *	- A pass never publishes an id while a lower id's transaction is still
 *	  open: it reads up to the outbox read horizon (horizon.c), with the
 *	  snapshot taken together with it.  So every channel is published in id
 *	  order, and the published rows are always a prefix of the settled ones.
 *	- Published rows are always every row up to one id, kept in
 *	  eventstore.relay_state: the pending rows are found above it through
 *	  the primary key.
 *	- NOTIFY and the UPDATE that marks the rows published commit together:
 *	  a crash before the commit publishes nothing and marks nothing; after
 *	  it, both happened.  No row is queued for notification twice.
 *	- A pass that notifies never commits asynchronously: synchronous_commit
 *	  off is raised to local for its transaction (any other setting already
 *	  flushes the local WAL, and is kept): a NOTIFY is delivered
 *	  as soon as its transaction is marked committed, which an asynchronous
 *	  commit does before its WAL is flushed.  A crash then lost the cursor's
 *	  move (the rows were published again) and, when the appends were
 *	  asynchronous too, the notified rows themselves.  Flushing the pass's
 *	  commit flushes everything before it in the WAL, the commits of the
 *	  rows it read included, before any listener hears of them.
 *	- Passes of one database are serialised by a transaction-scoped advisory
 *	  lock, so relay_once() and the worker never interleave.  Before that a
 *	  pass takes a share lock on the extension itself, like DROP EXTENSION's
 *	  exclusive one, so the two queue instead of deadlocking.
 *	- A payload that would not fit NOTIFY (ES_NOTIFY_PAYLOAD_MAX) goes
 *	  without its data/payload and with "data_omitted": true; consumers read
 *	  the full message with consumer_poll() or the event with read_all().
 *	  A row of an ids-only route (outbox.with_data false) always goes with
 *	  ids only: anyone can LISTEN, so only ids leave through NOTIFY.
 *	- Every store's outbox rows are published in the one outbox order.  The
 *	  event of a row of the default store is joined in the pending query;
 *	  that of another store (outbox.store) is read from its table, as the
 *	  table's owner, and its payload names the store ("store": the table's
 *	  schema-qualified name).  A store dropped meanwhile took its rows
 *	  with it, and the pass fails at marking them (the next one goes on).
 *	- The lifecycle (lifecycle.c, shred.c) as of the pass: an event that
 *	  the store's metadata or a deletion hides is not notified at all (its
 *	  row is marked published with the others), and in data the envelopes
 *	  of forgotten keys go as the marker; those of live keys stay sealed.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "parser/parse_func.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "access/htup_details.h"
#include "catalog/pg_class.h"

#include "eventstore.h"
#include "relay_shared.h"

PG_FUNCTION_INFO_V1(eventstore_relay_once);

/* NOTIFY refuses payloads of this many bytes or more (async.c). */
#define ES_NOTIFY_PAYLOAD_MAX (BLCKSZ - NAMEDATALEN - 128)

static SPIPlanPtr es_plan_pending[3] = {NULL, NULL, NULL};	/* [1]: outbox.with_data, [2]: and store */
static SPIPlanPtr es_plan_mark = NULL;
static SPIPlanPtr es_plan_prune = NULL;
static SPIPlanPtr es_plan_prune_due = NULL;
static SPIPlanPtr es_plan_log_publish = NULL;
static SPIPlanPtr es_plan_wake = NULL;

/* The log horizon this backend last published (relay_worker.c waits on it). */
int64		es_relay_log_horizon = 0;

static SPIPlanPtr
es_relay_plan(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes)
{
	if (*cache == NULL)
	{
		*cache = SPI_prepare(sql, nargs, argtypes);
		if (*cache == NULL)
			elog(ERROR, "eventstore: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(*cache);
	}
	return *cache;
}

/*
 * The pending rows, up to the horizon ($1), at most $2; with_data is
 * o.with_data, or true on a schema older than 0.5.0 (no such column); store
 * is o.store, NULL before 0.6.0.  o.global_position is the event's position
 * whichever store holds it.
 */
#define ES_PENDING_QUERY(with_data, store) \
	"SELECT o.id, o.channel, o.global_position, e.stream_id, e.stream_version," \
	" e.event_type, e.event_id, e.data, o.payload, o.headers, " with_data ", " store ", e.created_at" \
	" FROM eventstore.outbox o LEFT JOIN eventstore.events e" \
	"   ON e.global_position OPERATOR(pg_catalog.=) o.global_position" \
	" WHERE o.id OPERATOR(pg_catalog.>) (SELECT s.last_published_id FROM eventstore.relay_state s)" \
	" AND o.id OPERATOR(pg_catalog.<=) $1" \
	" ORDER BY o.id LIMIT $2"

/* Columns of the pending query, in order. */
enum
{
	PEND_ID = 1, PEND_CHANNEL, PEND_POSITION, PEND_STREAM_ID, PEND_VERSION,
	PEND_TYPE, PEND_EVENT_ID, PEND_DATA, PEND_PAYLOAD, PEND_HEADERS, PEND_WITH_DATA, PEND_STORE,
	PEND_CREATED_AT
};

static void
es_json_key(StringInfo buf, const char *key)
{
	if (buf->len > 1)
		appendStringInfoString(buf, ", ");
	escape_json(buf, key);
	appendStringInfoString(buf, ": ");
}

/* Append column col of tup as JSON: jsonb as is, text quoted, numbers bare. */
static void
es_json_column(StringInfo buf, const char *key, HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);
	Oid			type = SPI_gettypeid(desc, col);

	es_json_key(buf, key);
	if (isnull)
		appendStringInfoString(buf, "null");
	else if (type == JSONBOID)
		appendStringInfoString(buf, DatumGetCString(DirectFunctionCall1(jsonb_out, d)));
	else if (type == INT8OID)
		appendStringInfo(buf, INT64_FORMAT, DatumGetInt64(d));
	else
		escape_json(buf, SPI_getvalue(tup, desc, col));
}

/*
 * The NOTIFY payload of one pending row, as JSON text.  When the full payload
 * would not fit NOTIFY, data, payload and headers are left out and
 * "data_omitted": true says so; if even that does not fit, or the row's route
 * publishes ids only, only the id, the channel and the event's position go
 * (and store, the name of the event's store when it is not the default one).
 */
static char *
es_notify_payload(HeapTuple tup, TupleDesc desc, const char *store)
{
	bool		is_event;
	bool		isnull;
	bool		with_data;
	StringInfoData buf;

	(void) SPI_getbinval(tup, desc, PEND_POSITION, &is_event);
	is_event = !is_event;
	with_data = DatumGetBool(SPI_getbinval(tup, desc, PEND_WITH_DATA, &isnull)) || isnull;
	initStringInfo(&buf);
	for (int attempt = with_data ? 0 : 2; attempt < 3; attempt++)
	{
		resetStringInfo(&buf);
		appendStringInfoChar(&buf, '{');
		es_json_column(&buf, "id", tup, desc, PEND_ID);
		es_json_column(&buf, "channel", tup, desc, PEND_CHANNEL);
		if (is_event)
			es_json_column(&buf, "position", tup, desc, PEND_POSITION);
		if (store != NULL)
		{
			es_json_key(&buf, "store");
			escape_json(&buf, store);
		}
		if (attempt < 2 && is_event)
		{
			es_json_column(&buf, "stream_id", tup, desc, PEND_STREAM_ID);
			es_json_column(&buf, "stream_version", tup, desc, PEND_VERSION);
			es_json_column(&buf, "event_type", tup, desc, PEND_TYPE);
			es_json_column(&buf, "event_id", tup, desc, PEND_EVENT_ID);
		}
		if (attempt == 0)
		{
			if (is_event)
				es_json_column(&buf, "data", tup, desc, PEND_DATA);
			else
			{
				es_json_column(&buf, "payload", tup, desc, PEND_PAYLOAD);
				es_json_column(&buf, "headers", tup, desc, PEND_HEADERS);
			}
		}
		else
		{
			es_json_key(&buf, "data_omitted");
			appendStringInfoString(&buf, "true");
		}
		appendStringInfoChar(&buf, '}');
		if (buf.len < ES_NOTIFY_PAYLOAD_MAX)
			break;
	}
	return buf.data;
}

/* A store other than the default one met in a pass, with its statement. */
typedef struct EsRelayStore
{
	Oid			relid;
	char	   *name;			/* schema-qualified, quoted */
	Oid			owner;
	SPIPlanPtr	plan;			/* prepared for this pass only */
	EsVisibleCache *visible;	/* its lifecycle bounds, for this pass */
} EsRelayStore;

/*
 * The pending row tup of an event of store relid (not the default store),
 * with the event's columns read from that store; *name is set to the
 * store's name.  Read as the table's owner (the relay runs as the
 * extension's), with a fresh snapshot: the row's transaction committed
 * before the pass's snapshot was taken.  *stores lists the stores met so
 * far in the pass.  NULL when the table is gone: its rows went with it,
 * which the pass notices when it marks them.
 */
static HeapTuple
es_relay_store_row(HeapTuple tup, TupleDesc desc, Oid relid, List **stores, char **name,
				   EsVisibleCache ***visible)
{
	EsRelayStore *rs = NULL;
	ListCell   *lc;
	Datum	   *values;
	bool	   *nulls;
	Datum		pos;
	bool		isnull;
	Oid			save_userid;
	int			save_sec;
	int			rc;
	static const int cols[] = {PEND_STREAM_ID, PEND_VERSION, PEND_TYPE, PEND_EVENT_ID, PEND_DATA, PEND_CREATED_AT};

	foreach(lc, *stores)
		if (((EsRelayStore *) lfirst(lc))->relid == relid)
			rs = lfirst(lc);
	if (rs == NULL)
	{
		HeapTuple	cls;
		Oid			argtypes[1] = {INT8OID};

		LockRelationOid(relid, AccessShareLock);
		cls = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
		if (!HeapTupleIsValid(cls))
		{
			*name = NULL;
			return NULL;
		}
		rs = palloc0(sizeof(EsRelayStore));
		rs->relid = relid;
		rs->owner = ((Form_pg_class) GETSTRUCT(cls))->relowner;
		rs->name = quote_qualified_identifier(get_namespace_name(((Form_pg_class) GETSTRUCT(cls))->relnamespace),
											  NameStr(((Form_pg_class) GETSTRUCT(cls))->relname));
		ReleaseSysCache(cls);
		rs->plan = SPI_prepare(psprintf("SELECT e.stream_id, e.stream_version, e.event_type, e.event_id, e.data,"
										" e.created_at FROM %s e WHERE e.global_position OPERATOR(pg_catalog.=) $1",
										rs->name), 1, argtypes);
		if (rs->plan == NULL)
			elog(ERROR, "eventstore: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		*stores = lappend(*stores, rs);
	}
	*name = rs->name;
	*visible = &rs->visible;

	values = palloc(sizeof(Datum) * desc->natts);
	nulls = palloc(sizeof(bool) * desc->natts);
	heap_deform_tuple(tup, desc, values, nulls);
	pos = SPI_getbinval(tup, desc, PEND_POSITION, &isnull);
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(rs->owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	rc = SPI_execute_plan(rs->plan, &pos, NULL, false, 1);	/* a fresh snapshot */
	SetUserIdAndSecContext(save_userid, save_sec);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "eventstore: reading an event of store %s failed", rs->name);
	for (int i = 0; i < (int) lengthof(cols); i++)
	{
		if (SPI_processed > 0)
			values[cols[i] - 1] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i + 1,
												&nulls[cols[i] - 1]);
		else
			nulls[cols[i] - 1] = true;
	}
	return heap_form_tuple(desc, values, nulls);
}

/*
 * The pending row tup of an event of store relid as the lifecycle lets it
 * go (lifecycle.c, shred.c): NULL when the store's metadata or a deletion
 * hides the event (it is not published at all), else the row with the
 * envelopes of forgotten keys in its data replaced by the marker (those of
 * live keys stay sealed).  The row itself for a store without lifecycle
 * rows or keys, and for an event whose row is gone.  *visible caches the
 * store's bounds for the pass.  Under the active snapshot.
 */
static HeapTuple
es_relay_lifecycle_row(HeapTuple tup, TupleDesc desc, Oid relid, EsVisibleCache **visible)
{
	bool		isnull;
	Datum		sid;
	Datum		data;
	Datum	   *values;
	bool	   *nulls;

	if (!es_lifecycle_active_cached(relid))
		return tup;
	sid = SPI_getbinval(tup, desc, PEND_STREAM_ID, &isnull);
	if (isnull)
		return tup;
	if (!es_lifecycle_visible(visible, CurrentMemoryContext, es_store(relid), DatumGetTextPP(sid),
							  DatumGetInt64(SPI_getbinval(tup, desc, PEND_VERSION, &isnull)),
							  DatumGetTimestampTz(SPI_getbinval(tup, desc, PEND_CREATED_AT, &isnull))))
		return NULL;
	data = SPI_getbinval(tup, desc, PEND_DATA, &isnull);
	if (isnull)
		return tup;
	values = palloc(sizeof(Datum) * desc->natts);
	nulls = palloc(sizeof(bool) * desc->natts);
	heap_deform_tuple(tup, desc, values, nulls);
	values[PEND_DATA - 1] = es_shred_seal(relid, DatumGetJsonbP(data));
	return heap_form_tuple(desc, values, nulls);
}

/*
 * Delete published rows past retention that every consumer of their channel
 * has acknowledged, oldest first, at most ES_PRUNE_BATCH per pass.  Rows are
 * published in id order, so when the oldest row is still too young there is
 * nothing to do, which one primary-key probe tells.
 */
#define ES_PRUNE_BATCH 10000

static void
es_relay_prune(void)
{
	Oid			argtypes[2] = {INT4OID, INT4OID};
	Datum		values[2] = {Int32GetDatum(es_outbox_retention), Int32GetDatum(ES_PRUNE_BATCH)};
	bool		isnull;

	if (es_outbox_retention < 0)
		return;
	es_relay_plan(&es_plan_prune_due,
				  "SELECT o.published_at OPERATOR(pg_catalog.<) (pg_catalog.now()"
				  "   OPERATOR(pg_catalog.-) pg_catalog.make_interval(secs => $1))"
				  " FROM eventstore.outbox o ORDER BY o.id LIMIT 1",
				  1, argtypes);
	if (SPI_execute_plan(es_plan_prune_due, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "eventstore: reading the oldest outbox row failed");
	if (SPI_processed == 0 ||
		!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) ||
		isnull)
		return;

	es_relay_plan(&es_plan_prune,
				  "WITH doomed AS (SELECT o.id FROM eventstore.outbox o"
				  "   WHERE o.id OPERATOR(pg_catalog.<=) (SELECT s.last_published_id FROM eventstore.relay_state s)"
				  "   AND o.published_at OPERATOR(pg_catalog.<) (pg_catalog.now()"
				  "     OPERATOR(pg_catalog.-) pg_catalog.make_interval(secs => $1))"
				  "   AND NOT EXISTS (SELECT FROM eventstore.consumers c"
				  "     WHERE c.channel OPERATOR(pg_catalog.=) o.channel"
				  "     AND c.last_id OPERATOR(pg_catalog.<) o.id)"
				  "   ORDER BY o.id LIMIT $2)"
				  " DELETE FROM eventstore.outbox o USING doomed d WHERE o.id OPERATOR(pg_catalog.=) d.id",
				  2, argtypes);
	if (SPI_execute_plan(es_plan_prune, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "eventstore: pruning the outbox failed");
}

/*
 * Publish the log's read horizon for hot standbys, which have no in-flight
 * registry of their own: the highest position P such that every position up
 * to P was settled (committed or rolled back) when this pass took its
 * snapshot.  Those commits precede this transaction's in the WAL, so a
 * standby that sees P has replayed them all, and can read up to P without
 * ever skipping an event.  Written only when it moves.
 *
 * Subscriptions: first those that commits signalled up to P are notified
 * (es_subscriptions_fire, as a wake pass of the worker does).  Then, when
 * the published horizon moves from old to P, each subscription with an
 * event in (old, P] that no wake-up covered yet -- above the horizon its
 * slot was last notified at -- is woken: eventstore._subscription_wake
 * NOTIFYs its channel, at this pass's commit (a schema before 0.7.0 has no
 * such function).  That catches the events whose commit signalled nothing
 * (import_events, an append whose cached subscriptions were stale).
 */
static void
es_publish_log_horizon(void)
{
	Oid			argtypes[4] = {INT8OID, INT8OID, TEXTARRAYOID, INT8ARRAYOID};
	Datum		values[4];
	bool		isnull;
	List	   *wake_name;
	int64		woken_to[ES_WAKE_SLOTS];
	Datum	   *names;
	Datum	   *afters;
	int			n;

	if (!OidIsValid(get_relname_relid("log_horizon", es_schema_oid())))
		return;					/* schema older than 0.4.0 */

	/* one horizon for every store, settled for a later snapshot (horizon.c) */
	values[1] = Int64GetDatum(es_settled_horizon(ES_COUNTER_POSITION, es_position_seqid()));
	es_relay_log_horizon = Max(es_relay_log_horizon, DatumGetInt64(values[1]));
	(void) es_subscriptions_fire(DatumGetInt64(values[1]), woken_to);
	if (SPI_execute_plan(es_relay_plan(&es_plan_log_publish,
									   "UPDATE eventstore.log_horizon h SET position = $1"
									   " FROM (SELECT o.position FROM eventstore.log_horizon o) old"
									   " WHERE h.position OPERATOR(pg_catalog.<) $1 RETURNING old.position",
									   1, argtypes),
						 values + 1, NULL, false, 0) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "eventstore: publishing the log horizon failed");
	if (SPI_processed != 1)
		return;
	values[0] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	wake_name = list_make2(makeString("eventstore"), makeString("_subscription_wake"));
	if (isnull || !OidIsValid(LookupFuncName(wake_name, 4, argtypes, true)))
		return;
	n = es_subscriptions_wake_since(DatumGetInt64(values[0]), woken_to, &names, &afters);
	values[2] = PointerGetDatum(construct_array(names, n, TEXTOID, -1, false, TYPALIGN_INT));
	values[3] = PointerGetDatum(construct_array(afters, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	if (SPI_execute_plan(es_relay_plan(&es_plan_wake,
									   "SELECT eventstore._subscription_wake($1, $2, $3, $4)",
									   4, argtypes),
						 values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "eventstore: waking subscriptions failed");
}

/*
 * One pass in the current database and transaction: publish up to max_count
 * pending rows, in id order, and with prune, delete what retention allows.  Returns how many were published.
 * Runs as the extension's owner; the caller must be in READ COMMITTED.
 */
int
es_relay_pass(int max_count, bool prune)
{
	Oid			argtypes[2] = {INT8OID, INT4OID};
	Datum		values[2];
	LOCKTAG		tag;
	Snapshot	snapshot;
	int64		horizon;
	uint64		n;
	Datum	   *ids;
	Oid			save_userid;
	int			save_sec;
	Oid			seq;
	Oid			extoid;
	int			w;
	Oid			outbox;
	Oid			events;
	List	   *stores = NIL;
	EsVisibleCache *default_visible = NULL;

	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("a relay pass must run in a READ COMMITTED transaction")));
	if (max_count <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_count must be positive")));

	/*
	 * Lock the extension first, as DROP EXTENSION does: a pass then waits for
	 * a drop in progress (or the drop for the pass) instead of the two
	 * deadlocking over the extension's tables.
	 */
	extoid = get_extension_oid("eventstore", true);
	if (OidIsValid(extoid))
		LockDatabaseObject(ExtensionRelationId, extoid, 0, AccessShareLock);
	if (!OidIsValid(extoid) || get_extension_oid("eventstore", true) != extoid)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"eventstore\" is not installed in this database")));

	seq = es_outbox_seqid();
	if (!OidIsValid(seq))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("eventstore's outbox is not installed"),
				 errhint("Run ALTER EXTENSION eventstore UPDATE.")));

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(es_events_owner(), save_sec | SECURITY_LOCAL_USERID_CHANGE);

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, 0, 0, ES_LOCKTAG_RELAY);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "eventstore: SPI_connect failed");

	horizon = es_read_horizon(ES_COUNTER_OUTBOX, seq, &snapshot);
	/*
	 * outbox.with_data exists from 0.5.0 on (before, every row has data),
	 * outbox.store from 0.6.0 on (before, every event is the default store's)
	 */
	outbox = get_relname_relid("outbox", es_schema_oid());
	events = es_events_relid();
	w = get_attnum(outbox, "store") != InvalidAttrNumber ? 2 :
		get_attnum(outbox, "with_data") != InvalidAttrNumber ? 1 : 0;
	es_relay_plan(&es_plan_pending[w],
				  w == 2 ? ES_PENDING_QUERY("o.with_data", "o.store::pg_catalog.oid") :
				  w == 1 ? ES_PENDING_QUERY("o.with_data", "NULL::pg_catalog.oid") :
				  ES_PENDING_QUERY("true", "NULL::pg_catalog.oid"),
				  2, argtypes);
	values[0] = Int64GetDatum(horizon);
	values[1] = Int32GetDatum(max_count);
	if (SPI_execute_snapshot(es_plan_pending[w], values, NULL, snapshot, InvalidSnapshot,
							 true, false, max_count) != SPI_OK_SELECT)
		elog(ERROR, "eventstore: reading pending outbox rows failed");
	UnregisterSnapshot(snapshot);

	n = SPI_processed;
	if (n > 0)
	{
		SPITupleTable *pending = SPI_tuptable;
		Oid			markargs[2] = {INT8OID, INT8OID};
		Datum		markvalues[2];

		/* Until the end of this transaction: commit durably (see above). */
		if (synchronous_commit == SYNCHRONOUS_COMMIT_OFF)
			(void) set_config_option("synchronous_commit", "local", PGC_USERSET, PGC_S_SESSION,
									 GUC_ACTION_LOCAL, true, ERROR, false);

		ids = palloc(sizeof(Datum) * n);
		/* the lifecycle as of now: what was hidden or forgotten meanwhile */
		PushActiveSnapshot(GetLatestSnapshot());
		for (uint64 i = 0; i < n; i++)
		{
			HeapTuple	tup = pending->vals[i];
			bool		isnull;
			char	   *channel;
			Datum		store;
			char	   *store_name = NULL;
			EsVisibleCache **visible = &default_visible;

			ids[i] = SPI_getbinval(tup, pending->tupdesc, PEND_ID, &isnull);
			channel = TextDatumGetCString(SPI_getbinval(tup, pending->tupdesc, PEND_CHANNEL, &isnull));
			store = SPI_getbinval(tup, pending->tupdesc, PEND_STORE, &isnull);
			if (!isnull && DatumGetObjectId(store) != events)
			{
				HeapTuple	row = es_relay_store_row(tup, pending->tupdesc, DatumGetObjectId(store),
													 &stores, &store_name, &visible);

				if (row == NULL)
				{
					/* the store is gone: published as it is, marked below */
					Async_Notify(channel, es_notify_payload(tup, pending->tupdesc, store_name));
					continue;
				}
				tup = row;
			}
			else
				store = ObjectIdGetDatum(events);
			/* an event hidden before it was published is not published */
			(void) SPI_getbinval(tup, pending->tupdesc, PEND_POSITION, &isnull);
			if (!isnull &&
				(tup = es_relay_lifecycle_row(tup, pending->tupdesc, DatumGetObjectId(store), visible)) == NULL)
				continue;
			Async_Notify(channel, es_notify_payload(tup, pending->tupdesc, store_name));
		}
		PopActiveSnapshot();
		/*
		 * The rows just read are every visible row of ids (cursor, last]:
		 * mark that range, through the primary key, and move the cursor.
		 */
		es_relay_plan(&es_plan_mark,
					  "WITH marked AS (UPDATE eventstore.outbox o SET published_at = pg_catalog.now()"
					  "   WHERE o.id OPERATOR(pg_catalog.>) (SELECT s.last_published_id FROM eventstore.relay_state s)"
					  "   AND o.id OPERATOR(pg_catalog.<=) $1 RETURNING o.id)"
					  " UPDATE eventstore.relay_state s SET last_published_id = $1"
					  " WHERE (SELECT pg_catalog.count(*) FROM marked) OPERATOR(pg_catalog.=) $2",
					  2, markargs);
		markvalues[0] = ids[n - 1];
		markvalues[1] = Int64GetDatum((int64) n);
		if (SPI_execute_plan(es_plan_mark, markvalues, NULL, false, 0) != SPI_OK_UPDATE ||
			SPI_processed != 1)
			elog(ERROR, "eventstore: marking outbox rows published failed");
	}

	if (prune)
		es_relay_prune();

	/*
	 * A pass of the worker that notified no outbox row commits
	 * asynchronously: it only moves the log horizon (and wakes
	 * subscriptions, whose NOTIFY carries no data: the consumer reads the
	 * events by poll, as any reader would) and prunes.  A crash that loses
	 * it leaves the horizon lower, which only delays readers, and the next
	 * pass publishes it again (a subscription may be woken twice).  With
	 * the default synchronous_commit each such pass flushed the WAL: with a
	 * subscription, one more flush per append at 1 client (make bench:
	 * append with a matching subscription).  relay_once() runs in its
	 * caller's transaction, whose setting is left alone.
	 */
	if (n == 0 && IsBackgroundWorker && synchronous_commit > SYNCHRONOUS_COMMIT_OFF)
		(void) set_config_option("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, ERROR, false);
	es_publish_log_horizon();
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec);
	return (int) n;
}

/* eventstore.relay_once(max_count integer DEFAULT NULL) RETURNS integer */
Datum
eventstore_relay_once(PG_FUNCTION_ARGS)
{
	int			max_count = PG_ARGISNULL(0) ? es_relay_batch_size : PG_GETARG_INT32(0);
	int			n = es_relay_pass(max_count, true);

	es_relay_report(n, NULL);
	PG_RETURN_INT32(n);
}
