/*
 * append.c
 *		eventstore.append() and eventstore.append_event(): optimistic
 *		concurrency per stream, idempotent retries, and the insert itself.
 *
 * Locking rules: an append takes a transaction-scoped advisory lock on its
 * stream (a 64-bit hash of the stream id, in a field4 of our own so it never
 * meets the application's advisory keys).  When the lock is taken, committed
 * state is consulted first: a call it already decides (a retry, or an
 * expected version the stream has passed) does not wait.  While it is held no other append to
 * the stream is in flight, so the stream's current version is read with a
 * fresh snapshot rather than the transaction's: it is the truth, in every
 * isolation level, and the loser of a race sees the winner's events and gets
 * the wrong-expected-version error before it takes any position.  Appends to
 * other streams never wait for it.  The unique (stream_id, stream_version)
 * key is only the backstop.  An append that ends without error holds the
 * lock only if it took positions: a retry, which writes nothing, gives back
 * the lock it took (the transaction may stay open, or be prepared), and
 * every other way out is an error, which releases it with the
 * (sub)transaction.  So a transaction that holds a stream lock has taken a
 * position, and PREPARE refuses it (horizon.c).
 *
 * Before the stream lock an append takes ROW EXCLUSIVE on eventstore.events
 * (the lock its insert takes anyway), so it waits for a running import,
 * which holds SHARE ROW EXCLUSIVE instead of stream locks (import.c).
 *
 * Every store (a table of type eventstore.event_store, catalog.c) is
 * appended to the same way; positions come from the one sequence all stores
 * share.  INSERT on the store's table is the privilege to append to it;
 * rows are inserted as the table's owner, and a direct INSERT by anyone else
 * is refused by the store's trigger (immutable.c).
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/nodeModifyTable.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "access/genam.h"
#include "access/skey.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "executor/tuptable.h"
#include "utils/fmgroids.h"
#include "optimizer/optimizer.h"
#include "rewrite/rewriteHandler.h"
#include "utils/uuid.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "access/transam.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "compat.h"
#include "eventstore.h"

PG_FUNCTION_INFO_V1(eventstore_append);
PG_FUNCTION_INFO_V1(eventstore_append_event);

/* One event of an append call, validated. */
typedef struct EsNewEvent
{
	Datum		event_type;		/* text */
	Datum		data;			/* jsonb */
	Datum		metadata;		/* jsonb, or 0 when null */
	Datum		tags;			/* text[], canonical (dcb.c); empty when none */
	pg_uuid_t	event_id;
	bool		id_given;		/* the caller chose event_id */
} EsNewEvent;

/* Check a stream id: not empty, not too long. */
void
es_check_stream_id(text *stream_id)
{
	int			len = VARSIZE_ANY_EXHDR(stream_id);

	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("stream_id must not be empty")));
	if (len > ES_MAX_STREAM_ID_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("stream_id is too long"),
				 errdetail("The stream id has %d bytes; the limit is %d.",
						   len, ES_MAX_STREAM_ID_BYTES)));
}

/* A stream_id argument: not NULL, and checked as above. */
text *
es_stream_id_arg(FunctionCallInfo fcinfo, int argno)
{
	text	   *stream_id;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("stream_id must not be null")));
	stream_id = PG_GETARG_TEXT_PP(argno);
	es_check_stream_id(stream_id);
	return stream_id;
}

/* A random (version 4) UUID. */
static void
es_random_uuid(pg_uuid_t *uuid)
{
	if (!pg_strong_random(uuid->data, UUID_LEN))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random values")));
	uuid->data[6] = (uuid->data[6] & 0x0f) | 0x40;
	uuid->data[8] = (uuid->data[8] & 0x3f) | 0x80;
}

/* metadata with key => value added, unless metadata already has key. */
static Datum
es_metadata_with(Datum metadata, const char *key, const char *value)
{
	StringInfoData buf;
	Datum		addition;

	if (metadata != (Datum) 0 &&
		DatumGetBool(DirectFunctionCall2(jsonb_exists, metadata,
										 CStringGetTextDatum(key))))
		return metadata;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	escape_json(&buf, key);
	appendStringInfoChar(&buf, ':');
	escape_json(&buf, value);
	appendStringInfoChar(&buf, '}');
	addition = DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
	if (metadata == (Datum) 0)
		return addition;
	return DirectFunctionCall2(jsonb_concat, metadata, addition);
}

