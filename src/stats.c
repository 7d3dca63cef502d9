/*
 * stats.c
 *		Counters for operators: appends, events, conflicts, retries, vetoes,
 *		bytes and the time spent in handlers, kept in shared memory; and the
 *		horizon status (who holds the read horizon back).
 *
 * Like pg_stat_statements, nothing is written to a table on the append path.
 * A backend adds to counters of its own (process-local memory) as it works
 * and flushes them into shared memory when its transaction ends, committed
 * or not: the counters count attempts.  A conflict (ES409) or a veto always
 * ends in an abort, and an append whose transaction later rolls back is
 * still counted, as PostgreSQL's own n_tup_ins counts inserted rows.
 *
 * Shared memory holds one hash of entries, keyed by (database, kind, store,
 * name), the store by its schema-qualified name (as st->name has it):
 *	- kind 's': a store's totals (name: the store's name too);
 *	- kind 'c': one category (the part of a stream id before its first '-')
 *	  of a store;
 *	- kind 'p': one projection handler, by projection name, with the store
 *	  of the append that ran it.
 * The hash is bounded: at most eventstore.stats_max_categories category,
 * projection and store entries (but the default store's) in the whole
 * cluster.  Past that, a new category or projection is counted under the
 * name "(other)" of its kind and store, a new store's totals under the store
 * "(other)".  The default store's totals and the "(other)" entries come from
 * a reserve of ES_STATS_RESERVE entries; if even that runs out, the counts
 * of the newcomer are dropped and stats_dropped is incremented.
 *
 * Locking rules: es_stats->lock guards the hash's shape.  A flush looks up
 * its entries holding it in shared mode and adds under each entry's spinlock;
 * only creating or removing entries takes it exclusively.  Readers hold it
 * shared and copy each entry under its spinlock.
 *
 * Everything is lost at server restart (and at a crash): the counters say
 * what happened since the server started or since stats_reset(), whichever
 * is later; each row's stats_since tells which.
 *
 * Without shared_preload_libraries there is no shared memory: counting is a
 * no-op, the views return no rows and stats_reset() fails with a hint.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "compat.h"
#include "eventstore.h"

PG_FUNCTION_INFO_V1(eventstore_stats);
PG_FUNCTION_INFO_V1(eventstore_stats_reset);
PG_FUNCTION_INFO_V1(eventstore_horizon_status);

#define ES_STATS_NAMELEN	64	/* longer names are cut (on a character boundary) */
#define ES_STATS_RESERVE	192 /* entries for store totals and "(other)" rows */
#define ES_STATS_STORE		"eventstore.events"
#define ES_STATS_OTHER		"(other)"

bool		es_stats_on = true;
int			es_stats_max_categories = 1000;

typedef struct EsStatKey
{
	Oid			dbid;
	char		kind;			/* 's' store, 'c' category, 'p' projection */
	char		store[ES_STATS_NAMELEN];
	char		name[ES_STATS_NAMELEN];
} EsStatKey;

typedef struct EsStatCounts
{
	int64		appends;		/* append calls that wrote events */
	int64		events;			/* events they wrote */
	int64		batches;		/* appends of more than one event */
	int64		conflicts;		/* ES409 raised */
	int64		retries;		/* idempotent retries answered without writing */
	int64		vetoes;			/* appends aborted by a projection or the hook */
	int64		bytes;			/* event_type + data + metadata of the events */
	int64		calls[ES_NTIMERS];
	double		time_ms[ES_NTIMERS];
} EsStatCounts;

typedef struct EsStatEntry
{
	EsStatKey	key;			/* hash key: must be first */
	slock_t		mutex;
	TimestampTz since;
	EsStatCounts c;
} EsStatEntry;

typedef struct EsStatsShared
{
	LWLock	   *lock;
	int			capacity;		/* entries the hash may hold */
	int			nentries;
	int			nnamed;			/* category and projection entries, not "(other)" */
	uint64		generation;		/* bumped when entries are removed (lock exclusive) */
	pg_atomic_uint64 dropped;
} EsStatsShared;

/*
 * A backend's counts not yet flushed, for one key.  Entries stay in the
 * backend's hash across transactions (so a busy category costs no insert),
 * with a pointer to the shared entry that is trusted while the shared
 * generation (bumped by every removal) has not moved.
 */
