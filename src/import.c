/*
 * import.c
 *		eventstore.import_events(): load a whole history from another store in
 *		one set-based statement.
 *
 * The caller fills a staging relation (normally with COPY) whose columns are
 * those of the type eventstore.import_row; import_events() reads the rows in
 * import order (without a sort when they are stored in that order), checks
 * each as it goes, with what it keeps of every stream met (its last version
 * and time), and inserts them through append.c's executor insert path,
 * 1,000 rows per table_multi_insert() as COPY FROM does.  The
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
 * so that it cannot change between the scan of its order and the insert.
 *
 * The source is read with a snapshot taken after the locks, and the store's
 * streams are looked up as they are now (SnapshotSelf: what is committed and
 * this import's own rows), so the checks see every committed append also in
 * REPEATABLE READ.  Rows are
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
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "tcop/pquery.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/jsonb.h"
#include "utils/syscache.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/resowner.h"
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
 * The checks.  Every row is checked as it is read, in import order, before
 * it is inserted; the first row that breaks a rule raises its error, which
 * rolls back the rows inserted before it.  Rules 1-11 concern one row; 20-24
 * the sequence of a stream: its first imported row continues the version of
 * its last stored event (head) or the version its deletions and purges kept
 * (floor), whichever is higher, and a tombstoned stream takes none; each
 * later row continues the one before.
 */
typedef enum EsImportRule
{
	ES_IMPORT_OK = 0,
	/* 1-6: ord, stream_id, stream_version, event_type, data, created_at null */
	ES_IMPORT_NULL_ORD = 1,
	ES_IMPORT_NULL_CREATED_AT = 6,
	ES_IMPORT_EMPTY_STREAM = 7,
	ES_IMPORT_LONG_STREAM = 8,
	ES_IMPORT_EMPTY_TYPE = 9,
	ES_IMPORT_METADATA_NOT_OBJECT = 10,
	ES_IMPORT_TOO_LARGE = 11,
	ES_IMPORT_NOT_CONTINUED = 20,
	ES_IMPORT_DUPLICATE = 21,
	ES_IMPORT_GAP = 22,
	ES_IMPORT_TIME_BACK = 23,
	ES_IMPORT_TOMBSTONE = 24
} EsImportRule;

/*
 * The columns the import reads, in this order (es_import_rows_sql), and the
 * first of them each null rule concerns.
 */
enum
{
	ES_IN_ORD, ES_IN_STREAM, ES_IN_VERSION, ES_IN_TYPE, ES_IN_DATA, ES_IN_CREATED_AT,
	ES_IN_METADATA, ES_IN_ID, ES_IN_NCOLS
};

/*
 * The rows in import order (ORDER BY, when they are not stored in it: null
 * versions first, as the rule on them is the first broken), the event id
 * drawn for rows without one.
 */
static const char es_import_rows_sql[] =
"SELECT s.ord, s.stream_id, s.stream_version, s.event_type, s.data, s.created_at,"
" s.metadata, COALESCE(s.event_id, pg_catalog.gen_random_uuid())"
" FROM ONLY %s s%s";

/* The import order of the source's rows, read as they are stored. */
static const char es_import_order_sql[] =
"SELECT s.ord, s.stream_version FROM ONLY %s s";

/* A stream id, not necessarily terminated. */
typedef struct EsImportKey
{
	const char *data;
	int			len;
} EsImportKey;

/* A stream met in the import: the version and time of its last row so far. */
typedef struct EsImportStream
{
	EsImportKey key;
	uint32		hash;
	char		status;
	int64		version;
	TimestampTz at;
} EsImportStream;

#define SH_PREFIX es_istreams
#define SH_ELEMENT_TYPE EsImportStream
#define SH_KEY_TYPE EsImportKey
#define SH_KEY key
#define SH_HASH_KEY(tb, k) hash_bytes((const unsigned char *) (k).data, (k).len)
#define SH_EQUAL(tb, a, b) ((a).len == (b).len && memcmp((a).data, (b).data, (a).len) == 0)
#define SH_STORE_HASH
#define SH_GET_HASH(tb, a) ((a)->hash)
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

