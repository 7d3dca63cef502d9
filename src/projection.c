/*
 * projection.c
 *		Synchronous projections: handlers called inside the appending
 *		transaction for every stored event, and the C hook for other
 *		extensions.
 *
 * The registry is the table eventstore.projections.  Each backend caches the
 * enabled projections, with a ready FmgrInfo per handler, so dispatching an
 * event plans no SQL.  The registry trigger (catalog.c) sends a relcache
 * invalidation for the table; the backend that changed it refreshes at its
 * next command, other backends at their next transaction.
 *
 * Handlers run with the privileges of the appending user (like triggers, the
 * EXECUTE privilege was checked when the projection was registered, by its
 * owner).  An error in a handler aborts the append and everything it did.
 * A handler may append; eventstore.max_projection_depth bounds the nesting.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "compat.h"
#include "eventstore.h"
#include "eventstore_hooks.h"

PG_FUNCTION_INFO_V1(eventstore_check_handler);
PG_FUNCTION_INFO_V1(eventstore_rebuild_projection);

typedef struct EsProjection
{
	char	   *name;
	FmgrInfo	handler;
	int			ntypes;			/* -1: every event type */
	char	  **types;
} EsProjection;

static MemoryContext es_proj_cxt = NULL;
static EsProjection *es_projections = NULL;
static int	es_nprojections = 0;
static bool es_proj_valid = false;
static Oid	es_proj_relid = InvalidOid;
static int	es_proj_depth = 0;

static eventstore_event_appended_hook_type *es_hook_slot = NULL;

static void
es_projections_reset(Datum arg, Oid relid)
{
	(void) arg;
	/* Before the table exists (0.1.0 schema) any invalidation may be its creation. */
	if (!OidIsValid(relid) || !OidIsValid(es_proj_relid) || relid == es_proj_relid)
		es_proj_valid = false;
}

void
es_projection_init(void)
{
	es_hook_slot = (eventstore_event_appended_hook_type *)
		find_rendezvous_variable(EVENTSTORE_HOOK_RENDEZVOUS);
	CacheRegisterRelcacheCallback(es_projections_reset, (Datum) 0);
}

/* Copy a text[] of event types into cxt; -1 for NULL (every type). */
static int
es_copy_types(Datum arr, bool isnull, MemoryContext cxt, char ***out)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (isnull)
		return -1;
	deconstruct_array(DatumGetArrayTypeP(arr), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	*out = MemoryContextAlloc(cxt, sizeof(char *) * Max(n, 1));
	for (int i = 0; i < n; i++)
		(*out)[i] = nulls[i] ? NULL : MemoryContextStrdup(cxt, TextDatumGetCString(elems[i]));
	return n;
}

/* Load the enabled projections, in name order, into the backend cache. */
static void
es_projections_load(void)
{
	Oid			save_userid;
	int			save_sec;

	if (es_proj_valid)
		return;

	if (es_proj_cxt == NULL)
		es_proj_cxt = AllocSetContextCreate(TopMemoryContext, "eventstore projections",
											ALLOCSET_SMALL_SIZES);
	MemoryContextReset(es_proj_cxt);
	es_projections = NULL;
	es_nprojections = 0;
	es_proj_relid = get_relname_relid("projections", es_schema_oid());
	if (!OidIsValid(es_proj_relid))
	{
		/* Schema older than 0.2.0: no projections. */
		es_proj_valid = true;
		return;
	}

	/* The registry is read as the extension's owner. */
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(es_events_owner(), save_sec | SECURITY_LOCAL_USERID_CHANGE);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "eventstore: SPI_connect failed");
	if (SPI_execute("SELECT p.name, p.handler::pg_catalog.regprocedure::pg_catalog.oid, p.event_types"
					" FROM eventstore.projections p WHERE p.enabled"
					" ORDER BY p.name COLLATE \"C\"", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "eventstore: reading eventstore.projections failed");

	es_projections = MemoryContextAllocZero(es_proj_cxt,
											sizeof(EsProjection) * Max(SPI_processed, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		EsProjection *p = &es_projections[i];
		bool		isnull;
		Datum		types;

		p->name = MemoryContextStrdup(es_proj_cxt, TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull)));
		fmgr_info_cxt(DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull)),
					  &p->handler, es_proj_cxt);
		types = SPI_getbinval(tup, desc, 3, &isnull);
		p->ntypes = es_copy_types(types, isnull, es_proj_cxt, &p->types);
	}
	es_nprojections = (int) SPI_processed;
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec);
	es_proj_valid = true;
}

