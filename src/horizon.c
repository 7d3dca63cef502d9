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
 * per backend: the database and, per counter, a value at or below the first
 * one its current transaction took (0 when none).  No lock is taken: slots
 * are written by their backend only, with atomics and memory barriers, and
 * read by anyone, as PostgreSQL's own ProcArray publishes each backend's xid
 * and xmin.
 *
 * Appender, the first value of a transaction (es_allocate):
 *	 A1. take the sequence's relation lock (the one nextval takes; an ALTER
 *		 SEQUENCE in an open transaction holds it), so that no wait on another
 *		 transaction happens while the slot holds anything;
 *	 A2. publish a lower bound b of the value nextval will return, marked
 *		 pending: the last value this backend took from that sequence, plus
 *		 one (the sequence's last value, read once per backend and sequence,
 *		 the first time); published with a full barrier (atomic exchange),
 *		 the database first;
 *	 A3. nextval: v >= b (if it fails, no value was taken: the slot is
 *		 cleared);
 *	 A4. publish v in place of b.
 * Later values of the same transaction are higher and need nothing: the slot
 * already holds them back.  The slot is cleared (atomic exchange, a full
 * barrier) from the transaction callback at commit or abort, which
 * PostgreSQL runs after the commit became visible to new snapshots, and
 * when the backend exits.
 *
 * Reader (es_read_horizon):
 *	 R1. read the sequence's last value M (under the sequence page's buffer
 *		 lock, as nextval writes it);
 *	 R2. scan the slots of its database: L = the lowest value found, where a
 *		 pending bound at or below M is waited for until the slot changes
 *		 (one nextval: A1 waited for everything else before A2);
 *	 R3. take the snapshot to read with;
 *	 and read up to min(M, L - 1).
 *
 * Why no position p <= min(M, L - 1) that will ever commit is missing from
 * the snapshot.  Let T be the transaction that took p and f its first value
 * (f <= p).  p <= M, so the nextval that returned p, and f's before it,
 * wrote the sequence page before R1 read it (the page's buffer lock orders
 * them; the sequence has CACHE 1 and only grows).  T published b <= f at A2
 * before that nextval, with a full barrier, and R1 and R2 are separated by
 * one too: so when R2 reads T's slot it holds b (pending, b <= f <= M: R2
 * waits until it changes) or f, unless T has ended.  If it ends up holding
 * f, L <= f <= p, a contradiction.  So T had ended before R2 read its slot:
 * T's commit was visible to new snapshots before that, and R3 comes after R2
 * (a slot found holding a later transaction's value or pending bound means
 * the same).  import_events takes a block of positions by setval after its
 * first one: the same argument holds.  Positions above M are not read.  The
 * bound is below every value nextval can return because the sequence only
 * grows: a setval or ALTER SEQUENCE RESTART below a value handed out breaks
 * the unique positions too.  A lookup keyed by sequence OID covers a store
 * recreated in the same session.
 *
 * Why the horizon never goes back (a client hands a horizon it was given,
 * read_query's consistency position, to a later append, which refuses an
 * "after" above its own horizon).  Let h1 = min(M1, L1 - 1) be returned by
 * one reader and a second reader scan later.  M2 >= M1.  A transaction
 * holding a value f <= h1 in a slot at the second scan took f at or below
 * M1, so by the argument above it had ended before the first reader's R2,
 * before the second scan: no slot holds it.  A slot can only show a value
 * below h1 while it is pending (a bound at A2), which readers wait out
 * instead of using.  So L2 - 1 >= h1 and h2 >= h1.  (Reading the bound
 * instead of waiting, the horizon dropped for the few microseconds of a
 * nextval to the appender's previous position: test/scripts/dcb_stress.sh
 * caught appends refused with 22023.)
 *
 * Registration belongs to the top-level transaction.  A subtransaction that
 * took the first position and was rolled back leaves the slot as it is: its
 * positions are gaps, and later ones stay held back.
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

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_sequence.h"
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
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "compat.h"
#include "eventstore.h"

typedef struct EsSlot
{
	Oid			dbid;
	pg_atomic_uint64 first[ES_NCOUNTERS];	/* 0 = none in flight */
} EsSlot;

typedef struct EsHorizonShared
{
	int			nslots;
	EsSlot		slots[FLEXIBLE_ARRAY_MEMBER];
} EsHorizonShared;

static EsHorizonShared *es_shared = NULL;

/* A slot's value published at A2, before its nextval returned (see es_horizon_scan). */
#define ES_PENDING (UINT64CONST(1) << 63)

/*
 * What this backend's transaction published of each counter (its first value,
 * or the bound before it), 0 if none.
 */
static int64 es_my_first[ES_NCOUNTERS];