typedef struct EsPending
{
	EsStatKey	key;			/* hash key: must be first */
	EsStatCounts c;
	bool		dirty;			/* counted since the last flush */
	EsStatEntry *shared;		/* NULL: not looked up yet */
	uint64		generation;		/* es_stats->generation when shared was found */
} EsPending;

static EsStatsShared *es_stats = NULL;
static HTAB *es_stats_hash = NULL;

/*
 * This backend's counts not yet flushed: the store's totals, and a hash of
 * categories and projections; es_dirty lists the entries counted since the
 * last flush, es_last_category the category counted last (appends tend to
 * hit one category many times in a row).
 */
#define ES_PENDING_MAX	1024	/* past this many keys the hash is emptied at a flush */
static EsPending es_store_pending;
static HTAB *es_pending = NULL;
static EsPending **es_dirty = NULL;
static int	es_ndirty = 0;
static int	es_maxdirty = 0;
static EsPending *es_last_category = NULL;
static EsPending *es_last_store = NULL;
static int	es_dispatch_depth = 0;
static EsStore *es_dispatch_store = NULL;	/* of the projections running */

#ifdef ES_HAVE_SHMEM_REQUEST_HOOK
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static int
es_stats_capacity(void)
{
	return es_stats_max_categories + ES_STATS_RESERVE;
}

static Size
es_stats_shmem_size(void)
{
	return add_size(MAXALIGN(sizeof(EsStatsShared)),
					hash_estimate_size(es_stats_capacity(), sizeof(EsStatEntry)));
}

static void
es_stats_shmem_request(void)
{
#ifdef ES_HAVE_SHMEM_REQUEST_HOOK
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	RequestAddinShmemSpace(es_stats_shmem_size());
	RequestNamedLWLockTranche("eventstore_stats", 1);
}

static void
es_stats_shmem_startup(void)
{
	bool		found;
	HASHCTL		info;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	es_stats = ShmemInitStruct("eventstore_stats", sizeof(EsStatsShared), &found);
	if (!found)
	{
		es_stats->lock = &(GetNamedLWLockTranche("eventstore_stats"))->lock;
		es_stats->capacity = es_stats_capacity();
		es_stats->nentries = 0;
		es_stats->nnamed = 0;
		es_stats->generation = 0;
		pg_atomic_init_u64(&es_stats->dropped, 0);
	}
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(EsStatKey);
	info.entrysize = sizeof(EsStatEntry);
	es_stats_hash = ShmemInitHash("eventstore_stats_hash",
								  es_stats_capacity(), es_stats_capacity(),
								  &info, HASH_ELEM | HASH_BLOBS);
	LWLockRelease(AddinShmemInitLock);
}