/* Validate one event's fields and fill *ev; ordinal is 1-based, for messages. */
static void
es_prepare_event(EsNewEvent *ev, int ordinal,
				 Datum event_type, bool type_null,
				 Datum data, bool data_null,
				 Datum metadata, bool metadata_null,
				 Datum event_id, bool id_null,
				 Datum tags, bool tags_null)
{
	Size		size;

	if (type_null)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("event_type of event %d must not be null", ordinal)));
	if (VARSIZE_ANY_EXHDR(DatumGetPointer(event_type)) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("event_type of event %d must not be empty", ordinal)));
	if (data_null)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("data of event %d must not be null", ordinal),
				 errhint("Use '{}'::jsonb for an event without data.")));
	if (!metadata_null && !JB_ROOT_IS_OBJECT(DatumGetJsonbP(metadata)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("metadata of event %d must be a JSON object", ordinal)));

	ev->event_type = PointerGetDatum(PG_DETOAST_DATUM_PACKED(event_type));
	ev->data = PointerGetDatum(PG_DETOAST_DATUM(data));
	ev->metadata = metadata_null ? (Datum) 0 : PointerGetDatum(PG_DETOAST_DATUM(metadata));
	if (es_correlation_id != NULL && es_correlation_id[0] != '\0')
		ev->metadata = es_metadata_with(ev->metadata, "correlation_id", es_correlation_id);
	if (es_causation_id != NULL && es_causation_id[0] != '\0')
		ev->metadata = es_metadata_with(ev->metadata, "causation_id", es_causation_id);

	ev->tags = es_dcb_tags(tags, tags_null, ordinal);

	size = VARSIZE_ANY(DatumGetPointer(ev->data)) +
		VARSIZE_ANY_EXHDR(DatumGetPointer(ev->event_type));
	if (!tags_null)
		size += VARSIZE_ANY(DatumGetPointer(ev->tags));
	if (ev->metadata != (Datum) 0)
		size += VARSIZE_ANY(DatumGetPointer(ev->metadata));
	if (size > (Size) es_max_event_size)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("event %d is too large", ordinal),
				 errdetail("The event has %zu bytes; eventstore.max_event_size is %d bytes.",
						   size, es_max_event_size)));

	ev->id_given = !id_null;
	if (id_null)
		es_random_uuid(&ev->event_id);
	else
		memcpy(&ev->event_id, DatumGetUUIDP(event_id), sizeof(pg_uuid_t));
}

/*
 * A stream's lock: a hash of the stream id seeded with the store, so the same
 * stream id in two stores takes two locks (a collision only makes two appends
 * wait for each other, never lets them both in).
 */
static void
es_stream_locktag(LOCKTAG *tag, EsStore *st, text *stream_id)
{
	uint64		h = hash_bytes_extended((const unsigned char *) VARDATA_ANY(stream_id),
										VARSIZE_ANY_EXHDR(stream_id), st->relid);

	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) (h >> 32), (uint32) h,
						 ES_LOCKTAG_STREAM);
}

/* Take the stream's append lock; with nowait, return false if it is taken. */
bool
es_lock_stream(EsStore *st, text *stream_id, bool nowait)
{
	LOCKTAG		tag;

	es_stream_locktag(&tag, st, stream_id);
	return LockAcquire(&tag, ExclusiveLock, false, nowait) != LOCKACQUIRE_NOT_AVAIL;
}

/*
 * Undo one es_lock_stream() of this call.  Each acquisition is counted, so
 * when an earlier append of this transaction holds the lock too, it stays
 * held (to the end of the transaction, as for any append); otherwise it is
 * released now.
 */
static void
es_unlock_stream(EsStore *st, text *stream_id)
{
	LOCKTAG		tag;

	es_stream_locktag(&tag, st, stream_id);
	if (!LockRelease(&tag, ExclusiveLock, false))
		elog(ERROR, "eventstore: stream lock was not held");
}

/* Wait until the transaction holding the stream's lock has ended. */
static void
es_wait_stream(EsStore *st, text *stream_id)
{
	LOCKTAG		tag;

	es_stream_locktag(&tag, st, stream_id);
	WaitForLockers(tag, ExclusiveLock, false);
}

/*
 * Committed state of a stream is looked up with direct index scans under
 * SnapshotSelf: what is committed now, plus this transaction's own rows.
 * With the stream lock held nothing else can be in flight on the stream, so
 * that is the truth.  It is not an MVCC snapshot, so SERIALIZABLE takes no
 * predicate locks for it: appends to different streams never fail each other
 * with a serialization error.
 */
typedef struct EsStreamLookup
{
	Relation	heap;
	Relation	index;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	ScanKeyData keys[2];
} EsStreamLookup;

/*
 * Start a lookup in index (stream_id = sid [, second column <op> key2]),
 * op being the btree strategy and key2_proc its comparison function.
 */
static void
es_lookup_begin(EsStreamLookup *lk, EsStore *st, Oid indexoid, Datum sid,
				StrategyNumber strategy, Oid key2_proc, Datum key2)
{
	int			nkeys = OidIsValid(key2_proc) ? 2 : 1;

	lk->heap = table_open(st->relid, AccessShareLock);
	lk->index = index_open(indexoid, AccessShareLock);
	ScanKeyEntryInitialize(&lk->keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
						   lk->index->rd_indcollation[0], F_TEXTEQ, sid);
	if (nkeys == 2)
		ScanKeyEntryInitialize(&lk->keys[1], 0, 2, strategy, InvalidOid,
							   lk->index->rd_indcollation[1], key2_proc, key2);
	lk->scan = index_beginscan(lk->heap, lk->index, SnapshotSelf, nkeys, 0);
	index_rescan(lk->scan, lk->keys, nkeys, NULL, 0);
	lk->slot = table_slot_create(lk->heap, NULL);
}

static void
es_lookup_end(EsStreamLookup *lk)
{
	index_endscan(lk->scan);
	ExecDropSingleTupleTableSlot(lk->slot);
	index_close(lk->index, NoLock);
	table_close(lk->heap, NoLock);
}

/* An int8 column of the store's row in slot. */
static int64
es_slot_int8(EsStore *st, TupleTableSlot *slot, EsColumn column)
{
	bool		isnull;

	return DatumGetInt64(slot_getattr(slot, st->attnum[column], &isnull));
}

/*
 * Where a stream's head was last seen by this backend, per store: a hint
 * that lets the head lookup stop at it.  A btree page is read whole, so
 * looking for a long stream's last version compares every entry of the
 * stream on its last leaf page; with the hint the scan asks for versions at
 * or above it and stops there.  Versions only grow, so a head at or above
 * the hint is the head; when nothing is found there (a stream deleted and
 * purged, a rolled-back append, another stream with the same hash slot) the
 * lookup is done again without the hint.  A wrong hint costs a second
 * lookup, never a wrong answer.
 */
