/*
 * horizon.c
 *		Counters handed out by in-flight transactions, and the read horizon
 *		derived from them.
 *
 * A global position is taken from a sequence, so positions become visible
 * out of order: transaction A takes 10, B takes 11 and commits first.  A
 * reader that returned 11 and checkpointed there would never see 10.  The
 * read horizon is the highest position below which nothing can still appear.
 * The same holds for outbox ids, which the relay publishes in order: there
 * is one such counter per EsCounter kind, and everything below applies to
 * each kind separately.
 *
 * With the library in shared_preload_libraries, shared memory holds one slot
 * per backend: the database and the first position its current transaction
 * took (0 when none).  Locking rules:
 *
 *	- A transaction's first position is taken and published in its slot while
 *	  holding es_shared->lock exclusively, so "allocate and register" is
 *	  atomic.  Later positions of the same transaction are higher and need no
 *	  lock: the slot already holds them back.
 *	- A reader holds the lock in shared mode while it scans the slots and
 *	  takes the snapshot it will read with.  Every position below the lowest
 *	  registered one belongs to a finished transaction, and no first position
 *	  can be taken between the scan and the snapshot.
 *	- A slot is cleared from the transaction callback at commit or abort,
 *	  which PostgreSQL runs after the commit became visible to new snapshots.
 *	  Clearing uses an atomic exchange (a full barrier) and no lock: a reader
 *	  that still sees the old value merely stops a little early.
 *	- Registration belongs to the top-level transaction.  A subtransaction
 *	  that took the first position and was rolled back leaves the slot as it
 *	  is: its positions are gaps, and later ones stay held back.
 *	- Nothing that waits for another transaction happens under the lock.
 *	  Before taking it, es_allocate takes the sequence's relation lock (the
 *	  one nextval takes, which an ALTER SEQUENCE in an open transaction
 *	  holds), opens the relation, pins its page and assigns the transaction
 *	  id.  What remains under the lock is nextval's own work: the sequence
 *	  page's buffer content lock (held for microseconds by another nextval,
 *	  or during the page's write by a checkpoint), and, every 32 values or on
 *	  the first change after a checkpoint, a WAL insert, which may wait for
 *	  WAL buffers to be written out.  These are waits on I/O, not on other
 *	  transactions, and end by themselves.
 *
 * Without preload there is no shared memory.  Appenders then take a shared
 * advisory lock (ES_LOCKTAG_LOG) before their first position, held by the
 * top-level transaction to its end (also when a subtransaction took the
 * position), and a reader reads the sequence's last value, waits for the
 * appenders that hold the lock at that moment, and reads up to that value.
 * That is exact too, but it waits for open appending transactions instead of
 * returning early.
 *
 * Transactions that appended cannot be prepared (PREPARE TRANSACTION): their
 * positions would stay in flight with no backend to clear them.
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/relation.h"
#include "access/xlog.h"
#include "executor/spi.h"
#include "utils/lsyscache.h"
#include "commands/sequence.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/bufmgr.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/fmgrprotos.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"

#include "compat.h"
#include "eventstore.h"

typedef struct EsSlot
{
	Oid			dbid;
	pg_atomic_uint64 first[ES_NCOUNTERS];	/* 0 = none in flight */
} EsSlot;

typedef struct EsHorizonShared
{
	LWLock	   *lock;
	int			nslots;
	EsSlot		slots[FLEXIBLE_ARRAY_MEMBER];
} EsHorizonShared;

static EsHorizonShared *es_shared = NULL;

/* First value of each counter taken by this backend's transaction, 0 if none. */
static int64 es_my_first[ES_NCOUNTERS];
static bool es_exit_hook_registered = false;

#ifdef ES_HAVE_SHMEM_REQUEST_HOOK
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static Size
es_horizon_shmem_size(void)
{
	return add_size(offsetof(EsHorizonShared, slots),
					mul_size(ES_MAX_BACKEND_SLOTS(), sizeof(EsSlot)));
}

static void
es_horizon_shmem_request(void)
{
#ifdef ES_HAVE_SHMEM_REQUEST_HOOK
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	RequestAddinShmemSpace(es_horizon_shmem_size());
	RequestNamedLWLockTranche("eventstore_horizon", 1);
}

