/*
 * import.c
 *		eventstore.import_events(): load a whole history from another store in
 *		one set-based statement.
 *
 * The caller fills a staging relation (normally with COPY) whose columns are
 * those of the type eventstore.import_row; import_events() checks it with
 * one query, then reads the rows in import order (without a sort when they
 * are stored in that order) and inserts them through append.c's executor
 * insert path, 1,000 rows per table_multi_insert() as COPY FROM does.  The
 * store's triggers fire as for an append.  Rows are imported in order
 * of (ord, stream_version) and get consecutive global positions in that
 * order: the first through es_allocate(), so the transaction is in flight
 * for the read horizon like any append, the rest as the block that follows
 * it, after which the sequence is set past the block (one setval instead of
 * a nextval per row).  Per stream
 * the imported versions must continue the stream exactly (first = current
 * version + 1, then consecutive) and created_at must never decrease; a
 * duplicate event id in a stream is refused by the (stream_id, event_id) key.
 *
 * Stores.  import_events(source, store) imports into one store (the
 * default store by default); below, "the store" is its table.
 *
 * Locking rules.  An append takes a per-stream advisory lock that stays to
 * the end of its transaction; one transaction that appends to 15,000 streams
 * so fills the shared lock table.  The import takes no per-stream lock at
 * all.  Instead it takes ONE heavyweight lock, SHARE ROW EXCLUSIVE on
 * the store, held to the end of its transaction:
 *
 *	- it conflicts with ROW EXCLUSIVE, which every append takes on the table
 *	  before its stream lock (append.c): an import waits for the appends in
 *	  flight to end, and appends that start during an import wait for it to
 *	  end, before they read their stream's version.  So the versions the
 *	  import checks against are final, and an append that follows an import
 *	  sees the imported events (wrong expected version, ES409, not a
 *	  duplicate key).
 *	- it conflicts with itself: one import into a store at a time.
 *
 * Every store takes its positions from the one position sequence, so the
 * store's lock does not keep appends to other stores from taking one in the
 * middle of the block.  The import also takes SHARE ROW EXCLUSIVE on the
 * sequence: every position is taken under ROW EXCLUSIVE on it (nextval, and
 * horizon.c's es_allocate), held to the end of the taker's transaction.  So
 * the import waits for every transaction that took a position to end, and
 * no other transaction takes one until the import's ends: appends to any
 * store wait at their first position (one import at a time in the
 * database).  That is what makes the block of positions safe; the import
 * still checks that the sequence did not move before its setval.
 *	- it does not conflict with ACCESS SHARE: reads go on (they stop at the
 *	  read horizon, which the import holds back like an append).
 *
 * Releasing per-stream locks early was rejected: our uncommitted rows are
 * invisible to a concurrent append, which would then reach the unique key
 * instead of the version check.  The source relation is locked in SHARE mode
 * so that it cannot change between the check and the insert.
 *
 * The checks and the insert read with a snapshot taken after the lock, so
 * they see every committed append also in REPEATABLE READ.  Rows are
 * inserted as the store's owner (EXECUTE on import_events is the privilege
 * to import into the default store; into another store the caller must
 * also have its owner's privileges; the caller needs SELECT on the source, which must be
 * a plain table without row-level security, read with ONLY: nothing of the
 * caller's runs with the owner's rights).  The sequence is moved past the
 * block as the extension's owner, whose it is.  Projections,
 * routes and snapshot policies do not run for imported events.
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/syscache.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "eventstore.h"

PG_FUNCTION_INFO_V1(eventstore_import_events);
PG_FUNCTION_INFO_V1(eventstore_event_size);

/* The source's columns: the attributes of eventstore.import_row. */
static const struct
{
	const char *name;
	Oid			type;
}			es_import_columns[] =
{
	{"ord", INT8OID},
	{"stream_id", TEXTOID},
	{"stream_version", INT8OID},
	{"event_type", TEXTOID},
	{"data", JSONBOID},
	{"metadata", JSONBOID},
	{"created_at", TIMESTAMPTZOID},
	{"event_id", UUIDOID},
};

