/*
 * subscription.c
 *		Subscriptions: consumer groups over the log (README, "Subscriptions").
 *
 * The logic is SQL (the install script's section "Subscriptions"): the
 * public functions here take the caller's role and run the owner-only
 * bodies eventstore._subscription_*() as the extension's owner, like the
 * durable consumers (consumer.c, es_consumer_call).  poll and ack_many are
 * the exceptions on a consumer's hot path: their common case is C (the lease
 * step and ack_many in subscription_lease.c, the delivery here: one scan of
 * the log, rows straight into the result), the rest of the lease step
 * (_subscription_take) and ack_many (_subscription_ack_many) SQL.  A
 * subscription belongs to the role that created it; a body checks the
 * caller against it.
 *
 * Events are read from the subscription's store (subscriptions.store, the
 * default store eventstore.events unless create_subscription named
 * another; for a store distributed with Citus, the node's own shards of it:
 * a subscription on a cluster is consumed per worker, citus.c), at or below the read
 * horizon (eventstore._log_horizon()), so a partition's checkpoint never
 * passes an event that commits late.  poll() reads with statement
 * snapshots taken after the horizon, which see every event at or below it
 * that will ever be visible; a transaction snapshot (REPEATABLE READ,
 * SERIALIZABLE) may be older than the horizon, so poll() refuses it.
 *
 * Wake-ups: the subscriptions are a registry (registry.c), cached per
 * backend.  An append notes, for each subscription of its store that its
 * events match, the subscription's slot (es_wake_slot) and the first and
 * last matching positions (es_relay_wake_position); at commit they go to
 * shared memory and the relay worker is woken (relay_launcher.c).  The
 * worker's wake pass (es_subscriptions_wake_pass) notifies the channel of
 * each subscription whose slot has a signalled position at or below the
 * settled horizon: no SQL, no write.  Its pass that reads the outbox also
 * wakes the subscriptions with events no commit signalled, between the
 * last published log horizon and the new one (eventstore._subscription_wake,
 * called by relay.c).  The append writes nothing and sends no NOTIFY
 * itself: with no subscription on the store it costs one cached test.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "access/htup_details.h"
#include "common/hashfn.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"
#include "utils/snapmgr.h"

#include "commands/async.h"
#include "common/md5.h"

#include "compat.h"
#include "eventstore.h"
#include "relay_shared.h"

PG_FUNCTION_INFO_V1(eventstore_log_horizon);
PG_FUNCTION_INFO_V1(eventstore_create_subscription);
PG_FUNCTION_INFO_V1(eventstore_alter_subscription);
PG_FUNCTION_INFO_V1(eventstore_drop_subscription);
PG_FUNCTION_INFO_V1(eventstore_reset_subscription);
PG_FUNCTION_INFO_V1(eventstore_poll);
PG_FUNCTION_INFO_V1(eventstore_ack);
PG_FUNCTION_INFO_V1(eventstore_ack_many);
PG_FUNCTION_INFO_V1(eventstore_nack);
PG_FUNCTION_INFO_V1(eventstore_parked);
PG_FUNCTION_INFO_V1(eventstore_replay_parked);
PG_FUNCTION_INFO_V1(eventstore_subscription_status);

/* A subscription as the wake-up check needs it. */
typedef struct EsSubFilter
{
	char	   *name;
	char	   *channel;		/* eventstore.subscription_channel(name) */
	int			slot;			/* es_wake_slot(name) */
	Oid			store;
	int			ntypes;			/* -1: every event type */
	char	  **types;
	int			ncategories;	/* -1: every category */
	char	  **categories;
} EsSubFilter;

typedef struct EsSubFilters
{
	int			n;
	EsSubFilter *items;
} EsSubFilters;

static void es_subscriptions_fill(EsRegistry *reg, SPITupleTable *rows, MemoryContext cxt);
static char *es_subscription_channel(const char *name, MemoryContext cxt);

/* subscriptions.store exists from 0.6.0 on; before, every one reads the default store */
static EsRegistry es_subscriptions_registry = {
	.relname = "subscriptions",
	.query = "SELECT s.store::pg_catalog.oid, s.event_types, s.categories, s.name FROM eventstore.subscriptions s",
	.since_column = "store",
	.query_before = "SELECT NULL::pg_catalog.oid, s.event_types, s.categories, s.name FROM eventstore.subscriptions s",
	.fill = es_subscriptions_fill,
};

void
es_subscription_init(void)
{
	es_registry_init(&es_subscriptions_registry);
}

static void
es_subscriptions_fill(EsRegistry *reg, SPITupleTable *rows, MemoryContext cxt)
{
	EsSubFilters *subs = MemoryContextAllocZero(cxt, sizeof(EsSubFilters));
	uint64		n = rows ? rows->numvals : 0;

	subs->items = MemoryContextAllocZero(cxt, sizeof(EsSubFilter) * Max(n, 1));
	for (uint64 i = 0; i < n; i++)
	{
		EsSubFilter *f = &subs->items[i];
		bool		isnull;
		Datum		d;

		d = SPI_getbinval(rows->vals[i], rows->tupdesc, 1, &isnull);
		f->store = isnull ? InvalidOid : DatumGetObjectId(d);
		d = SPI_getbinval(rows->vals[i], rows->tupdesc, 2, &isnull);
		f->ntypes = es_copy_text_array(d, isnull, cxt, &f->types);
		d = SPI_getbinval(rows->vals[i], rows->tupdesc, 3, &isnull);
		f->ncategories = es_copy_text_array(d, isnull, cxt, &f->categories);
		f->name = MemoryContextStrdup(cxt, SPI_getvalue(rows->vals[i], rows->tupdesc, 4));
		f->slot = es_wake_slot(f->name, strlen(f->name));
		f->channel = es_subscription_channel(f->name, cxt);
	}
	subs->n = (int) n;
	reg->cache = subs;
}