static void
es_horizon_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	es_shared = ShmemInitStruct("eventstore_horizon", es_horizon_shmem_size(), &found);
	if (!found)
	{
		es_shared->lock = &(GetNamedLWLockTranche("eventstore_horizon"))->lock;
		es_shared->nslots = ES_MAX_BACKEND_SLOTS();
		for (int i = 0; i < es_shared->nslots; i++)
		{
			es_shared->slots[i].dbid = InvalidOid;
			for (int k = 0; k < ES_NCOUNTERS; k++)
				pg_atomic_init_u64(&es_shared->slots[i].first[k], 0);
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

static EsSlot *
es_my_slot(void)
{
	int			i = ES_MY_SLOT();

	if (i < 0 || i >= es_shared->nslots)
		elog(ERROR, "eventstore: backend slot %d out of range", i);
	return &es_shared->slots[i];
}

/* Forget this transaction's in-flight counters (it has ended). */
static void
es_horizon_release(void)
{
	for (int k = 0; k < ES_NCOUNTERS; k++)
	{
		if (es_my_first[k] == 0)
			continue;
		if (es_shared != NULL)
			pg_atomic_exchange_u64(&es_my_slot()->first[k], 0);
		es_my_first[k] = 0;
	}
}

/* True when this transaction has taken a value of any counter. */
static bool
es_horizon_in_flight(void)
{
	for (int k = 0; k < ES_NCOUNTERS; k++)
		if (es_my_first[k] != 0)
			return true;
	return false;
}

/* Transaction end (called from eventstore.c's transaction callback). */
void
es_horizon_xact(XactEvent event)
{
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (es_horizon_in_flight())
				ereport(ERROR,
						(errcode(ERRCODE_ES_PREPARE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that appended events or enqueued messages"),
						 errdetail("Its global positions would stay in flight and hold back every reader of the log.")));
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			es_horizon_release();
			break;
		default:
			break;
	}
}

static void
es_horizon_shmem_exit(int code, Datum arg)
{
	(void) code;
	(void) arg;
	es_horizon_release();
}

/* Called from _PG_init: hooks for shared memory (preload only). */
void
es_horizon_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;

#ifdef ES_HAVE_SHMEM_REQUEST_HOOK
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = es_horizon_shmem_request;
#else
	es_horizon_shmem_request();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = es_horizon_shmem_startup;
}

/* True when the in-flight registry exists (library preloaded). */
bool
es_horizon_shmem_ready(void)
{
	return es_shared != NULL;
}

static void
es_log_locktag(LOCKTAG *tag, EsCounter kind)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, 0, (uint32) kind, ES_LOCKTAG_LOG);
}

/*
 * Take the next value of counter kind (from sequence seqoid) for the current
 * transaction, registering the transaction as in flight first if this is its
 * first value of that counter.
 */
int64
es_allocate(EsCounter kind, Oid seqoid)
{
	int64		pos;

	if (es_my_first[kind] != 0)
		return nextval_internal(seqoid, false);

	if (es_shared != NULL)
	{
		EsSlot	   *slot = es_my_slot();
		Relation	seqrel;
		Buffer		buf;

		/*
		 * Whatever can wait goes before the LWLock, which is cluster-wide,
		 * exclusive and uncancellable: the sequence's heavyweight lock (the
		 * one nextval takes; an ALTER SEQUENCE in an open transaction makes
		 * us wait here, cancellably), the relcache entry, a pin on its page
		 * (no read I/O below), and the transaction id nextval would assign
		 * when it writes WAL.  See "what remains" in the file header.
		 */
		seqrel = relation_open(seqoid, RowExclusiveLock);
		buf = ReadBuffer(seqrel, 0);
		if (!XactReadOnly)		/* else nextval raises its own error */
			(void) GetTopTransactionId();

		LWLockAcquire(es_shared->lock, LW_EXCLUSIVE);
		pos = nextval_internal(seqoid, false);
		slot->dbid = MyDatabaseId;
		pg_atomic_write_u64(&slot->first[kind], (uint64) pos);
		LWLockRelease(es_shared->lock);

		ReleaseBuffer(buf);
		relation_close(seqrel, NoLock);
	}
	else
	{
		LOCKTAG		tag;
		ResourceOwner save_owner = CurrentResourceOwner;

		/*
		 * The lock belongs to the top-level transaction, not to the
		 * (sub)transaction that happens to take the first position: a
		 * ROLLBACK TO SAVEPOINT or an EXCEPTION block must not release it
		 * while es_my_first[] says the transaction is registered, or its
		 * later positions would no longer hold readers back.  (An error
		 * here aborts the subtransaction, which resets CurrentResourceOwner.)
		 */
		es_log_locktag(&tag, kind);
		CurrentResourceOwner = TopTransactionResourceOwner;
		(void) LockAcquire(&tag, ShareLock, false, false);
		CurrentResourceOwner = save_owner;
		pos = nextval_internal(seqoid, false);
	}
	es_my_first[kind] = pos;
	if (!es_exit_hook_registered)
	{
		before_shmem_exit(es_horizon_shmem_exit, (Datum) 0);
		es_exit_hook_registered = true;
	}
	return pos;
}

/*
 * On a hot standby there is no registry: the horizon is the one the primary's
 * relay publishes in eventstore.log_horizon (relay.c), read with the same
 * fresh snapshot the rows are read with.  Without it (no relay running on
 * the primary, or a schema older than 0.4.0) nothing is returned rather than
 * risk a skip.  Only the log (positions) has a standby horizon.
 */