/*
 * One import.  The streams met so far are kept in memory up to
 * maintenance_work_mem; past it they are forgotten (after the rows put so
 * far are inserted) and a stream met again is looked up in the store, where
 * a last event at a position of this import (>= first) is its previous row.
 */
typedef struct EsImport
{
	EsStore    *st;
	int64		first;			/* position of the first imported row */
	bool		lifecycle;		/* the store has lifecycle rows */
	EsInserter *ins;
	uint64		rows;			/* rows inserted so far */
	Datum		no_tags;		/* an empty text[] */
	MemoryContext cxt;			/* of streams and their ids */
	es_istreams_hash *streams;
	Size		budget;			/* bytes for cxt */
	uint64		added;			/* streams added since the budget was checked */
	bool		forgot;			/* the budget was exceeded */
	/* the store's last event of a stream, looked up by its version index */
	Relation	heap;
	Relation	index;
	IndexScanDesc scan;
	TupleTableSlot *head;
} EsImport;

/*
 * A receiver of the rows of a query on the source: each row goes to a
 * function as the executor makes it, without a copy (false stops the
 * query).
 */
typedef struct EsImportReceiver
{
	DestReceiver pub;
	bool		(*row) (TupleTableSlot *slot, void *arg);
	void	   *arg;
	MemoryContext cxt;			/* the caller's, not the query's */
	ResourceOwner owner;		/* the caller's, not the cursor's */
} EsImportReceiver;

static bool
es_import_receive(TupleTableSlot *slot, DestReceiver *self)
{
	EsImportReceiver *r = (EsImportReceiver *) self;
	MemoryContext old = MemoryContextSwitchTo(r->cxt);
	ResourceOwner old_owner = CurrentResourceOwner;
	bool		more;

	slot_getallattrs(slot);
	CurrentResourceOwner = r->owner;
	more = r->row(slot, r->arg);
	CurrentResourceOwner = old_owner;
	MemoryContextSwitchTo(old);
	return more;
}

static void
es_import_receiver_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	(void) self;
	(void) operation;
	(void) typeinfo;
}

static void
es_import_receiver_nothing(DestReceiver *self)
{
	(void) self;
}

/*
 * Run sql (a SELECT) through a cursor opened with a snapshot taken now,
 * after our locks, handing each row to row(slot, arg) in the caller's memory
 * context and resource owner: the slots, pins and rows it keeps outlive the
 * query.  The source does not
 * change under its SHARE lock: every query sees the same rows, and a plain
 * scan returns them in the same order, as synchronized scans are off.
 */
static void
es_import_scan(const char *sql, bool (*row) (TupleTableSlot *slot, void *arg), void *arg)
{
	SPIPlanPtr	plan = SPI_prepare_cursor(sql, 0, NULL, CURSOR_OPT_NO_SCROLL);
	Portal		portal;
	EsImportReceiver r;

	if (plan == NULL)
		elog(ERROR, "eventstore: SPI_prepare failed for \"%s\": %s",
			 sql, SPI_result_code_string(SPI_result));
	PushActiveSnapshot(GetLatestSnapshot());
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
	PopActiveSnapshot();
	memset(&r, 0, sizeof(r));
	r.pub.receiveSlot = es_import_receive;
	r.pub.rStartup = es_import_receiver_startup;
	r.pub.rShutdown = es_import_receiver_nothing;
	r.pub.rDestroy = es_import_receiver_nothing;
	r.pub.mydest = DestNone;
	r.row = row;
	r.arg = arg;
	r.cxt = CurrentMemoryContext;
	r.owner = CurrentResourceOwner;
	(void) PortalRunFetch(portal, FETCH_FORWARD, FETCH_ALL, (DestReceiver *) &r);
	SPI_cursor_close(portal);
}

/* A timestamptz as text, for messages. */
static char *
es_import_time(TimestampTz t)
{
	return DatumGetCString(DirectFunctionCall1(timestamptz_out, TimestampTzGetDatum(t)));
}

/*
 * Raise the error of rule kind for the row numbered ord (NULL: a null ord)
 * of stream (NULL when the rule is on the row alone).  expected is the
 * version the row had to have; previous_at the time of the stream's
 * previous event.
 */
