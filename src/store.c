/*
 * store.c
 *		SQL-callable pieces of stores (catalog.c checks and caches them):
 *		the store argument check, and forgetting a dropped store.
 *
 * A store's registry rows (projections, routes, upcasters, snapshots and
 * policies, outbox rows, subscriptions) live in tables of schema eventstore
 * with a column "store" of type regclass.  When a store's table is dropped
 * -- by eventstore.drop_store() or by a plain DROP TABLE, DROP SCHEMA ...
 * CASCADE or DROP OWNED -- the sql_drop event trigger eventstore_store_dropped
 * deletes those rows, as the extension's owner (the role dropping the table
 * cannot write the registries).  The rows are found by the column, so a
 * registry added later is covered without changing this file.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/sequence.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/fmgrprotos.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "compat.h"
#include "eventstore.h"

PG_FUNCTION_INFO_V1(eventstore_store_arg);
PG_FUNCTION_INFO_V1(eventstore_store_dropped);
PG_FUNCTION_INFO_V1(eventstore_store_adopt);

/* eventstore._store_arg(store regclass) RETURNS regclass: store, checked. */
Datum
eventstore_store_arg(PG_FUNCTION_ARGS)
{
	PG_RETURN_OID(es_store_arg(fcinfo, 0, 0)->relid);
}

/*
 * eventstore._store_dropped(): the sql_drop event trigger.  Tables dropped
 * by the command that no longer exist are forgotten in every table of
 * schema eventstore that has a store column.  The OIDs and table names are
 * kept in the caller's memory: SPI_finish frees what was allocated while
 * connected (before 0.7.0 the DELETEs were built from freed memory, which a
 * clean-clone test run once caught as "invalid byte sequence").
 */
Datum
eventstore_store_dropped(PG_FUNCTION_ARGS)
{
	Datum	   *gone;
	int			ngone = 0;
	List	   *tables = NIL;
	ListCell   *lc;
	ArrayType  *arr;
	Oid			argtypes[1] = {OIDARRAYOID};
	Datum		values[1];
	MemoryContext outer = CurrentMemoryContext;	/* outlives SPI_finish */
	MemoryContext spi;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("eventstore._store_dropped() must be called as an event trigger")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "eventstore: SPI_connect failed");
	if (SPI_execute("SELECT o.objid FROM pg_catalog.pg_event_trigger_dropped_objects() o"
					" WHERE o.object_type OPERATOR(pg_catalog.=) 'table' AND NOT o.is_temporary",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "eventstore: reading the dropped objects failed");
	gone = MemoryContextAlloc(outer, sizeof(Datum) * Max(SPI_processed, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Oid			relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
														   SPI_tuptable->tupdesc, 1, &isnull));

		if (!isnull && !SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
			gone[ngone++] = ObjectIdGetDatum(relid);
	}
	if (ngone > 0 &&
		SPI_execute("SELECT pg_catalog.format('%s', c.oid::pg_catalog.regclass)"
					" FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute a"
					" ON a.attrelid OPERATOR(pg_catalog.=) c.oid"
					" JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace"
					" WHERE n.nspname OPERATOR(pg_catalog.=) 'eventstore'"
					" AND c.relkind OPERATOR(pg_catalog.=) 'r'"
					" AND a.attname OPERATOR(pg_catalog.=) 'store' AND NOT a.attisdropped"
					" AND a.atttypid OPERATOR(pg_catalog.=) 'pg_catalog.regclass'::pg_catalog.regtype"
					" ORDER BY c.relname", true, 0) == SPI_OK_SELECT)
	{
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			char	   *name = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);

			spi = MemoryContextSwitchTo(outer);
			tables = lappend(tables, pstrdup(name));
			MemoryContextSwitchTo(spi);
		}
	}
	SPI_finish();

	if (ngone == 0)
		PG_RETURN_VOID();
	arr = construct_array(gone, ngone, OIDOID, sizeof(Oid), true, TYPALIGN_INT);
	values[0] = PointerGetDatum(arr);
	foreach(lc, tables)
	{
		char	   *sql = psprintf("DELETE FROM %s WHERE store::pg_catalog.oid"
								   " OPERATOR(pg_catalog.=) ANY ($1)", (char *) lfirst(lc));

		(void) es_registry_write(sql, 1, argtypes, values, NULL);
	}
	PG_RETURN_VOID();
}

/*
 * eventstore._store_adopt(store regclass): after create_store adopted a
 * table that already holds events (one restored with pg_dump -t), move the
 * position sequence past its highest position, so the store's next events
 * come after the ones it holds.  The sequence only moves forward, under
 * SHARE ROW EXCLUSIVE on it (as import_events does): no transaction that
 * took a position is in flight, and none takes one until ours ends.  The
 * caller must own the store; the setval runs as the extension's owner.
 * Returns the sequence's value afterwards.
 */
Datum
eventstore_store_adopt(PG_FUNCTION_ARGS)
{
	EsStore    *st = es_store_arg(fcinfo, 0, ACL_SELECT);
	Oid			seq = es_position_seqid();
	int64		top = 0;
	int64		last;
	bool		isnull;

	if (!es_class_ownercheck(st->relid, GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of table %s", st->name)));

	LockRelationOid(seq, ShareRowExclusiveLock);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "eventstore: SPI_connect failed");
	if (SPI_execute(psprintf("SELECT pg_catalog.max(e.global_position) FROM %s e", st->name),
					true, 1) != SPI_OK_SELECT)
		elog(ERROR, "eventstore: reading the store's highest position failed");
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			top = DatumGetInt64(d);
	}
	SPI_finish();

	last = es_sequence_last_value(seq);
	if (top > last)
	{
		Oid			save_userid;
		int			save_sec;

		GetUserIdAndSecContext(&save_userid, &save_sec);
		SetUserIdAndSecContext(es_events_owner(), save_sec | SECURITY_LOCAL_USERID_CHANGE);
		(void) DirectFunctionCall2(setval_oid, ObjectIdGetDatum(seq), Int64GetDatum(top));
		SetUserIdAndSecContext(save_userid, save_sec);
		last = top;
	}
	PG_RETURN_INT64(last);
}
