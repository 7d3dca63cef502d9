/*
 * citus.c
 *		Stores distributed with Citus: an append works on the local shard
 *		that holds its stream.
 *
 * When a store is a hash-distributed Citus table (eventstore.distribute()),
 * its table on each node is an empty shell and the events live in shards,
 * ordinary tables named <store>_<shardid> on the node that holds them.  An
 * append looks the stream's head up with direct index scans (append.c), so
 * it must scan the shard, not the shell, and it inserts into the same shard
 * so that the lookup and the insert see one table.  The stream's lock, the
 * position sequence, the outbox and the statistics are the node's own: an
 * append to a distributed store is a local transaction on the node that
 * holds the stream, and Citus sends the call there in one round trip
 * (create_distributed_function with the stream id as distribution argument,
 * done by eventstore.distribute()).  Called on a node that does not hold the
 * stream's shard (the coordinator, when Citus did not delegate the call), an
 * append is refused rather than routed: the stream lock and the position
 * would be taken on the wrong node.  Because the append writes the shard
 * itself, not through Citus's executor, it takes the shard lock that
 * executor would (es_citus_shard), so that shard moves and appends wait for
 * each other.
 *
 * Reads of the log (read_all, read_category, subscriptions) on a worker read
 * the node's own shards of a distributed store (es_store_local_sql), up to
 * the node's horizon: each worker's log, ordered within the node.  On the
 * coordinator, which holds no part of any node's log, they are refused with
 * 0A000 rather than read through Citus, which would mix the nodes' logs
 * under one node's horizon.
 *
 * Nothing here runs for a store that is not distributed: whether a store is
 * distributed is decided when catalog.c checks the store (once per backend
 * and table change; Citus sends a relcache invalidation for the table when
 * its distribution metadata changes), and costs nothing when the citus
 * extension is not installed in the database.
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/tupdesc.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"

#include "eventstore.h"

PG_FUNCTION_INFO_V1(eventstore_read_node);
PG_FUNCTION_INFO_V1(eventstore_store_local);

/*
 * Is relid a hash-distributed Citus table?  Reads Citus's pg_dist_partition
 * when the citus extension is installed; false otherwise.
 */
bool
es_citus_distributed(Oid relid)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1];
	bool		result = false;
	int			rc;

	if (!OidIsValid(get_extension_oid("citus", true)))
		return false;
	if (!OidIsValid(get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE)))
		return false;
	values[0] = ObjectIdGetDatum(relid);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "eventstore: SPI_connect failed");
	rc = SPI_execute_with_args("SELECT 1 FROM pg_catalog.pg_dist_partition"
							   " WHERE logicalrelid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass"
							   " AND partmethod OPERATOR(pg_catalog.=) 'h'",
							   1, argtypes, values, NULL, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "eventstore: reading pg_dist_partition failed");
	result = SPI_processed > 0;
	SPI_finish();
	return result;
}

/*
 * The local shard of distributed store st that holds stream_id, as a store
 * entry (catalog.c checks its keys like a store's and keeps its prepared
 * inserts), with Citus's metadata lock on it held to the end of the
 * transaction.
 *
 * The lock is the one Citus's own executor takes before it writes a shard
 * (LockShardDistributionMetadata(shard, ShareLock), here through Citus's
 * lock_shard_metadata()): a shard move or split takes it in ExclusiveLock
 * on every node while it blocks the shard's writes, so an append holding it
 * is either done before the move copies the shard (or its last changes, for
 * a logical move) or waits until the move is over.  Citus leaves that lock
 * to the worker when it delegates a call (it treats the call as a read), so
 * without it an append could write the old placement during or after a move
 * and be lost with it.  Once the lock is held the placement is read again
 * with a fresh snapshot: if the shard is no longer placed here (it moved
 * while the call was routed or waiting) the append is refused with 40001, and
 * a retry through the coordinator goes to the node that now holds the stream.
 * Raises 0A000 when the shard was never here (the call ran on the wrong
 * node).
 */
