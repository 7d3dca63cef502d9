/*
 * lifecycle.c
 *		Stream lifecycle: metadata (max_age, max_count, truncate_before) per
 *		stream and per category, soft and hard deletion, and the physical
 *		purge of what they hide.
 *
 * The metadata lives in eventstore.stream_lifecycle, one row per stream or
 * category default of a store.  Reads apply it at once: read_stream (inline
 * SQL) and the C reads (read.c) filter every row through es_lifecycle_bounds
 * when the store has any lifecycle row at all, and plan as before when it
 * has none.  Rows are looked up with direct index scans under the reading
 * query's snapshot, so a read sees the metadata and the events as of the same
 * moment.
 *
 * The version keeps counting: a soft-deleted stream keeps its version
 * (deleted_version), and a purge that removes a stream's last event records
 * it (version_floor), so the next append continues the numbering.  Appends
 * consult the stream's row with the stream lock held (append.c), under
 * SnapshotSelf like the version lookup: a tombstone refuses them (ES410), a
 * soft delete lets expected version 0 recreate the stream.  delete_stream
 * takes the same stream lock, so a deletion and an append of one stream are
 * ordered, and the deletion's expected version is checked like an append's.
 *
 * The purge deletes hidden events in one statement per batch, in the
 * caller's transaction: nothing is held between batches, no position is
 * taken (the read horizon never waits for it), and a crash loses the batch
 * as a whole.  The store's immutability triggers (immutable.c) let a DELETE
 * through only while es_purging names the store, which only this file sets,
 * around its own statement.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/skey.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "common/hashfn.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "eventstore.h"

PG_FUNCTION_INFO_V1(eventstore_set_stream_metadata);
PG_FUNCTION_INFO_V1(eventstore_set_category_metadata);
PG_FUNCTION_INFO_V1(eventstore_stream_metadata);
PG_FUNCTION_INFO_V1(eventstore_delete_stream);
PG_FUNCTION_INFO_V1(eventstore_purge);
PG_FUNCTION_INFO_V1(eventstore_lifecycle_active);
PG_FUNCTION_INFO_V1(eventstore_visible);
PG_FUNCTION_INFO_V1(eventstore_version_floor);

/* The store whose DELETE the immutability triggers let through (immutable.c). */
Oid			es_purging = InvalidOid;

/* Columns of eventstore.stream_lifecycle */
#define ANUM_LC_STORE			1
#define ANUM_LC_CATEGORY		2
#define ANUM_LC_NAME			3
#define ANUM_LC_MAX_AGE			4
#define ANUM_LC_MAX_COUNT		5
#define ANUM_LC_TRUNCATE		6
#define ANUM_LC_DELETED			7
#define ANUM_LC_TOMBSTONE		8
#define ANUM_LC_FLOOR			9

/* One row of eventstore.stream_lifecycle, as far as reads need it. */
typedef struct EsLifeRow
{
	bool		found;
	bool		has_max_age;
	Interval	max_age;
	bool		has_max_count;
	int64		max_count;
	bool		has_truncate;
	int64		truncate_before;
	bool		has_deleted;
	int64		deleted_version;
	bool		tombstone;
	int64		version_floor;
} EsLifeRow;

static void es_lifecycle_switch(EsStore *st, bool always);
static void es_lifecycle_require(void);
static uint64 es_life_write(const char *sql, int nargs, Oid *argtypes, Datum *values, const char *nulls);
static void es_life_audit(EsStore *st, const char *action, text *stream_id, text *category,
						  int64 from_version, int64 to_version, int64 events, text *reason);

/* Tables of this file, looked up by name (absent before the 0.6.0 update). */
static Oid
es_life_relid(void)
{
	return get_relname_relid("stream_lifecycle", es_schema_oid());
}

static Oid
es_life_index(void)
{
	return get_relname_relid("stream_lifecycle_pkey", es_schema_oid());
}

/*
 * Look up the row (store, category, name) with snapshot; with name NULL,
 * only whether the store has any row.  Returns whether one was found.
 */
static bool
es_life_lookup(Oid store, bool category, text *name, Snapshot snapshot, EsLifeRow *row)
{
	Oid			relid = es_life_relid();
	Oid			indexid;
	Relation	heap;
	Relation	index;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	ScanKeyData keys[3];
	int			nkeys = name ? 3 : 1;
	bool		found;

	if (row)
		memset(row, 0, sizeof(EsLifeRow));
	if (!OidIsValid(relid) || !OidIsValid(indexid = es_life_index()))
		return false;
	heap = table_open(relid, AccessShareLock);
	index = index_open(indexid, AccessShareLock);
	ScanKeyEntryInitialize(&keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
						   InvalidOid, F_OIDEQ, ObjectIdGetDatum(store));
	if (name)
	{
		ScanKeyEntryInitialize(&keys[1], 0, 2, BTEqualStrategyNumber, InvalidOid,
							   InvalidOid, F_BOOLEQ, BoolGetDatum(category));
		ScanKeyEntryInitialize(&keys[2], 0, 3, BTEqualStrategyNumber, InvalidOid,
							   index->rd_indcollation[2], F_TEXTEQ, PointerGetDatum(name));
	}
	scan = index_beginscan(heap, index, snapshot, nkeys, 0);
	index_rescan(scan, keys, nkeys, NULL, 0);
	slot = table_slot_create(heap, NULL);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	if (found && row)
	{
		bool		isnull;
		Datum		d;

		row->found = true;
		d = slot_getattr(slot, ANUM_LC_MAX_AGE, &isnull);
		if (!isnull)
		{
			row->has_max_age = true;
			row->max_age = *DatumGetIntervalP(d);
		}
		d = slot_getattr(slot, ANUM_LC_MAX_COUNT, &isnull);
		if ((row->has_max_count = !isnull))
			row->max_count = DatumGetInt64(d);
		d = slot_getattr(slot, ANUM_LC_TRUNCATE, &isnull);
		if ((row->has_truncate = !isnull))
			row->truncate_before = DatumGetInt64(d);
		d = slot_getattr(slot, ANUM_LC_DELETED, &isnull);
		if ((row->has_deleted = !isnull))
			row->deleted_version = DatumGetInt64(d);
		d = slot_getattr(slot, ANUM_LC_TOMBSTONE, &isnull);
		row->tombstone = !isnull && DatumGetBool(d);
		d = slot_getattr(slot, ANUM_LC_FLOOR, &isnull);
		row->version_floor = isnull ? 0 : DatumGetInt64(d);
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, NoLock);
	table_close(heap, NoLock);
	return found;
}

