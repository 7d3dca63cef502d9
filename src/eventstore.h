/*
 * eventstore.h
 *		Declarations shared between the files of the eventstore extension.
 *
 * Each .c file owns one concern; this header names what they export to each
 * other: the GUC variables, the per-subsystem init functions called from
 * _PG_init, and the SQLSTATEs a client may branch on.
 */
#ifndef EVENTSTORE_H
#define EVENTSTORE_H

#include "postgres.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "storage/lock.h"
#include "access/htup.h"
#include "access/xact.h"
#include "access/tupdesc.h"
#include "executor/tuptable.h"
#include "utils/snapshot.h"
#include "portability/instr_time.h"
#include "utils/jsonb.h"
#include "utils/acl.h"

/*
 * SQLSTATEs of our own, in class "ES" which PostgreSQL does not use.  Every
 * one is documented in the README's reference section.
 */
#define ERRCODE_ES_WRONG_EXPECTED_VERSION	MAKE_SQLSTATE('E','S','4','0','9')
#define ERRCODE_ES_PREPARE_NOT_SUPPORTED	MAKE_SQLSTATE('E','S','0','0','1')
#define ERRCODE_ES_IMMUTABLE				MAKE_SQLSTATE('E','S','0','0','2')
#define ERRCODE_ES_CONDITION_FAILED		MAKE_SQLSTATE('E','S','4','1','2')
#define ERRCODE_ES_STREAM_DELETED		MAKE_SQLSTATE('E','S','4','1','0')

/* Longest stream id accepted, in bytes (keeps the btree keys well in bounds). */
#define ES_MAX_STREAM_ID_BYTES	1024

/*
 * field4 of the advisory lock tags we take, so they never collide with the
 * application's own pg_advisory_lock keys (which use 1 and 2).
 */
#define ES_LOCKTAG_STREAM		17747	/* one stream's append lock */
#define ES_LOCKTAG_LOG			17748	/* "an append is in flight" (no preload) */
#define ES_LOCKTAG_RELAY		17749	/* one relay pass at a time per database */
#define ES_LOCKTAG_DCB			17750	/* a consistency-boundary key (dcb.c) */

/* GUCs (eventstore.c) */
extern int	es_max_event_size;
extern char *es_correlation_id;
extern char *es_causation_id;
extern int	es_max_projection_depth;
extern int	es_relay_naptime;
extern int	es_relay_batch_size;
extern bool es_relay_purge;
extern int	es_purge_batch_size;
extern int	es_purge_delay;
extern int	es_outbox_retention;
extern char *es_relay_databases;

/*
 * catalog.c: stores (tables of type eventstore.event_store), checked and
 * cached per backend with the statements prepared on them.  Each statement
 * a module prepares on a store has a slot here.
 */
typedef enum EsPlanSlot
{
	ES_PLAN_READ,				/* read.c: [kind][upcast] */
	ES_PLAN_READ_LAST = ES_PLAN_READ + 7,
	ES_PLAN_FOLD,				/* aggregate.c: a stream's events to fold, [upcast] */
	ES_PLAN_FOLD_LAST = ES_PLAN_FOLD + 1,
	ES_PLAN_VERSION_AT,			/* aggregate.c: a stream's version at a time */
	ES_PLAN_HAS_VERSION,		/* aggregate.c: does a stream have a version */
	ES_PLAN_OUTBOX_EVENT,		/* outbox.c: _outbox_event() */
	ES_PLAN_STREAM_VERSION,		/* read.c: stream_version() */
	ES_PLAN_READ_LIFECYCLE,		/* read.c: [kind][upcast] with the lifecycle filter */
	ES_PLAN_READ_LIFECYCLE_LAST = ES_PLAN_READ_LIFECYCLE + 7,
	ES_PLAN_SUB_SCAN,			/* subscription.c: poll's scan of the log, [lifecycle] */
	ES_PLAN_SUB_SCAN_LAST = ES_PLAN_SUB_SCAN + 1,
	ES_PLAN_SUB_REPLAY,			/* subscription.c: poll's replayed parked events, [lifecycle] */
	ES_PLAN_SUB_REPLAY_LAST = ES_PLAN_SUB_REPLAY + 1,
	ES_PLAN_SUB_EVENTS,			/* subscription.c: _subscription_events() */
	ES_PLAN_CITUS_SHARD = 47,	/* citus.c: the shard of a stream, locked (last slots) */
	ES_PLAN_CITUS_PLACEMENT,	/* citus.c: is that shard placed here */
	ES_NPLANS
} EsPlanSlot;