EsStore *
es_citus_shard(EsStore *st, Datum stream_id)
{
	Oid			argtypes[3] = {REGCLASSOID, TEXTOID, INT8OID};
	Datum		values[3];
	SPIPlanPtr	plan;
	int64		shardid;
	Oid			shard = InvalidOid;
	bool		local = false;
	bool		isnull;

	values[0] = ObjectIdGetDatum(st->relid);
	values[1] = stream_id;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "eventstore: SPI_connect failed");
	plan = es_store_plan(st, ES_PLAN_CITUS_SHARD,
						 "SELECT s.id, pg_catalog.lock_shard_metadata(5, ARRAY[s.id])"	/* 5: ShareLock */
						 " FROM (SELECT pg_catalog.get_shard_id_for_distribution_column($1, $2) AS id) s",
						 2, argtypes, 0);
	if (SPI_execute_plan(plan, values, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "eventstore: looking up the shard of stream \"%s\" failed",
			 TextDatumGetCString(stream_id));
	shardid = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	/* with the lock held: where the shard is placed now */
	values[2] = Int64GetDatum(shardid);
	plan = es_store_plan(st, ES_PLAN_CITUS_PLACEMENT,
						 "SELECT pg_catalog.to_regclass(pg_catalog.shard_name($1, $3))::pg_catalog.oid,"
						 " EXISTS (SELECT FROM pg_catalog.pg_dist_placement p, pg_catalog.pg_dist_local_group g"
						 "  WHERE p.shardid OPERATOR(pg_catalog.=) $3"
						 "  AND p.groupid OPERATOR(pg_catalog.=) g.groupid)",
						 3, argtypes, 0);
	if (SPI_execute_snapshot(plan, values, NULL, GetLatestSnapshot(), InvalidSnapshot,
							 true, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "eventstore: looking up the placement of shard " INT64_FORMAT " failed", shardid);
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			shard = DatumGetObjectId(d);
	}
	local = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	SPI_finish();

	if (!local && OidIsValid(shard))
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("stream \"%s\" of distributed store %s is moving or has moved to another node",
						TextDatumGetCString(stream_id), st->name),
				 errdetail("Shard " INT64_FORMAT " still has a table on this node but is not placed here; nothing was appended.",
						   shardid),
				 errhint("Retry the append through the coordinator, which sends it to the node that holds the stream.")));
	if (!local || !OidIsValid(shard))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("stream \"%s\" of distributed store %s is not stored on this node",
						TextDatumGetCString(stream_id), st->name),
				 errdetail("An append to a distributed store runs on the node that holds the stream's shard (shard " INT64_FORMAT ").",
						   shardid),
				 errhint("Call eventstore.append or eventstore.append_event outside an explicit transaction block, with constant arguments, so that Citus runs it on that node; eventstore.distribute() sets that up.")));
	return es_store_shard(shard, st);
}

/*
 * The shards of distributed store st placed on this node, as quoted names
 * for SQL text, in shard id order, allocated in the caller's memory
 * context.  *coordinator: is this node the coordinator (group 0)?
 */
static List *
es_citus_local_shards(EsStore *st, bool *coordinator)
{
	Oid			argtypes[1] = {REGCLASSOID};
	Datum		values[1] = {ObjectIdGetDatum(st->relid)};
	MemoryContext caller = CurrentMemoryContext;
	List	   *shards = NIL;
	bool		isnull;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "eventstore: SPI_connect failed");
	if (SPI_execute("SELECT g.groupid OPERATOR(pg_catalog.=) 0 FROM pg_catalog.pg_dist_local_group g",
					true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "eventstore: reading pg_dist_local_group failed");
	*coordinator = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (SPI_execute_with_args("SELECT pg_catalog.shard_name($1, s.shardid)"
							  " FROM pg_catalog.pg_dist_shard s, pg_catalog.pg_dist_placement p,"
							  " pg_catalog.pg_dist_local_group g"
							  " WHERE s.logicalrelid OPERATOR(pg_catalog.=) $1"
							  " AND p.shardid OPERATOR(pg_catalog.=) s.shardid"
							  " AND p.groupid OPERATOR(pg_catalog.=) g.groupid"
							  " ORDER BY s.shardid",
							  1, argtypes, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "eventstore: listing the local shards failed");
	for (uint64 i = 0; i < SPI_processed; i++)
		shards = lappend(shards, MemoryContextStrdup(caller,
													 SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1)));
	SPI_finish();
	return shards;
}

/*
 * What a read of this node's log of store st reads, as SQL text to follow
 * FROM: the store itself unless it is distributed; for a distributed store
 * on a worker, its shards on this node (UNION ALL: the planner pushes the
 * conditions into each shard's indexes), or no rows of the store's columns
 * when the node holds none.  On the coordinator a distributed store has no
 * log: the caller's operation (what, for the message) is refused with
 * 0A000 and hint.
 */
char *
es_store_local_sql(EsStore *st, const char *what, const char *hint)
{
	StringInfoData sql;
	List	   *shards;
	bool		coordinator;
	ListCell   *lc;

	if (!st->distributed)
		return st->name;
	shards = es_citus_local_shards(st, &coordinator);
	if (coordinator)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s does not read distributed store %s on the coordinator", what, st->name),
				 errdetail("Each node of the cluster keeps its own log of the store, ordered within the node only; reading them together through the coordinator would mix the nodes under one node's horizon."),
				 errhint("%s", hint)));
	initStringInfo(&sql);
	appendStringInfoChar(&sql, '(');
	foreach(lc, shards)
		appendStringInfo(&sql, "%sSELECT * FROM %s", lc == list_head(shards) ? "" : " UNION ALL ",
						 (char *) lfirst(lc));
	if (shards == NIL)
	{
		Relation	rel = relation_open(st->relid, AccessShareLock);
		TupleDesc	desc = RelationGetDescr(rel);
		bool		first = true;

		appendStringInfoString(&sql, "SELECT ");
		for (int a = 0; a < desc->natts; a++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, a);

			if (att->attisdropped)
				continue;
			appendStringInfo(&sql, "%sNULL::%s AS %s", first ? "" : ", ",
							 format_type_be(att->atttypid), quote_identifier(NameStr(att->attname)));
			first = false;
		}
		appendStringInfoString(&sql, " WHERE false");
		relation_close(rel, AccessShareLock);
	}
	appendStringInfoChar(&sql, ')');
	return sql.data;
}

