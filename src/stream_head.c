/*
 * stream_head.c
 *		A shared cache of stream heads: the version (and created_at) of the
 *		last event an append wrote to a stream, so the next append to the
 *		stream skips its index lookup (append.c, es_current_version).
 *
 * An entry is written by an append after its insert, while it holds the
 * stream's lock (append.c), as PENDING: only its own transaction may use it.
 * The transaction callback marks it COMMITTED at commit, before the stream
 * lock is released, and empties it at abort; a subtransaction abort empties
 * the entries written in it and below.  So whoever takes the stream lock next
 * finds either the committed head or no entry, never an uncommitted one.
 *
 * Rows that reach a store other than through append do not update entries:
 * an import, a purge and an INSERT by the store's owner bump the shared
 * generation instead (the owner's INSERT at its statement, holding SHARE ROW
 * EXCLUSIVE on the store to its end as an import does, and again at its
 * commit), and an entry of an older generation is not used.  An abort
 * empties the entries its transaction used as well as those it wrote: a head
 * made wrong by rows that reached the store with its triggers disabled
 * (which no trigger reports) fails one append, not every one after it.  An entry names
 * its store by OID and by the xmin of the store's pg_class row (catalog.c),
 * so a store dropped and another created under its OID share no entry.  An import holds
 * SHARE ROW EXCLUSIVE on the store while it runs, so no append can write an
 * entry for that store before the imported rows are committed.  A miss (no
 * entry, another stream in the entry, an older generation) falls back to
 * the index lookup, which remains the truth; the unique (stream_id,
 * stream_version) key remains the backstop.  Rows a logical replication
 * apply worker inserts fire no statement trigger and move nothing: appending
 * on a subscriber to streams it also receives was never safe (each side
 * numbers the stream on its own).
 *
 * Locking: each entry has a spinlock, held only to copy the entry in or out
 * (two streams may share an entry; each has its own stream lock).  The
 * generation is an atomic counter.  Without shared_preload_libraries there is
 * no cache and every append looks its stream up.
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"

#include "compat.h"
#include "eventstore.h"

#define ES_HEAD_ENTRIES 4096
#define ES_HEAD_KEYLEN	64		/* longer stream ids are not cached */
#define ES_HEAD_TRACKED 64		/* entries one transaction may write */

typedef enum EsHeadState
{
	ES_HEAD_EMPTY = 0,
	ES_HEAD_PENDING,			/* written by an open transaction */
	ES_HEAD_COMMITTED
} EsHeadState;

typedef struct EsHeadEntry
{
	slock_t		mutex;
	uint8		state;			/* EsHeadState */
	uint8		keylen;
	Oid			dbid;			/* a database made from a template has its stores' OIDs */
	Oid			store;
	TransactionId store_xmin;	/* the store's pg_class row's, as OIDs are reused */
	int			owner;			/* PENDING: the writer's backend slot */
	LocalTransactionId owner_lxid;	/* and its transaction */
	uint64		generation;
	int64		version;
	TimestampTz last_time;
	char		key[ES_HEAD_KEYLEN];
} EsHeadEntry;

typedef struct EsHeadShared
{
	pg_atomic_uint64 generation;
	EsHeadEntry entries[ES_HEAD_ENTRIES];
} EsHeadShared;

static EsHeadShared *es_head = NULL;

/* The entries this transaction wrote, and the subtransaction of each write. */
static struct
{
	int			entry;
	SubTransactionId subid;
}			es_head_written[ES_HEAD_TRACKED];
static int	es_head_nwritten = 0;
static LocalTransactionId es_head_lxid;	/* of the writes, when there are any */

/* Set by append.c while its own INSERT fires the store's statement trigger. */
bool		es_head_appending = false;

/* An INSERT by the owner ran in this transaction: bump again at commit. */
static bool es_head_bump_at_commit = false;

/* Shared memory of the cache, requested and set up by horizon.c's hooks. */
Size
es_head_shmem_size(void)
{
	return sizeof(EsHeadShared);
}