static void
es_import_fail(EsImportRule kind, const char *ord, const char *stream, int64 version,
			   int64 expected, TimestampTz created_at, TimestampTz previous_at)
{
	static const char *const null_column[] = {
		NULL, "ord", "stream_id", "stream_version", "event_type", "data", "created_at"
	};

	if (kind >= ES_IMPORT_NULL_ORD && kind <= ES_IMPORT_NULL_CREATED_AT)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s of imported row %s must not be null", null_column[kind], ord),
				 errdetail("Nothing was imported.")));
	switch (kind)
	{
		case ES_IMPORT_EMPTY_STREAM:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("stream_id of imported row %s must not be empty", ord),
					 errdetail("Nothing was imported.")));
			break;
		case ES_IMPORT_LONG_STREAM:
			ereport(ERROR,
					(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
					 errmsg("stream_id of imported row %s is too long", ord),
					 errdetail("The limit is %d bytes. Nothing was imported.",
							   ES_MAX_STREAM_ID_BYTES)));
			break;
		case ES_IMPORT_EMPTY_TYPE:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("event_type of imported row %s must not be empty", ord),
					 errdetail("Nothing was imported.")));
			break;
		case ES_IMPORT_METADATA_NOT_OBJECT:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("metadata of imported row %s must be a JSON object", ord),
					 errdetail("Nothing was imported.")));
			break;
		case ES_IMPORT_TOO_LARGE:
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("imported row %s is too large", ord),
					 errdetail("eventstore.max_event_size is %d bytes. Nothing was imported.",
							   es_max_event_size)));
			break;
		case ES_IMPORT_TOMBSTONE:
			ereport(ERROR,
					(errcode(ERRCODE_ES_STREAM_DELETED),
					 errmsg("stream \"%s\" is deleted for ever", stream),
					 errdetail("A hard delete left a tombstone: the stream id cannot be used again (row %s). Nothing was imported.", ord),
					 errhint("Import the events into another stream.")));
			break;
		case ES_IMPORT_NOT_CONTINUED:
			ereport(ERROR,
					(errcode(ERRCODE_ES_WRONG_EXPECTED_VERSION),
					 errmsg("imported events of stream \"%s\" start at version " INT64_FORMAT ", but the stream is at version " INT64_FORMAT,
							stream, version, expected - 1),
					 errdetail("The first imported version of a stream must be its current version + 1 (row %s). Nothing was imported.", ord)));
			break;
		case ES_IMPORT_DUPLICATE:
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("version " INT64_FORMAT " of stream \"%s\" is imported more than once", version, stream),
					 errdetail("Row %s repeats it. Nothing was imported.", ord)));
			break;
		case ES_IMPORT_GAP:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("imported versions of stream \"%s\" are not consecutive: version " INT64_FORMAT " follows version " INT64_FORMAT,
							stream, version, expected - 1),
					 errdetail("In order of (ord, stream_version) each stream's versions must be consecutive (row %s). Nothing was imported.", ord)));
			break;
		case ES_IMPORT_TIME_BACK:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("created_at of version " INT64_FORMAT " of stream \"%s\" is before the previous event's",
							version, stream),
					 errdetail("Row %s has %s, the previous event %s; created_at never decreases in a stream. Nothing was imported.",
							   ord, es_import_time(created_at), es_import_time(previous_at))));
			break;
		default:
			break;
	}
	elog(ERROR, "eventstore: unknown import check %d", (int) kind);
}

/*
 * The size of an event that append() compares with eventstore.max_event_size,
 * from the values' headers: a compressed or toasted value is not expanded.
 */
static int64
es_import_event_size(Datum data, Datum event_type, Datum metadata, bool metadata_null)
{
	int64		size = (int64) toast_raw_datum_size(data) +
		(int64) (toast_raw_datum_size(event_type) - VARHDRSZ);

	if (!metadata_null)
		size += (int64) toast_raw_datum_size(metadata);
	return size;
}

