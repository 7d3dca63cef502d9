/*
 * eventstore.c
 *		Module entry point: PG_MODULE_MAGIC, _PG_init and the GUCs.
 *
 * Nothing else lives here.  Each subsystem has an init function that _PG_init
 * calls; shared memory is requested only when the library is loaded through
 * shared_preload_libraries, and everything that can work without it does.
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "compat.h"
#include "eventstore.h"

PG_MODULE_MAGIC;

int			es_max_event_size = 1024 * 1024;
char	   *es_correlation_id = NULL;
char	   *es_causation_id = NULL;
int			es_max_projection_depth = 16;
int			es_relay_naptime = 1000;
int			es_relay_batch_size = 1000;
bool		es_relay_purge = true;
int			es_purge_batch_size = 500;
int			es_purge_delay = 200;
int			es_outbox_retention = 86400;
char	   *es_relay_databases = NULL;

void		_PG_init(void);

/*
 * The one transaction callback, so the order is ours to say: the in-flight
 * counters are released before the relay worker is woken, or the worker
 * could look, still see this transaction's outbox ids in flight, and sleep.
 */
static void
es_xact_callback(XactEvent event, void *arg)
{
	(void) arg;
	es_horizon_xact(event);
	es_catalog_xact(event);
	es_relay_xact(event);
	es_stats_xact(event);
	es_head_xact(event);
}

void
_PG_init(void)
{
	DefineCustomIntVariable("eventstore.max_event_size",
							"Largest event accepted by append, in bytes (type, data and metadata).",
							NULL,
							&es_max_event_size,
							1024 * 1024,
							1024,
							MaxAllocSize / 2,
							PGC_SUSET,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomStringVariable("eventstore.correlation_id",
							   "Added to the metadata of each appended event under \"correlation_id\", unless the event sets it.",
							   NULL,
							   &es_correlation_id,
							   "",
							   PGC_USERSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("eventstore.causation_id",
							   "Added to the metadata of each appended event under \"causation_id\", unless the event sets it.",
							   NULL,
							   &es_causation_id,
							   "",
							   PGC_USERSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("eventstore.max_projection_depth",
							"How deeply projection handlers may nest appends.",
							"A handler that appends runs the projections of what it appended; past this depth the append fails.",
							&es_max_projection_depth,
							16,
							1,
							1000,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("eventstore.relay_naptime",
							"Longest time the relay worker sleeps when nobody wakes it.",
							"Commits that write outbox rows wake it at once; this is the fallback poll.",
							&es_relay_naptime,
							1000,
							10,
							3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("eventstore.relay_batch_size",
							"Most outbox rows the relay publishes in one transaction.",
							NULL,
							&es_relay_batch_size,
							1000,
							1,
							100000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("eventstore.relay_purge",
							 "Whether the relay worker purges what the lifecycle hides, for every store with lifecycle rows.",
							 NULL,
							 &es_relay_purge,
							 true,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("eventstore.purge_batch_size",
							"Most events the relay worker's purge deletes in one transaction (one batch).",
							NULL,
							&es_purge_batch_size,
							500,
							1,
							100000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("eventstore.purge_delay",
							"How long the relay worker's purge sleeps between batches while there is more to purge.",
							NULL,
							&es_purge_delay,
							200,
							0,
							3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("eventstore.outbox_retention",
							"How long published outbox rows are kept once every consumer has acknowledged them; -1 keeps them.",
							NULL,
							&es_outbox_retention,
							86400,
							-1,
							INT_MAX,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomStringVariable("eventstore.relay_databases",
							   "Databases the relay serves, comma-separated; empty serves every database with the extension.",
							   NULL,
							   &es_relay_databases,
							   "",
							   PGC_SIGHUP,
							   GUC_LIST_INPUT,
							   NULL, NULL, NULL);

	es_stats_init();			/* defines GUCs: before the prefix is reserved */
	MarkGUCPrefixReserved("eventstore");

	RegisterXactCallback(es_xact_callback, NULL);
	es_horizon_init();
	es_head_init();
	es_projection_init();
	es_outbox_init();
	es_subscription_init();
	es_relay_worker_init();
	es_upcast_init();
	es_aggregate_init();
}