/* The columns of a store (the attributes of eventstore.event_store). */
typedef enum EsColumn
{
	ES_COL_POSITION,			/* global_position */
	ES_COL_STREAM,				/* stream_id */
	ES_COL_VERSION,				/* stream_version */
	ES_COL_ID,					/* event_id */
	ES_COL_TYPE,				/* event_type */
	ES_COL_DATA,				/* data */
	ES_COL_METADATA,			/* metadata */
	ES_COL_CREATED_AT,			/* created_at */
	ES_COL_TAGS,				/* tags (0.5.0 on; InvalidAttrNumber before) */
	ES_NCOLS
} EsColumn;

typedef struct EsStore
{
	Oid			relid;			/* hash key: the table */
	TransactionId rel_xmin;		/* of its pg_class row: tells a table from one recreated under its OID */
	bool		valid;			/* checked since the table last changed */
	bool		is_default;		/* eventstore.events */
	bool		has_tags;		/* the tags column (0.5.0 on) */
	bool		distributed;	/* a Citus distributed table (citus.c) */
	Oid			shard_of;		/* a Citus shard of this store, appended to locally */
	Oid			owner;			/* appends insert as this role */
	Oid			nspid;
	Oid			version_index;	/* unique (stream_id, stream_version) */
	Oid			event_id_index; /* unique (stream_id, event_id) */
	Oid			tags_index;		/* GIN on tags for direct scans (dcb.c), or invalid */
	AttrNumber	attnum[ES_NCOLS];	/* the table's attribute number of each column */
	char	   *name;			/* schema-qualified and quoted, for SQL text and messages */
	SPIPlanPtr	plans[ES_NPLANS];
	Oid			acl_user;		/* privileges below were checked for this role */
	bool		acl_usage;		/* USAGE on the schema */
	AclMode		acl_granted;	/* of ACL_SELECT | ACL_INSERT */
	/* lifecycle.c: has it lifecycle rows or keys (forgotten with the entry's invalidation) */
	bool		lifecycle_known;
	bool		lifecycle_active;
} EsStore;

extern EsStore *es_store(Oid relid);
extern EsStore *es_store_entry(Oid relid);
extern EsStore *es_default_store(void);
extern EsStore *es_store_arg(FunctionCallInfo fcinfo, int argno, AclMode required);
extern void es_store_check(EsStore *st, AclMode required);
extern SPIPlanPtr es_store_plan(EsStore *st, EsPlanSlot slot, const char *sql, int nargs,
								Oid *argtypes, int cursor_options);
extern Oid	es_store_type(void);
extern EsStore *es_store_shard(Oid shard, EsStore *parent);
extern void es_catalog_xact(XactEvent event);

/* citus.c: stores distributed with Citus */
extern bool es_citus_distributed(Oid relid);
extern EsStore *es_citus_shard(EsStore *st, Datum stream_id);
extern char *es_store_local_sql(EsStore *st, const char *what, const char *hint);

#define ES_CITUS_LOG_HINT \
	"Read each node's log on that node: eventstore.read_node(), read_all, read_category or read_query on each worker, keeping one checkpoint per node; positions are ordered within a node only."

#define ES_CITUS_SUBSCRIPTION_HINT \
	"Create the subscription on every worker with SELECT run_command_on_workers($$SELECT eventstore.create_subscription(...)$$) and poll each worker: a subscription on a cluster is consumed per node."

/* horizon.c: in-flight counters (positions, outbox ids) and read horizons */
typedef enum EsCounter
{
	ES_COUNTER_POSITION,		/* eventstore.events.global_position */
	ES_COUNTER_OUTBOX,			/* eventstore.outbox.id */
	ES_NCOUNTERS
} EsCounter;