/* Called from _PG_init, before the prefix is reserved: GUCs, and shared memory with preload. */
void
es_stats_init(void)
{
	DefineCustomBoolVariable("eventstore.stats",
							 "Collects the counters shown by eventstore.stats and the other statistics views.",
							 "Needs the library in shared_preload_libraries.",
							 &es_stats_on,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	/* A server-start setting can only be defined while preloading. */
	if (!process_shared_preload_libraries_in_progress)
		return;
	DefineCustomIntVariable("eventstore.stats_max_categories",
							"Most categories and projections the statistics track, cluster-wide.",
							"Past it, new ones are counted under \"(other)\".",
							&es_stats_max_categories,
							1000,
							0,
							1000000,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

#ifdef ES_HAVE_SHMEM_REQUEST_HOOK
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = es_stats_shmem_request;
#else
	es_stats_shmem_request();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = es_stats_shmem_startup;
}

/* True when counting: preloaded and eventstore.stats on. */
static inline bool
es_stats_active(void)
{
	return es_stats_on && es_stats_hash != NULL;
}

/* name of len bytes into a key field, cut on a character boundary. */
static void
es_stats_name(char *field, const char *name, int len)
{
	if (len >= ES_STATS_NAMELEN)
		len = pg_mbcliplen(name, len, ES_STATS_NAMELEN - 1);
	memcpy(field, name, len);
}

/* A key for (this database, kind, store, name of len bytes), zero-padded for hashing. */
static void
es_stats_key(EsStatKey *key, char kind, const char *store, const char *name, int len)
{
	memset(key, 0, sizeof(*key));
	key->dbid = MyDatabaseId;
	key->kind = kind;
	es_stats_name(key->store, store, strlen(store));
	es_stats_name(key->name, name, len);
}

/* The name statistics give store st (NULL: the default store). */
static inline const char *
es_stats_store(EsStore *st)
{
	return st == NULL || st->is_default ? ES_STATS_STORE : st->name;
}

/* Whether an entry counts against eventstore.stats_max_categories. */
static inline bool
es_stats_named(const EsStatKey *key)
{
	if (strcmp(key->name, ES_STATS_OTHER) == 0)
		return false;
	return key->kind != 's' || strcmp(key->store, ES_STATS_STORE) != 0;
}

/* Note that p was counted: flushed at transaction end. */
static inline EsStatCounts *
es_touch(EsPending *p)
{
	if (!p->dirty)
	{
		if (es_ndirty == es_maxdirty)
		{
			es_maxdirty = Max(16, es_maxdirty * 2);
			es_dirty = es_dirty == NULL ?
				MemoryContextAlloc(TopMemoryContext, es_maxdirty * sizeof(EsPending *)) :
				repalloc(es_dirty, es_maxdirty * sizeof(EsPending *));
		}
		es_dirty[es_ndirty++] = p;
		p->dirty = true;
	}
	return &p->c;
}

/* This backend's pending entry for (kind, store, name), created on first use. */
static EsPending *
es_pending_entry(char kind, const char *store, const char *name, int len)
{
	EsStatKey	key;
	EsPending  *p;
	bool		found;

	if (es_pending == NULL)
	{
		HASHCTL		info;

		memset(&info, 0, sizeof(info));
		info.keysize = sizeof(EsStatKey);
		info.entrysize = sizeof(EsPending);
		info.hcxt = TopMemoryContext;
		es_pending = hash_create("eventstore pending stats", 64, &info,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	es_stats_key(&key, kind, store, name, len);
	p = hash_search(es_pending, &key, HASH_ENTER, &found);
	if (!found)
	{
		memset(&p->c, 0, sizeof(p->c));
		p->dirty = false;
		p->shared = NULL;
		p->generation = 0;
	}
	return p;
}

/* The pending totals of store st (NULL: the default store). */
static EsStatCounts *
es_pending_store(EsStore *st)
{
	const char *store;
	EsPending  *p;

	if (st == NULL || st->is_default)
	{
		if (es_store_pending.key.kind == '\0')
			es_stats_key(&es_store_pending.key, 's', ES_STATS_STORE, ES_STATS_STORE, strlen(ES_STATS_STORE));
		return es_touch(&es_store_pending);
	}
	store = es_stats_store(st);
	p = es_last_store;
	if (p == NULL || strncmp(p->key.store, store, ES_STATS_NAMELEN - 1) != 0)
		es_last_store = p = es_pending_entry('s', store, store, strlen(store));
	return es_touch(p);
}

static EsStatCounts *
es_pending_counts(char kind, EsStore *st, const char *name, int len)
{
	return es_touch(es_pending_entry(kind, es_stats_store(st), name, len));
}

/* The pending counts of the category of stream_id in store st. */
static EsStatCounts *
es_pending_category(EsStore *st, Datum stream_id)
{
	text	   *sid = DatumGetTextPP(stream_id);
	const char *data = VARDATA_ANY(sid);
	int			len = VARSIZE_ANY_EXHDR(sid);
	const char *dash = memchr(data, '-', len);
	const char *store = es_stats_store(st);
	EsPending  *p = es_last_category;

	if (dash)
		len = (int) (dash - data);
	if (p == NULL || len >= ES_STATS_NAMELEN || p->key.name[len] != '\0' ||
		memcmp(p->key.name, data, len) != 0 ||
		strncmp(p->key.store, store, ES_STATS_NAMELEN - 1) != 0)
		es_last_category = p = es_pending_entry('c', store, data, len);
	return es_touch(p);
}

/* An append of n events (bytes in all) to stream_id wrote its rows. */
void
es_stats_append(EsStore *st, Datum stream_id, int n, int64 bytes)
{
	EsStatCounts *c[2];

	if (!es_stats_active())
		return;
	c[0] = es_pending_store(st);
	c[1] = es_pending_category(st, stream_id);
	for (int i = 0; i < 2; i++)
	{
		c[i]->appends++;
		c[i]->events += n;
		c[i]->batches += n > 1;
		c[i]->bytes += bytes;
	}
}

/* An append to stream_id is about to fail with ES409. */
void
es_stats_conflict(EsStore *st, Datum stream_id)
{
	if (!es_stats_active())
		return;
	es_pending_store(st)->conflicts++;
	es_pending_category(st, stream_id)->conflicts++;
}

/* An append to stream_id was an idempotent retry and wrote nothing. */
void
es_stats_retry(EsStore *st, Datum stream_id)
{
	if (!es_stats_active())
		return;
	es_pending_store(st)->retries++;
	es_pending_category(st, stream_id)->retries++;
}

/*
 * es_projections_dispatch for an append to stream_id, counting a veto when
 * an error escapes it.  Nested appends (a handler that appends) count one
 * veto, at the outermost append.
 */
void
es_stats_dispatch(EsStore *st, Datum stream_id, HeapTuple *rows, uint64 nrows, TupleDesc desc)
{
	EsStore    *outer = es_dispatch_store;

	if (!es_stats_active())
	{
		es_projections_dispatch(st, rows, nrows, desc);
		return;
	}
	es_dispatch_depth++;
	es_dispatch_store = st;
	PG_TRY();
	{
		es_projections_dispatch(st, rows, nrows, desc);
	}
	PG_CATCH();
	{
		es_dispatch_store = outer;
		if (--es_dispatch_depth == 0)
		{
			es_pending_store(st)->vetoes++;
			es_pending_category(st, stream_id)->vetoes++;
		}
		PG_RE_THROW();
	}
	PG_END_TRY();
	es_dispatch_store = outer;
	es_dispatch_depth--;
}

/* Start timing a handler: a zero time when not counting. */
instr_time
es_stats_start(void)
{
	instr_time	t;

	INSTR_TIME_SET_ZERO(t);
	if (es_stats_active())
		INSTR_TIME_SET_CURRENT(t);
	return t;
}

static double
es_stats_elapsed_ms(instr_time start)
{
	instr_time	now;

	INSTR_TIME_SET_CURRENT(now);
	INSTR_TIME_SUBTRACT(now, start);
	return INSTR_TIME_GET_MILLISEC(now);
}

/* A handler of kind timer, started at start, returned. */
void
es_stats_timed(EsStatTimer timer, instr_time start)
{
	EsStatCounts *c;

	if (INSTR_TIME_IS_ZERO(start) || es_stats_hash == NULL)
		return;
	c = es_pending_store(es_dispatch_store);
	c->calls[timer]++;
	c->time_ms[timer] += es_stats_elapsed_ms(start);
}

/* The handler of projection name, started at start, returned. */
void
es_stats_projection(const char *name, instr_time start)
{
	double		ms;
	EsStatCounts *c;

	if (INSTR_TIME_IS_ZERO(start) || es_stats_hash == NULL)
		return;
	ms = es_stats_elapsed_ms(start);
	c = es_pending_store(es_dispatch_store);
	c->calls[ES_TIMER_PROJECTION]++;
	c->time_ms[ES_TIMER_PROJECTION] += ms;
	c = es_pending_counts('p', es_dispatch_store, name, strlen(name));
	c->calls[ES_TIMER_PROJECTION]++;
	c->time_ms[ES_TIMER_PROJECTION] += ms;
}

static void
es_counts_add(EsStatCounts *to, const EsStatCounts *from)
{
	to->appends += from->appends;
	to->events += from->events;
	to->batches += from->batches;
	to->conflicts += from->conflicts;
	to->retries += from->retries;
	to->vetoes += from->vetoes;
	to->bytes += from->bytes;
	for (int t = 0; t < ES_NTIMERS; t++)
	{
		to->calls[t] += from->calls[t];
		to->time_ms[t] += from->time_ms[t];
	}
}

/*
 * The shared entry for key, created if there is room (lock held
 * exclusively); a category or projection past the limit goes to "(other)".
 * NULL when not even that fits.
 */
static EsStatEntry *
es_stats_create(EsStatKey *key)
{
	EsStatEntry *e;
	bool		found;
	bool		named = es_stats_named(key);

	e = hash_search(es_stats_hash, key, HASH_FIND, NULL);
	if (e != NULL)
		return e;
	if (named && es_stats->nnamed >= es_stats_max_categories)
	{
		EsStatKey	other;

		memset(&other, 0, sizeof(other));
		other.dbid = key->dbid;
		other.kind = key->kind;
		/* a category or projection keeps its store; a store's totals do not */
		strlcpy(other.store, key->kind == 's' ? ES_STATS_OTHER : key->store, sizeof(other.store));
		strlcpy(other.name, ES_STATS_OTHER, sizeof(other.name));
		return es_stats_create(&other);
	}
	if (es_stats->nentries >= es_stats->capacity)
		return NULL;
	e = hash_search(es_stats_hash, key, HASH_ENTER_NULL, &found);
	if (e == NULL)
		return NULL;
	if (!found)
	{
		SpinLockInit(&e->mutex);
		e->since = GetCurrentTimestamp();
		memset(&e->c, 0, sizeof(e->c));
		es_stats->nentries++;
		if (named)
			es_stats->nnamed++;
	}
	return e;
}

/*
 * Add this backend's pending counts to shared memory and zero them.  The
 * shared entries found last time are used directly while no entry has been
 * removed since; the others are looked up (and created) under the lock held
 * exclusively.  Runs in the transaction callback, also at abort: it raises
 * no error.
 */
static void
es_stats_flush(void)
{
	int			nmissing = 0;

	if (es_ndirty == 0)
		return;
	if (es_stats_hash == NULL)
	{
		es_ndirty = 0;
		return;
	}

	LWLockAcquire(es_stats->lock, LW_SHARED);
	for (int i = 0; i < es_ndirty; i++)
	{
		EsPending  *p = es_dirty[i];

		if (p->shared == NULL || p->generation != es_stats->generation)
		{
			p->shared = hash_search(es_stats_hash, &p->key, HASH_FIND, NULL);
			p->generation = es_stats->generation;
		}
		if (p->shared == NULL)
		{
			es_dirty[nmissing++] = p;	/* for the exclusive pass */
			continue;
		}
		SpinLockAcquire(&p->shared->mutex);
		es_counts_add(&p->shared->c, &p->c);
		SpinLockRelease(&p->shared->mutex);
		memset(&p->c, 0, sizeof(p->c));
		p->dirty = false;
	}
	LWLockRelease(es_stats->lock);

	if (nmissing > 0)
	{
		LWLockAcquire(es_stats->lock, LW_EXCLUSIVE);
		for (int i = 0; i < nmissing; i++)
		{
			EsPending  *p = es_dirty[i];
			EsStatEntry *e = es_stats_create(&p->key);

			if (e == NULL)
				pg_atomic_fetch_add_u64(&es_stats->dropped, 1);
			else
			{
				SpinLockAcquire(&e->mutex);
				es_counts_add(&e->c, &p->c);
				SpinLockRelease(&e->mutex);
			}
			/* may be the "(other)" entry: this key goes there until a reset */
			p->shared = e;
			p->generation = es_stats->generation;
			memset(&p->c, 0, sizeof(p->c));
			p->dirty = false;
		}
		LWLockRelease(es_stats->lock);
	}
	es_ndirty = 0;

	/* Keep the backend's own hash small. */
	if (es_pending != NULL && hash_get_num_entries(es_pending) > ES_PENDING_MAX)
	{
		hash_destroy(es_pending);
		es_pending = NULL;
		es_last_category = NULL;
		es_last_store = NULL;
	}
}

/* Transaction end (eventstore.c's transaction callback): flush, committed or not. */
void
es_stats_xact(XactEvent event)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			es_dispatch_depth = 0;
			es_dispatch_store = NULL;
			es_stats_flush();
			break;
		default:
			break;
	}
}

/*
 * eventstore._stats(): every entry of every database, as
 * (dbid, kind, store, name, counters..., stats_since); no rows without preload.
 */
Datum
eventstore_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	HASH_SEQ_STATUS seq;
	EsStatEntry *e;

	InitMaterializedSRF(fcinfo, 0);
	if (es_stats_hash == NULL)
		return (Datum) 0;

	LWLockAcquire(es_stats->lock, LW_SHARED);
	hash_seq_init(&seq, es_stats_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		Datum		values[19];
		bool		nulls[19];
		EsStatCounts c;
		TimestampTz since;
		char		kind[2] = {e->key.kind, '\0'};
		int			i = 0;

		SpinLockAcquire(&e->mutex);
		c = e->c;
		since = e->since;
		SpinLockRelease(&e->mutex);

		memset(nulls, 0, sizeof(nulls));
		values[i++] = ObjectIdGetDatum(e->key.dbid);
		values[i++] = CStringGetTextDatum(kind);
		values[i++] = CStringGetTextDatum(e->key.store);
		values[i++] = CStringGetTextDatum(e->key.name);
		values[i++] = Int64GetDatum(c.appends);
		values[i++] = Int64GetDatum(c.events);
		values[i++] = Int64GetDatum(c.batches);
		values[i++] = Int64GetDatum(c.conflicts);
		values[i++] = Int64GetDatum(c.retries);
		values[i++] = Int64GetDatum(c.vetoes);
		values[i++] = Int64GetDatum(c.bytes);
		for (int t = 0; t < ES_NTIMERS; t++)
		{
			values[i++] = Int64GetDatum(c.calls[t]);
			values[i++] = Float8GetDatum(c.time_ms[t]);
		}
		values[i++] = TimestampTzGetDatum(since);
		values[i++] = Int64GetDatum((int64) pg_atomic_read_u64(&es_stats->dropped));
		Assert(i == lengthof(values));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(es_stats->lock);
	return (Datum) 0;
}

/* eventstore.stats_reset(): forget the counters of the current database. */
Datum
eventstore_stats_reset(PG_FUNCTION_ARGS)
{
	HASH_SEQ_STATUS seq;
	EsStatEntry *e;

	(void) fcinfo;
	if (es_stats_hash == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("eventstore statistics are not collected"),
				 errhint("Add eventstore to shared_preload_libraries and restart the server.")));

	LWLockAcquire(es_stats->lock, LW_EXCLUSIVE);
	hash_seq_init(&seq, es_stats_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		bool		named = es_stats_named(&e->key);

		if (e->key.dbid != MyDatabaseId)
			continue;
		es_stats->generation++;
		(void) hash_search(es_stats_hash, &e->key, HASH_REMOVE, NULL);
		es_stats->nentries--;
		if (named)
			es_stats->nnamed--;
	}
	LWLockRelease(es_stats->lock);
	PG_RETURN_VOID();
}

/* The pid of the backend in horizon slot slot, 0 if none. */
static int
es_slot_pid(int slot)
{
	PGPROC	   *proc = ES_SLOT_PROC(slot);

	return proc != NULL ? proc->pid : 0;
}

/*
 * eventstore._horizon_status(): per counter kind of the current database,
 * the newest value handed out, the read horizon, how many transactions hold
 * values in flight and the one holding the lowest.  Without preload there is
 * no registry: horizon, in_flight and the oldest are NULL (the view finds
 * the appenders through their advisory locks instead).
 */
Datum
eventstore_horizon_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	static const char *const names[ES_NCOUNTERS] = {"position", "outbox"};

	InitMaterializedSRF(fcinfo, 0);
	for (int k = 0; k < ES_NCOUNTERS; k++)
	{
		Datum		values[6];
		bool		nulls[6];
		Oid			seq = k == ES_COUNTER_POSITION ? es_position_seqid() : es_outbox_seqid();
		int64		newest = 0;
		int64		first;
		int			slot;
		int			count;

		memset(nulls, 0, sizeof(nulls));
		values[0] = CStringGetTextDatum(names[k]);
		if (OidIsValid(seq))
			newest = es_sequence_last_value(seq);
		/* before the sequence's first value, nothing was handed out */
		values[1] = Int64GetDatum(newest);
		if (!es_horizon_oldest((EsCounter) k, MyDatabaseId, &first, &slot, &count))
		{
			nulls[2] = nulls[3] = nulls[4] = nulls[5] = true;
		}
		else
		{
			values[2] = Int64GetDatum(count > 0 ? first - 1 : newest);
			values[3] = Int32GetDatum(count);
			if (count > 0)
			{
				int			pid = es_slot_pid(slot);

				values[4] = Int32GetDatum(pid);
				nulls[4] = pid == 0;
				values[5] = Int64GetDatum(first);
			}
			else
				nulls[4] = nulls[5] = true;
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