#define ES_HEAD_HINTS 1024

typedef struct EsHeadHint
{
	Oid			store;
	uint64		hash;			/* of the stream id */
	int64		version;
} EsHeadHint;

static EsHeadHint es_head_hints[ES_HEAD_HINTS];

/* The last event of a stream at or above version from (from 0: any). */
static bool
es_head_lookup(EsStore *st, Datum stream_id, int64 from, int64 *version, TimestampTz *last_time)
{
	EsStreamLookup lk;
	bool		found;

	if (from > 1)
		es_lookup_begin(&lk, st, st->version_index, stream_id, BTGreaterEqualStrategyNumber,
						F_INT8GE, Int64GetDatum(from));
	else
		es_lookup_begin(&lk, st, st->version_index, stream_id, InvalidStrategy,
						InvalidOid, (Datum) 0);
	found = index_getnext_slot(lk.scan, BackwardScanDirection, lk.slot);
	if (found)
	{
		*version = es_slot_int8(st, lk.slot, ES_COL_VERSION);
		if (last_time)
		{
			bool		isnull;

			*last_time = DatumGetTimestampTz(slot_getattr(lk.slot, st->attnum[ES_COL_CREATED_AT],
														  &isnull));
		}
	}
	es_lookup_end(&lk);
	return found;
}

/*
 * The stream's current committed version (0 when it has no events) and, if
 * last_time is given, its last event's created_at (0 when none).
 */
int64
es_current_version(EsStore *st, Datum stream_id, TimestampTz *last_time)
{
	text	   *sid = (text *) DatumGetPointer(stream_id);
	uint64		h = hash_bytes_extended((const unsigned char *) VARDATA_ANY(sid),
										VARSIZE_ANY_EXHDR(sid), 0);
	EsHeadHint *hint = &es_head_hints[h % ES_HEAD_HINTS];
	int64		from = (hint->store == st->relid && hint->hash == h) ? hint->version : 0;
	int64		version = 0;
	TimestampTz cached_time;

	/* what the append that wrote the head left in the shared cache (stream_head.c) */
	if (es_head_get(st, sid, &version, &cached_time))
	{
		if (last_time)
			*last_time = cached_time;
		return version;
	}
	if (last_time)
		*last_time = 0;
	if (!es_head_lookup(st, stream_id, from, &version, last_time) && from > 1)
		(void) es_head_lookup(st, stream_id, 0, &version, last_time);
	hint->store = st->relid;
	hint->hash = h;
	hint->version = version;
	return version;
}

/* The text form of a UUID, for messages. */
static char *
es_uuid_text(pg_uuid_t *id)
{
	return DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(id)));
}

static int
es_uuid_cmp(const void *a, const void *b)
{
	return memcmp(a, b, UUID_LEN);
}

/* Refuse an append that names one event id twice. */
static void
es_check_duplicate_ids(EsNewEvent *events, int n)
{
	pg_uuid_t  *ids;
	int			nids = 0;

	if (n < 2)
		return;
	ids = palloc(sizeof(pg_uuid_t) * n);
	for (int i = 0; i < n; i++)
		if (events[i].id_given)
			ids[nids++] = events[i].event_id;
	qsort(ids, nids, sizeof(pg_uuid_t), es_uuid_cmp);
	for (int i = 1; i < nids; i++)
		if (memcmp(&ids[i - 1], &ids[i], UUID_LEN) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("event %s appears more than once in this append",
							es_uuid_text(&ids[i]))));
	pfree(ids);
}

/*
 * Idempotent retry check.  Returns true, with the original result in
 * *version and *position, when every event id of the call is already stored
 * in the stream consecutively and in the call's order.  Raises
 * unique_violation, naming the first such event of the call, when only some
 * are (or in another order).  Returns false when none is.
 */
static bool
es_check_retry(EsStore *st, Datum stream_id, EsNewEvent *events, int n,
			   int64 *version, int64 *position)
{
	bool		retry = true;
	int			first_existing = -1;
	int64		first_version = 0;
	int64		last_position = 0;

	for (int i = 0; i < n; i++)
	{
		EsStreamLookup lk;
		bool		found;
		int64		v = 0;

		if (!events[i].id_given)
		{
			retry = false;
			continue;
		}
		es_lookup_begin(&lk, st, st->event_id_index, stream_id, BTEqualStrategyNumber,
						F_UUID_EQ, UUIDPGetDatum(&events[i].event_id));
		found = index_getnext_slot(lk.scan, ForwardScanDirection, lk.slot);
		if (found)
		{
			v = es_slot_int8(st, lk.slot, ES_COL_VERSION);
			if (i == n - 1)
				last_position = es_slot_int8(st, lk.slot, ES_COL_POSITION);
		}
		es_lookup_end(&lk);

		if (!found)
		{
			retry = false;
			continue;
		}
		if (first_existing < 0)
			first_existing = i;
		if (i == 0)
			first_version = v;
		else if (v != first_version + i)
			retry = false;
	}
	if (first_existing < 0)
		return false;
	if (!retry || first_existing != 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("event %s already exists in stream \"%s\"",
						es_uuid_text(&events[first_existing].event_id),
						TextDatumGetCString(stream_id)),
				 errdetail("Only a retry that repeats the same events in the same order succeeds without writing.")));
	*version = first_version + n - 1;
	*position = last_position;
	return true;
}

/*
 * Raise the wrong-expected-version error, unless current satisfies expected.
 * A soft-deleted stream (lifecycle.c) does not exist: only 0 (or any
 * version) recreates it, its versions continuing after current.
 */