/* The wake-up slot of the subscription named name (relay_shared.h): a hash of the name. */
int
es_wake_slot(const char *name, int len)
{
	return (int) (hash_bytes((const unsigned char *) name, len) % ES_WAKE_SLOTS);
}

/*
 * The channel of subscription name, as eventstore.subscription_channel()
 * names it: eventstore_sub_<name>, or for a name longer than 48 bytes
 * eventstore_sub_<md5 of the name>.
 */
static char *
es_subscription_channel(const char *name, MemoryContext cxt)
{
	char		md5[33];
	const char *errstr = NULL;

	if (strlen(name) <= 48)
		return MemoryContextStrdup(cxt, psprintf("eventstore_sub_%s", name));
	if (!pg_md5_hash(name, strlen(name), md5, &errstr))
		elog(ERROR, "eventstore: md5 of a subscription name failed: %s", errstr ? errstr : "?");
	return MemoryContextStrdup(cxt, psprintf("eventstore_sub_%s", md5));
}

/*
 * An append to store st of n events (stream stream_id, types event_types,
 * at positions) is about to finish: for each subscription of st that one of
 * them matches, ask for the relay worker at commit with the subscription's
 * wake-up slot and the first and last matching positions, so that it
 * notifies the subscription's channel once they are below the horizon.
 */
void
es_subscriptions_wake(EsStore *st, Datum stream_id, Datum *event_types, int64 *positions, int n)
{
	EsSubFilters *subs;
	text	   *sid;
	const char *dash;
	int			catlen;

	es_registry_load(&es_subscriptions_registry);
	subs = es_subscriptions_registry.cache;
	if (subs->n == 0)
		return;
	sid = DatumGetTextPP(stream_id);
	dash = memchr(VARDATA_ANY(sid), '-', VARSIZE_ANY_EXHDR(sid));
	catlen = dash ? (int) (dash - VARDATA_ANY(sid)) : (int) VARSIZE_ANY_EXHDR(sid);
	for (int s = 0; s < subs->n; s++)
	{
		EsSubFilter *f = &subs->items[s];
		int			first = -1;
		int			last = -1;

		if (OidIsValid(f->store) ? f->store != st->relid : !st->is_default)
			continue;
		if (!es_in_list(f->categories, f->ncategories, VARDATA_ANY(sid), catlen))
			continue;
		for (int i = 0; i < n; i++)
		{
			text	   *type = DatumGetTextPP(event_types[i]);

			if (f->ntypes < 0 ||
				es_in_list(f->types, f->ntypes, VARDATA_ANY(type), VARSIZE_ANY_EXHDR(type)))
			{
				if (first < 0)
					first = i;
				last = i;
				if (f->ntypes < 0)
				{
					last = n - 1;
					break;
				}
			}
		}
		if (first >= 0)
			es_relay_wake_position(f->slot, positions[first], positions[last]);
	}
}

/*
 * A wake pass of the relay worker (relay_worker.c), in its own transaction,
 * between the passes that read the outbox and publish the log horizon: no
 * SQL (but reloading the cached subscriptions after a change), no write.
 * The subscriptions of every slot that commits signalled up to the settled
 * horizon are notified (payload: the horizon), at this transaction's
 * commit.  Returns whether it notified; es_relay_log_horizon is the horizon.
 */
bool
es_subscriptions_wake_pass(void)
{
	int64		horizon = es_settled_horizon(ES_COUNTER_POSITION, es_position_seqid());
	int64		woken_to[ES_WAKE_SLOTS];

	es_relay_log_horizon = Max(es_relay_log_horizon, horizon);
	return es_subscriptions_fire(horizon, woken_to);
}

/*
 * Notify, at this transaction's commit, the subscriptions of every slot
 * that commits signalled up to horizon (es_relay_wake_slots, which fills
 * woken_to[]); payload: the horizon.  Returns whether any slot fired.
 */
bool
es_subscriptions_fire(int64 horizon, int64 *woken_to)
{
	uint64		fired = es_relay_wake_slots(horizon, woken_to);
	EsSubFilters *subs;
	char		payload[32];

	if (fired == 0)
		return false;
	es_registry_load(&es_subscriptions_registry);
	subs = es_subscriptions_registry.cache;
	snprintf(payload, sizeof(payload), INT64_FORMAT, horizon);
	for (int s = 0; s < subs->n; s++)
		if (fired & (UINT64CONST(1) << subs->items[s].slot))
			Async_Notify(subs->items[s].channel, payload);
	return true;
}

/*
 * For the pass that publishes the log horizon from after to upto (relay.c):
 * the range of the log each cached subscription still has to be checked
 * over, as names[] and afters[] (its slot's woken_to if higher than after:
 * a wake pass notified it at that horizon, which covers every event below).
 * Returns how many.  palloc'd in the current context.
 */