/* Does store have any lifecycle row or subject key (shred.c) visible to snapshot? */
bool
es_lifecycle_active(Oid store, Snapshot snapshot)
{
	return es_life_lookup(store, false, NULL, snapshot, NULL) || es_shred_active(store, snapshot);
}

/* The category of a stream id: the part before its first '-' (all of it without one). */
static text *
es_category_of(text *stream_id)
{
	const char *s = VARDATA_ANY(stream_id);
	int			len = VARSIZE_ANY_EXHDR(stream_id);
	const char *dash = memchr(s, '-', len);

	return cstring_to_text_with_len(s, dash ? (int) (dash - s) : len);
}

/* The last stored version of the stream in st under snapshot (0: none). */
static int64
es_last_version(EsStore *st, text *stream_id, Snapshot snapshot)
{
	Relation	heap = table_open(st->relid, AccessShareLock);
	Relation	index = index_open(st->version_index, AccessShareLock);
	ScanKeyData key;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	int64		version = 0;

	ScanKeyEntryInitialize(&key, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   index->rd_indcollation[0], F_TEXTEQ, PointerGetDatum(stream_id));
	scan = index_beginscan(heap, index, snapshot, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	slot = table_slot_create(heap, NULL);
	if (index_getnext_slot(scan, BackwardScanDirection, slot))
	{
		bool		isnull;

		version = DatumGetInt64(slot_getattr(slot, get_attnum(st->relid, "stream_version"), &isnull));
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, NoLock);
	table_close(heap, NoLock);
	return version;
}

/*
 * What the metadata makes of one stream: reads return the events with
 * version >= first and created_at >= oldest.  The stream's own values win
 * over its category's, value by value.
 */
typedef struct EsBounds
{
	int64		first;
	TimestampTz oldest;
	bool		deleted;
	bool		tombstone;
	int64		floor;			/* version kept by a deletion or a purge */
	EsLifeRow	own;
	EsLifeRow	cat;
} EsBounds;

static void
es_lifecycle_bounds(EsStore *st, text *stream_id, Snapshot snapshot, EsBounds *b)
{
	EsLifeRow  *s = &b->own;
	EsLifeRow  *c = &b->cat;
	bool		has_age;
	Interval	age;

	(void) es_life_lookup(st->relid, false, stream_id, snapshot, s);
	(void) es_life_lookup(st->relid, true, es_category_of(stream_id), snapshot, c);
	b->first = 1;
	b->oldest = DT_NOBEGIN;
	b->deleted = s->has_deleted;
	b->tombstone = s->tombstone;
	b->floor = Max(s->version_floor, s->has_deleted ? s->deleted_version : 0);
	if (s->has_truncate || c->has_truncate)
		b->first = Max(b->first, s->has_truncate ? s->truncate_before : c->truncate_before);
	if (s->has_deleted)
		b->first = Max(b->first, s->deleted_version + 1);
	if (s->has_max_count || c->has_max_count)
	{
		int64		n = s->has_max_count ? s->max_count : c->max_count;
		int64		last = es_last_version(st, stream_id, snapshot);

		if (last - n + 1 > b->first)
			b->first = last - n + 1;
	}
	if (s->tombstone)
		b->first = PG_INT64_MAX;
	has_age = s->has_max_age || c->has_max_age;
	if (has_age)
	{
		age = s->has_max_age ? s->max_age : c->max_age;
		b->oldest = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_mi_interval,
															TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()),
															IntervalPGetDatum(&age)));
	}
}

/*
 * For append (append.c), with the stream lock held: raise ES410 if the
 * stream is tombstoned; raise *current to the version its deletions and
 * purges kept; return whether it is soft-deleted (then expected version 0
 * recreates it).  Committed state, as the version lookup reads it.
 */
bool
es_lifecycle_append_check(EsStore *st, Datum stream_id, int64 *current)
{
	EsLifeRow	row;

	/*
	 * A store without lifecycle rows has nothing to check.  The answer is
	 * cached; the transaction that gives a store its first row invalidates
	 * it at commit, before it releases the stream lock we now hold, so
	 * reading the invalidations here makes the cached answer current.
	 */
	AcceptInvalidationMessages();
	if (!es_lifecycle_active_cached(st->relid))
		return false;
	if (!es_life_lookup(st->relid, false, DatumGetTextPP(stream_id), SnapshotSelf, &row))
		return false;
	if (row.tombstone)
		ereport(ERROR,
				(errcode(ERRCODE_ES_STREAM_DELETED),
				 errmsg("stream \"%s\" is deleted for ever", TextDatumGetCString(stream_id)),
				 errdetail("A hard delete left a tombstone: the stream id cannot be used again."),
				 errhint("Append to another stream.")));
	*current = Max(*current, row.version_floor);
	if (row.has_deleted)
	{
		*current = Max(*current, row.deleted_version);
		return row.deleted_version >= *current;
	}
	return false;
}