static void
es_check_expected(EsStore *st, Datum stream_id, bool any_version, int64 expected, int64 current,
				  bool deleted)
{
	bool		ok;
	char		expected_text[64];

	if (any_version)
		return;
	if (expected == -1)
	{
		ok = current > 0 && !deleted;
		snprintf(expected_text, sizeof(expected_text), "an existing stream");
	}
	else
	{
		ok = deleted ? expected == 0 : current == expected;
		snprintf(expected_text, sizeof(expected_text), INT64_FORMAT, expected);
	}
	if (!ok)
		es_stats_conflict(st, stream_id);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_ES_WRONG_EXPECTED_VERSION),
				 errmsg("wrong expected version for stream \"%s\": expected %s, actual %lld",
						TextDatumGetCString(stream_id), expected_text, deleted ? 0LL : (long long) current),
				 errdetail("Nothing was appended."),
				 errhint("Read the stream again and retry with its current version.")));
}

/* Bytes of the events' type, data and metadata, for the statistics. */
static int64
es_events_bytes(EsNewEvent *events, int n)
{
	int64		bytes = 0;

	for (int i = 0; i < n; i++)
	{
		bytes += VARSIZE_ANY_EXHDR(DatumGetPointer(events[i].event_type)) +
			VARSIZE_ANY(DatumGetPointer(events[i].data));
		if (events[i].metadata != (Datum) 0)
			bytes += VARSIZE_ANY(DatumGetPointer(events[i].metadata));
	}
	return bytes;
}

/*
 * The executor's own insert path for one store, as COPY FROM uses it: the
 * table access method, the indexes, the check constraints, the defaults of
 * columns the user added to the row type, and the table's triggers
 * (statement and row, before and after, transition tables), without
 * planning or running an INSERT statement.  append() inserts a row at a
 * time; import_events() (import.c) buffers rows and hands each full buffer
 * to table_multi_insert() with a BulkInsertState, as COPY does, unless the
 * store has BEFORE ROW triggers (which may look at the rows inserted before,
 * so those stores get a row at a time, as with COPY).
 */
#define ES_INSERT_BUFFER 1000

struct EsInserter
{
	EsStore    *st;
	const char *what;			/* "append" or "import", for messages */
	EState	   *estate;
	ResultRelInfo *rri;
	Relation	rel;
	TransitionCaptureState *capture;
	int			ndefaults;
	AttrNumber *default_attnum;
	ExprState **default_expr;
	int			nslots;			/* 1, or ES_INSERT_BUFFER when buffering */
	TupleTableSlot **slots;
	int			used;			/* slots filled and not yet inserted */
	int64		ordinal;		/* rows put so far, for messages */
	BulkInsertState bistate;	/* when buffering */
};

/*
 * A table's check constraints, compiled once per backend.  The executor
 * compiles them again for every ResultRelInfo, which an append makes anew
 * at each call: parsing and planning the store's one "stream_version > 0"
 * costs about 12,500 instructions, 7% of a one-event append.  An entry is
 * used while the table's constraints are the same strings (ccbin) as when it
 * was compiled, and only for constraints that call built-in functions alone
 * (no user function, which could be redefined or append to the store while
 * its expression is being evaluated; no domain, sublink): for the others the
 * executor compiles them as usual.  A replaced entry's memory lives to the
 * end of the transaction, as an inserter begun before may still use it.
 */
typedef struct EsCheckEntry
{
	Oid			relid;			/* hash key */
	MemoryContext cxt;			/* of ccbin and exprs, NULL when none */
	int			ncheck;
	char	  **ccbin;
	ExprState **exprs;			/* NULL: left to the executor */
} EsCheckEntry;

static HTAB *es_check_cache = NULL;

static bool
es_user_function(Oid func_id, void *context)
{
	(void) context;
	return func_id >= FirstNormalObjectId;
}

/* True when expression node calls a user function, or needs a domain or a sublink. */
static bool
es_check_not_plain(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, CoerceToDomain) || IsA(node, SubLink) || IsA(node, SubPlan) ||
		check_functions_in_node(node, es_user_function, NULL))
		return true;
	return expression_tree_walker(node, es_check_not_plain, context);
}

