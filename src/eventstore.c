/*
 * eventstore.c
 *		Module entry point: PG_MODULE_MAGIC, _PG_init and the GUCs.
 *
 * Nothing else lives here.  Each subsystem has an init function that _PG_init
 * calls; shared memory is requested only when the library is loaded through
 * shared_preload_libraries, and everything that can work without it does.
 */
#include "postgres.h"

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

void		_PG_init(void);

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

	MarkGUCPrefixReserved("eventstore");

	es_horizon_init();
	es_projection_init();
}