/* The caller may change the lifecycle of st: DELETE on its table (lifecycle access). */
static void
es_lifecycle_acl(EsStore *st)
{
	if (es_class_aclcheck(st->relid, GetUserId(), ACL_DELETE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to delete from store %s", st->name),
				 errdetail("Deleting, purging and setting retention need DELETE on the store's table; the triggers still refuse a DELETE statement."),
				 errhint("A store's owner grants it with eventstore.grant_access(role, 'lifecycle', store).")));
}

/* For shred.c: the lifecycle checks of forget(). */
void
es_lifecycle_require_acl(EsStore *st)
{
	es_lifecycle_require();
	es_lifecycle_acl(st);
}

/* For shred.c: a store's first key switches its reads to the lifecycle plan. */
void
es_lifecycle_switch_store(EsStore *st)
{
	es_lifecycle_switch(st, false);
}

/*
 * For shred.c: delete the snapshots of the streams of st whose data holds
 * the text needle (a key id) -- folded in clear, they would keep the data.
 */
void
es_lifecycle_forget_snapshots(EsStore *st, const char *needle)
{
	Oid			snapshots = get_relname_relid("snapshots", es_schema_oid());
	Oid			argtypes[2] = {REGCLASSOID, TEXTOID};
	Datum		values[2] = {ObjectIdGetDatum(st->relid), CStringGetTextDatum(needle)};
	bool		per_store;

	if (!OidIsValid(snapshots))
		return;
	per_store = get_attnum(snapshots, "store") != InvalidAttrNumber;
	if (!per_store && !st->is_default)
		return;
	(void) es_life_write(psprintf("DELETE FROM eventstore.snapshots s WHERE s.stream_id OPERATOR(pg_catalog.=) ANY"
								  " (ARRAY(SELECT e.stream_id FROM %s e"
								  "  WHERE pg_catalog.strpos(e.data::pg_catalog.text, $2) OPERATOR(pg_catalog.>) 0))%s",
								  st->name, per_store ? psprintf(" AND %s", es_snapshots_of_store(st, 1)) : ""),
						 2, argtypes, values, NULL);
}

/* For shred.c: the audit row of a forget (the subject as its hash). */
void
es_lifecycle_log_forget(EsStore *st, text *subject, text *reason)
{
	es_life_audit(st, "forget", subject, NULL, -1, -1, -1, reason);
}

/* The lifecycle table, or an error before the 0.6.0 update. */
static void
es_lifecycle_require(void)
{
	if (!OidIsValid(es_life_relid()))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("eventstore.stream_lifecycle does not exist"),
				 errhint("Run ALTER EXTENSION eventstore UPDATE.")));
}

/* Run sql as the extension's owner; returns SPI_processed. */
static uint64
es_life_write(const char *sql, int nargs, Oid *argtypes, Datum *values, const char *nulls)
{
	return es_registry_write(sql, nargs, argtypes, values, nulls);
}

/* An audit row (action, stream or category, range, count, reason); as the extension's owner. */
static void
es_life_audit(EsStore *st, const char *action, text *stream_id, text *category,
			  int64 from_version, int64 to_version, int64 events, text *reason)
{
	Oid			argtypes[9] = {NAMEOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, INT8OID, INT8OID, TEXTOID};
	Datum		values[9];
	char		nulls[10] = "         ";
	char	   *actor = GetUserNameFromId(GetUserId(), false);

	values[0] = CStringGetDatum(actor);
	values[1] = CStringGetTextDatum(st->name);
	values[2] = CStringGetTextDatum(action);
	values[3] = stream_id ? PointerGetDatum(stream_id) : (Datum) 0;
	nulls[3] = stream_id ? ' ' : 'n';
	values[4] = category ? PointerGetDatum(category) : (Datum) 0;
	nulls[4] = category ? ' ' : 'n';
	values[5] = Int64GetDatum(from_version);
	nulls[5] = from_version < 0 ? 'n' : ' ';
	values[6] = Int64GetDatum(to_version);
	nulls[6] = to_version < 0 ? 'n' : ' ';
	values[7] = Int64GetDatum(events);
	nulls[7] = events < 0 ? 'n' : ' ';
	values[8] = reason ? PointerGetDatum(reason) : (Datum) 0;
	nulls[8] = reason ? ' ' : 'n';
	/* read models are told: a NOTIFY with the row's id, sent at commit */
	(void) es_life_write("WITH i AS (INSERT INTO eventstore.lifecycle_log (actor, store_name, action, stream_hash,"
						 " category, from_version, to_version, events, reason)"
						 " VALUES ($1, $2, $3, pg_catalog.sha256(pg_catalog.convert_to($4, 'UTF8')),"
						 " $5, $6, $7, $8, $9) RETURNING id)"
						 " SELECT pg_catalog.pg_notify('eventstore_lifecycle', i.id::pg_catalog.text) FROM i",
						 9, argtypes, values, nulls);
}

/* A bigint argument that must be NULL or positive. */
static bool
es_positive_arg(FunctionCallInfo fcinfo, int argno, const char *what, int64 *out)
{
	if (PG_ARGISNULL(argno))
		return false;
	*out = PG_GETARG_INT64(argno);
	if (*out <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be positive", what),
				 errhint("Use NULL for no limit.")));
	return true;
}