/* The compiled check constraints of rel for ri_ConstraintExprs, or NULL. */
static ExprState **
es_check_exprs(Relation rel)
{
	TupleConstr *constr = rel->rd_att->constr;
	EsCheckEntry *entry;
	bool		found;
	bool		same;
	MemoryContext cxt;
	MemoryContext old;
	char	  **ccbin;
	ExprState **exprs;

	if (constr == NULL || constr->num_check == 0)
		return NULL;
	if (es_check_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(EsCheckEntry);
		ctl.hcxt = CacheMemoryContext;
		es_check_cache = hash_create("eventstore check constraints", 64, &ctl,
									 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	entry = hash_search(es_check_cache, &RelationGetRelid(rel), HASH_ENTER, &found);
	if (!found)
		entry->cxt = NULL;
	same = entry->cxt != NULL && entry->ncheck == constr->num_check;
	for (int i = 0; same && i < constr->num_check; i++)
		same = strcmp(entry->ccbin[i], constr->check[i].ccbin) == 0;
	if (same)
		return entry->exprs;

	if (entry->cxt != NULL)
		MemoryContextSetParent(entry->cxt, TopTransactionContext);
	entry->cxt = NULL;

	/* built under the transaction (freed on error), kept once complete */
	cxt = AllocSetContextCreate(TopTransactionContext, "eventstore check constraints",
								ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);
	ccbin = palloc(sizeof(char *) * constr->num_check);
	exprs = palloc(sizeof(ExprState *) * constr->num_check);
	for (int i = 0; i < constr->num_check; i++)
	{
		Expr	   *expr = (Expr *) stringToNode(constr->check[i].ccbin);

		ccbin[i] = pstrdup(constr->check[i].ccbin);
		if (exprs != NULL && es_check_not_plain((Node *) expr, NULL))
			exprs = NULL;
		if (exprs != NULL)
			exprs[i] = ExecInitExpr(expression_planner(expr), NULL);
	}
	MemoryContextSwitchTo(old);
	MemoryContextSetParent(cxt, CacheMemoryContext);
	entry->ncheck = constr->num_check;
	entry->ccbin = ccbin;
	entry->exprs = exprs;
	entry->cxt = cxt;
	return exprs;
}

/*
 * Start inserting into st (the store, or a Citus shard of it); its row lock
 * mode (ROW EXCLUSIVE) is taken here.  With bulk, rows may be buffered.
 */
EsInserter *
es_inserter_begin(EsStore *st, bool bulk, const char *what)
{
	EsInserter *ins = palloc0(sizeof(EsInserter));
	RangeTblEntry *rte = makeNode(RangeTblEntry);
	Relation	rel;

	LockRelationOid(st->relid, RowExclusiveLock);
	ins->st = st;
	ins->what = what;
	ins->estate = CreateExecutorState();
	ins->rri = makeNode(ResultRelInfo);
	rte->rtekind = RTE_RELATION;
	rte->relid = st->relid;
	rte->relkind = RELKIND_RELATION;
	rte->rellockmode = RowExclusiveLock;
	rte->requiredPerms = ACL_INSERT;
	ExecInitRangeTable(ins->estate, list_make1(rte));
	ExecInitResultRelation(ins->estate, ins->rri, 1);
	rel = ins->rel = ins->rri->ri_RelationDesc;
	ExecOpenIndices(ins->rri, false);
	ins->rri->ri_ConstraintExprs = es_check_exprs(rel);
	ins->estate->es_output_cid = GetCurrentCommandId(true);

	/*
	 * Columns the user added to the type (ALTER TYPE ... ADD ATTRIBUTE) get
	 * their defaults, as an INSERT naming only our columns would give them.
	 */
	ins->default_attnum = palloc(sizeof(AttrNumber) * RelationGetDescr(rel)->natts);
	ins->default_expr = palloc(sizeof(ExprState *) * RelationGetDescr(rel)->natts);
	for (AttrNumber a = 1; a <= RelationGetDescr(rel)->natts; a++)
	{
		bool		ours = false;
		Node	   *expr;

		if (TupleDescAttr(RelationGetDescr(rel), a - 1)->attisdropped)
			continue;
		for (int c = 0; c < ES_NCOLS && !ours; c++)
			ours = (st->attnum[c] == a);
		if (ours || (expr = build_column_default(rel, a)) == NULL)
			continue;
		ins->default_attnum[ins->ndefaults] = a;
		ins->default_expr[ins->ndefaults++] = ExecInitExpr(expression_planner((Expr *) expr), NULL);
	}

	AfterTriggerBeginQuery();
	ins->capture = MakeTransitionCaptureState(rel->trigdesc, st->relid, CMD_INSERT);
	es_head_appending = true;	/* the store's trigger: not an INSERT of the owner's */
	ExecBSInsertTriggers(ins->estate, ins->rri);
	es_head_appending = false;

	ins->nslots = (bulk && !(ins->rri->ri_TrigDesc &&
							 ins->rri->ri_TrigDesc->trig_insert_before_row))
		? ES_INSERT_BUFFER : 1;
	ins->slots = palloc0(sizeof(TupleTableSlot *) * ins->nslots);
	if (ins->nslots > 1)
		ins->bistate = GetBulkInsertState();
	return ins;
}

/*
 * The slot to fill for the next row: every column null, the per-row memory
 * reset.  Set the store's columns, then call es_inserter_put().
 */
TupleTableSlot *
es_inserter_slot(EsInserter *ins)
{
	TupleTableSlot *slot;

	if (ins->slots[ins->used] == NULL)
		ins->slots[ins->used] = table_slot_create(ins->rel, &ins->estate->es_tupleTable);
	slot = ins->slots[ins->used];
	if (ins->nslots == 1)
		ResetPerTupleExprContext(ins->estate);
	ExecClearTuple(slot);
	memset(slot->tts_isnull, true, sizeof(bool) * slot->tts_tupleDescriptor->natts);
	return slot;
}

/* Index entries and AFTER ROW triggers of the rows in slots [0, n). */
static void
es_inserter_after(EsInserter *ins, int n)
{
	for (int i = 0; i < n; i++)
	{
		TupleTableSlot *slot = ins->slots[i];
		List	   *recheck;

		if (ins->nslots > 1)
			ResetPerTupleExprContext(ins->estate);
		recheck = ins->rri->ri_NumIndices > 0
			? ES_INSERT_INDEX_TUPLES(ins->rri, slot, ins->estate) : NIL;
		ExecARInsertTriggers(ins->estate, ins->rri, slot, recheck, ins->capture);
		list_free(recheck);
	}
}

/* Insert the buffered rows. */
void
es_inserter_flush(EsInserter *ins)
{
	MemoryContext old;

	if (ins->used == 0)
		return;
	/* what the table AM allocates for the batch goes with the row memory */
	old = MemoryContextSwitchTo(GetPerTupleMemoryContext(ins->estate));
	table_multi_insert(ins->rel, ins->slots, ins->used, ins->estate->es_output_cid,
					   0, ins->bistate);
	MemoryContextSwitchTo(old);
	es_inserter_after(ins, ins->used);
	ins->used = 0;
	if (ins->nslots > 1)
		ResetPerTupleExprContext(ins->estate);
}

/*
 * Insert the row filled in the slot es_inserter_slot() gave (or buffer it).
 * Returns the slot, which holds the row as stored once it is inserted: at
 * once when rows are not buffered.
 */
TupleTableSlot *
es_inserter_put(EsInserter *ins)
{
	TupleTableSlot *slot = ins->slots[ins->used];
	EState	   *estate = ins->estate;
	Datum	   *values = slot->tts_values;
	bool	   *isnull = slot->tts_isnull;

	ins->ordinal++;
	for (int d = 0; d < ins->ndefaults; d++)
		values[ins->default_attnum[d] - 1] =
			ExecEvalExpr(ins->default_expr[d], GetPerTupleExprContext(estate),
						 &isnull[ins->default_attnum[d] - 1]);
	ExecStoreVirtualTuple(slot);

	if (ins->rri->ri_TrigDesc && ins->rri->ri_TrigDesc->trig_insert_before_row &&
		!ExecBRInsertTriggers(estate, ins->rri, slot))
		ereport(ERROR,
				(errcode(ERRCODE_TRIGGERED_ACTION_EXCEPTION),
				 errmsg("a trigger on %s skipped event " INT64_FORMAT " of the %s",
						ins->st->name, ins->ordinal, ins->what),
				 errdetail("A BEFORE ROW trigger of a store must not return NULL: the stream's versions and positions are taken.")));
	if (ins->rel->rd_att->constr && ins->rel->rd_att->constr->has_generated_stored)
		ES_COMPUTE_STORED_GENERATED(ins->rri, estate, slot);
	if (ins->rel->rd_att->constr)
		ExecConstraints(ins->rri, slot, estate);
	if (ins->nslots == 1)
	{
		table_tuple_insert(ins->rel, slot, estate->es_output_cid, 0, NULL);
		es_inserter_after(ins, 1);
		return slot;
	}
	/* the row must outlive the per-row memory and the caller's values */
	ExecMaterializeSlot(slot);
	if (++ins->used == ins->nslots)
		es_inserter_flush(ins);
	return slot;
}

/* Insert what is buffered, fire the statement's AFTER triggers, clean up. */
void
es_inserter_end(EsInserter *ins)
{
	es_inserter_flush(ins);
	ExecASInsertTriggers(ins->estate, ins->rri, ins->capture);
	AfterTriggerEndQuery(ins->estate);
	if (ins->bistate)
		FreeBulkInsertState(ins->bistate);
	ExecResetTupleTable(ins->estate->es_tupleTable, false);
	ExecCloseResultRelations(ins->estate);
	ExecCloseRangeTableRelations(ins->estate);
	FreeExecutorState(ins->estate);
	pfree(ins->default_attnum);
	pfree(ins->default_expr);
	pfree(ins->slots);
	pfree(ins);

	/* What follows in this transaction (projections, reads) sees the rows. */
	CommandCounterIncrement();
}

/*
 * Insert the prepared events at versions current+1.. with fresh positions,
 * a row at a time (es_inserter_*).  st is the table holding the stream (the
 * store, or a Citus shard of it).  With rows, the stored rows are returned
 * (in the current memory context) with their descriptor, for the
 * projections and the hook.
 */
static int64
es_insert_events(EsStore *st, Datum stream_id, EsNewEvent *events, int n, int64 current,
				 TimestampTz created_at, int64 *positions_out,
				 HeapTuple **rows, TupleDesc *rows_desc)
{
	Oid			seq = es_position_seqid();	/* one sequence for every store */
	MemoryContext caller = CurrentMemoryContext;
	EsInserter *ins = es_inserter_begin(st, false, "append");
	int64		last_position = 0;

	if (rows)
	{
		*rows = palloc(sizeof(HeapTuple) * n);
		/* an anonymous row shape, as INSERT ... RETURNING * gave */
		*rows_desc = CreateTupleDescCopy(RelationGetDescr(ins->rel));
		(*rows_desc)->tdtypeid = RECORDOID;
		(*rows_desc)->tdtypmod = -1;
	}
	for (int i = 0; i < n; i++)
	{
		TupleTableSlot *slot = es_inserter_slot(ins);
		Datum	   *values = slot->tts_values;
		bool	   *isnull = slot->tts_isnull;

		last_position = es_allocate(ES_COUNTER_POSITION, seq);
		positions_out[i] = last_position;
#define ES_SET(col, value) (values[st->attnum[col] - 1] = (value), isnull[st->attnum[col] - 1] = false)
		ES_SET(ES_COL_POSITION, Int64GetDatum(last_position));
		ES_SET(ES_COL_STREAM, stream_id);
		ES_SET(ES_COL_VERSION, Int64GetDatum(current + 1 + i));
		ES_SET(ES_COL_ID, UUIDPGetDatum(&events[i].event_id));
		ES_SET(ES_COL_TYPE, events[i].event_type);
		ES_SET(ES_COL_DATA, events[i].data);
		if (events[i].metadata != (Datum) 0)
			ES_SET(ES_COL_METADATA, events[i].metadata);
		ES_SET(ES_COL_CREATED_AT, TimestampTzGetDatum(created_at));
		if (st->has_tags)
			ES_SET(ES_COL_TAGS, events[i].tags);
#undef ES_SET
		slot = es_inserter_put(ins);
		if (rows)
		{
			MemoryContext old = MemoryContextSwitchTo(caller);

			(*rows)[i] = ExecCopySlotHeapTuple(slot);
			MemoryContextSwitchTo(old);
		}
	}
	es_inserter_end(ins);
	return last_position;
}

/*
 * The append itself: lock the stream, honour a retry, check the expected
 * version, take the consistency-boundary locks and check the condition
 * (dcb.c), insert.  Returns the stream's new version and the position of the
 * last event through the out parameters.
 */
static void
es_append(EsStore *st, text *stream_id, bool any_version, int64 expected,
		  EsNewEvent *events, int n, EsDcbCondition *cond,
		  int64 *version, int64 *position)
{
	Datum		sid = PointerGetDatum(stream_id);
	EsStore    *at;				/* the table holding the stream's events */
	Oid			save_userid;
	int			save_sec;
	int64		current;
	bool		deleted;
	TimestampTz last_time;
	TimestampTz created_at;
	uint64		generation;
	bool		any_id_given = false;
	bool		dispatch;
	int64	   *positions;
	Datum	   *types;
	Datum	   *tags;
	HeapTuple  *rows = NULL;
	TupleDesc	rows_desc = NULL;

	if (!any_version && expected < -1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid expected_version " INT64_FORMAT, expected),
				 errhint("Use NULL for any version, 0 for a new stream, -1 for an existing stream, or the exact current version.")));

	for (int i = 0; i < n; i++)
		any_id_given |= events[i].id_given;
	if (any_id_given)
		es_check_duplicate_ids(events, n);

	if (cond != NULL && st->distributed)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("conditional appends are not supported on distributed store %s", st->name),
				 errdetail("A condition queries events of every stream, which a distributed store keeps on several nodes.")));

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(st->owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);

	/*
	 * Where the stream's events are: the store's table, or for a Citus
	 * distributed store the local shard that holds the stream (citus.c).
	 * Locks, statistics and routing stay with the store.
	 */
	at = st->distributed ? es_citus_shard(st, sid) : st;

	/*
	 * The table lock the insert takes anyway, taken before the stream is
	 * looked at: an import (import.c) holds SHARE ROW EXCLUSIVE, so we wait
	 * here for it to end and then see the versions it stored.
	 */
	LockRelationOid(st->relid, RowExclusiveLock);

	if (!es_lock_stream(st, stream_id, true))
	{
		/*
		 * Another append to this stream is in flight.  Wait for it to end
		 * without queueing for the lock itself (every waiter wakes at once),
		 * then let committed state settle the call if it can: a retry whose
		 * events are all stored, or an expected version the stream has
		 * already passed (versions only grow).  Losers of a race so fail
		 * together instead of taking the lock one after another.
		 */
		es_wait_stream(st, stream_id);
		if (any_id_given && es_check_retry(at, sid, events, n, version, position))
		{
			es_stats_retry(st, sid);
			SetUserIdAndSecContext(save_userid, save_sec);
			return;
		}
		if (!any_version && expected >= 0)
		{
			current = es_current_version(at, sid, NULL);
			deleted = es_lifecycle_append_check(st, sid, &current);
			if (deleted ? expected != 0 : current > expected)
				es_check_expected(st, sid, any_version, expected, current, deleted);
		}
		(void) es_lock_stream(st, stream_id, false);
	}

	/*
	 * No other append to this stream is in flight: committed state is
	 * current.  A retry writes nothing and takes no position, so it does not
	 * keep the lock it took: an open (or prepared) transaction that only
	 * retried must not block the stream.
	 */
	if (any_id_given && es_check_retry(at, sid, events, n, version, position))
	{
		es_unlock_stream(st, stream_id);
		es_stats_retry(st, sid);
		SetUserIdAndSecContext(save_userid, save_sec);
		return;
	}
	generation = es_head_generation();
	current = es_current_version(at, sid, &last_time);
	deleted = es_lifecycle_append_check(st, sid, &current);
	es_check_expected(st, sid, any_version, expected, current, deleted);

	/*
	 * The consistency-boundary locks (dcb.c): shared by writers on their
	 * events' keys, taken by a condition on its query's keys.  Then no
	 * append that could write an event matching the condition is in flight.
	 */
	types = palloc(sizeof(Datum) * n);
	tags = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
	{
		types[i] = events[i].event_type;
		tags[i] = events[i].tags;
	}
	if (cond != NULL)
		es_dcb_check_after(cond);
	(void) es_dcb_lock(st, types, tags, n, cond);

	/*
	 * The events' time: now, as the stream lock is held, and never before
	 * the stream's last event, so created_at never decreases in a stream.
	 */
	created_at = Max(GetCurrentTimestamp(), last_time);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "eventstore: SPI_connect failed");

	if (cond != NULL)
		es_dcb_check(st, cond, sid);
	dispatch = es_projections_wanted(st, types, n);
	positions = palloc(sizeof(int64) * n);
	*position = es_insert_events(at, sid, events, n, current, created_at, positions,
								 dispatch ? &rows : NULL, &rows_desc);
	*version = current + n;
	/* the next append to the stream finds its head here (a shard's is not kept) */
	if (!st->distributed)
		es_head_put(at, stream_id, *version, created_at, generation);
	es_stats_append(st, sid, n, es_events_bytes(events, n));

	/* Outbox rows for the routes that match, in the same transaction. */
	es_outbox_route(st, sid, types, positions, n);

	/* The relay wakes the listeners of matching subscriptions (subscription.c). */
	es_subscriptions_wake(st, sid, types, positions, n);

	/*
	 * Back to the appending user, still connected: the hook runs as that
	 * user, projection handlers as their registered owners (es_call_as).
	 */
	SetUserIdAndSecContext(save_userid, save_sec);
	if (dispatch)
		es_stats_dispatch(st, sid, rows, n, rows_desc);
	SPI_finish();

	/* Snapshot policies whose period this append crossed (aggregate.c). */
	es_snapshot_after_append(st, sid, current, current + n);
}