/* The rules on one row alone (1-11). */
static EsImportRule
es_import_row_rule(const Datum *row, const bool *null)
{
	for (int c = ES_IN_ORD; c <= ES_IN_CREATED_AT; c++)
		if (null[c])
			return (EsImportRule) (ES_IMPORT_NULL_ORD + c);
	if (toast_raw_datum_size(row[ES_IN_STREAM]) == VARHDRSZ)
		return ES_IMPORT_EMPTY_STREAM;
	if (toast_raw_datum_size(row[ES_IN_STREAM]) - VARHDRSZ > ES_MAX_STREAM_ID_BYTES)
		return ES_IMPORT_LONG_STREAM;
	if (toast_raw_datum_size(row[ES_IN_TYPE]) == VARHDRSZ)
		return ES_IMPORT_EMPTY_TYPE;
	if (!null[ES_IN_METADATA])
	{
		/* the root's header, without copying a value stored inline */
		struct varlena *stored = (struct varlena *) DatumGetPointer(row[ES_IN_METADATA]);
		struct varlena *md = pg_detoast_datum_packed(stored);
		uint32		root;

		memcpy(&root, VARDATA_ANY(md), sizeof(root));
		if (md != stored)
			pfree(md);
		if ((root & JB_FOBJECT) == 0)
			return ES_IMPORT_METADATA_NOT_OBJECT;
	}
	if (es_import_event_size(row[ES_IN_DATA], row[ES_IN_TYPE], row[ES_IN_METADATA],
							 null[ES_IN_METADATA]) > es_max_event_size)
		return ES_IMPORT_TOO_LARGE;
	return ES_IMPORT_OK;
}

/*
 * eventstore._event_size(data jsonb, event_type text, metadata jsonb): the
 * size an import compares with eventstore.max_event_size (null without data
 * or type).
 */
Datum
eventstore_event_size(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	PG_RETURN_INT64(es_import_event_size(PG_GETARG_DATUM(0), PG_GETARG_DATUM(1),
										 PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2),
										 PG_ARGISNULL(2)));
}

/* Forget the streams met so far (or start knowing none). */
static void
es_import_forget(EsImport *im)
{
	MemoryContextReset(im->cxt);
	im->streams = es_istreams_create(im->cxt, 1024, NULL);
	im->added = 0;
}

/*
 * Whether the streams kept take more than maintenance_work_mem, counting the
 * array the hash table takes when it next grows (it doubles when full).
 */
static bool
es_import_over_budget(EsImport *im)
{
	Size		used = MemoryContextMemAllocated(im->cxt, true);

	if (im->streams->members + 1 >= im->streams->grow_threshold)
		used += (Size) im->streams->size * 2 * sizeof(EsImportStream);
	return used > im->budget;
}

/*
 * The store's last event of stream sid (false: none) as this transaction
 * sees it now, also the rows it inserted in this statement (no other
 * transaction writes to the store during an import: file header).
 */
static bool
es_import_head(EsImport *im, text *sid, int64 *version, TimestampTz *at, int64 *position)
{
	ScanKeyData key;
	bool		found;
	bool		isnull;

	ScanKeyEntryInitialize(&key, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   im->index->rd_indcollation[0], F_TEXTEQ, PointerGetDatum(sid));
	index_rescan(im->scan, &key, 1, NULL, 0);
	found = index_getnext_slot(im->scan, BackwardScanDirection, im->head);
	if (found)
	{
		*version = DatumGetInt64(slot_getattr(im->head, im->st->attnum[ES_COL_VERSION], &isnull));
		*at = DatumGetTimestampTz(slot_getattr(im->head, im->st->attnum[ES_COL_CREATED_AT], &isnull));
		*position = DatumGetInt64(slot_getattr(im->head, im->st->attnum[ES_COL_POSITION], &isnull));
	}
	ExecClearTuple(im->head);
	return found;
}