/* set_stream_metadata / set_category_metadata (name, max_age, max_count, truncate_before, reason, store) */
static void
es_set_metadata(FunctionCallInfo fcinfo, bool category)
{
	EsStore    *st = es_store_arg(fcinfo, 5, ACL_SELECT);
	text	   *name;
	int64		max_count = 0;
	int64		truncate_before = 0;
	bool		has_count;
	bool		has_truncate;
	Interval   *max_age = NULL;
	text	   *reason = PG_ARGISNULL(4) ? NULL : PG_GETARG_TEXT_PP(4);
	Oid			argtypes[5] = {REGCLASSOID, TEXTOID, INTERVALOID, INT8OID, INT8OID};
	Datum		values[5];
	char		nulls[6] = "     ";

	es_lifecycle_require();
	es_lifecycle_acl(st);
	if (category)
	{
		name = es_name_arg(fcinfo, 0, "category");
		if (memchr(VARDATA_ANY(name), '-', VARSIZE_ANY_EXHDR(name)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("category \"%s\" contains '-'", text_to_cstring(name)),
					 errdetail("A stream's category is the part of its id before the first '-'.")));
	}
	else
		name = es_stream_id_arg(fcinfo, 0);
	if (!PG_ARGISNULL(1))
	{
		Interval	zero;

		max_age = PG_GETARG_INTERVAL_P(1);
		memset(&zero, 0, sizeof(zero));
		if (DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(max_age),
											  IntervalPGetDatum(&zero))) <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("max_age must be positive"),
					 errhint("Use NULL for no limit.")));
	}
	has_count = es_positive_arg(fcinfo, 2, "max_count", &max_count);
	has_truncate = es_positive_arg(fcinfo, 3, "truncate_before", &truncate_before);

	values[0] = ObjectIdGetDatum(st->relid);
	values[1] = PointerGetDatum(name);
	values[2] = max_age ? IntervalPGetDatum(max_age) : (Datum) 0;
	nulls[2] = max_age ? ' ' : 'n';
	values[3] = Int64GetDatum(max_count);
	nulls[3] = has_count ? ' ' : 'n';
	values[4] = Int64GetDatum(truncate_before);
	nulls[4] = has_truncate ? ' ' : 'n';
	es_lifecycle_switch(st, category && !max_age && !has_count && !has_truncate);
	if (category && !max_age && !has_count && !has_truncate)
		(void) es_life_write("DELETE FROM eventstore.stream_lifecycle l"
							 " WHERE l.store OPERATOR(pg_catalog.=) $1 AND l.category"
							 " AND l.name OPERATOR(pg_catalog.=) $2", 2, argtypes, values, nulls);
	else
		(void) es_life_write(psprintf("INSERT INTO eventstore.stream_lifecycle AS l"
									  " (store, category, name, max_age, max_count, truncate_before, changed_at)"
									  " VALUES ($1, %s, $2, $3, $4, $5, pg_catalog.clock_timestamp())"
									  " ON CONFLICT (store, category, name) DO UPDATE SET max_age = $3,"
									  " max_count = $4, truncate_before = $5, pending = true,"
									  " changed_at = pg_catalog.clock_timestamp()",
									  category ? "true" : "false"),
							 5, argtypes, values, nulls);
	es_life_audit(st, "metadata", category ? NULL : name, category ? name : NULL,
				  has_truncate ? 1 : -1, has_truncate ? truncate_before - 1 : -1, -1, reason);
}

Datum
eventstore_set_stream_metadata(PG_FUNCTION_ARGS)
{
	es_set_metadata(fcinfo, false);
	PG_RETURN_VOID();
}

Datum
eventstore_set_category_metadata(PG_FUNCTION_ARGS)
{
	es_set_metadata(fcinfo, true);
	PG_RETURN_VOID();
}

/* eventstore.stream_metadata(stream_id, store): the effective metadata of a stream. */
Datum
eventstore_stream_metadata(PG_FUNCTION_ARGS)
{
	EsStore    *st = es_store_arg(fcinfo, 1, ACL_SELECT);
	text	   *sid = es_stream_id_arg(fcinfo, 0);
	TupleDesc	desc;
	Datum		values[6];
	bool		nulls[6] = {false, false, false, false, false, false};
	EsBounds	b;
	EsLifeRow  *s = &b.own;
	EsLifeRow  *c = &b.cat;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "eventstore: stream_metadata must return a record");
	es_lifecycle_bounds(st, sid, GetActiveSnapshot(), &b);
	if (s->has_max_age || c->has_max_age)
		values[0] = IntervalPGetDatum(s->has_max_age ? &s->max_age : &c->max_age);
	else
		nulls[0] = true;
	values[1] = Int64GetDatum(s->has_max_count ? s->max_count : c->max_count);
	nulls[1] = !s->has_max_count && !c->has_max_count;
	values[2] = Int64GetDatum(s->has_truncate ? s->truncate_before : c->truncate_before);
	nulls[2] = !s->has_truncate && !c->has_truncate;
	values[3] = Int64GetDatum(b.first);
	values[4] = BoolGetDatum(b.tombstone || (b.deleted && s->deleted_version >=
											  es_last_version(st, sid, GetActiveSnapshot())));
	values[5] = BoolGetDatum(b.tombstone);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}

/*
 * eventstore.delete_stream(stream_id, expected_version, hard DEFAULT false,
 * reason DEFAULT NULL, store): soft delete, or hard delete (tombstone).
 */