/* The condition argument argno (0.5.0 on), parsed; NULL when none. */
static EsDcbCondition *
es_condition_arg(FunctionCallInfo fcinfo, int argno)
{
	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return NULL;
	return es_dcb_parse_condition(PG_GETARG_JSONB_P(argno));
}

/*
 * The (version, position) result row.  Its descriptor is resolved once per
 * backend and function (append, append_event and their older signatures),
 * as resolving the result type costs a tenth of a one-event append.  A
 * function whose OUT parameters change is a new function, with a new OID.
 */
#define ES_RESULT_DESCS 8

static struct
{
	Oid			fn;
	TupleDesc	desc;
}			es_result_descs[ES_RESULT_DESCS];

static Datum
es_result(FunctionCallInfo fcinfo, int64 version, int64 position)
{
	Oid			fn = fcinfo->flinfo->fn_oid;
	TupleDesc	desc = NULL;
	Datum		values[2];
	bool		nulls[2] = {false, false};
	int			i;

	for (i = 0; i < ES_RESULT_DESCS && OidIsValid(es_result_descs[i].fn); i++)
		if (es_result_descs[i].fn == fn)
		{
			desc = es_result_descs[i].desc;
			break;
		}
	if (desc == NULL)
	{
		TupleDesc	resolved;

		if (get_call_result_type(fcinfo, NULL, &resolved) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "eventstore: return type must be a row type");
		if (i == ES_RESULT_DESCS)
			desc = BlessTupleDesc(resolved);	/* not kept: the cache is full */
		else
		{
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

			desc = BlessTupleDesc(CreateTupleDescCopy(resolved));
			MemoryContextSwitchTo(old);
			es_result_descs[i].fn = fn;
			es_result_descs[i].desc = desc;
		}
	}
	values[0] = Int64GetDatum(version);
	values[1] = Int64GetDatum(position);
	return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
}