/* Check one row (in import order) against the rules; raise the first it breaks. */
static void
es_import_check(EsImport *im, const Datum *row, const bool *null)
{
	EsImportRule kind = es_import_row_rule(row, null);
	int64		ord;
	text	   *sid;
	EsImportKey key;
	EsImportStream *s;
	bool		found;
	int64		version;
	TimestampTz at;
	int64		prev;			/* the stream's previous version, or -1 */
	TimestampTz prev_at = 0;
	bool		has_prev_at = false;
	int64		expected;

#define ES_FAIL(k, e) es_import_fail((k), psprintf(INT64_FORMAT, ord), text_to_cstring(sid), \
									 version, (e), at, prev_at)
	if (kind != ES_IMPORT_OK)
		es_import_fail(kind, null[ES_IN_ORD] ? "NULL" : psprintf(INT64_FORMAT, DatumGetInt64(row[ES_IN_ORD])),
					   NULL, 0, 0, 0, 0);
	ord = DatumGetInt64(row[ES_IN_ORD]);
	sid = DatumGetTextPP(row[ES_IN_STREAM]);
	version = DatumGetInt64(row[ES_IN_VERSION]);
	at = DatumGetTimestampTz(row[ES_IN_CREATED_AT]);

	/* past the budget, forget the streams once the rows so far are stored */
	if (im->added >= 1024 || im->streams->members + 1 >= im->streams->grow_threshold)
	{
		if (es_import_over_budget(im))
		{
			if (!im->forgot)
				elog(DEBUG1, "eventstore: the import's streams outgrow maintenance_work_mem: it forgets them and looks them up in the store again");
			im->forgot = true;
			es_inserter_flush(im->ins);
			es_import_forget(im);
		}
		im->added = 0;
	}

	key.data = VARDATA_ANY(sid);
	key.len = VARSIZE_ANY_EXHDR(sid);
	s = es_istreams_insert(im->streams, key, &found);
	if (found)
	{
		prev = s->version;
		prev_at = s->at;
		has_prev_at = true;
	}
	else
	{
		int64		head_version = 0;
		int64		head_position = 0;
		TimestampTz head_at = 0;
		bool		head = es_import_head(im, sid, &head_version, &head_at, &head_position);

		s->key.data = MemoryContextAlloc(im->cxt, key.len);
		memcpy((char *) s->key.data, key.data, key.len);
		im->added++;
		prev_at = head_at;
		has_prev_at = head;
		if (head && head_position >= im->first)
			prev = head_version;	/* a row of this import, the streams forgotten since */
		else
		{
			/* the stream's first row in the import continues what is stored */
			bool		tombstone = false;
			int64		floor = im->lifecycle
				? es_lifecycle_import_floor(im->st, sid, SnapshotSelf, &tombstone) : 0;

			if (tombstone)
				ES_FAIL(ES_IMPORT_TOMBSTONE, 0);
			expected = Max(head_version, floor) + 1;
			if (version != expected)
				ES_FAIL(ES_IMPORT_NOT_CONTINUED, expected);
			prev = -1;
		}
	}
	if (prev >= 0 && version == prev)
		ES_FAIL(ES_IMPORT_DUPLICATE, prev + 1);
	if (prev >= 0 && version != prev + 1)
		ES_FAIL(ES_IMPORT_GAP, prev + 1);
	if (has_prev_at && at < prev_at)
		ES_FAIL(ES_IMPORT_TIME_BACK, prev + 1);
#undef ES_FAIL
	s->version = version;
	s->at = at;
	if ((Pointer) sid != DatumGetPointer(row[ES_IN_STREAM]))
		pfree(sid);
}

/* Whether the rows met so far are in import order. */
typedef struct EsImportOrder
{
	bool		first;
	bool		in_order;
	int64		ord;
	int64		version;
} EsImportOrder;

static bool
es_import_order_row(TupleTableSlot *slot, void *arg)
{
	EsImportOrder *o = arg;
	int64		ord = DatumGetInt64(slot->tts_values[0]);
	int64		version = DatumGetInt64(slot->tts_values[1]);

	o->in_order = !slot->tts_isnull[0] && !slot->tts_isnull[1] &&
		(o->first || ord > o->ord || (ord == o->ord && version >= o->version));
	o->first = false;
	o->ord = ord;
	o->version = version;
	return o->in_order;
}

/*
 * True when a plain scan of the source returns its rows in import order
 * (ord, stream_version): a table filled by one COPY of a history in order
 * does.  Then the rows are inserted as they are read, without sorting them:
 * one pass over two columns instead of a sort of every row.  Rows equal in
 * (ord, stream_version) have no order among them either way.  A null ord or
 * version makes the rows sorted, nulls first, so that the rule on it is met
 * in import order.
 */
static bool
es_import_in_order(const char *source_name)
{
	EsImportOrder o = {.first = true,.in_order = true};

	es_import_scan(psprintf(es_import_order_sql, source_name), es_import_order_row, &o);
	return o.in_order;
}