/*
 * The first row that breaks a rule, in import order, with the number of the
 * rule (0 when none does).  Rules 1-10 concern one row; 20-24 the sequence of
 * a stream, whose rows are numbered rn in import order and continue the
 * stream's version: that of its last stored event (head), or the version
 * its deletions and purges kept (floor), whichever is higher; a tombstoned
 * stream (tomb) takes none.  floor and tomb are 0 and false for a store
 * without lifecycle rows (the format's third and fourth arguments).
 */
static const char es_import_check_sql[] =
"SELECT c.kind, c.ord, c.stream_id, c.stream_version, c.expected, c.created_at, c.previous_at"
" FROM (SELECT r.ord, r.stream_id, r.stream_version, r.created_at,"
"  pg_catalog.int8pl(COALESCE(r.prev_version, pg_catalog.int8larger(COALESCE((r.head).stream_version, 0), r.floor)), 1) AS expected,"
"  COALESCE(r.prev_at, (r.head).created_at) AS previous_at,"
"  CASE WHEN r.bad OPERATOR(pg_catalog.<>) 0 THEN r.bad"
"   WHEN r.rn OPERATOR(pg_catalog.=) 1 AND r.tomb THEN 24"
"   WHEN r.rn OPERATOR(pg_catalog.=) 1 AND r.stream_version OPERATOR(pg_catalog.<>)"
"    (pg_catalog.int8larger(COALESCE((r.head).stream_version, 0), r.floor) OPERATOR(pg_catalog.+) 1) THEN 20"
"   WHEN r.stream_version OPERATOR(pg_catalog.=) r.prev_version THEN 21"
"   WHEN r.stream_version OPERATOR(pg_catalog.<>) (r.prev_version OPERATOR(pg_catalog.+) 1) THEN 22"
"   WHEN r.created_at OPERATOR(pg_catalog.<) COALESCE(r.prev_at, (r.head).created_at) THEN 23"
"   ELSE 0 END AS kind"
/* head: the stream's last stored event, looked up once per stream (rn = 1) */
"  FROM (SELECT w.*, CASE WHEN w.rn OPERATOR(pg_catalog.=) 1 THEN"
"     (SELECT e FROM %s e WHERE e.stream_id OPERATOR(pg_catalog.=) w.stream_id"
"       ORDER BY e.stream_version DESC LIMIT 1) END AS head,"
"    CASE WHEN w.rn OPERATOR(pg_catalog.=) 1 THEN %s ELSE 0 END AS floor,"
"    CASE WHEN w.rn OPERATOR(pg_catalog.=) 1 THEN %s ELSE false END AS tomb"
"   FROM (SELECT s.ord, s.stream_id, s.stream_version, s.created_at, s.bad,"
"     pg_catalog.row_number() OVER win AS rn,"
"     pg_catalog.lag(s.stream_version) OVER win AS prev_version,"
"     pg_catalog.lag(s.created_at) OVER win AS prev_at"
/* the rules on one row, below the window (OFFSET 0): the sort carries no data */
"    FROM (SELECT s.ord, s.stream_id, s.stream_version, s.created_at,"
"     CASE WHEN s.ord IS NULL THEN 1"
"      WHEN s.stream_id IS NULL THEN 2"
"      WHEN s.stream_version IS NULL THEN 3"
"      WHEN s.event_type IS NULL THEN 4"
"      WHEN s.data IS NULL THEN 5"
"      WHEN s.created_at IS NULL THEN 6"
"      WHEN s.stream_id OPERATOR(pg_catalog.=) '' THEN 7"
"      WHEN pg_catalog.octet_length(s.stream_id) OPERATOR(pg_catalog.>) " CppAsString2(ES_MAX_STREAM_ID_BYTES) " THEN 8"
"      WHEN s.event_type OPERATOR(pg_catalog.=) '' THEN 9"
"      WHEN s.metadata IS NOT NULL"
"       AND pg_catalog.jsonb_typeof(s.metadata) OPERATOR(pg_catalog.<>) 'object' THEN 10"
"      WHEN eventstore._event_size(s.data, s.event_type, s.metadata) OPERATOR(pg_catalog.>) $1 THEN 11"
"      ELSE 0 END AS bad"
"     FROM ONLY %s s OFFSET 0) s"
"    WINDOW win AS (PARTITION BY s.stream_id COLLATE pg_catalog.\"C\" ORDER BY s.ord, s.stream_version)) w"
"   OFFSET 0) r) c"
" WHERE c.kind OPERATOR(pg_catalog.<>) 0"
" ORDER BY c.ord NULLS FIRST, c.stream_version NULLS FIRST LIMIT 1";