int
es_subscriptions_wake_since(int64 after, int64 *woken_to, Datum **names, Datum **afters)
{
	EsSubFilters *subs;

	es_registry_load(&es_subscriptions_registry);
	subs = es_subscriptions_registry.cache;
	*names = palloc(sizeof(Datum) * Max(subs->n, 1));
	*afters = palloc(sizeof(Datum) * Max(subs->n, 1));
	for (int s = 0; s < subs->n; s++)
	{
		(*names)[s] = CStringGetTextDatum(subs->items[s].name);
		(*afters)[s] = Int64GetDatum(Max(after, woken_to[subs->items[s].slot]));
	}
	return subs->n;
}

/*
 * eventstore._log_horizon() RETURNS bigint: the read horizon of the log: no
 * position at or below it can still become visible, also to a snapshot
 * taken later (the poll's statement): es_settled_horizon.  (It used to be
 * es_read_horizon alone, "no limit" when nothing was in flight: a position
 * taken right after could commit behind a later one, the poll delivered the
 * later one and moved its checkpoint past the first -- subscriptions_chaos.sh
 * caught it once.)
 */
Datum
eventstore_log_horizon(PG_FUNCTION_ARGS)
{
	(void) fcinfo;
	PG_RETURN_INT64(es_settled_horizon(ES_COUNTER_POSITION, es_position_seqid()));
}

/*
 * create_subscription(name, categories, event_types, start, start_position, start_time,
 *					   partition_by, partitions, max_attempts, backoff, lease, store):
 * the caller must be able to read the store (SELECT on it).
 */
Datum
eventstore_create_subscription(PG_FUNCTION_ARGS)
{
	static const Oid argtypes[12] = {TEXTOID, TEXTARRAYOID, TEXTARRAYOID, TEXTOID, INT8OID,
	TIMESTAMPTZOID, TEXTOID, INT4OID, INT4OID, INTERVALOID, INTERVALOID, REGCLASSOID};
	static SPIPlanPtr plan = NULL;
	static SPIPlanPtr plan_before = NULL;

	EsStore    *st = es_store_arg(fcinfo, 11, ACL_SELECT);

	/* a distributed store: on a worker, its log there; refused on the coordinator */
	if (st->distributed)
		(void) es_store_local_sql(st, "create_subscription", ES_CITUS_SUBSCRIPTION_HINT);
	if (PG_NARGS() > 11)
		es_consumer_call(fcinfo, &plan,
						 "SELECT eventstore._subscription_create($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
						 argtypes, false, false);
	else						/* the 0.5.0 function, before the schema has stores */
		es_consumer_call(fcinfo, &plan_before,
						 "SELECT eventstore._subscription_create($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
						 argtypes, false, false);
	PG_RETURN_VOID();
}

/* alter_subscription(name, categories, event_types, max_attempts, backoff, lease) */
Datum
eventstore_alter_subscription(PG_FUNCTION_ARGS)
{
	static const Oid argtypes[6] = {TEXTOID, TEXTARRAYOID, TEXTARRAYOID, INT4OID, INTERVALOID, INTERVALOID};
	static SPIPlanPtr plan = NULL;

	es_consumer_call(fcinfo, &plan, "SELECT eventstore._subscription_alter($1, $2, $3, $4, $5, $6, $7)",
					 argtypes, false, false);
	PG_RETURN_VOID();
}

/* drop_subscription(name) */
Datum
eventstore_drop_subscription(PG_FUNCTION_ARGS)
{
	static const Oid argtypes[1] = {TEXTOID};
	static SPIPlanPtr plan = NULL;

	es_consumer_call(fcinfo, &plan, "SELECT eventstore._subscription_drop($1, $2)", argtypes, false, false);
	PG_RETURN_VOID();
}

/* reset_subscription(name, position, at) */
Datum
eventstore_reset_subscription(PG_FUNCTION_ARGS)
{
	static const Oid argtypes[3] = {TEXTOID, INT8OID, TIMESTAMPTZOID};
	static SPIPlanPtr plan = NULL;

	es_consumer_call(fcinfo, &plan, "SELECT eventstore._subscription_reset($1, $2, $3, $4)",
					 argtypes, false, false);
	PG_RETURN_VOID();
}

/*
 * The receiver poll delivers through: each row of the replay query or of the
 * scan (es_poll_plan) that the subscription delivers goes straight into
 * poll's result, upcast when the store has upcasters; the run of each
 * partition (its last position) is noted for the UPDATE that marks it in
 * flight.  The scan's rows are filtered here: category, event type, the
 * partition (its key hashed as _subscription_partition does) and the
 * partition's checkpoint.  It stops the query at max_count rows.
 */
typedef struct EsPollReceiver
{
	DestReceiver pub;
	Tuplestorestate *out;
	TupleDesc	outdesc;
	EsStore    *st;
	TupleDesc	rowdesc;		/* eventstore.events, when upcasting */
	int		   *rowmap;			/* [attribute of rowdesc]: its column (EsColumn), -1: dropped */
	int			ncategories;	/* -1: every category */
	char	  **categories;
	int			ntypes;			/* -1: every event type */
	char	  **types;
	char		partition_by;	/* 's'tream, 'c'orrelation, 'n'one */
	int			partitions;
	bool	   *open;			/* [partition]: may deliver after checkpoints[] */
	int64	   *checkpoints;
	int64	   *last;			/* [partition]: the run's last position, 0: none */
	int			nretries;		/* the subscription's retries, by position */
	int64	   *retry_positions;
	int32	   *retry_attempts;
	int64		remaining;
	bool		replay;			/* running the replay query, else the scan */
} EsPollReceiver;