/* True when anything (a projection or the C hook) wants appended rows. */
bool
es_projections_wanted(void)
{
	if (es_hook_slot != NULL && *es_hook_slot != NULL)
		return true;
	es_projections_load();
	return es_nprojections > 0;
}

static bool
es_type_matches(EsProjection *p, const char *type)
{
	if (p->ntypes < 0)
		return true;
	for (int i = 0; i < p->ntypes; i++)
		if (p->types[i] != NULL && strcmp(p->types[i], type) == 0)
			return true;
	return false;
}

/*
 * Call the hook and every matching projection for each row, in order.  rows
 * are rows of eventstore.events as returned by INSERT ... RETURNING *.
 */
void
es_projections_dispatch(HeapTuple *rows, uint64 nrows, TupleDesc desc)
{
	Oid			rowtype = get_rel_type_id(es_events_relid());
	TupleDesc	reldesc = lookup_rowtype_tupdesc(rowtype, -1);
	int			natts = reldesc->natts;
	int			type_att = SPI_fnumber(desc, "event_type");

	ReleaseTupleDesc(reldesc);
	if (natts != desc->natts)
		elog(ERROR, "eventstore: events row has %d columns, expected %d", desc->natts, natts);

	if (es_proj_depth >= es_max_projection_depth)
		ereport(ERROR,
				(errcode(ERRCODE_STATEMENT_TOO_COMPLEX),
				 errmsg("projections nested too deeply: %d levels", es_proj_depth),
				 errdetail("A projection handler appended events whose projections appended events, and so on."),
				 errhint("Check the projections for a cycle, or raise eventstore.max_projection_depth.")));

	es_proj_depth++;
	PG_TRY();
	{
		for (uint64 r = 0; r < nrows; r++)
		{
			HeapTuple	tup = rows[r];
			bool		isnull;
			char	   *type;
			Datum		row;

			if (es_hook_slot != NULL && *es_hook_slot != NULL)
				(*es_hook_slot) (tup, desc);

			es_projections_load();
			if (es_nprojections == 0)
				continue;

			type = TextDatumGetCString(heap_getattr(tup, type_att, desc, &isnull));
			row = heap_copy_tuple_as_datum(tup, desc);
			HeapTupleHeaderSetTypeId(DatumGetHeapTupleHeader(row), rowtype);
			HeapTupleHeaderSetTypMod(DatumGetHeapTupleHeader(row), -1);

			/*
			 * A handler may change the registry (and so the cache) under us:
			 * walk by index and reload between calls.
			 */
			for (int i = 0; i < es_nprojections; i++)
			{
				EsProjection *p = &es_projections[i];

				if (!es_type_matches(p, type))
					continue;
				(void) FunctionCall1Coll(&p->handler, InvalidOid, row);
				es_projections_load();
			}
			pfree(type);
		}
	}
	PG_FINALLY();
	{
		es_proj_depth--;
	}
	PG_END_TRY();
}

/*
 * eventstore._check_handler(fn regprocedure, nargs int): validate a handler
 * at registration.  nargs 1: one argument of type eventstore.events; nargs
 * 0: a reset handler without arguments.  The caller must own the function
 * (or be superuser) and be allowed to execute it.
 */