/*
 * The rows to insert, in import order.  Row number n (from 1) gets position
 * first + n - 1: the block of positions starting at the one es_allocate()
 * took, which no other transaction can take meanwhile (see the file header);
 * the sequence is moved past the block afterwards.
 */
static const char es_import_rows_sql[] =
"SELECT s.stream_id, s.stream_version, COALESCE(s.event_id, pg_catalog.gen_random_uuid()),"
" s.event_type, s.data, s.metadata, s.created_at"
" FROM ONLY %s s%s";

/* The import order of the source's rows, read as they are stored. */
static const char es_import_order_sql[] =
"SELECT s.ord, s.stream_version FROM ONLY %s s";

/* Rows fetched from the cursor at a time. */
#define ES_IMPORT_FETCH 1000

/*
 * A cursor on sql, read with a snapshot taken now, after our locks (the
 * source does not change under its SHARE lock: every cursor sees the same
 * rows, and a plain scan returns them in the same order, as synchronized
 * scans are off).
 */
static Portal
es_import_cursor(const char *sql)
{
	SPIPlanPtr	plan = SPI_prepare_cursor(sql, 0, NULL, CURSOR_OPT_NO_SCROLL);
	Portal		portal;

	if (plan == NULL)
		elog(ERROR, "eventstore: SPI_prepare failed for \"%s\": %s",
			 sql, SPI_result_code_string(SPI_result));
	PushActiveSnapshot(GetLatestSnapshot());
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
	PopActiveSnapshot();
	return portal;
}

/*
 * True when a plain scan of the source returns its rows in import order
 * (ord, stream_version): a table filled by one COPY of a history in order
 * does.  Then the rows are inserted as they are read, without sorting them:
 * one pass over two columns instead of a sort of every row.  Rows equal in
 * (ord, stream_version) have no order among them either way.  The check has
 * refused null ords and versions already.
 */
static bool
es_import_in_order(const char *source_name)
{
	Portal		portal = es_import_cursor(psprintf(es_import_order_sql, source_name));
	bool		first = true;
	bool		in_order = true;
	int64		prev_ord = 0;
	int64		prev_version = 0;

	while (in_order)
	{
		SPI_cursor_fetch(portal, true, 10 * ES_IMPORT_FETCH);
		if (SPI_processed == 0)
			break;
		for (uint64 r = 0; r < SPI_processed && in_order; r++)
		{
			bool		isnull;
			int64		ord = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
			int64		version = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull));

			in_order = first || ord > prev_ord || (ord == prev_ord && version >= prev_version);
			first = false;
			prev_ord = ord;
			prev_version = version;
		}
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	return in_order;
}

/*
 * Insert the source's rows into the store in import order, positions from
 * first on, through the executor's insert path for one table that append()
 * uses too (append.c), buffered and handed to table_multi_insert() as COPY
 * does.  Reads with a snapshot taken now, after our locks.  Returns the
 * number of rows inserted.
 */