static void
es_poll_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	EsPollReceiver *r = (EsPollReceiver *) self;

	(void) operation;
	if (typeinfo->natts != (r->replay ? ES_NCOLS + 2 : ES_NCOLS))
		elog(ERROR, "eventstore: poll's query returns %d columns, expected %d", typeinfo->natts,
			 r->replay ? ES_NCOLS + 2 : ES_NCOLS);
}

/* partition_by ('stream', 'correlation', 'none') as es_subscription_partition takes it */
char
es_subscription_partition_by(text *partition_by)
{
	const char *s = VARDATA_ANY(partition_by);
	int			len = VARSIZE_ANY_EXHDR(partition_by);

	if (len == 6 && memcmp(s, "stream", 6) == 0)
		return 's';
	if (len == 11 && memcmp(s, "correlation", 11) == 0)
		return 'c';
	return 'n';
}

/*
 * The partition of the event at pos (stream, metadata) under partition_by
 * ('s'tream, 'c'orrelation, 'n'one), of partitions: as
 * eventstore._subscription_partition(_subscription_key()).
 */
int
es_subscription_partition(char partition_by, int partitions, int64 pos, Datum stream, Datum metadata,
						  bool metadata_null)
{
	const char *key;
	int			len;
	char		buf[32];
	uint64		h;

	if (partition_by == 'n')
	{
		len = snprintf(buf, sizeof(buf), INT64_FORMAT, pos);
		key = buf;
	}
	else
	{
		text	   *k = NULL;

		if (partition_by == 'c' && !metadata_null)
		{
			LOCAL_FCINFO(f, 2);
			Datum		v;

			InitFunctionCallInfoData(*f, NULL, 2, InvalidOid, NULL, NULL);
			f->args[0].value = metadata;
			f->args[0].isnull = false;
			f->args[1].value = CStringGetTextDatum("correlation_id");
			f->args[1].isnull = false;
			v = jsonb_object_field_text(f);
			if (!f->isnull)
				k = DatumGetTextPP(v);
		}
		if (k == NULL)
			k = DatumGetTextPP(stream);
		key = VARDATA_ANY(k);
		len = VARSIZE_ANY_EXHDR(k);
	}
	/* hashtextextended(key COLLATE "C", 0): a deterministic collation hashes the bytes */
	h = DatumGetUInt64(hash_any_extended((const unsigned char *) key, len, 0));
	return (int) ((h & PG_INT64_MAX) % (uint64) partitions);
}

/* The attempts of a retry of the event at pos (0: none). */
static int32
es_poll_attempts(EsPollReceiver *r, int64 pos)
{
	int			lo = 0,
				hi = r->nretries - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;

		if (r->retry_positions[mid] == pos)
			return r->retry_attempts[mid];
		if (r->retry_positions[mid] < pos)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return 0;
}

static bool
es_poll_receive(TupleTableSlot *slot, DestReceiver *self)
{
	EsPollReceiver *r = (EsPollReceiver *) self;
	Datum	   *v;
	bool	   *n;
	Datum		out[9];
	bool		outnulls[9] = {false};
	int64		pos;
	int			part;
	int32		attempt;

	v = slot->tts_values;
	n = slot->tts_isnull;
	if (r->replay)
	{
		/* a replayed parked event: its partition and attempt come with it */
		slot_getallattrs(slot);
		pos = DatumGetInt64(v[ES_COL_POSITION]);
		part = DatumGetInt32(v[ES_NCOLS]);
		attempt = DatumGetInt32(v[ES_NCOLS + 1]);
	}
	else
	{
		text	   *sid;
		text	   *type;
		const char *dash;
		int			catlen;

		/*
		 * The scan's slot is the stored tuple when the store's columns are
		 * its attributes (no projection): deform what the filter needs
		 * first, the rest only for an event delivered, never the tags.
		 */
		slot_getsomeattrs(slot, ES_COL_TYPE + 1);
		pos = DatumGetInt64(v[ES_COL_POSITION]);
		sid = DatumGetTextPP(v[ES_COL_STREAM]);
		type = DatumGetTextPP(v[ES_COL_TYPE]);
		dash = memchr(VARDATA_ANY(sid), '-', VARSIZE_ANY_EXHDR(sid));
		catlen = dash ? (int) (dash - VARDATA_ANY(sid)) : (int) VARSIZE_ANY_EXHDR(sid);
		if (!es_in_list(r->categories, r->ncategories, VARDATA_ANY(sid), catlen) ||
			!es_in_list(r->types, r->ntypes, VARDATA_ANY(type), VARSIZE_ANY_EXHDR(type)))
			return true;
		if (r->partition_by == 'c')
			slot_getsomeattrs(slot, ES_COL_METADATA + 1);
		part = es_subscription_partition(r->partition_by, r->partitions, pos, v[ES_COL_STREAM],
										 v[ES_COL_METADATA], r->partition_by == 'c' ? n[ES_COL_METADATA] : true);
		if (!r->open[part] || pos <= r->checkpoints[part])
			return true;
		attempt = (r->nretries > 0 ? es_poll_attempts(r, pos) : 0) + 1;
		slot_getsomeattrs(slot, r->rowdesc != NULL ? ES_NCOLS : ES_COL_CREATED_AT + 1);
	}
	out[0] = Int32GetDatum(part);
	out[1] = v[ES_COL_POSITION];
	out[2] = v[ES_COL_STREAM];
	out[3] = v[ES_COL_VERSION];
	out[8] = Int32GetDatum(attempt);
	out[7] = v[ES_COL_CREATED_AT];
	outnulls[7] = n[ES_COL_CREATED_AT];
	if (r->rowdesc != NULL)
	{
		/* upcast the delivered event (eventstore.events), after decryption */
		int			natts = r->rowdesc->natts;
		Datum	   *rv = palloc(sizeof(Datum) * natts);
		bool	   *rn = palloc(sizeof(bool) * natts);
		Datum		u;
		HeapTupleHeader h;
		HeapTupleData tup;

		for (int i = 0; i < natts; i++)
		{
			rv[i] = r->rowmap[i] < 0 ? (Datum) 0 : v[r->rowmap[i]];
			rn[i] = r->rowmap[i] < 0 ? true : n[r->rowmap[i]];
		}
		u = es_upcast_row(r->st, HeapTupleGetDatum(heap_form_tuple(r->rowdesc, rv, rn)));
		h = DatumGetHeapTupleHeader(u);
		tup.t_len = HeapTupleHeaderGetDatumLength(h);
		ItemPointerSetInvalid(&tup.t_self);
		tup.t_tableOid = InvalidOid;
		tup.t_data = h;
		heap_deform_tuple(&tup, r->rowdesc, rv, rn);
		for (int i = 0; i < natts; i++)
		{
			int			col = r->rowmap[i];
			int			o = col == ES_COL_TYPE ? 4 : col == ES_COL_DATA ? 5 : col == ES_COL_METADATA ? 6 : -1;

			if (o >= 0)
			{
				out[o] = rv[i];
				outnulls[o] = rn[i];
			}
		}
	}
	else
	{
		out[4] = v[ES_COL_TYPE];
		out[5] = v[ES_COL_DATA];
		outnulls[5] = n[ES_COL_DATA];
		out[6] = v[ES_COL_METADATA];
		outnulls[6] = n[ES_COL_METADATA];
	}
	tuplestore_putvalues(r->out, r->outdesc, out, outnulls);
	r->last[part] = Max(r->last[part], pos);
	return --r->remaining > 0;
}