/* The last value this backend took of each counter, and from which sequence. */
static struct
{
	Oid			seq;
	int64		value;
}			es_my_last[ES_NCOUNTERS];
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
	RequestAddinShmemSpace(es_head_shmem_size());	/* stream_head.c */
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
		es_shared->nslots = ES_MAX_BACKEND_SLOTS();
		for (int i = 0; i < es_shared->nslots; i++)
		{
			es_shared->slots[i].dbid = InvalidOid;
			for (int k = 0; k < ES_NCOUNTERS; k++)
				pg_atomic_init_u64(&es_shared->slots[i].first[k], 0);
		}
	}
	es_head_shmem_init();
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
 * The last value sequence seqoid handed out (0 before its first nextval),
 * read from its page under the page's buffer lock, which nextval holds
 * exclusively while it writes the value.  Only ACCESS SHARE on the sequence:
 * unlike nextval and pg_sequence_last_value, this does not wait for an
 * ALTER SEQUENCE in an open transaction.
 */
static int64
es_sequence_peek(Oid seqoid)
{
	Relation	seqrel = relation_open(seqoid, AccessShareLock);
	Buffer		buf = ReadBuffer(seqrel, 0);
	Page		page;
	ItemId		lp;
	HeapTupleData tuple;
	Form_pg_sequence_data seq;
	int64		last;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	lp = PageGetItemId(page, FirstOffsetNumber);
	if (PageGetMaxOffsetNumber(page) < FirstOffsetNumber || !ItemIdIsNormal(lp))
		elog(ERROR, "eventstore: sequence %u has no row", seqoid);
	tuple.t_data = (HeapTupleHeader) PageGetItem(page, lp);
	tuple.t_len = ItemIdGetLength(lp);
	seq = (Form_pg_sequence_data) GETSTRUCT(&tuple);
	last = seq->is_called ? seq->last_value : 0;
	UnlockReleaseBuffer(buf);
	relation_close(seqrel, AccessShareLock);
	return last;
}

/*
 * A value at or below the next one sequence seqoid hands out: the last one
 * this backend took from it, plus one; the sequence's last value the first
 * time (see the file header).
 */
static int64
es_next_bound(EsCounter kind, Oid seqoid)
{
	if (es_my_last[kind].seq != seqoid)
	{
		es_my_last[kind].value = es_sequence_peek(seqoid);
		es_my_last[kind].seq = seqoid;
	}
	return es_my_last[kind].value + 1;
}

/*
 * Take the next value of counter kind (from sequence seqoid) for the current
 * transaction, registering the transaction as in flight first if this is its
 * first value of that counter (A1-A4 of the file header).
 */