static uint64
es_import_insert(EsStore *st, const char *source_name, int64 first)
{
	Portal		portal;
	EsInserter *ins;
	Datum		no_tags = PointerGetDatum(construct_empty_array(TEXTOID));
	uint64		n = 0;

	portal = es_import_cursor(psprintf(es_import_rows_sql, source_name,
									   es_import_in_order(source_name)
									   ? "" : " ORDER BY s.ord, s.stream_version"));
	ins = es_inserter_begin(st, true, "import");
	for (;;)
	{
		SPI_cursor_fetch(portal, true, ES_IMPORT_FETCH);
		if (SPI_processed == 0)
			break;
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			TupleTableSlot *slot = es_inserter_slot(ins);
			Datum	   *values = slot->tts_values;
			bool	   *isnull = slot->tts_isnull;
			Datum		row[7];
			bool		row_null[7];

			heap_deform_tuple(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, row, row_null);
#define ES_SET(col, value) (values[st->attnum[col] - 1] = (value), isnull[st->attnum[col] - 1] = false)
			ES_SET(ES_COL_POSITION, Int64GetDatum(first + (int64) n));
			ES_SET(ES_COL_STREAM, row[0]);
			ES_SET(ES_COL_VERSION, row[1]);
			ES_SET(ES_COL_ID, row[2]);
			ES_SET(ES_COL_TYPE, row[3]);
			ES_SET(ES_COL_DATA, row[4]);
			if (!row_null[5])
				ES_SET(ES_COL_METADATA, row[5]);
			ES_SET(ES_COL_CREATED_AT, row[6]);
			if (st->has_tags)
				ES_SET(ES_COL_TAGS, no_tags);
#undef ES_SET
			(void) es_inserter_put(ins);
			n++;
		}
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	es_inserter_end(ins);
	SPI_cursor_close(portal);
	return n;
}

/* Refuse a source that lacks a column of eventstore.import_row or types it otherwise. */
static void
es_import_check_columns(Oid relid)
{
	for (int i = 0; i < (int) lengthof(es_import_columns); i++)
	{
		AttrNumber	att = get_attnum(relid, es_import_columns[i].name);
		Oid			type;

		if (att == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("import source \"%s\" has no column \"%s\"",
							get_rel_name(relid), es_import_columns[i].name),
					 errhint("Create the source with the columns of eventstore.import_row, e.g. CREATE TABLE staging (LIKE eventstore.import_row).")));
		type = get_atttype(relid, att);
		if (type != es_import_columns[i].type)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" of import source \"%s\" has type %s, not %s",
							es_import_columns[i].name, get_rel_name(relid),
							format_type_be(type), format_type_be(es_import_columns[i].type))));
	}
}

/* Raise the error for the first offending row the check query returned. */
static void
es_import_report(HeapTuple row, TupleDesc desc)
{
	bool		isnull;
	int			kind = DatumGetInt32(SPI_getbinval(row, desc, 1, &isnull));
	char	   *ord = SPI_getvalue(row, desc, 2);
	char	   *stream = SPI_getvalue(row, desc, 3);
	char	   *version = SPI_getvalue(row, desc, 4);
	char	   *expected = SPI_getvalue(row, desc, 5);
	char	   *created_at = SPI_getvalue(row, desc, 6);
	char	   *previous_at = SPI_getvalue(row, desc, 7);
	static const char *const null_column[] = {
		NULL, "ord", "stream_id", "stream_version", "event_type", "data", "created_at"
	};

	if (ord == NULL)
		ord = "NULL";
	if (kind >= 1 && kind <= 6)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s of imported row %s must not be null", null_column[kind], ord),
				 errdetail("Nothing was imported.")));
	switch (kind)
	{
		case 7:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("stream_id of imported row %s must not be empty", ord),
					 errdetail("Nothing was imported.")));
			break;
		case 8:
			ereport(ERROR,
					(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
					 errmsg("stream_id of imported row %s is too long", ord),
					 errdetail("The limit is %d bytes. Nothing was imported.",
							   ES_MAX_STREAM_ID_BYTES)));
			break;
		case 9:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("event_type of imported row %s must not be empty", ord),
					 errdetail("Nothing was imported.")));
			break;
		case 10:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("metadata of imported row %s must be a JSON object", ord),
					 errdetail("Nothing was imported.")));
			break;
		case 11:
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("imported row %s is too large", ord),
					 errdetail("eventstore.max_event_size is %d bytes. Nothing was imported.",
							   es_max_event_size)));
			break;
		case 24:
			ereport(ERROR,
					(errcode(ERRCODE_ES_STREAM_DELETED),
					 errmsg("stream \"%s\" is deleted for ever", stream),
					 errdetail("A hard delete left a tombstone: the stream id cannot be used again (row %s). Nothing was imported.", ord),
					 errhint("Import the events into another stream.")));
			break;
		case 20:
			ereport(ERROR,
					(errcode(ERRCODE_ES_WRONG_EXPECTED_VERSION),
					 errmsg("imported events of stream \"%s\" start at version %s, but the stream is at version %lld",
							stream, version, (long long) (strtoi64(expected, NULL, 10) - 1)),
					 errdetail("The first imported version of a stream must be its current version + 1 (row %s). Nothing was imported.", ord)));
			break;
		case 21:
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("version %s of stream \"%s\" is imported more than once", version, stream),
					 errdetail("Row %s repeats it. Nothing was imported.", ord)));
			break;
		case 22:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("imported versions of stream \"%s\" are not consecutive: version %s follows version %lld",
							stream, version, (long long) (strtoi64(expected, NULL, 10) - 1)),
					 errdetail("In order of (ord, stream_version) each stream's versions must be consecutive (row %s). Nothing was imported.", ord)));
			break;
		case 23:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("created_at of version %s of stream \"%s\" is before the previous event's",
							version, stream),
					 errdetail("Row %s has %s, the previous event %s; created_at never decreases in a stream. Nothing was imported.",
							   ord, created_at, previous_at)));
			break;
	}
	elog(ERROR, "eventstore: unknown import check %d", kind);
}

