/*
 * es_hook_test.c
 *		A test module for eventstore's C hook.
 *
 * _PG_init chains onto eventstore_event_appended_hook through the rendezvous
 * variable, as eventstore_hooks.h describes.  The hook counts the events it
 * sees in a backend-local counter (es_hook_test_count()), remembers the last
 * one and the store it went to (es_hook_test_last()), and raises an error for an event of type
 * 'HookVeto', which must abort the append.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "eventstore_hooks.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(es_hook_test_count);
PG_FUNCTION_INFO_V1(es_hook_test_last);
PG_FUNCTION_INFO_V1(es_hook_test_reset);

void		_PG_init(void);

static eventstore_event_appended_hook_type prev_hook = NULL;
static int64 seen_count = 0;
static char last_event[256] = "";

/* The attribute number of column name in desc, or error. */
static int
attnum_of(TupleDesc desc, const char *name)
{
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return i + 1;
	}
	elog(ERROR, "es_hook_test: the event has no column \"%s\"", name);
	return 0;					/* keep the compiler quiet */
}

static void
es_hook_test_hook(Oid store, HeapTuple event, TupleDesc desc)
{
	bool		isnull;
	char	   *stream_id;
	int64		version;
	char	   *event_type;

	if (prev_hook)
		prev_hook(store, event, desc);

	stream_id = TextDatumGetCString(heap_getattr(event, attnum_of(desc, "stream_id"), desc, &isnull));
	version = DatumGetInt64(heap_getattr(event, attnum_of(desc, "stream_version"), desc, &isnull));
	event_type = TextDatumGetCString(heap_getattr(event, attnum_of(desc, "event_type"), desc, &isnull));

	seen_count++;
	snprintf(last_event, sizeof(last_event), "%s v" INT64_FORMAT " %s in %s",
			 stream_id, version, event_type,
			 psprintf("%s.%s", get_namespace_name(get_rel_namespace(store)), get_rel_name(store)));

	if (strcmp(event_type, "HookVeto") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("es_hook_test: event %s of stream %s vetoed by the C hook",
						event_type, stream_id)));
}

void
_PG_init(void)
{
	eventstore_event_appended_hook_type *hook = (eventstore_event_appended_hook_type *)
		find_rendezvous_variable(EVENTSTORE_HOOK_RENDEZVOUS);

	prev_hook = *hook;
	*hook = es_hook_test_hook;
}

Datum
es_hook_test_count(PG_FUNCTION_ARGS)
{
	(void) fcinfo;
	PG_RETURN_INT64(seen_count);
}

Datum
es_hook_test_last(PG_FUNCTION_ARGS)
{
	(void) fcinfo;
	PG_RETURN_TEXT_P(cstring_to_text(last_event));
}

Datum
es_hook_test_reset(PG_FUNCTION_ARGS)
{
	(void) fcinfo;
	seen_count = 0;
	last_event[0] = '\0';
	PG_RETURN_VOID();
}