int64
es_allocate(EsCounter kind, Oid seqoid)
{
	int64		pos;

	if (es_my_first[kind] != 0)
		pos = nextval_internal(seqoid, false);
	else if (es_shared != NULL)
	{
		EsSlot	   *slot = es_my_slot();
		int64		bound;

		/* A1: waits for another transaction happen here, with nothing published */
		LockRelationOid(seqoid, RowExclusiveLock);
		bound = es_next_bound(kind, seqoid);

		/* A2: the bound, marked pending until A4 */
		slot->dbid = MyDatabaseId;
		pg_write_barrier();
		es_my_first[kind] = bound;
		(void) pg_atomic_exchange_u64(&slot->first[kind], (uint64) bound | ES_PENDING);

		/*
		 * A3.  If nextval fails, no value was taken: clear the slot, which
		 * readers would otherwise wait on to the transaction's end.
		 */
		PG_TRY();
		{
			pos = nextval_internal(seqoid, false);
		}
		PG_CATCH();
		{
			(void) pg_atomic_exchange_u64(&slot->first[kind], 0);
			es_my_first[kind] = 0;
			PG_RE_THROW();
		}
		PG_END_TRY();
		Assert(pos >= bound);
		pg_atomic_write_u64(&slot->first[kind], (uint64) pos);	/* A4 */
		es_my_first[kind] = pos;
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
		es_my_first[kind] = pos;
	}
	es_my_last[kind].seq = seqoid;
	es_my_last[kind].value = pos;
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
 * Scan the slots for the lowest value of counter kind in flight in database
 * dbid: false when there is none; else *lowest, the slot holding it, and
 * (when count is given) how many slots hold one.
 *
 * A slot marked ES_PENDING holds a bound published at A2 whose nextval has
 * not returned yet.  With wait_upto > 0 (a reader, R2) a pending bound at or
 * below wait_upto (R1's last value) is waited for until A4 replaces it with
 * the value taken, or the slot is cleared: using the bound itself would be
 * correct but could put the horizon below one returned before, which a
 * client may have been handed (read_query's consistency position) and must
 * never be refused.  Whatever the slot holds once it changed is used if it
 * is a value; a new pending bound belongs to a transaction that registered
 * after R1 and takes values above it.  The wait lasts one nextval (A1 took
 * the sequence's lock first; an error in nextval clears the slot).  Without
 * wait_upto (the status view) a pending bound counts as it is.
 */
static bool
es_horizon_scan(EsCounter kind, Oid dbid, int64 *lowest, int *slot, int *count, int64 wait_upto)
{
	bool		found = false;

	for (int i = 0; i < es_shared->nslots; i++)
	{
		pg_atomic_uint64 *first = &es_shared->slots[i].first[kind];
		uint64		v = pg_atomic_read_u64(first);

		if (v == 0)
			continue;
		pg_read_barrier();		/* the database was written before the value */
		if (es_shared->slots[i].dbid != dbid)
			continue;
		if ((v & ES_PENDING) && wait_upto > 0 && (int64) (v & ~ES_PENDING) <= wait_upto)
		{
			uint64		was = v;
			long		pause_us = 0;

			while ((v = pg_atomic_read_u64(first)) == was)
			{
				CHECK_FOR_INTERRUPTS();
				if (pause_us == 0)
					pg_spin_delay();
				else
					pg_usleep(pause_us);
				pause_us = pause_us == 0 ? 1 : Min(pause_us * 2, 1000);
			}
			if (v == 0 || (v & ES_PENDING))
				continue;
		}
		v &= ~ES_PENDING;
		if (count)
			(*count)++;
		if (!found || (int64) v < *lowest)
		{
			*lowest = (int64) v;
			*slot = i;
			found = true;
		}
	}
	return found;
}

/*
 * Refuse to compute a horizon from a sequence with a CACHE other than 1: a
 * backend hands out its cached values without writing the sequence's page,
 * so a value at or below the last value a reader read could be taken after
 * the reader looked (R1 in the file header, and the last value read without
 * preload).
 */
static void
es_check_sequence_cache(Oid seqoid)
{
	HeapTuple	tuple = SearchSysCache1(SEQRELID, ObjectIdGetDatum(seqoid));
	int64		cache;
	char	   *name;

	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "eventstore: cache lookup failed for sequence %u", seqoid);
	cache = ((Form_pg_sequence) GETSTRUCT(tuple))->seqcache;
	ReleaseSysCache(tuple);
	if (cache == 1)
		return;
	name = quote_qualified_identifier(get_namespace_name(get_rel_namespace(seqoid)),
									  get_rel_name(seqoid));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("sequence %s must have CACHE 1", name),
			 errdetail("Its CACHE is " INT64_FORMAT ": values a backend caches are handed out without passing the sequence's page, and the read horizon could let a reader past one still in flight.",
					   cache),
			 errhint("Run ALTER SEQUENCE %s CACHE 1.", name)));
}

/*
 * Compute the read horizon of counter kind in the current database and the
 * snapshot to read with: every value at or below the returned one that will
 * ever be visible is visible in *snapshot_out, and in any snapshot taken
 * later.  It is never above the counter's last value read before the
 * snapshot.  The caller must UnregisterSnapshot() the snapshot.
 *
 * The snapshot is always a fresh one, also in REPEATABLE READ: a tail reader
 * needs the horizon and the rows from the same instant.
 */
int64
es_read_horizon(EsCounter kind, Oid seqoid, Snapshot *snapshot_out)
{
	int64		horizon;

	if (RecoveryInProgress())
		return es_standby_horizon(kind, snapshot_out);
	es_check_sequence_cache(seqoid);

	if (es_shared != NULL)
	{
		int			slot;
		int64		lowest;

		horizon = es_sequence_peek(seqoid);	/* R1 */
		pg_memory_barrier();
		if (es_horizon_scan(kind, MyDatabaseId, &lowest, &slot, NULL, Max(horizon, 1)))	/* R2 */
			horizon = Min(horizon, lowest - 1);
		pg_memory_barrier();
		*snapshot_out = RegisterSnapshot(GetLatestSnapshot());	/* R3 */
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
 * the horizon (a statement of its own).  es_read_horizon is bounded by the
 * counter's last value read before its snapshot: a position above it could
 * commit behind it and be seen by a later snapshot before a lower one, but
 * every position at or below it is settled.  (Before 0.7.0, with preload,
 * es_read_horizon returned "no limit" when nothing was in flight, and this
 * function read the last value first.)
 */
int64
es_settled_horizon(EsCounter kind, Oid seqoid)
{
	Snapshot	snapshot;
	int64		horizon = es_read_horizon(kind, seqoid, &snapshot);

	UnregisterSnapshot(snapshot);
	return horizon;
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
	(void) es_horizon_scan(kind, dbid, first, slot, count, 0);
	return true;
}