/*
 * eventstore._event_size(data jsonb, event_type text, metadata jsonb): the
 * size append() compares with eventstore.max_event_size, from the values'
 * headers (a compressed or toasted value is not expanded).
 */
Datum
eventstore_event_size(PG_FUNCTION_ARGS)
{
	int64		size;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	size = (int64) toast_raw_datum_size(PG_GETARG_DATUM(0)) +
		(int64) (toast_raw_datum_size(PG_GETARG_DATUM(1)) - VARHDRSZ);
	if (!PG_ARGISNULL(2))
		size += (int64) toast_raw_datum_size(PG_GETARG_DATUM(2));
	PG_RETURN_INT64(size);
}

/* True when relation relid has row-level security enabled. */
static bool
es_rel_has_row_security(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	bool		rls;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	rls = ((Form_pg_class) GETSTRUCT(tup))->relrowsecurity;
	ReleaseSysCache(tup);
	return rls;
}

/* Run plan (prepared from sql) with a snapshot taken now, after our locks. */
static int
es_import_execute(const char *sql, int nargs, Oid *argtypes, Datum *values, long tcount)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "eventstore: SPI_prepare failed for \"%s\": %s",
			 sql, SPI_result_code_string(SPI_result));
	return SPI_execute_snapshot(plan, values, NULL, GetLatestSnapshot(), InvalidSnapshot,
								false, true, tcount);
}

/*
 * eventstore.import_events(source regclass, store regclass DEFAULT
 * 'eventstore.events') returns bigint: the number of events imported.
 */