extern void es_horizon_init(void);
extern void es_horizon_xact(XactEvent event);
extern bool es_horizon_shmem_ready(void);
extern int64 es_allocate(EsCounter kind, Oid seqoid);
extern int64 es_read_horizon(EsCounter kind, Oid seqoid, Snapshot *snapshot_out);
extern int64 es_settled_horizon(EsCounter kind, Oid seqoid);
extern bool es_horizon_oldest(EsCounter kind, Oid dbid, int64 *first, int *slot, int *count);
extern int64 es_sequence_last_value(Oid seqoid);

/* append.c */
extern void es_check_stream_id(text *stream_id);
extern text *es_stream_id_arg(FunctionCallInfo fcinfo, int argno);
extern bool es_lock_stream(EsStore *st, text *stream_id, bool nowait);
extern int64 es_current_version(EsStore *st, Datum stream_id, TimestampTz *last_time);

/* stream_head.c: the shared cache of stream heads */
extern bool es_head_appending;
extern void es_head_init(void);
extern Size es_head_shmem_size(void);
extern void es_head_shmem_init(void);
extern bool es_head_get(EsStore *st, text *sid, int64 *version, TimestampTz *last_time);
extern void es_head_put(EsStore *st, text *sid, int64 version, TimestampTz last_time,
						uint64 generation);
extern uint64 es_head_generation(void);
extern void es_head_invalidate(bool at_commit);
extern void es_head_xact(XactEvent event);
typedef struct EsInserter EsInserter;
extern EsInserter *es_inserter_begin(EsStore *st, bool bulk, const char *what);
extern TupleTableSlot *es_inserter_slot(EsInserter *ins);
extern TupleTableSlot *es_inserter_put(EsInserter *ins);
extern void es_inserter_flush(EsInserter *ins);
extern void es_inserter_end(EsInserter *ins);

/* lifecycle.c: stream metadata, deletion, purge */
extern Oid	es_purging;
extern bool es_lifecycle_active(Oid store, Snapshot snapshot);
extern bool es_lifecycle_active_cached(Oid store);
typedef struct EsVisibleCache EsVisibleCache;
extern bool es_lifecycle_visible(EsVisibleCache **cachep, MemoryContext cxt, EsStore *st, text *sid,
								 int64 version, TimestampTz created_at);
extern Oid	es_lifecycle_visible_store(EsVisibleCache *cache);
extern bool es_lifecycle_append_check(EsStore *st, Datum stream_id, int64 *current);
extern int64 es_lifecycle_version_floor(EsStore *st, text *stream_id);
extern int64 es_lifecycle_import_floor(EsStore *st, text *stream_id, Snapshot snapshot,
									   bool *tombstone);
extern void es_lifecycle_forget_derived(EsStore *st, text *stream_id);
extern void es_lifecycle_require_acl(EsStore *st);
extern void es_lifecycle_switch_store(EsStore *st);
extern void es_lifecycle_forget_snapshots(EsStore *st, const char *needle);
extern void es_lifecycle_log_forget(EsStore *st, text *subject, text *reason);

/* read.c: the read SQL (upcasting; the lifecycle read: hidden events skipped, data decrypted) */
extern void es_read_sql_parts(EsStore *st, bool upcast, bool lifecycle,
							  const char **cols, const char **from, const char **filter);
extern char *es_lifecycle_row_sql(EsStore *st);
extern char *es_lifecycle_filter_sql(EsStore *st);

/* shred.c: crypto-shredding */
extern bool es_shred_active(Oid store, Snapshot snapshot);
extern Datum es_shred_seal(Oid store, Jsonb *value);

/* dcb.c: tags, queries, conditional appends (limits documented in the README) */
#define ES_DCB_MAX_TAGS			64		/* tags per event, and per query item */
#define ES_DCB_MAX_TAG_BYTES	256		/* bytes per tag (and per string of a query) */
#define ES_DCB_MAX_ITEMS		100		/* items per query */
#define ES_DCB_MAX_ITEM_TYPES	100		/* types per query item */
#define ES_DCB_MAX_KEYS			64		/* fine lock keys per role before falling back */

typedef struct EsDcbItem
{
	int			ntypes;			/* 0: any type */
	char	  **types;
	int			ntags;			/* 0: any tags */
	char	  **tags;
} EsDcbItem;

typedef struct EsDcbQuery
{
	int			nitems;			/* 0: every event */
	EsDcbItem  *items;
} EsDcbQuery;