/* Check and insert one row, in import order. */
static bool
es_import_row(TupleTableSlot *in, void *arg)
{
	EsImport   *im = arg;
	EsStore    *st = im->st;
	const Datum *row = in->tts_values;
	const bool *row_null = in->tts_isnull;
	TupleTableSlot *slot;
	Datum	   *values;
	bool	   *isnull;

	es_import_check(im, row, row_null);
	slot = es_inserter_slot(im->ins);
	values = slot->tts_values;
	isnull = slot->tts_isnull;
#define ES_SET(col, value) (values[st->attnum[col] - 1] = (value), isnull[st->attnum[col] - 1] = false)
	ES_SET(ES_COL_POSITION, Int64GetDatum(im->first + (int64) im->rows));
	ES_SET(ES_COL_STREAM, row[ES_IN_STREAM]);
	ES_SET(ES_COL_VERSION, row[ES_IN_VERSION]);
	ES_SET(ES_COL_ID, row[ES_IN_ID]);
	ES_SET(ES_COL_TYPE, row[ES_IN_TYPE]);
	ES_SET(ES_COL_DATA, row[ES_IN_DATA]);
	if (!row_null[ES_IN_METADATA])
		ES_SET(ES_COL_METADATA, row[ES_IN_METADATA]);
	ES_SET(ES_COL_CREATED_AT, row[ES_IN_CREATED_AT]);
	if (st->has_tags)
		ES_SET(ES_COL_TAGS, im->no_tags);
#undef ES_SET
	/* the inserter copies the row: the slot's values live until the next */
	(void) es_inserter_put(im->ins);
	im->rows++;
	return true;
}

/*
 * Check and insert the source's rows into the store in import order,
 * positions from first on, through the executor's insert path for one table
 * that append() uses too (append.c), buffered and handed to
 * table_multi_insert() as COPY does.  Returns the number of rows inserted.
 */
static uint64
es_import_insert(EsStore *st, const char *source_name, int64 first, bool lifecycle)
{
	EsImport	im = {0};
	bool		in_order = es_import_in_order(source_name);

	im.st = st;
	im.first = first;
	im.lifecycle = lifecycle;
	im.no_tags = PointerGetDatum(construct_empty_array(TEXTOID));
	im.budget = (Size) maintenance_work_mem * 1024;
	im.cxt = AllocSetContextCreate(CurrentMemoryContext, "eventstore import streams",
								   ALLOCSET_DEFAULT_SIZES);
	es_import_forget(&im);
	im.heap = table_open(st->relid, AccessShareLock);
	im.index = index_open(st->version_index, AccessShareLock);
	im.scan = index_beginscan(im.heap, im.index, SnapshotSelf, 1, 0);
	im.head = table_slot_create(im.heap, NULL);
	im.ins = es_inserter_begin(st, true, "import");
	es_import_scan(psprintf(es_import_rows_sql, source_name,
							in_order ? "" : " ORDER BY s.ord NULLS FIRST, s.stream_version NULLS FIRST"),
				   es_import_row, &im);
	es_inserter_end(im.ins);
	index_endscan(im.scan);
	ExecDropSingleTupleTableSlot(im.head);
	index_close(im.index, NoLock);
	table_close(im.heap, NoLock);
	MemoryContextDelete(im.cxt);
	return im.rows;
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
	int			save_nestlevel;
	bool		lifecycle;
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
	 * A sort of the whole source when it is not stored in import order: give
	 * it maintenance_work_mem, as a bulk load, and no JIT (compiling costs
	 * more than it saves here).
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

	/*
	 * With lifecycle rows (lifecycle.c), a stream continues the version its
	 * deletions and purges kept, as an append does (a soft-deleted stream is
	 * recreated), and a tombstone refuses it (ES410).
	 */
	lifecycle = es_lifecycle_active(st->relid, GetLatestSnapshot());
	{
		Oid			seq = es_position_seqid();
		int64		first;

		/* The first position registers the transaction as in flight. */
		first = es_allocate(ES_COUNTER_POSITION, seq);
		imported = es_import_insert(st, source_name, first, lifecycle);
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