/*
 * eventstore.append(stream_id text, expected_version bigint,
 *					 events eventstore.new_event[], condition jsonb DEFAULT NULL,
 *					 store regclass DEFAULT 'eventstore.events')
 */
Datum
eventstore_append(PG_FUNCTION_ARGS)
{
	text	   *stream_id;
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *elem_nulls;
	int			n;
	EsNewEvent *events;
	int64		version;
	int64		position;

	stream_id = es_stream_id_arg(fcinfo, 0);
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("events must not be null")));

	arr = PG_GETARG_ARRAYTYPE_P(2);
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("events must be a one-dimensional array")));
	deconstruct_array(arr, ARR_ELEMTYPE(arr), -1, false, TYPALIGN_DOUBLE,
					  &elems, &elem_nulls, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("events must not be empty")));

	events = palloc(sizeof(EsNewEvent) * n);
	for (int i = 0; i < n; i++)
	{
		HeapTupleHeader rec;
		Datum		f[5];
		bool		fnull[5] = {false, false, false, false, true};

		if (elem_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("event %d must not be null", i + 1)));
		rec = DatumGetHeapTupleHeader(elems[i]);
		/* new_event has tags from 0.5.0 on */
		for (int a = 0; a < Min(5, HeapTupleHeaderGetNatts(rec)); a++)
			f[a] = GetAttributeByNum(rec, a + 1, &fnull[a]);
		es_prepare_event(&events[i], i + 1, f[0], fnull[0], f[1], fnull[1],
						 f[2], fnull[2], f[3], fnull[3], f[4], fnull[4]);
	}

	es_append(es_store_arg(fcinfo, 4, ACL_INSERT),
			  stream_id, PG_ARGISNULL(1), PG_ARGISNULL(1) ? 0 : PG_GETARG_INT64(1),
			  events, n, es_condition_arg(fcinfo, 3), &version, &position);
	return es_result(fcinfo, version, position);
}