/* Attach to (or first set up) the cache; AddinShmemInitLock is held. */
void
es_head_shmem_init(void)
{
	bool		found;

	es_head = ShmemInitStruct("eventstore_stream_heads", sizeof(EsHeadShared), &found);
	if (found)
		return;
	pg_atomic_init_u64(&es_head->generation, 1);
	for (int i = 0; i < ES_HEAD_ENTRIES; i++)
	{
		SpinLockInit(&es_head->entries[i].mutex);
		es_head->entries[i].state = ES_HEAD_EMPTY;
	}
}

static void
es_head_subxact(SubXactEvent event, SubTransactionId mySubid,
				SubTransactionId parentSubid, void *arg);

/* With the library preloaded (the cache exists), watch subtransactions. */
void
es_head_init(void)
{
	if (process_shared_preload_libraries_in_progress)
		RegisterSubXactCallback(es_head_subxact, NULL);
}

/*
 * The entry of a stream of a store, or -1 when its id is too long to be
 * cached.  The store and the database are part of the hash: the same stream
 * id in several stores (a store per tenant) is several streams, and taking
 * the id alone put them all in one entry, where appends to them in turn
 * found each other's head and looked every stream up.
 */
static int
es_head_entry(EsStore *st, text *sid)
{
	int			len = VARSIZE_ANY_EXHDR(sid);
	uint32		h;

	if (es_head == NULL || len > ES_HEAD_KEYLEN)
		return -1;
	h = hash_bytes((const unsigned char *) VARDATA_ANY(sid), len);
	h = hash_combine(h, hash_bytes_uint32(st->relid));
	h = hash_combine(h, hash_bytes_uint32(MyDatabaseId));
	return h % ES_HEAD_ENTRIES;
}

/*
 * The entry is pending for this backend's transaction lxid.  At commit and
 * abort the transaction callback runs after the proc array has ended the
 * transaction (and cleared MyProc's lxid): it passes the lxid it wrote with.
 */
static bool
es_head_mine(EsHeadEntry *e, LocalTransactionId lxid)
{
	return e->owner == ES_MY_SLOT() && e->owner_lxid == lxid;
}

/*
 * Track entry i as used or written by this subtransaction, to be finished at
 * its end; false when ES_HEAD_TRACKED entries are tracked already.  The
 * entry this subtransaction tracked last takes no new slot.
 */
static bool
es_head_track(int i)
{
	SubTransactionId subid = GetCurrentSubTransactionId();

	if (es_head_nwritten > 0 && es_head_written[es_head_nwritten - 1].entry == i &&
		es_head_written[es_head_nwritten - 1].subid == subid)
		return true;
	if (es_head_nwritten == ES_HEAD_TRACKED)
		return false;
	es_head_lxid = ES_MY_LXID();
	es_head_written[es_head_nwritten].entry = i;
	es_head_written[es_head_nwritten++].subid = subid;
	return true;
}

/*
 * The cached head of stream sid in store: true with *version and *last_time
 * set when there is an entry of the current generation that is committed, or
 * written earlier by this very transaction.
 */
bool
es_head_get(EsStore *st, text *sid, int64 *version, TimestampTz *last_time)
{
	int			i = es_head_entry(st, sid);
	EsHeadEntry *e;
	bool		hit;
	uint64		generation;

	/* a store changed since it was checked (a TRUNCATE): its rel_xmin is old */
	if (i < 0 || !st->valid)
		return false;
	e = &es_head->entries[i];
	generation = pg_atomic_read_u64(&es_head->generation);
	SpinLockAcquire(&e->mutex);
	hit = e->store == st->relid && e->store_xmin == st->rel_xmin &&
		e->dbid == MyDatabaseId && e->generation == generation &&
		e->keylen == VARSIZE_ANY_EXHDR(sid) &&
		memcmp(e->key, VARDATA_ANY(sid), e->keylen) == 0 &&
		(e->state == ES_HEAD_COMMITTED || (e->state == ES_HEAD_PENDING && es_head_mine(e, ES_MY_LXID())));
	if (hit)
	{
		*version = e->version;
		*last_time = e->last_time;
	}
	SpinLockRelease(&e->mutex);

	/*
	 * An entry used is tracked like one written: if this (sub)transaction
	 * aborts, the entry is emptied.  Should the head in it be wrong (rows
	 * that reached the store with its triggers disabled), the append that
	 * failed on it (23505, ES409) leaves the next one to the index lookup
	 * instead of every retry failing the same way.
	 */
	return hit && es_head_track(i);
}