Datum
eventstore_delete_stream(PG_FUNCTION_ARGS)
{
	EsStore    *st = es_store_arg(fcinfo, 4, ACL_SELECT);
	text	   *sid = es_stream_id_arg(fcinfo, 0);
	bool		any_version = PG_ARGISNULL(1);
	int64		expected = any_version ? 0 : PG_GETARG_INT64(1);
	bool		hard;
	text	   *reason = PG_ARGISNULL(3) ? NULL : PG_GETARG_TEXT_PP(3);
	int64		current;
	bool		deleted;
	bool		ok;
	Oid			argtypes[4] = {REGCLASSOID, TEXTOID, INT8OID, BOOLOID};
	Datum		values[4];

	es_lifecycle_require();
	es_lifecycle_acl(st);
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("hard must not be null")));
	hard = PG_GETARG_BOOL(2);
	if (!any_version && expected < -1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid expected_version " INT64_FORMAT, expected),
				 errhint("Use NULL for any version, -1 for an existing stream, or the exact current version.")));

	/* as an append: wait for an import, then hold the stream's append lock */
	LockRelationOid(st->relid, RowExclusiveLock);
	(void) es_lock_stream(st, sid, false);
	current = es_current_version(st, PointerGetDatum(sid), NULL);
	deleted = es_lifecycle_append_check(st, PointerGetDatum(sid), &current);
	if (any_version)
		ok = true;
	else if (expected == -1)
		ok = current > 0 && !deleted;
	else
		ok = deleted ? expected == 0 : current == expected;
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_ES_WRONG_EXPECTED_VERSION),
				 errmsg("wrong expected version for stream \"%s\": expected %s, actual " INT64_FORMAT,
						text_to_cstring(sid),
						expected == -1 ? "an existing stream" : psprintf(INT64_FORMAT, expected),
						deleted ? (int64) 0 : current),
				 errdetail("Nothing was deleted."),
				 errhint("Read the stream again and retry with its current version.")));

	es_lifecycle_switch(st, false);
	values[0] = ObjectIdGetDatum(st->relid);
	values[1] = PointerGetDatum(sid);
	values[2] = Int64GetDatum(current);
	values[3] = BoolGetDatum(hard);
	(void) es_life_write("INSERT INTO eventstore.stream_lifecycle AS l"
						 " (store, category, name, deleted_version, tombstone, changed_at)"
						 " VALUES ($1, false, $2, $3, $4, pg_catalog.clock_timestamp())"
						 " ON CONFLICT (store, category, name) DO UPDATE SET deleted_version = $3,"
						 " tombstone = $4, pending = true, changed_at = pg_catalog.clock_timestamp()",
						 4, argtypes, values, NULL);
	es_lifecycle_forget_derived(st, sid);
	es_life_audit(st, hard ? "tombstone" : "delete", sid, NULL, current > 0 ? 1 : -1,
				  current > 0 ? current : -1, -1, reason);
	PG_RETURN_INT64(current);
}

/*
 * What derives from a deleted stream goes with it at once: its snapshots
 * (aggregate.c folds again from what is visible) and the outbox rows of its
 * events that are not published yet (the relay would publish them).
 */
void
es_lifecycle_forget_derived(EsStore *st, text *stream_id)
{
	Oid			snapshots = get_relname_relid("snapshots", es_schema_oid());
	Oid			argtypes[2] = {TEXTOID, REGCLASSOID};
	Datum		values[2] = {PointerGetDatum(stream_id), ObjectIdGetDatum(st->relid)};

	if (OidIsValid(get_relname_relid("outbox", es_schema_oid())))
		(void) es_life_write(psprintf("DELETE FROM eventstore.outbox o WHERE o.published_at IS NULL"
									  " AND o.global_position OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT e.global_position FROM %s e"
									  "  WHERE e.stream_id OPERATOR(pg_catalog.=) $1))", st->name),
							 1, argtypes, values, NULL);
	if (!OidIsValid(snapshots))
		return;
	if (get_attnum(snapshots, "store") != InvalidAttrNumber)
		(void) es_life_write(psprintf("DELETE FROM eventstore.snapshots s WHERE s.stream_id OPERATOR(pg_catalog.=) $1"
									  " AND %s", es_snapshots_of_store(st, 2)), 2, argtypes, values, NULL);
	else if (st->is_default)
		(void) es_life_write("DELETE FROM eventstore.snapshots s WHERE s.stream_id OPERATOR(pg_catalog.=) $1",
							 1, argtypes, values, NULL);
}

/*
 * Delete the rows chosen by victims (a query returning the ctid of rows of
 * st as victim, with $1 the store and $2 the limit, $3 a category: the
 * DELETE fetches them by TID scans, in the statement that found them; the
 * store's rows are never updated, so a ctid names one event throughout)
 * as the store's owner with the triggers letting this statement through,
 * then bring derived data in step.  Returns the number deleted.
 */