typedef struct EsDcbCondition
{
	EsDcbQuery *query;
	bool		has_after;
	int64		after;			/* 0 when not given: no match at all */
} EsDcbCondition;

extern Datum es_dcb_tags(Datum arr, bool isnull, int ordinal);
extern EsDcbQuery *es_dcb_parse_query(Jsonb *query);
extern EsDcbCondition *es_dcb_parse_condition(Jsonb *cond);
extern int	es_dcb_lock(EsStore *st, Datum *types, Datum *tags, int n, EsDcbCondition *cond);
extern void es_dcb_check_after(EsDcbCondition *cond);
extern void es_dcb_check(EsStore *st, EsDcbCondition *cond, Datum stream_id);
extern bool es_dcb_is_tags_index(Oid indexoid, AttrNumber tags_att);

/* projection.c: synchronous projections and the C hook */
extern void es_projection_init(void);
extern bool es_projections_wanted(EsStore *st, Datum *event_types, int n);
extern void es_projections_dispatch(EsStore *st, HeapTuple *rows, uint64 nrows, TupleDesc desc);

/* outbox.c: routes, outbox rows, enqueue */
extern void es_outbox_init(void);
extern void es_outbox_route(EsStore *st, Datum stream_id, Datum *event_types, int64 *positions, int n);
extern text *es_channel_arg(FunctionCallInfo fcinfo, int argno);
extern EsStore *es_outbox_reader_store(Oid relid);
extern bool es_in_list(char **list, int n, const char *s, int len);

/* subscription.c: wake-ups of subscriptions' listeners */
extern void es_subscription_init(void);
extern void es_subscriptions_wake(EsStore *st, Datum stream_id, Datum *event_types, int64 *positions, int n);
extern int	es_wake_slot(const char *name, int len);
extern bool es_subscriptions_wake_pass(void);
extern bool es_subscriptions_fire(int64 horizon, int64 *woken_to);
extern int	es_subscriptions_wake_since(int64 after, int64 *woken_to, Datum **names, Datum **afters);
extern char es_subscription_partition_by(text *partition_by);
extern int	es_subscription_partition(char partition_by, int partitions, int64 pos, Datum stream,
									  Datum metadata, bool metadata_null);
extern SPIPlanPtr es_subscription_events_plan(EsStore *st);

/* subscription_lease.c: the common path of poll's lease step and of ack_many */
#define ES_TAKE_NCOLS 13		/* the columns of eventstore._subscription_take */
extern bool es_take_fast(Datum name, bool name_null, Datum consumer, bool consumer_null, int32 max_count,
						 bool max_count_null, Oid caller, Datum *v, bool *n);
extern bool es_ack_many_fast(Datum name, bool name_null, Datum consumer, bool consumer_null, Datum positions,
							 bool positions_null, Oid caller);

/* relay.c: one relay pass; relay_worker.c: the background workers */
extern int	es_relay_pass(int max_count, bool prune);
extern void es_relay_worker_init(void);
extern void es_relay_xact(XactEvent event);
extern void es_relay_wakeup_at_commit(void);
extern void es_relay_wake_position(int slot, int64 lo, int64 hi);
extern uint64 es_relay_wake_slots(int64 horizon, int64 *woken_to);
extern bool es_relay_wake_pending(int64 horizon);
extern bool es_relay_outbox_woken(bool clear);
extern int64 es_relay_log_horizon;
extern void es_relay_report(int published, const char *error);

/* registry.c: shared by the registries (projections, routes, upcasters, snapshot policies) */
typedef struct EsRegistry EsRegistry;
struct EsRegistry
{
	const char *relname;		/* table in schema eventstore */
	const char *query;			/* SELECT that reads it */
	/* an older schema's table lacks column since_column: query_before then */
	const char *since_column;
	const char *query_before;
	/* build the cache from rows (NULL: no table) in cxt */
	void		(*fill) (EsRegistry *reg, SPITupleTable *rows, MemoryContext cxt);
	void	   *cache;			/* what fill built */
	bool		valid;
	Oid			relid;
	MemoryContext cxt;
	int			pins;			/* uses in progress (es_registry_pin) */
	List	   *retired;		/* contexts replaced while pinned */
};

/*
 * A registered handler as a cache holds it: resolved from its stored name
 * and checked when the cache is filled; usable only when fn is valid.  It
 * runs as owner, the role that owned it when it was registered.
 */