static int64
es_standby_horizon(EsCounter kind, Snapshot *snapshot_out)
{
	int64		horizon = 0;
	Oid			relid = get_relname_relid("log_horizon", es_schema_oid());

	*snapshot_out = RegisterSnapshot(GetLatestSnapshot());
	if (kind != ES_COUNTER_POSITION || !OidIsValid(relid))
		return 0;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "eventstore: SPI_connect failed");
	PushActiveSnapshot(*snapshot_out);
	if (SPI_execute("SELECT h.position FROM eventstore.log_horizon h", true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		horizon = isnull ? 0 : DatumGetInt64(d);
	}
	PopActiveSnapshot();
	SPI_finish();
	return horizon;
}

/*
 * Compute the read horizon of counter kind in the current database and the
 * snapshot to read with: every value at or below the returned one that will
 * ever be visible is visible in *snapshot_out.  PG_INT64_MAX means no limit.
 * The caller must UnregisterSnapshot() the snapshot.
 *
 * The snapshot is always a fresh one, also in REPEATABLE READ: a tail reader
 * needs the horizon and the rows from the same instant.
 */
int64
es_read_horizon(EsCounter kind, Oid seqoid, Snapshot *snapshot_out)
{
	int64		horizon = PG_INT64_MAX;

	if (RecoveryInProgress())
		return es_standby_horizon(kind, snapshot_out);

	if (es_shared != NULL)
	{
		uint64		lowest = PG_UINT64_MAX;

		LWLockAcquire(es_shared->lock, LW_SHARED);
		for (int i = 0; i < es_shared->nslots; i++)
		{
			EsSlot	   *slot = &es_shared->slots[i];
			uint64		first = pg_atomic_read_u64(&slot->first[kind]);

			if (first != 0 && slot->dbid == MyDatabaseId && first < lowest)
				lowest = first;
		}
		*snapshot_out = RegisterSnapshot(GetLatestSnapshot());
		LWLockRelease(es_shared->lock);

		if (lowest != PG_UINT64_MAX)
			horizon = (int64) lowest - 1;
	}
	else
	{
		LOCKTAG		tag;

		/* 0 before the sequence's first nextval: nothing to read */
		horizon = es_sequence_last_value(seqoid);

		es_log_locktag(&tag, kind);
		WaitForLockers(tag, ExclusiveLock, false);
		*snapshot_out = RegisterSnapshot(GetLatestSnapshot());
	}

	/* Our own open transaction is in flight too. */
	if (es_my_first[kind] != 0 && es_my_first[kind] - 1 < horizon)
		horizon = es_my_first[kind] - 1;
	return horizon;
}

/*
 * The read horizon for a reader that reads with a snapshot taken later than
 * the horizon (a statement of its own): es_read_horizon bounded by the
 * sequence's last value read before it.  es_read_horizon alone returns
 * "no limit" when nothing is in flight, which is right only with the
 * snapshot taken together with it: a position taken afterwards can commit
 * behind a later one before the later snapshot, which would then see the
 * later one and not it.  A position taken after the last value was read is
 * above it; one taken before is settled, or in flight when es_read_horizon
 * looks (registration is atomic with the nextval).
 */
int64
es_settled_horizon(EsCounter kind, Oid seqoid)
{
	int64		last = es_sequence_last_value(seqoid);
	Snapshot	snapshot;
	int64		horizon = es_read_horizon(kind, seqoid, &snapshot);

	UnregisterSnapshot(snapshot);
	return Min(last, horizon);
}

/*
 * The last value sequence seqoid handed out (0 before its first nextval),
 * read as the store's owner: callers need no grant on the sequence.
 */
int64
es_sequence_last_value(Oid seqoid)
{
	Oid			save_userid;
	int			save_sec;
	Datum		last;
	bool		isnull;

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(es_events_owner(), save_sec | SECURITY_LOCAL_USERID_CHANGE);
	{
		LOCAL_FCINFO(fcinfo, 1);

		InitFunctionCallInfoData(*fcinfo, NULL, 1, InvalidOid, NULL, NULL);
		fcinfo->args[0].value = ObjectIdGetDatum(seqoid);
		fcinfo->args[0].isnull = false;
		last = pg_sequence_last_value(fcinfo);
		isnull = fcinfo->isnull;
	}
	SetUserIdAndSecContext(save_userid, save_sec);
	return isnull ? 0 : DatumGetInt64(last);
}

/*
 * For the horizon status view (stats.c), read-only: the lowest value of
 * counter kind in flight in database dbid (*first), the slot of the backend
 * holding it (*slot) and how many backends hold one (*count, 0 when none).
 * False without preload, when there is no registry to read.
 */
bool
es_horizon_oldest(EsCounter kind, Oid dbid, int64 *first, int *slot, int *count)
{
	*first = 0;
	*slot = -1;
	*count = 0;
	if (es_shared == NULL)
		return false;
	LWLockAcquire(es_shared->lock, LW_SHARED);
	for (int i = 0; i < es_shared->nslots; i++)
	{
		uint64		v = pg_atomic_read_u64(&es_shared->slots[i].first[kind]);

		if (v == 0 || es_shared->slots[i].dbid != dbid)
			continue;
		(*count)++;
		if (*first == 0 || (int64) v < *first)
		{
			*first = (int64) v;
			*slot = i;
		}
	}
	LWLockRelease(es_shared->lock);
	return true;
}