static void
es_poll_shutdown(DestReceiver *self)
{
	(void) self;
}

static void
es_poll_destroy(DestReceiver *self)
{
	(void) self;
}

/*
 * The queries poll delivers from, on store st, prepared once per store and
 * lifecycle (kept in the store's cache): the store's columns, the lifecycle
 * read's with lifecycle rows for the store (what reads hide is never
 * delivered, data is decrypted), the replay's then a partition and an attempt.
 *   scan:   the events in ($1, $2], in log order, at most $3 (the
 *           receiver works out the partition); the store's columns alone,
 *           so that the scan's slot reaches the receiver unprojected
 *   replay: the replayed parked events of subscription $1 in the partitions
 *           $2 (at or below their checkpoints), in log order, attempt
 *           counted
 */
static SPIPlanPtr
es_poll_plan(EsStore *st, bool replay, bool lifecycle)
{
	EsPlanSlot	slot = (replay ? ES_PLAN_SUB_REPLAY : ES_PLAN_SUB_SCAN) + lifecycle;

	if (st->plans[slot] == NULL)
	{
		Oid			scan_types[3] = {INT8OID, INT8OID, INT8OID};
		Oid			replay_types[2] = {TEXTOID, INT4ARRAYOID};
		const char *cols = "e.global_position, e.stream_id, e.stream_version, e.event_id, e.event_type,"
			" e.data, e.metadata, e.created_at, e.tags";
		const char *filter = "";
		/* the store, or on a Citus worker its shards there (citus.c) */
		const char *events = es_store_local_sql(st, "poll", ES_CITUS_SUBSCRIPTION_HINT);
		char	   *sql;

		if (lifecycle)
		{
			cols = es_lifecycle_row_sql(st);
			filter = es_lifecycle_filter_sql(st);
		}
		if (replay)
			sql = psprintf("SELECT %s, r.partition, r.attempts OPERATOR(pg_catalog.+) 1"
						   "  FROM eventstore.subscription_retries r"
						   "  JOIN %s e ON e.global_position OPERATOR(pg_catalog.=) r.global_position"
						   " WHERE r.subscription OPERATOR(pg_catalog.=) $1"
						   "   AND r.partition OPERATOR(pg_catalog.=) ANY ($2)"
						   "   AND r.global_position OPERATOR(pg_catalog.<=) (SELECT x.checkpoint"
						   "         FROM eventstore.subscription_partitions x"
						   "        WHERE x.subscription OPERATOR(pg_catalog.=) $1"
						   "          AND x.partition OPERATOR(pg_catalog.=) r.partition)%s"
						   " ORDER BY r.global_position",
						   cols, events, filter);
		else
			sql = psprintf("SELECT %s FROM %s e"
						   " WHERE e.global_position OPERATOR(pg_catalog.>) $1"
						   "   AND e.global_position OPERATOR(pg_catalog.<=) $2%s"
						   " ORDER BY e.global_position LIMIT $3",
						   cols, events, filter);
		/*
		 * A generic plan: the scan's limit is only a bound (the receiver
		 * stops it), and a custom plan for a long backlog would sort it.
		 */
		(void) es_store_plan(st, slot, sql, replay ? 2 : 3, replay ? replay_types : scan_types,
							 CURSOR_OPT_GENERIC_PLAN);
		pfree(sql);
	}
	return st->plans[slot];
}