typedef struct EsHandler
{
	char	   *name;			/* as stored */
	Oid			fn;				/* InvalidOid: missing, or refused (problem) */
	Oid			owner;			/* the role it runs as */
	char	   *problem;		/* why a function of that name is refused */
	int			problem_code;	/* SQLSTATE to report it with */
	FmgrInfo	flinfo;
} EsHandler;

extern void es_registry_init(EsRegistry *reg);
extern void es_registry_load(EsRegistry *reg);
extern void *es_registry_pin(EsRegistry *reg);
extern void es_registry_unpin(EsRegistry *reg);
extern text *es_name_arg(FunctionCallInfo fcinfo, int argno, const char *what);
extern Datum es_text_list_arg(FunctionCallInfo fcinfo, int argno, const char *what);
extern uint64 es_registry_write(const char *sql, int nargs, Oid *argtypes,
								Datum *values, const char *nulls);
extern int	es_copy_text_array(Datum arr, bool isnull, MemoryContext cxt, char ***out);
extern char *es_check_function(Oid fn, const char *what, int nargs, const Oid *argtypes, Oid rettype);
extern void es_check_callable(Oid fn, const char *what, int nargs, const Oid *argtypes, Oid rettype);
extern Oid	es_function_owner(Oid fn);
extern void es_handler_resolve(EsHandler *h, const char *name, Datum fn, bool fn_null, Oid owner,
							   int nargs, const Oid *argtypes, Oid rettype, MemoryContext cxt);
extern void es_handler_require(EsHandler *h, const char *what, const char *of, const char *hint);
extern Datum es_call_as(Oid owner, FunctionCallInfo fcinfo);
extern void es_registry_store_check(Oid relid, const char *what);
extern EsStore *es_registry_store_arg(FunctionCallInfo fcinfo, int argno, const char *what);

/* upcast.c: upcasters applied to events as they are read */
extern void es_upcast_init(void);
extern bool es_upcasting(EsStore *st);
extern const char *es_upcast_sql(EsStore *st, const char *row);
extern Datum es_upcast_row(EsStore *st, Datum row);

/* aggregate.c: snapshots, folding, snapshot policies */
extern void es_aggregate_init(void);
extern void es_snapshot_after_append(EsStore *st, Datum stream_id, int64 old_version, int64 new_version);
extern char *es_snapshots_of_store(EsStore *st, int param);

/* catalog.c: OIDs of the extension's own objects, cached per backend */
extern Oid	es_schema_oid(void);
extern Oid	es_events_relid(void);
extern Oid	es_position_seqid(void);
extern Oid	es_version_index(void);
extern Oid	es_outbox_seqid(void);
extern Oid	es_event_id_index(void);
extern Oid	es_events_owner(void);
extern bool es_events_have_tags(void);

/*
 * stats.c: counters in shared memory for the statistics views (preload
 * only; every call is a no-op without it or with eventstore.stats off).
 */
typedef enum EsStatTimer
{
	ES_TIMER_PROJECTION,		/* projection handlers */
	ES_TIMER_UPCASTER,			/* upcasters */
	ES_TIMER_POLICY,			/* snapshot policies (fold and write) */
	ES_NTIMERS
} EsStatTimer;

extern bool es_stats_on;
extern int	es_stats_max_categories;
extern void es_stats_init(void);
extern void es_stats_xact(XactEvent event);
extern void es_stats_append(EsStore *st, Datum stream_id, int n, int64 bytes);
extern void es_stats_conflict(EsStore *st, Datum stream_id);
extern void es_stats_retry(EsStore *st, Datum stream_id);
extern void es_stats_dispatch(EsStore *st, Datum stream_id, HeapTuple *rows, uint64 nrows, TupleDesc desc);
extern instr_time es_stats_start(void);
extern void es_stats_timed(EsStatTimer timer, instr_time start);
extern void es_stats_projection(const char *name, instr_time start);

/* consumer.c: run an owner-only SQL body with the caller's role (also subscription.c) */
extern void es_consumer_call(FunctionCallInfo fcinfo, SPIPlanPtr *plan, const char *sql,
							 const Oid *argtypes, bool set, bool read_only);

#endif							/* EVENTSTORE_H */