Datum
eventstore_check_handler(PG_FUNCTION_ARGS)
{
	Oid			fn = PG_GETARG_OID(0);
	int			nargs = PG_GETARG_INT32(1);
	HeapTuple	tup;
	Form_pg_proc proc;
	Oid			rowtype = get_rel_type_id(es_events_relid());
	char	   *fname;

	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function with OID %u does not exist", fn)));
	proc = (Form_pg_proc) GETSTRUCT(tup);
	fname = format_procedure(fn);

	if (proc->prokind != PROKIND_FUNCTION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s is not a function", fname)));
	if (proc->proretset)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
				 errmsg("handler %s must not return a set", fname)));
	if (nargs == 1 && (proc->pronargs != 1 || proc->proargtypes.values[0] != rowtype))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
				 errmsg("projection handler %s must take exactly one argument of type eventstore.events",
						fname)));
	if (nargs == 0 && proc->pronargs != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
				 errmsg("reset handler %s must take no arguments", fname)));
	if (!es_proc_ownercheck(fn))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of function %s to register it", fname)));
	if (es_proc_aclcheck(fn) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for function %s", fname)));
	ReleaseSysCache(tup);
	PG_RETURN_VOID();
}

/*
 * eventstore.rebuild_projection(name) RETURNS bigint: reset, then replay the
 * whole log through the handler.  Appends wait for the rebuild: it locks the
 * events table in SHARE mode, which waits for open appending transactions and
 * holds new ones back until the rebuilding transaction ends, then reads every
 * committed event with a fresh snapshot.
 */
Datum
eventstore_rebuild_projection(PG_FUNCTION_ARGS)
{
	text	   *name;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	Oid			handler;
	Oid			reset;
	bool		isnull;
	bool		reset_null;
	int			ntypes;
	char	  **types = NULL;
	EsProjection proj;
	Portal		portal;
	Snapshot	snapshot;
	int64		count = 0;
	int			type_att;
	Oid			rowtype = get_rel_type_id(es_events_relid());

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("projection name must not be null")));
	name = PG_GETARG_TEXT_PP(0);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "eventstore: SPI_connect failed");
	values[0] = PointerGetDatum(name);
	if (SPI_execute_with_args("SELECT p.handler::pg_catalog.regprocedure::pg_catalog.oid,"
							  " p.reset_handler::pg_catalog.regprocedure::pg_catalog.oid, p.event_types"
							  " FROM eventstore.projections p WHERE p.name OPERATOR(pg_catalog.=) $1",
							  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "eventstore: reading eventstore.projections failed");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("projection \"%s\" does not exist", text_to_cstring(name))));
	handler = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	reset = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &reset_null));
	{
		Datum		t = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);

		ntypes = es_copy_types(t, isnull, CurrentMemoryContext, &types);
	}

	/* Hold appends back and wait for the open ones. */
	LockRelationOid(es_events_relid(), ShareLock);

	if (!reset_null)
		(void) OidFunctionCall0(reset);

	memset(&proj, 0, sizeof(proj));
	fmgr_info(handler, &proj.handler);
	proj.ntypes = ntypes;
	proj.types = types;

	snapshot = RegisterSnapshot(GetLatestSnapshot());
	PushActiveSnapshot(snapshot);
	portal = SPI_cursor_open_with_args(NULL,
									   "SELECT e.* FROM eventstore.events e ORDER BY e.global_position",
									   0, NULL, NULL, NULL, true, 0);
	PopActiveSnapshot();
	for (;;)
	{
		SPITupleTable *batch;
		uint64		nbatch;

		SPI_cursor_fetch(portal, true, 1000);
		batch = SPI_tuptable;
		nbatch = SPI_processed;
		if (nbatch == 0)
			break;
		type_att = SPI_fnumber(batch->tupdesc, "event_type");
		for (uint64 r = 0; r < nbatch; r++)
		{
			HeapTuple	tup = batch->vals[r];
			char	   *type = TextDatumGetCString(heap_getattr(tup, type_att, batch->tupdesc, &isnull));
			Datum		row;

			if (es_type_matches(&proj, type))
			{
				row = heap_copy_tuple_as_datum(tup, batch->tupdesc);
				HeapTupleHeaderSetTypeId(DatumGetHeapTupleHeader(row), rowtype);
				HeapTupleHeaderSetTypMod(DatumGetHeapTupleHeader(row), -1);
				(void) FunctionCall1Coll(&proj.handler, InvalidOid, row);
				pfree(DatumGetPointer(row));
				count++;
			}
			pfree(type);
		}
		SPI_freetuptable(batch);
	}
	SPI_cursor_close(portal);
	UnregisterSnapshot(snapshot);
	SPI_finish();
	PG_RETURN_INT64(count);
}