Datum
eventstore_import_events(PG_FUNCTION_ARGS)
{
	Oid			source;
	char	   *source_name;
	AclResult	aclresult;
	Oid			save_userid;
	int			save_sec;
	int			rc;
	int			save_nestlevel;
	uint64		imported;
	EsStore    *st;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("source must not be null")));
	source = PG_GETARG_OID(0);
	source_name = get_rel_name(source);
	if (source_name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", source)));
	st = es_store_arg(fcinfo, 1, 0);
	if (!st->is_default && !has_privs_of_role(GetUserId(), st->owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to import into store %s", st->name),
				 errdetail("Events are imported into a store by its owner, %s.",
						   GetUserNameFromId(st->owner, false))));
	if (source == st->relid)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot import %s into itself", st->name)));

	/*
	 * The source is read as the owner of eventstore.events (a superuser in a
	 * standard install), so it must be a plain table: a view, a foreign
	 * table or a table's children could run the caller's functions with the
	 * owner's rights, and row-level security (which the owner bypasses)
	 * could hide rows from the caller that the owner would import.
	 */
	if (get_rel_relkind(source) != RELKIND_RELATION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("source \"%s\" is not a table", source_name),
				 errhint("Load the rows into a table, e.g. CREATE TEMP TABLE staging (LIKE eventstore.import_row), and import that.")));
	if (es_rel_has_row_security(source))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("source \"%s\" has row-level security enabled", source_name),
				 errhint("Copy the rows you may read into a table without it, and import that.")));

	/* The caller reads the source; the rows are written as the table's owner. */
	aclresult = pg_class_aclcheck(source, GetUserId(), ACL_SELECT);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, get_relkind_objtype(get_rel_relkind(source)), source_name);
	es_import_check_columns(source);
	source_name = quote_qualified_identifier(get_namespace_name(get_rel_namespace(source)),
											 source_name);

	LockRelationOid(source, ShareLock);
	LockRelationOid(st->relid, ShareRowExclusiveLock);
	LockRelationOid(es_position_seqid(), ShareRowExclusiveLock);
	/* no append runs in the store until we commit: its cached heads go now */
	es_head_invalidate(false);

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(st->owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "eventstore: SPI_connect failed");

	/*
	 * Up to two sorts of the whole source: give them maintenance_work_mem, as a
	 * bulk load, and no JIT (compiling costs more than it saves here).
	 */
	save_nestlevel = NewGUCNestLevel();
	if (maintenance_work_mem > work_mem)
	{
		char		buf[32];

		snprintf(buf, sizeof(buf), "%d", maintenance_work_mem);
		(void) set_config_option("work_mem", buf, PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	}
	(void) set_config_option("jit", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	/* every plain scan of the source starts at its first block */
	(void) set_config_option("synchronize_seqscans", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);

	{
		Oid			argtypes[1] = {INT4OID};
		Datum		values[1] = {Int32GetDatum(es_max_event_size)};

		char	   *floor = "0";
		char	   *tomb = "false";

		/*
		 * With lifecycle rows (lifecycle.c), a stream continues the version
		 * its deletions and purges kept, as an append does (a soft-deleted
		 * stream is recreated), and a tombstone refuses it (ES410).
		 */
		if (es_lifecycle_active(st->relid, GetLatestSnapshot()))
		{
			floor = psprintf("eventstore._version_floor(%u::pg_catalog.oid::pg_catalog.regclass, w.stream_id)",
							 st->relid);
			tomb = psprintf("(eventstore.stream_metadata(w.stream_id, %u::pg_catalog.oid::pg_catalog.regclass)).tombstone",
							st->relid);
		}
		rc = es_import_execute(psprintf(es_import_check_sql, st->name, floor, tomb, source_name),
							   1, argtypes, values, 1);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "eventstore: the import check failed: %s", SPI_result_code_string(rc));
		if (SPI_processed > 0)
			es_import_report(SPI_tuptable->vals[0], SPI_tuptable->tupdesc);
	}

	{
		Oid			seq = es_position_seqid();
		int64		first;

		/* The first position registers the transaction as in flight. */
		first = es_allocate(ES_COUNTER_POSITION, seq);
		imported = es_import_insert(st, source_name, first);
		if (imported > 1)
		{
			if (es_sequence_last_value(seq) != first)
				elog(ERROR, "eventstore: the position sequence moved during an import");
			SetUserIdAndSecContext(es_events_owner(), save_sec | SECURITY_LOCAL_USERID_CHANGE);
			(void) DirectFunctionCall2(setval_oid, ObjectIdGetDatum(seq),
									   Int64GetDatum(first + (int64) imported - 1));
			SetUserIdAndSecContext(st->owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
		}
	}

	AtEOXact_GUC(true, save_nestlevel);
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec);
	PG_RETURN_INT64((int64) imported);
}