/* Run plan with values into the receiver (which may stop it). */
static void
es_poll_run(SPIPlanPtr plan, int nargs, Oid *types, Datum *values, EsPollReceiver *r)
{
	ParamListInfo params = makeParamList(nargs);
	SPIExecuteOptions options;

	for (int i = 0; i < nargs; i++)
	{
		params->params[i].value = values[i];
		params->params[i].isnull = false;
		params->params[i].pflags = PARAM_FLAG_CONST;
		params->params[i].ptype = types[i];
	}
	memset(&options, 0, sizeof(options));
	options.params = params;
	options.read_only = false;	/* a fresh snapshot, taken after the horizon */
	options.dest = &r->pub;
	if (SPI_execute_plan_extended(plan, &options) < 0)
		elog(ERROR, "eventstore: the delivery query of poll failed");
}

/* Load the retries of subscription name, by position, for the attempts of the scan's events. */
static void
es_poll_load_retries(EsPollReceiver *r, Datum name)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {TEXTOID};

	if (plan == NULL)
	{
		plan = SPI_prepare("SELECT r.global_position, r.attempts FROM eventstore.subscription_retries r"
						   " WHERE r.subscription OPERATOR(pg_catalog.=) $1 ORDER BY r.global_position",
						   1, types);
		if (plan == NULL)
			elog(ERROR, "eventstore: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
	}
	if (SPI_execute_plan(plan, &name, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "eventstore: reading the retries of a subscription failed");
	r->nretries = (int) SPI_processed;
	r->retry_positions = palloc(sizeof(int64) * Max(r->nretries, 1));
	r->retry_attempts = palloc(sizeof(int32) * Max(r->nretries, 1));
	for (int i = 0; i < r->nretries; i++)
	{
		bool		isnull;

		r->retry_positions[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		r->retry_attempts[i] = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
	}
}

/*
 * Mark the run of each partition delivered in flight (delivered_to its last
 * position, delivered_at clock) and renew its lease, and renew the lease of
 * the other partitions held (renew): one statement.
 */
static void
es_poll_mark(Datum name, Datum clock, Datum lease, EsPollReceiver *r, ArrayType *renew)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[5] = {TEXTOID, TIMESTAMPTZOID, INTERVALOID, INT4ARRAYOID, INT8ARRAYOID};
	int			nrenew = ArrayGetNItems(ARR_NDIM(renew), ARR_DIMS(renew));
	int32	   *renewed = (int32 *) ARR_DATA_PTR(renew);
	Datum	   *parts = palloc(sizeof(Datum) * (r->partitions + nrenew));
	Datum	   *lasts = palloc(sizeof(Datum) * (r->partitions + nrenew));
	bool	   *lastnulls = palloc(sizeof(bool) * (r->partitions + nrenew));
	int			n = 0;
	int			dims[1];
	int			lbs[1] = {1};
	Datum		values[5];

	for (int p = 0; p < r->partitions; p++)
		if (r->last[p] != 0)
		{
			parts[n] = Int32GetDatum(p);
			lasts[n] = Int64GetDatum(r->last[p]);
			lastnulls[n++] = false;
		}
	for (int i = 0; i < nrenew; i++)
		if (renewed[i] < 0 || renewed[i] >= r->partitions || r->last[renewed[i]] == 0)
		{
			parts[n] = Int32GetDatum(renewed[i]);
			lasts[n] = (Datum) 0;
			lastnulls[n++] = true;
		}
	if (n == 0)
		return;
	if (plan == NULL)
	{
		plan = SPI_prepare("UPDATE eventstore.subscription_partitions x"
						   "   SET delivered_to = COALESCE(m.last, x.delivered_to),"
						   "       delivered_at = CASE WHEN m.last IS NULL THEN x.delivered_at ELSE $2 END,"
						   "       lease_until = $2 OPERATOR(pg_catalog.+) $3"
						   "  FROM ROWS FROM (pg_catalog.unnest($4), pg_catalog.unnest($5)) m(part, last)"
						   " WHERE x.subscription OPERATOR(pg_catalog.=) $1"
						   "   AND x.partition OPERATOR(pg_catalog.=) m.part"
						   "   AND (m.last IS NOT NULL"
						   "        OR x.lease_until IS DISTINCT FROM $2 OPERATOR(pg_catalog.+) $3)",
						   5, types);
		if (plan == NULL)
			elog(ERROR, "eventstore: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
	}
	dims[0] = n;
	values[0] = name;
	values[1] = clock;
	values[2] = lease;
	values[3] = PointerGetDatum(construct_array(parts, n, INT4OID, 4, true, TYPALIGN_INT));
	values[4] = PointerGetDatum(construct_md_array(lasts, lastnulls, 1, dims, lbs, INT8OID, 8,
												   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "eventstore: marking the runs of poll failed");
}

/*
 * poll(subscription, consumer, max_count): as the extension's owner, take
 * the partitions (es_take_fast when the consumer keeps what it holds,
 * otherwise eventstore._subscription_take, one cached statement),
 * deliver the replayed parked events of the partitions that have them, then
 * scan the store from the lowest checkpoint to the read horizon (the events
 * of every other partition that may deliver, in log order), at most
 * max_count in all, into the result; then mark the runs and renew the
 * leases (es_poll_mark).
 */
Datum
eventstore_poll(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr take = NULL;
	Oid			take_types[4] = {TEXTOID, TEXTOID, INT4OID, OIDOID};
	Datum		take_args[4];
	char		take_nulls[4];
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			save_userid;
	int			save_sec;
	HeapTuple	row;
	TupleDesc	desc;
	Datum		v[ES_TAKE_NCOLS];
	bool		n[ES_TAKE_NCOLS];
	EsPollReceiver r;
	int32		max_count;

	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("poll must run at READ COMMITTED"),
				 errdetail("A transaction snapshot can be older than the read horizon, and events below it would be passed over."),
				 errhint("Call poll in its own READ COMMITTED transaction; ack may run in any transaction.")));
	for (int i = 0; i < 3; i++)
	{
		take_args[i] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
		take_nulls[i] = PG_ARGISNULL(i) ? 'n' : ' ';
	}
	take_args[3] = ObjectIdGetDatum(GetUserId());
	take_nulls[3] = ' ';
	InitMaterializedSRF(fcinfo, 0);

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(es_events_owner(), save_sec | SECURITY_LOCAL_USERID_CHANGE);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "eventstore: SPI_connect failed");
	if (!es_take_fast(take_args[0], PG_ARGISNULL(0), take_args[1], PG_ARGISNULL(1),
					  PG_ARGISNULL(2) ? 0 : PG_GETARG_INT32(2), PG_ARGISNULL(2),
					  DatumGetObjectId(take_args[3]), v, n))
	{
		/* anything else, errors included: the SQL function */
		if (take == NULL)
		{
			take = SPI_prepare("SELECT * FROM eventstore._subscription_take($1, $2, $3, $4)", 4, take_types);
			if (take == NULL)
				elog(ERROR, "eventstore: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
			SPI_keepplan(take);
		}
		if (SPI_execute_plan(take, take_args, take_nulls, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "eventstore: taking the partitions of poll failed");
		row = SPI_tuptable->vals[0];
		desc = SPI_tuptable->tupdesc;
		if (desc->natts != ES_TAKE_NCOLS)
			elog(ERROR, "eventstore: _subscription_take returned %d columns, expected %d",
				 desc->natts, ES_TAKE_NCOLS);
		heap_deform_tuple(row, desc, v, n);
	}
	max_count = PG_GETARG_INT32(2);	/* not null: _subscription_take checked it */

	/* v: store, name, partition_by, partitions, categories, event_types, lease, clock, checkpoints, replays, retrying, lo, renew */
	memset(&r, 0, sizeof(r));
	r.pub.receiveSlot = es_poll_receive;
	r.pub.rStartup = es_poll_startup;
	r.pub.rShutdown = es_poll_shutdown;
	r.pub.rDestroy = es_poll_destroy;
	r.pub.mydest = DestTuplestore;
	r.out = rsinfo->setResult;
	r.outdesc = rsinfo->setDesc;
	r.partitions = DatumGetInt32(v[3]);
	r.last = palloc0(sizeof(int64) * r.partitions);
	r.remaining = max_count;
	if (max_count > 0)
	{
		ArrayType  *replays = DatumGetArrayTypeP(v[9]);
		int			nreplays = ArrayGetNItems(ARR_NDIM(replays), ARR_DIMS(replays));

		r.st = es_store(DatumGetObjectId(v[0]));
		if (nreplays > 0 || !n[11])
		{
			bool		lifecycle = es_lifecycle_active(r.st->relid, GetActiveSnapshot());

			if (es_upcasting(r.st))
			{
				int			col = 0;

				/* eventstore.events, whose attributes may include dropped ones */
				r.rowdesc = lookup_rowtype_tupdesc_copy(get_rel_type_id(es_default_store()->relid), -1);
				r.rowmap = palloc(sizeof(int) * r.rowdesc->natts);
				for (int i = 0; i < r.rowdesc->natts; i++)
					r.rowmap[i] = TupleDescAttr(r.rowdesc, i)->attisdropped ? -1 : col++;
				if (col != ES_NCOLS)
					elog(ERROR, "eventstore: eventstore.events has %d columns, expected %d", col, ES_NCOLS);
			}
			if (nreplays > 0)
			{
				Oid			types[2] = {TEXTOID, INT4ARRAYOID};
				Datum		values[2] = {v[1], v[9]};

				r.replay = true;
				es_poll_run(es_poll_plan(r.st, true, lifecycle), 2, types, values, &r);
				r.replay = false;
			}
			if (!n[11] && r.remaining > 0)
			{
				int64		lo = DatumGetInt64(v[11]);
				int64		horizon = es_settled_horizon(ES_COUNTER_POSITION, es_position_seqid());

				if (horizon > lo)
				{
					Oid			types[3] = {INT8OID, INT8OID, INT8OID};
					Datum		values[3] = {Int64GetDatum(lo), Int64GetDatum(horizon), Int64GetDatum(horizon - lo)};
					Datum	   *cps;
					bool	   *cpnulls;
					int			ncps;

					r.partition_by = es_subscription_partition_by(DatumGetTextPP(v[2]));
					r.ncategories = es_copy_text_array(v[4], n[4], CurrentMemoryContext, &r.categories);
					r.ntypes = es_copy_text_array(v[5], n[5], CurrentMemoryContext, &r.types);
					deconstruct_array(DatumGetArrayTypeP(v[8]), INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
									  &cps, &cpnulls, &ncps);
					if (ncps != r.partitions)
						elog(ERROR, "eventstore: _subscription_take returned %d checkpoints for %d partitions",
							 ncps, r.partitions);
					r.open = palloc(sizeof(bool) * r.partitions);
					r.checkpoints = palloc(sizeof(int64) * r.partitions);
					for (int p = 0; p < r.partitions; p++)
					{
						r.open[p] = !cpnulls[p];
						r.checkpoints[p] = cpnulls[p] ? 0 : DatumGetInt64(cps[p]);
					}
					if (DatumGetBool(v[10]))
						es_poll_load_retries(&r, v[1]);
					es_poll_run(es_poll_plan(r.st, false, lifecycle), 3, types, values, &r);
				}
			}
		}
	}
	es_poll_mark(v[1], v[7], v[6], &r, DatumGetArrayTypeP(v[12]));
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec);
	return (Datum) 0;
}

/*
 * The statement that reads the events of store st at positions ($1,
 * bigint[]): global_position, stream_id, event_type, metadata.  Prepared
 * once per store, in an SPI connection.
 */
SPIPlanPtr
es_subscription_events_plan(EsStore *st)
{
	if (st->plans[ES_PLAN_SUB_EVENTS] == NULL)
	{
		Oid			argtypes[1] = {INT8ARRAYOID};
		char	   *sql = psprintf("SELECT e.global_position, e.stream_id, e.event_type, e.metadata FROM %s e"
								   " WHERE e.global_position OPERATOR(pg_catalog.=) ANY ($1)",
								   es_store_local_sql(st, "ack_many", ES_CITUS_SUBSCRIPTION_HINT));

		(void) es_store_plan(st, ES_PLAN_SUB_EVENTS, sql, 1, argtypes, 0);
		pfree(sql);
	}
	return st->plans[ES_PLAN_SUB_EVENTS];
}

/* ack(subscription, consumer, global_position) */
Datum
eventstore_ack(PG_FUNCTION_ARGS)
{
	static const Oid argtypes[3] = {TEXTOID, TEXTOID, INT8OID};
	static SPIPlanPtr plan = NULL;

	es_consumer_call(fcinfo, &plan, "SELECT eventstore._subscription_ack($1, $2, $3, $4)",
					 argtypes, false, false);
	PG_RETURN_VOID();
}

/*
 * ack(subscription, consumer, global_positions bigint[]): every position, in
 * one statement, as the extension's owner: the common case in C
 * (es_ack_many_fast), anything else one position at a time through
 * eventstore._subscription_ack_many.
 */
Datum
eventstore_ack_many(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[4] = {TEXTOID, TEXTOID, INT8ARRAYOID, OIDOID};
	Datum		values[4];
	char		nulls[4];
	Oid			save_userid;
	int			save_sec;

	for (int i = 0; i < 3; i++)
	{
		values[i] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
		nulls[i] = PG_ARGISNULL(i) ? 'n' : ' ';
	}
	values[3] = ObjectIdGetDatum(GetUserId());
	nulls[3] = ' ';
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(es_events_owner(), save_sec | SECURITY_LOCAL_USERID_CHANGE);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "eventstore: SPI_connect failed");
	if (!es_ack_many_fast(values[0], PG_ARGISNULL(0), values[1], PG_ARGISNULL(1), values[2], PG_ARGISNULL(2),
						  save_userid))
	{
		if (plan == NULL)
		{
			plan = SPI_prepare("SELECT eventstore._subscription_ack_many($1, $2, $3, $4)", 4, types);
			if (plan == NULL)
				elog(ERROR, "eventstore: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
			SPI_keepplan(plan);
		}
		if (SPI_execute_plan(plan, values, nulls, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "eventstore: ack_many failed");
	}
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec);
	PG_RETURN_VOID();
}

/* nack(subscription, consumer, global_position, retry_after, reason) */
Datum
eventstore_nack(PG_FUNCTION_ARGS)
{
	static const Oid argtypes[5] = {TEXTOID, TEXTOID, INT8OID, INTERVALOID, TEXTOID};
	static SPIPlanPtr plan = NULL;

	es_consumer_call(fcinfo, &plan, "SELECT eventstore._subscription_nack($1, $2, $3, $4, $5, $6)",
					 argtypes, false, false);
	PG_RETURN_VOID();
}

/* parked(subscription) */
Datum
eventstore_parked(PG_FUNCTION_ARGS)
{
	static const Oid argtypes[1] = {TEXTOID};
	static SPIPlanPtr plan = NULL;

	es_consumer_call(fcinfo, &plan, "SELECT * FROM eventstore._subscription_list_parked($1, $2)",
					 argtypes, true, true);
	return (Datum) 0;
}

/* replay_parked(subscription, global_position) */
Datum
eventstore_replay_parked(PG_FUNCTION_ARGS)
{
	static const Oid argtypes[2] = {TEXTOID, INT8OID};
	static SPIPlanPtr plan = NULL;

	es_consumer_call(fcinfo, &plan, "SELECT eventstore._subscription_replay($1, $2, $3)",
					 argtypes, false, false);
	PG_RETURN_VOID();
}

/* subscription_status(): the partitions of the subscriptions the caller may use */
Datum
eventstore_subscription_status(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;

	es_consumer_call(fcinfo, &plan, "SELECT * FROM eventstore._subscription_state($1)", NULL, true, true);
	return (Datum) 0;
}