/*
 * eventstore.append_event(stream_id text, expected_version bigint,
 *		event_type text, data jsonb, metadata jsonb, event_id uuid,
 *		tags text[] DEFAULT NULL, condition jsonb DEFAULT NULL,
 *		store regclass DEFAULT 'eventstore.events')
 */
Datum
eventstore_append_event(PG_FUNCTION_ARGS)
{
	text	   *stream_id;
	EsNewEvent	event;
	int64		version;
	int64		position;

	stream_id = es_stream_id_arg(fcinfo, 0);
	es_prepare_event(&event, 1,
					 PG_GETARG_DATUM(2), PG_ARGISNULL(2),
					 PG_GETARG_DATUM(3), PG_ARGISNULL(3),
					 PG_GETARG_DATUM(4), PG_ARGISNULL(4),
					 PG_GETARG_DATUM(5), PG_ARGISNULL(5),
					 PG_NARGS() > 6 ? PG_GETARG_DATUM(6) : (Datum) 0,
					 PG_NARGS() > 6 ? PG_ARGISNULL(6) : true);
	es_append(es_store_arg(fcinfo, 8, ACL_INSERT),
			  stream_id, PG_ARGISNULL(1), PG_ARGISNULL(1) ? 0 : PG_GETARG_INT64(1),
			  &event, 1, es_condition_arg(fcinfo, 7), &version, &position);
	return es_result(fcinfo, version, position);
}