static int64
es_purge_batch(EsStore *st, const char *victims, int64 limit, text *category)
{
	Oid			argtypes[3] = {REGCLASSOID, INT8OID, TEXTOID};
	Datum		values[3] = {ObjectIdGetDatum(st->relid), Int64GetDatum(limit),
	PointerGetDatum(category)};
	char		nulls[4] = "  n";
	char	   *sql;
	Oid			save_userid;
	int			save_sec;
	int64		n;
	Datum	   *sids;
	Datum	   *versions;
	Datum	   *positions;
	Oid			dargtypes[4] = {REGCLASSOID, TEXTARRAYOID, INT8ARRAYOID, INT8ARRAYOID};
	Datum		dvalues[4];
	char	   *actor = GetUserNameFromId(GetUserId(), false);
	MemoryContext outer = CurrentMemoryContext;
	int			nestlevel;

	if (category)
		nulls[2] = ' ';
	sql = psprintf("DELETE FROM %s e USING (%s) v"
				   " WHERE e.ctid OPERATOR(pg_catalog.=) v.victim"
				   " RETURNING e.stream_id, e.stream_version, e.global_position",
				   st->name, victims);

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(st->owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "eventstore: SPI_connect failed");
	/*
	 * A stream's events by plain index scans, never a bitmap scan: an index
	 * scan marks the index entries of events purged before as dead, so the
	 * next batch passes a drained stream without visiting its heap pages; a
	 * bitmap scan revisits every one of them, every batch.
	 */
	nestlevel = NewGUCNestLevel();
	(void) set_config_option("enable_bitmapscan", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	es_head_invalidate(false);	/* cached heads may name purged events */
	PG_TRY();
	{
		es_purging = st->relid;
		if (SPI_execute_with_args(sql, 3, argtypes, values, nulls, false, 0) != SPI_OK_DELETE_RETURNING)
			elog(ERROR, "eventstore: purge of %s failed", st->name);
		es_purging = InvalidOid;
	}
	PG_FINALLY();
	{
		es_purging = InvalidOid;
	}
	PG_END_TRY();
	AtEOXact_GUC(true, nestlevel);
	n = (int64) SPI_processed;
	sids = MemoryContextAlloc(outer, sizeof(Datum) * Max(n, 1));
	versions = MemoryContextAlloc(outer, sizeof(Datum) * Max(n, 1));
	positions = MemoryContextAlloc(outer, sizeof(Datum) * Max(n, 1));
	for (int64 i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		MemoryContext old = MemoryContextSwitchTo(outer);

		sids[i] = PointerGetDatum(DatumGetTextPCopy(SPI_getbinval(tup, desc, 1, &isnull)));
		MemoryContextSwitchTo(old);
		versions[i] = SPI_getbinval(tup, desc, 2, &isnull);
		positions[i] = SPI_getbinval(tup, desc, 3, &isnull);
	}
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec);
	if (n == 0)
		return 0;

	/*
	 * As the extension's owner: the audit rows (one per stream), the version
	 * floor of streams whose last event went, snapshots of the streams,
	 * outbox rows and subscription retries and parked events of the events.
	 */
	dvalues[0] = ObjectIdGetDatum(st->relid);
	dvalues[1] = PointerGetDatum(construct_array(sids, (int) n, TEXTOID, -1, false, TYPALIGN_INT));
	dvalues[2] = PointerGetDatum(construct_array(versions, (int) n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	dvalues[3] = PointerGetDatum(construct_array(positions, (int) n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	sql = psprintf("WITH d AS (SELECT * FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4))"
				   " AS d(stream_id, stream_version, global_position)),"
				   " g AS (SELECT d.stream_id, pg_catalog.min(d.stream_version) AS lo,"
				   "  pg_catalog.max(d.stream_version) AS hi, pg_catalog.count(*) AS n FROM d GROUP BY d.stream_id),"
				   " a AS (INSERT INTO eventstore.lifecycle_log (actor, store_name, action, stream_hash,"
				   "  from_version, to_version, events)"
				   "  SELECT %s, %s, 'purge', pg_catalog.sha256(pg_catalog.convert_to(g.stream_id, 'UTF8')),"
				   "  g.lo, g.hi, g.n FROM g ORDER BY g.stream_id),"
				   " f AS (INSERT INTO eventstore.stream_lifecycle AS l (store, category, name, version_floor, pending)"
				   "  SELECT $1, false, g.stream_id, g.hi, false FROM g"
				   "  WHERE NOT EXISTS (SELECT FROM %s e WHERE e.stream_id OPERATOR(pg_catalog.=) g.stream_id"
				   "   AND e.stream_version OPERATOR(pg_catalog.>) g.hi)"
				   "  ON CONFLICT (store, category, name) DO UPDATE"
				   "  SET version_floor = pg_catalog.int8larger(l.version_floor, EXCLUDED.version_floor)),"
				   " o AS (DELETE FROM eventstore.outbox o WHERE o.global_position OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT d.global_position FROM d))),"
				   " r AS (DELETE FROM eventstore.subscription_retries r WHERE r.global_position OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT d.global_position FROM d))),"
				   " p AS (DELETE FROM eventstore.subscription_parked p WHERE p.global_position OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT d.global_position FROM d)))"
				   " DELETE FROM eventstore.snapshots s USING g WHERE s.stream_id OPERATOR(pg_catalog.=) g.stream_id%s",
				   quote_literal_cstr(actor), quote_literal_cstr(st->name), st->name,
				   get_attnum(get_relname_relid("snapshots", es_schema_oid()), "store") != InvalidAttrNumber ?
				   psprintf(" AND %s", es_snapshots_of_store(st, 1)) : (st->is_default ? "" : " AND false"));
	(void) es_life_write(sql, 4, dargtypes, dvalues, NULL);
	/* one NOTIFY per batch: the id of its last audit row */
	(void) es_life_write("SELECT pg_catalog.pg_notify('eventstore_lifecycle', pg_catalog.max(l.id)::pg_catalog.text)"
						 " FROM eventstore.lifecycle_log l", 0, NULL, NULL, NULL);
	return n;
}

/*
 * eventstore.purge(max_count DEFAULT 1000, store): remove up to max_count
 * events of store that the metadata hides.  Streams with a row of their own
 * first, then category defaults.  Rows whose rules are settled (no max_age,
 * no max_count) and that have nothing left to remove stop being visited.
 */
Datum
eventstore_purge(PG_FUNCTION_ARGS)
{
	EsStore    *st = es_store_arg(fcinfo, 1, ACL_SELECT);
	int64		limit;
	int64		done = 0;
	Oid			argtypes[1] = {REGCLASSOID};
	Datum		values[1];
	List	   *categories = NIL;
	ListCell   *lc;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("max_count must not be null")));
	limit = PG_GETARG_INT32(0);
	if (limit <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_count must be positive")));
	es_lifecycle_require();
	es_lifecycle_acl(st);
	if (!es_lifecycle_active(st->relid, GetActiveSnapshot()))
		PG_RETURN_INT64(0);

	done += es_purge_batch(st,
						   psprintf("SELECT v.victim"
									" FROM eventstore.stream_lifecycle l CROSS JOIN LATERAL"
									" (SELECT e.ctid AS victim FROM %s e"
									"  WHERE e.stream_id OPERATOR(pg_catalog.=) l.name"
									"  AND NOT eventstore._visible($1, e.stream_id, e.stream_version, e.created_at)"
									"  ORDER BY e.stream_version LIMIT $2) v"
									" WHERE l.store OPERATOR(pg_catalog.=) $1 AND NOT l.category AND l.pending"
									" AND $3 IS NULL LIMIT $2", st->name),
						   limit, NULL);

	/* rows settled and drained stop being visited (not one changed meanwhile) */
	if (done < limit)
	{
		values[0] = ObjectIdGetDatum(st->relid);
		(void) es_life_write(psprintf("UPDATE eventstore.stream_lifecycle l SET pending = false"
									  " FROM (SELECT k.name, k.changed_at FROM eventstore.stream_lifecycle k"
									  "  WHERE k.store OPERATOR(pg_catalog.=) $1 AND NOT k.category AND k.pending"
									  "  AND k.max_age IS NULL AND k.max_count IS NULL"
									  "  AND NOT EXISTS (SELECT FROM %s e WHERE e.stream_id OPERATOR(pg_catalog.=) k.name"
									  "   AND NOT eventstore._visible($1, e.stream_id, e.stream_version, e.created_at))) q"
									  " WHERE l.store OPERATOR(pg_catalog.=) $1 AND NOT l.category"
									  " AND l.name OPERATOR(pg_catalog.=) q.name"
									  " AND l.changed_at OPERATOR(pg_catalog.=) q.changed_at", st->name),
							 1, argtypes, values, NULL);
	}

	/* category defaults: one query per category, on the category index */
	if (done < limit)
	{
		Oid			save_userid;
		int			save_sec;
		MemoryContext outer = CurrentMemoryContext;

		GetUserIdAndSecContext(&save_userid, &save_sec);
		SetUserIdAndSecContext(es_events_owner(), save_sec | SECURITY_LOCAL_USERID_CHANGE);
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "eventstore: SPI_connect failed");
		values[0] = ObjectIdGetDatum(st->relid);
		if (SPI_execute_with_args("SELECT l.name FROM eventstore.stream_lifecycle l"
								  " WHERE l.store OPERATOR(pg_catalog.=) $1 AND l.category ORDER BY l.name",
								  1, argtypes, values, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "eventstore: reading category metadata failed");
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			MemoryContext old = MemoryContextSwitchTo(outer);

			categories = lappend(categories,
								 DatumGetTextPCopy(SPI_getbinval(SPI_tuptable->vals[i],
																 SPI_tuptable->tupdesc, 1, &isnull)));
			MemoryContextSwitchTo(old);
		}
		SPI_finish();
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	foreach(lc, categories)
	{
		if (done >= limit)
			break;
		done += es_purge_batch(st,
							   psprintf("SELECT e.ctid AS victim FROM %s e"
										" WHERE pg_catalog.split_part(e.stream_id, '-', 1) OPERATOR(pg_catalog.=) $3"
										" AND NOT eventstore._visible($1, e.stream_id, e.stream_version, e.created_at)"
										" LIMIT $2", st->name),
							   limit - done, (text *) lfirst(lc));
	}
	PG_RETURN_INT64(done);
}

/*
 * Does store have lifecycle rows, as last seen by this backend with a fresh
 * snapshot?  Kept in the store's entry (catalog.c), forgotten on a relcache
 * invalidation of the store.  The functions that add the first row of a
 * store (or remove a category's) invalidate it (es_lifecycle_switch), so a
 * cached answer never outlives the state it was read from by more than the
 * moment between a commit and its invalidation; the plans that folded it
 * are invalidated with it.
 */
bool
es_lifecycle_active_cached(Oid store)
{
	EsStore    *st = es_store_entry(store);
	bool		active;

	if (st->lifecycle_known)
		return st->lifecycle_active;
	/* a parallel query cannot take a new snapshot; the active one serves */
	active = es_lifecycle_active(store, IsInParallelMode() ? GetActiveSnapshot() : GetLatestSnapshot());
	st->lifecycle_active = active;
	st->lifecycle_known = true;
	return active;
}

/*
 * Before a write that may switch store's reads to or from the filtering
 * plan: if the store has no lifecycle row yet (or may have none after),
 * invalidate the plans that read it and the caches, at commit.
 */
static void
es_lifecycle_switch(EsStore *st, bool always)
{
	if (always || !es_lifecycle_active(st->relid, GetLatestSnapshot()))
	{
		CacheInvalidateRelcacheByRelid(st->relid);
		CacheInvalidateRelcacheByRelid(es_life_relid());
	}
}

/*
 * eventstore._lifecycle_active(store): has the store any lifecycle row?
 * Declared IMMUTABLE, like _upcasting(), so the planner folds it and a read
 * of a store without lifecycle rows plans like the bare SELECT; every
 * change of the answer invalidates those plans (es_lifecycle_switch).
 */
Datum
eventstore_lifecycle_active(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(es_lifecycle_active_cached(PG_GETARG_OID(0)));
}

/*
 * Does the metadata let this event of st be read, under the active snapshot?
 * The bounds of the last 64 streams asked about are kept in *cachep
 * (allocated in cxt when NULL, emptied when st is another store), for one
 * query (_visible) or one relay pass.
 */
#define ES_VISIBLE_SLOTS 64

typedef struct EsVisibleSlot
{
	uint32		hash;
	text	   *stream_id;		/* in the cache's context; NULL: empty slot */
	EsBounds	bounds;
} EsVisibleSlot;

struct EsVisibleCache
{
	EsStore    *st;
	Oid			store;
	MemoryContext cxt;
	int			next;			/* the slot replaced next */
	EsVisibleSlot slots[ES_VISIBLE_SLOTS];
};

bool
es_lifecycle_visible(EsVisibleCache **cachep, MemoryContext cxt, EsStore *st, text *sid,
					 int64 version, TimestampTz created_at)
{
	EsVisibleCache *c = *cachep;
	EsVisibleSlot *slot = NULL;
	int			len;
	uint32		h;

	if (c == NULL || c->store != st->relid)
	{
		if (c == NULL)
		{
			c = MemoryContextAllocZero(cxt, sizeof(EsVisibleCache));
			c->cxt = cxt;
		}
		for (int i = 0; i < ES_VISIBLE_SLOTS; i++)
		{
			if (c->slots[i].stream_id)
				pfree(c->slots[i].stream_id);
			c->slots[i].stream_id = NULL;
		}
		c->st = st;
		c->store = st->relid;
		*cachep = c;
	}
	len = VARSIZE_ANY_EXHDR(sid);
	h = hash_bytes((const unsigned char *) VARDATA_ANY(sid), len);

	/* the bounds of the last streams seen (a log interleaves streams) */
	for (int i = 0; i < ES_VISIBLE_SLOTS; i++)
	{
		EsVisibleSlot *s = &c->slots[i];

		if (s->stream_id && s->hash == h && (int) VARSIZE_ANY_EXHDR(s->stream_id) == len &&
			memcmp(VARDATA_ANY(s->stream_id), VARDATA_ANY(sid), len) == 0)
		{
			slot = s;
			break;
		}
	}
	if (slot == NULL)
	{
		MemoryContext old;

		slot = &c->slots[c->next];
		c->next = (c->next + 1) % ES_VISIBLE_SLOTS;
		if (slot->stream_id)
			pfree(slot->stream_id);
		slot->stream_id = NULL;
		es_lifecycle_bounds(c->st, sid, GetActiveSnapshot(), &slot->bounds);
		old = MemoryContextSwitchTo(c->cxt);
		slot->stream_id = DatumGetTextPCopy(PointerGetDatum(sid));
		MemoryContextSwitchTo(old);
		slot->hash = h;
	}
	return version >= slot->bounds.first && created_at >= slot->bounds.oldest;
}

/* The store whose bounds cache holds. */
Oid
es_lifecycle_visible_store(EsVisibleCache *cache)
{
	return cache->store;
}

/*
 * eventstore._visible(store, stream_id, stream_version, created_at): does
 * the metadata let this event be read?  Needs SELECT on the store.
 */
Datum
eventstore_visible(PG_FUNCTION_ARGS)
{
	EsVisibleCache *c = (EsVisibleCache *) fcinfo->flinfo->fn_extra;
	EsStore    *st;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("store, stream_id, stream_version and created_at must not be null")));
	/* the privilege is checked once per store and query */
	st = c != NULL && c->store == PG_GETARG_OID(0) ? c->st : es_store_arg(fcinfo, 0, ACL_SELECT);
	PG_RETURN_BOOL(es_lifecycle_visible((EsVisibleCache **) &fcinfo->flinfo->fn_extra,
										fcinfo->flinfo->fn_mcxt, st, PG_GETARG_TEXT_PP(1),
										PG_GETARG_INT64(2), PG_GETARG_TIMESTAMPTZ(3)));
}

/*
 * The version stream_id of st keeps through deletions and purges (0: none):
 * stream_version() reports the larger of it and the last stored version.
 */
int64
es_lifecycle_version_floor(EsStore *st, text *stream_id)
{
	EsLifeRow	row;

	/* a store without lifecycle rows (the cached answer) has no floor */
	if (!es_lifecycle_active_cached(st->relid))
		return 0;
	if (es_life_lookup(st->relid, false, stream_id, GetActiveSnapshot(), &row))
		return Max(row.version_floor, row.has_deleted ? row.deleted_version : 0);
	return 0;
}

/*
 * For import (import.c): the version stream_id of st keeps through deletions
 * and purges (0: none) under snapshot, and in *tombstone whether a hard
 * delete refuses the stream id.
 */
int64
es_lifecycle_import_floor(EsStore *st, text *stream_id, Snapshot snapshot, bool *tombstone)
{
	EsLifeRow	row;

	*tombstone = false;
	if (!es_life_lookup(st->relid, false, stream_id, snapshot, &row))
		return 0;
	*tombstone = row.tombstone;
	return Max(row.version_floor, row.has_deleted ? row.deleted_version : 0);
}

/*
 * eventstore._version_floor(store, stream_id): the version a stream keeps
 * through deletions and purges (0: none); for a store other than the default
 * one also its last stored version, so stream_version() needs nothing else.
 */
Datum
eventstore_version_floor(PG_FUNCTION_ARGS)
{
	EsStore    *st = es_store_arg(fcinfo, 0, ACL_SELECT);
	text	   *sid = PG_GETARG_TEXT_PP(1);
	EsLifeRow	row;
	int64		v = 0;

	if (es_life_lookup(st->relid, false, sid, GetActiveSnapshot(), &row))
		v = Max(row.version_floor, row.has_deleted ? row.deleted_version : 0);
	if (!st->is_default)
		v = Max(v, es_last_version(st, sid, GetActiveSnapshot()));
	PG_RETURN_INT64(v);
}
