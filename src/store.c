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
 * registry added later is covered without changing this file.  A table
 * that names its store by name too (snapshots' store_name) and is
 * distributed with Citus holds rows with other nodes' OIDs of the store
 * (moved with their shard): there the rows are found by name as well.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
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
	Datum	   *gone_names;
	int			ngone = 0;
	List	   *tables = NIL;
	ListCell   *lc;
	bool		citus;
	char	   *listing;
	ArrayType  *arr;
	Oid			argtypes[2] = {OIDARRAYOID, TEXTARRAYOID};
	Datum		values[2];
	MemoryContext outer = CurrentMemoryContext;	/* outlives SPI_finish */
	MemoryContext spi;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("eventstore._store_dropped() must be called as an event trigger")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "eventstore: SPI_connect failed");
	if (SPI_execute("SELECT o.objid, o.schema_name, o.object_name"
					" FROM pg_catalog.pg_event_trigger_dropped_objects() o"
					" WHERE o.object_type OPERATOR(pg_catalog.=) 'table' AND NOT o.is_temporary",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "eventstore: reading the dropped objects failed");
	gone = MemoryContextAlloc(outer, sizeof(Datum) * Max(SPI_processed, 1));
	gone_names = MemoryContextAlloc(outer, sizeof(Datum) * Max(SPI_processed, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Oid			relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
														   SPI_tuptable->tupdesc, 1, &isnull));

		if (!isnull && !SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		{
			char	   *nsp = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
			char	   *rel = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3);
			MemoryContext old = MemoryContextSwitchTo(outer);

			gone[ngone] = ObjectIdGetDatum(relid);
			gone_names[ngone++] = CStringGetTextDatum(quote_qualified_identifier(nsp, rel));
			MemoryContextSwitchTo(old);
		}
	}

	/*
	 * The tables to forget the stores in, not one of those dropped (the
	 * command's snapshot still shows them).  With Citus, a shard (of a
	 * registry, of the snapshots) is not one of them: its rows are its
	 * table's.  On a worker a Citus table (a reference table, the distributed
	 * snapshots) is left to the coordinator's trigger: the coordinator's drop
	 * deletes its rows on every node, and a worker drops tables (a store's
	 * shell, a shard moved away) inside a command of the coordinator, where a
	 * query of a Citus table is refused.  A distributed table with a
	 * store_name column is searched by name too (rows moved with their
	 * shard).
	 */
	citus = OidIsValid(get_extension_oid("citus", true));
	if (ngone > 0)
	{
		MemoryContext old = MemoryContextSwitchTo(outer);

		arr = construct_array(gone, ngone, OIDOID, sizeof(Oid), true, TYPALIGN_INT);
		MemoryContextSwitchTo(old);
		values[0] = PointerGetDatum(arr);
	}
	listing = psprintf("SELECT pg_catalog.format('%%I.%%I', n.nspname, c.relname), %s"
					   " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute a"
					   " ON a.attrelid OPERATOR(pg_catalog.=) c.oid"
					   " JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace"
					   " WHERE n.nspname OPERATOR(pg_catalog.=) 'eventstore'"
					   " AND c.relkind OPERATOR(pg_catalog.=) 'r'"
					   " AND a.attname OPERATOR(pg_catalog.=) 'store' AND NOT a.attisdropped"
					   " AND a.atttypid OPERATOR(pg_catalog.=) 'pg_catalog.regclass'::pg_catalog.regtype"
					   " AND c.oid OPERATOR(pg_catalog.<>) ALL ($1)%s"
					   " ORDER BY c.relname",
					   citus ?
					   "EXISTS (SELECT FROM pg_catalog.pg_dist_partition p"
					   "  WHERE p.logicalrelid OPERATOR(pg_catalog.=) c.oid AND p.partmethod OPERATOR(pg_catalog.=) 'h')"
					   " AND EXISTS (SELECT FROM pg_catalog.pg_attribute b WHERE b.attrelid OPERATOR(pg_catalog.=) c.oid"
					   "  AND b.attname OPERATOR(pg_catalog.=) 'store_name' AND NOT b.attisdropped)" : "false",
					   citus ?
					   " AND NOT pg_catalog.relation_is_a_known_shard(c.oid)"
					   " AND NOT (EXISTS (SELECT FROM pg_catalog.pg_dist_partition p"
					   "  WHERE p.logicalrelid OPERATOR(pg_catalog.=) c.oid)"
					   "  AND EXISTS (SELECT FROM pg_catalog.pg_dist_local_group g"
					   "  WHERE g.groupid OPERATOR(pg_catalog.<>) 0))" : "");
	if (ngone > 0 &&
		SPI_execute_with_args(listing, 1, argtypes, values, NULL, true, 0) == SPI_OK_SELECT)
	{
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			char	   *name = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
			bool		isnull;
			bool		by_name = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i],
															 SPI_tuptable->tupdesc, 2, &isnull));

			spi = MemoryContextSwitchTo(outer);
			tables = lappend(tables, psprintf("DELETE FROM %s WHERE store::pg_catalog.oid"
											  " OPERATOR(pg_catalog.=) ANY ($1)%s", name,
											  by_name ? " OR store_name OPERATOR(pg_catalog.=) ANY ($2)" : ""));
			MemoryContextSwitchTo(spi);
		}
	}
	SPI_finish();

	if (ngone == 0)
		PG_RETURN_VOID();
	values[1] = PointerGetDatum(construct_array(gone_names, ngone, TEXTOID, -1, false, TYPALIGN_INT));
	foreach(lc, tables)
	{
		char	   *sql = (char *) lfirst(lc);

		(void) es_registry_write(sql, 2, argtypes, values, NULL);
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