/*
 * Record the head this append wrote (the stream lock held), pending until
 * the transaction commits.  generation is the one read before the stream
 * was looked up: an invalidation since then leaves the entry unused.
 */
void
es_head_put(EsStore *st, text *sid, int64 version, TimestampTz last_time, uint64 generation)
{
	int			i = es_head_entry(st, sid);
	EsHeadEntry *e;

	if (i < 0)
		return;
	e = &es_head->entries[i];
	if (!st->valid || !es_head_track(i))
	{
		/*
		 * A store changed since it was checked (its rel_xmin may be old), or
		 * too many entries to finish at the transaction's end: the entry is
		 * emptied instead of written, as it may hold an older head of the
		 * stream (or one this transaction wrote earlier).  Emptying another
		 * stream's entry only costs that stream one index lookup.
		 */
		SpinLockAcquire(&e->mutex);
		e->state = ES_HEAD_EMPTY;
		SpinLockRelease(&e->mutex);
		return;
	}
	SpinLockAcquire(&e->mutex);
	e->state = ES_HEAD_PENDING;
	e->store = st->relid;
	e->store_xmin = st->rel_xmin;
	e->dbid = MyDatabaseId;
	e->owner = ES_MY_SLOT();
	e->owner_lxid = ES_MY_LXID();
	e->generation = generation;
	e->version = version;
	e->last_time = last_time;
	e->keylen = VARSIZE_ANY_EXHDR(sid);
	memcpy(e->key, VARDATA_ANY(sid), e->keylen);
	SpinLockRelease(&e->mutex);
}

/* The generation now, read before a lookup whose result es_head_put() keeps. */
uint64
es_head_generation(void)
{
	return es_head ? pg_atomic_read_u64(&es_head->generation) : 0;
}

/*
 * Rows reached a store other than through append: no entry written before
 * is used again.  With at_commit (an INSERT by the owner, which holds no lock
 * that keeps appends out), the generation moves again when the transaction
 * commits.
 */
void
es_head_invalidate(bool at_commit)
{
	if (es_head == NULL)
		return;
	pg_atomic_fetch_add_u64(&es_head->generation, 1);
	if (at_commit)
		es_head_bump_at_commit = true;
}

/*
 * Commit: mark the entries this transaction wrote from index from on.
 * Abort: empty every entry tracked from there, written or used.
 */
static void
es_head_finish(int from, bool commit)
{
	for (int k = from; k < es_head_nwritten; k++)
	{
		EsHeadEntry *e = &es_head->entries[es_head_written[k].entry];

		SpinLockAcquire(&e->mutex);
		if (!commit)
			e->state = ES_HEAD_EMPTY;	/* written or used here: see es_head_get */
		else if (e->state == ES_HEAD_PENDING && es_head_mine(e, es_head_lxid))
			e->state = ES_HEAD_COMMITTED;
		SpinLockRelease(&e->mutex);
	}
}

/* Transaction end (eventstore.c's callback): before the stream locks go. */
void
es_head_xact(XactEvent event)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (es_head_bump_at_commit)
				es_head_invalidate(false);
			if (es_head != NULL)
				es_head_finish(0, true);
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			es_head_appending = false;
			if (es_head != NULL)
				es_head_finish(0, false);
			break;
		default:
			return;
	}
	es_head_nwritten = 0;
	es_head_bump_at_commit = false;
}

/*
 * A subtransaction abort empties what it and its children wrote: they are
 * the entries written since it began, all of higher subtransaction ids.
 */
static void
es_head_subxact(SubXactEvent event, SubTransactionId mySubid,
				SubTransactionId parentSubid, void *arg)
{
	int			k;

	(void) parentSubid;
	(void) arg;
	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	es_head_appending = false;
	if (es_head == NULL)
		return;
	for (k = 0; k < es_head_nwritten && es_head_written[k].subid < mySubid; k++)
		;
	es_head_finish(k, false);
	es_head_nwritten = k;
}
