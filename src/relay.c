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
 *	- NOTIFY and the UPDATE that marks the rows published commit together:
 *	  a crash before the commit publishes nothing and marks nothing; after
 *	  it, both happened.  No row is queued for notification twice.
 *	- Passes of one database are serialised by a transaction-scoped advisory
 *	  lock, so relay_once() and the worker never interleave.  Before that a
 *	  pass takes a share lock on the extension itself, like DROP EXTENSION's
 *	  exclusive one, so the two queue instead of deadlocking.
 *	- A payload that would not fit NOTIFY (ES_NOTIFY_PAYLOAD_MAX) goes
 *	  without its data/payload and with "data_omitted": true; consumers read
 *	  the full message with consumer_poll() or the event with read_all().
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
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "eventstore.h"

PG_FUNCTION_INFO_V1(eventstore_relay_once);

/* NOTIFY refuses payloads of this many bytes or more (async.c). */
#define ES_NOTIFY_PAYLOAD_MAX (BLCKSZ - NAMEDATALEN - 128)

static SPIPlanPtr es_plan_pending = NULL;
static SPIPlanPtr es_plan_mark = NULL;
static SPIPlanPtr es_plan_prune = NULL;

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

/* The NOTIFY payload for message: itself, or without its data if too large. */
static char *
es_notify_payload(Datum message)
{
	char	   *text = DatumGetCString(DirectFunctionCall1(jsonb_out, message));
	Datum		reduced;

	if (strlen(text) < ES_NOTIFY_PAYLOAD_MAX)
		return text;

	reduced = DirectFunctionCall2(jsonb_delete, message, CStringGetTextDatum("data"));
	reduced = DirectFunctionCall2(jsonb_delete, reduced, CStringGetTextDatum("payload"));
	reduced = DirectFunctionCall2(jsonb_delete, reduced, CStringGetTextDatum("headers"));
	reduced = DirectFunctionCall2(jsonb_concat, reduced,
								  DirectFunctionCall1(jsonb_in, CStringGetDatum("{\"data_omitted\": true}")));
	text = DatumGetCString(DirectFunctionCall1(jsonb_out, reduced));
	if (strlen(text) < ES_NOTIFY_PAYLOAD_MAX)
		return text;

	/* Even the envelope is too large (a huge stream id or type): id only. */
	reduced = DirectFunctionCall2(jsonb_delete_array, reduced,
								  PointerGetDatum(construct_array((Datum[]) {
									  CStringGetTextDatum("stream_id"), CStringGetTextDatum("event_type")},
																  2, TEXTOID, -1, false, TYPALIGN_INT)));
	return DatumGetCString(DirectFunctionCall1(jsonb_out, reduced));
}

/* Delete published rows past retention that every consumer acknowledged. */
static void
es_relay_prune(void)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(es_outbox_retention)};

	if (es_outbox_retention < 0)
		return;
	es_relay_plan(&es_plan_prune,
				  "DELETE FROM eventstore.outbox o"
				  " WHERE o.published_at OPERATOR(pg_catalog.<) (pg_catalog.now()"
				  "   OPERATOR(pg_catalog.-) pg_catalog.make_interval(secs => $1))"
				  " AND NOT EXISTS (SELECT FROM eventstore.consumers c"
				  "   WHERE c.channel OPERATOR(pg_catalog.=) o.channel"
				  "   AND c.last_id OPERATOR(pg_catalog.<) o.id)",
				  1, argtypes);
	if (SPI_execute_plan(es_plan_prune, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "eventstore: pruning the outbox failed");
}

/*
 * One pass in the current database and transaction: publish up to max_count
 * pending rows, in id order, and prune.  Returns how many were published.
 * Runs as the extension's owner; the caller must be in READ COMMITTED.
 */
int
es_relay_pass(int max_count)
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

	seq = get_relname_relid("outbox_id_seq", es_schema_oid());
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
	es_relay_plan(&es_plan_pending,
				  "SELECT m.id, m.channel, m.message FROM eventstore.outbox_messages m"
				  " WHERE m.published_at IS NULL AND m.id OPERATOR(pg_catalog.<=) $1"
				  " ORDER BY m.id LIMIT $2",
				  2, argtypes);
	values[0] = Int64GetDatum(horizon);
	values[1] = Int32GetDatum(max_count);
	if (SPI_execute_snapshot(es_plan_pending, values, NULL, snapshot, InvalidSnapshot,
							 true, false, max_count) != SPI_OK_SELECT)
		elog(ERROR, "eventstore: reading pending outbox rows failed");
	UnregisterSnapshot(snapshot);

	n = SPI_processed;
	if (n > 0)
	{
		SPITupleTable *pending = SPI_tuptable;
		Oid			markargs[1] = {INT8ARRAYOID};
		Datum		markvalues[1];

		ids = palloc(sizeof(Datum) * n);
		for (uint64 i = 0; i < n; i++)
		{
			HeapTuple	tup = pending->vals[i];
			bool		isnull;
			char	   *channel;

			ids[i] = SPI_getbinval(tup, pending->tupdesc, 1, &isnull);
			channel = TextDatumGetCString(SPI_getbinval(tup, pending->tupdesc, 2, &isnull));
			Async_Notify(channel,
						 es_notify_payload(SPI_getbinval(tup, pending->tupdesc, 3, &isnull)));
		}
		es_relay_plan(&es_plan_mark,
					  "UPDATE eventstore.outbox o SET published_at = pg_catalog.now()"
					  " WHERE o.id OPERATOR(pg_catalog.=) ANY ($1)",
					  1, markargs);
		markvalues[0] = PointerGetDatum(construct_array(ids, (int) n, INT8OID, 8,
														FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		if (SPI_execute_plan(es_plan_mark, markvalues, NULL, false, 0) != SPI_OK_UPDATE ||
			SPI_processed != n)
			elog(ERROR, "eventstore: marking outbox rows published failed");
	}

	es_relay_prune();
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec);
	return (int) n;
}

/* eventstore.relay_once(max_count integer DEFAULT NULL) RETURNS integer */
Datum
eventstore_relay_once(PG_FUNCTION_ARGS)
{
	int			max_count = PG_ARGISNULL(0) ? es_relay_batch_size : PG_GETARG_INT32(0);
	int			n = es_relay_pass(max_count);

	es_relay_report(n, NULL);
	PG_RETURN_INT32(n);
}