/*
 * eventstore._store_local(store regclass) RETURNS text (STRICT):
 * es_store_local_sql for the SQL bodies that read a subscription's store
 * (owner-only).
 */
Datum
eventstore_store_local(PG_FUNCTION_ARGS)
{
	EsStore    *st = es_store(PG_GETARG_OID(0));

	PG_RETURN_TEXT_P(cstring_to_text(es_store_local_sql(st, "a subscription", ES_CITUS_SUBSCRIPTION_HINT)));
}

/*
 * eventstore.read_node(after_position bigint DEFAULT 0, max_count integer
 * DEFAULT 1000, store regclass DEFAULT 'eventstore.events'): this node's log
 * of the store, in position order, up to this node's read horizon.
 *
 * On a Citus node a distributed store's events are in the node's shards, and
 * their positions come from the node's own sequence: the horizon that makes
 * read_all gap-safe holds for them, and for nothing stored on other nodes.
 * So this reads the shards placed on this node, with the snapshot taken
 * together with the horizon (horizon.c), and returns each node's log to a
 * reader that keeps one checkpoint per node.  For a store that is not
 * distributed it reads the store's table: read_all without upcasting.
 */
Datum
eventstore_read_node(PG_FUNCTION_ARGS)
{
	EsStore    *st = es_store_arg(fcinfo, 2, ACL_SELECT);
	int64		after = PG_ARGISNULL(0) ? 0 : PG_GETARG_INT64(0);
	bool		limited = !PG_ARGISNULL(1);
	int64		limit = limited ? PG_GETARG_INT32(1) : 0;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TupleDesc	desc;
	Snapshot	snapshot;
	int64		horizon;
	List	   *tables = NIL;
	StringInfoData cols;
	StringInfoData sql;
	ListCell   *lc;
	Oid			save_userid;
	int			save_sec;

	if (limited && limit < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_count must not be negative")));
	InitMaterializedSRF(fcinfo, 0);
	desc = rsinfo->setDesc;

	horizon = es_read_horizon(ES_COUNTER_POSITION, es_position_seqid(), &snapshot);
	if (after >= horizon || (limited && limit == 0))
	{
		UnregisterSnapshot(snapshot);
		return (Datum) 0;
	}

	/* the shards are read as the store's owner: SELECT on the store was checked */
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(st->owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "eventstore: SPI_connect failed");
	if (st->distributed)
	{
		bool		coordinator;

		tables = es_citus_local_shards(st, &coordinator);
	}
	else
		tables = list_make1(st->name);

	if (tables != NIL)
	{
		Oid			argtypes[3] = {INT8OID, INT8OID, INT8OID};
		Datum		values[3] = {Int64GetDatum(after), Int64GetDatum(horizon), Int64GetDatum(limit)};
		char		nulls[3] = {' ', ' ', limited ? ' ' : 'n'};
		SPIPlanPtr	plan;

		/* the result's columns by name (a dropped column of the row type reads NULL) */
		initStringInfo(&cols);
		for (int a = 0; a < desc->natts; a++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, a);

			if (a > 0)
				appendStringInfoString(&cols, ", ");
			if (att->attisdropped)
				appendStringInfoString(&cols, "NULL::pg_catalog.int4");
			else
				appendStringInfoString(&cols, quote_identifier(NameStr(att->attname)));
		}
		initStringInfo(&sql);
		appendStringInfo(&sql, "SELECT %s FROM (", cols.data);
		foreach(lc, tables)
			appendStringInfo(&sql, "%sSELECT %s FROM %s", lc == list_head(tables) ? "" : " UNION ALL ",
							 cols.data, (char *) lfirst(lc));
		appendStringInfoString(&sql, ") e WHERE e.global_position OPERATOR(pg_catalog.>) $1"
							   " AND e.global_position OPERATOR(pg_catalog.<=) $2"
							   " ORDER BY e.global_position LIMIT $3");
		plan = SPI_prepare(sql.data, 3, argtypes);
		if (plan == NULL)
			elog(ERROR, "eventstore: SPI_prepare failed for \"%s\": %s",
				 sql.data, SPI_result_code_string(SPI_result));
		if (SPI_execute_snapshot(plan, values, nulls, snapshot, InvalidSnapshot,
								 true, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "eventstore: reading this node's log failed");
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			Datum	   *vals = palloc(sizeof(Datum) * desc->natts);
			bool	   *isnull = palloc(sizeof(bool) * desc->natts);
			MemoryContext old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);

			heap_deform_tuple(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, vals, isnull);
			for (int a = 0; a < desc->natts; a++)
				if (TupleDescAttr(desc, a)->attisdropped)
					isnull[a] = true;
			tuplestore_putvalues(rsinfo->setResult, desc, vals, isnull);
			MemoryContextSwitchTo(old);
		}
	}
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec);
	UnregisterSnapshot(snapshot);
	return (Datum) 0;
}
