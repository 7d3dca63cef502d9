/*
 * registry.c
 *		What the registry tables (projections, routes, upcasters, snapshot
 *		policies) share: argument checks, writes made as the extension's
 *		owner, the per-backend cache of each table, the trigger that keeps
 *		those caches current, and copying text[] columns into a cache.
 *
 * The management functions are C functions running with the caller's
 * privileges: EXECUTE on them is the privilege to manage (revoked from
 * PUBLIC), ownership checks see the real caller, and only the final write
 * switches to the table owner.  Nobody needs rights on the tables.
 *
 * Caches: each registry (an EsRegistry) is loaded on first use with a fresh
 * snapshot, as the owner, into a memory context of its own, and forgotten on
 * a relcache invalidation of its table -- which the registry trigger sends
 * on every change, so the changing backend reloads at its next command and
 * others at their next transaction.  A registry whose table does not exist
 * (an older schema version) loads as empty; one whose table lacks a column
 * added later is read with the query for the older schema, so a library
 * installed before ALTER EXTENSION ... UPDATE still reads and appends.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/regproc.h"
#include "utils/snapmgr.h"
#include "utils/guc.h"
#include "utils/syscache.h"

#include "compat.h"

#include "eventstore.h"

PG_FUNCTION_INFO_V1(eventstore_registry_changed);

static List *es_registries = NIL;	/* every EsRegistry, for invalidation */

static void
es_registry_invalidate(Datum arg, Oid relid)
{
	ListCell   *lc;

	(void) arg;
	foreach(lc, es_registries)
	{
		EsRegistry *reg = lfirst(lc);

		/* Before the table exists any invalidation may be its creation. */
		if (!OidIsValid(relid) || !OidIsValid(reg->relid) || relid == reg->relid)
			reg->valid = false;
	}
}

/*
 * A function was created, replaced or dropped: every registry's handlers are
 * resolved again, so a dropped handler is reported as missing (not as a
 * failed cache lookup) and a replaced one is called afresh.
 */
static void
es_registry_invalidate_all(Datum arg, int cacheid, uint32 hashvalue)
{
	ListCell   *lc;

	(void) arg;
	(void) cacheid;
	(void) hashvalue;
	foreach(lc, es_registries)
		((EsRegistry *) lfirst(lc))->valid = false;
}

/* Make reg known to the invalidation callbacks; call once, from _PG_init. */
void
es_registry_init(EsRegistry *reg)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	if (es_registries == NIL)
	{
		CacheRegisterRelcacheCallback(es_registry_invalidate, (Datum) 0);
		CacheRegisterSyscacheCallback(PROCOID, es_registry_invalidate_all, (Datum) 0);
	}
	es_registries = lappend(es_registries, reg);
	MemoryContextSwitchTo(old);
}

/*
 * Load reg's cache if it is not valid: run reg->query as the owner with a
 * fresh snapshot and hand the rows to reg->fill in a new memory context.
 * The new context hangs under the current one until the fill has succeeded
 * (an error frees it with the rest of the failed work), then moves under
 * TopMemoryContext.  The previous context is deleted, or kept while the
 * registry is pinned.
 */
void
es_registry_load(EsRegistry *reg)
{
	MemoryContext cxt;
	Oid			save_userid;
	int			save_sec;
	MemoryContext previous = reg->cxt;

#ifdef ES_DISCARD_REGISTRIES
	/*
	 * Test builds (PG_CFLAGS=-DES_DISCARD_REGISTRIES): discard every cache
	 * of the backend at every use of a registry -- what debug_discard_caches
	 * = 1 does at each lock acquisition, on a server not built to allow it.
	 * Our callbacks then mark every registry invalid: each use reloads.
	 */
	InvalidateSystemCaches();
	reg->valid = false;
#endif
	if (reg->valid)
		return;

	cxt = AllocSetContextCreate(CurrentMemoryContext, "eventstore registry", ALLOCSET_SMALL_SIZES);
	MemoryContextSetIdentifier(cxt, reg->relname);
	reg->relid = get_relname_relid(reg->relname, es_schema_oid());
	if (!OidIsValid(reg->relid))
		reg->fill(reg, NULL, cxt);
	else
	{
		GetUserIdAndSecContext(&save_userid, &save_sec);
		SetUserIdAndSecContext(es_events_owner(), save_sec | SECURITY_LOCAL_USERID_CHANGE);
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "eventstore: SPI_connect failed");
		/* a parallel query cannot take a new snapshot; the active one serves */
		PushActiveSnapshot(IsInParallelMode() ? GetActiveSnapshot() : GetLatestSnapshot());
		if (SPI_execute(reg->since_column != NULL &&
						get_attnum(reg->relid, reg->since_column) == InvalidAttrNumber ?
						reg->query_before : reg->query, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "eventstore: reading eventstore.%s failed", reg->relname);
		PopActiveSnapshot();
		reg->fill(reg, SPI_tuptable, cxt);
		SPI_finish();
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	MemoryContextSetParent(cxt, TopMemoryContext);
	reg->cxt = cxt;
	reg->valid = true;
	if (previous != NULL)
	{
		if (reg->pins > 0)
		{
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

			reg->retired = lappend(reg->retired, previous);
			MemoryContextSwitchTo(old);
		}
		else
			MemoryContextDelete(previous);
	}
}

/*
 * Pin reg's cache (loaded if needed) and return it: while any pin is held a
 * replaced cache is retired, not deleted, so whoever holds a pointer into it
 * -- a handler's FmgrInfo while the handler runs, a loop over the items --
 * can go on using it whatever the handlers do (read, append, register,
 * create functions: anything that lets an invalidation in).  Every pin is
 * released with es_registry_unpin, also on error (PG_FINALLY); the last one
 * deletes the retired contexts.
 */
void *
es_registry_pin(EsRegistry *reg)
{
	es_registry_load(reg);
	reg->pins++;
	return reg->cache;
}

void
es_registry_unpin(EsRegistry *reg)
{
	Assert(reg->pins > 0);
	if (--reg->pins > 0 || reg->retired == NIL)
		return;
	{
		List	   *retired = reg->retired;
		ListCell   *lc;

		reg->retired = NIL;
		foreach(lc, retired)
			MemoryContextDelete((MemoryContext) lfirst(lc));
		list_free(retired);
	}
}

/* A name argument (what says which): not NULL, not empty. */
text *
es_name_arg(FunctionCallInfo fcinfo, int argno, const char *what)
{
	text	   *name;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	name = PG_GETARG_TEXT_PP(argno);
	if (VARSIZE_ANY_EXHDR(name) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", what)));
	return name;
}

/* A text[] filter argument: NULL (everything) or non-empty without NULLs. */
Datum
es_text_list_arg(FunctionCallInfo fcinfo, int argno, const char *what)
{
	ArrayType  *arr;

	if (PG_ARGISNULL(argno))
		return (Datum) 0;
	arr = PG_GETARG_ARRAYTYPE_P(argno);
	if (ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr)) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", what),
				 errhint("Use NULL for all.")));
	if (array_contains_nulls(arr))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not contain NULL", what)));
	return PointerGetDatum(arr);
}

/*
 * Run one statement on a registry table as the extension's owner and return
 * the number of rows it processed.  nulls as for SPI_execute_with_args.
 */
uint64
es_registry_write(const char *sql, int nargs, Oid *argtypes, Datum *values, const char *nulls)
{
	Oid			save_userid;
	int			save_sec;
	uint64		processed;

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(es_events_owner(), save_sec | SECURITY_LOCAL_USERID_CHANGE);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "eventstore: SPI_connect failed");
	if (SPI_execute_with_args(sql, nargs, argtypes, values, nulls, false, 0) < 0)
		elog(ERROR, "eventstore: registry write failed: %s", sql);
	processed = SPI_processed;
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec);
	return processed;
}

/*
 * Copy a text[] column value into cxt as C strings.  Returns the count, or -1
 * (and *out NULL) for NULL, which means "every".
 */
int
es_copy_text_array(Datum arr, bool isnull, MemoryContext cxt, char ***out)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	*out = NULL;
	if (isnull)
		return -1;
	deconstruct_array(DatumGetArrayTypeP(arr), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	*out = MemoryContextAlloc(cxt, sizeof(char *) * Max(n, 1));
	for (int i = 0; i < n; i++)
		(*out)[i] = nulls[i] ? NULL : MemoryContextStrdup(cxt, TextDatumGetCString(elems[i]));
	return n;
}

/*
 * A registry made a Citus reference table (eventstore.distribute()) is
 * written in its shard on every node (routes_102008 for routes), where the
 * trigger fires: invalidate the registry's own table, which the caches
 * know.  A registry's name never ends in _<digits> otherwise.
 */
static void
es_registry_shard_changed(Relation rel)
{
	const char *name = RelationGetRelationName(rel);
	const char *us = strrchr(name, '_');
	Oid			relid;

	if (us == NULL || us[1] == '\0' || strspn(us + 1, "0123456789") != strlen(us + 1))
		return;
	relid = get_relname_relid(pnstrdup(name, us - name), RelationGetNamespace(rel));
	if (OidIsValid(relid))
		CacheInvalidateRelcacheByRelid(relid);
}

/*
 * Statement trigger on the registry tables: send a relcache invalidation for
 * the table, so every backend's cache of it is rebuilt -- this one at its
 * next command, the others at their next transaction.  Row changes alone
 * would not tell them.  Each trigger argument names another table of the
 * schema to invalidate too, which invalidates the cached plans that use it.
 */
Datum
eventstore_registry_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("eventstore_registry_changed() must be called as a trigger")));
	CacheInvalidateRelcache(trigdata->tg_relation);
	es_registry_shard_changed(trigdata->tg_relation);
	for (int i = 0; i < trigdata->tg_trigger->tgnargs; i++)
	{
		Oid			relid = get_relname_relid(trigdata->tg_trigger->tgargs[i], es_schema_oid());

		if (OidIsValid(relid))
			CacheInvalidateRelcacheByRelid(relid);
	}
	return PointerGetDatum(NULL);
}

/* A type's name for messages. */
static char *
es_type_name(Oid type)
{
	return format_type_be(type);
}

/*
 * Check that fn can serve as a handler (what says which kind, for messages):
 * a plain function, not returning a set, taking exactly the nargs argument
 * types given and, unless rettype is InvalidOid, returning rettype; and that
 * the caller may execute it, and with must_own, owns it (or is superuser).
 */
static void
es_check_handler_function(Oid fn, const char *what, int nargs, const Oid *argtypes,
						  Oid rettype, bool must_own)
{
	HeapTuple	tup;
	Form_pg_proc proc;
	char	   *fname;
	bool		args_ok;

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
	args_ok = proc->pronargs == nargs;
	for (int i = 0; args_ok && i < nargs; i++)
		args_ok = proc->proargtypes.values[i] == argtypes[i];
	if (!args_ok)
	{
		StringInfoData sig;

		initStringInfo(&sig);
		for (int i = 0; i < nargs; i++)
			appendStringInfo(&sig, "%s%s", i ? ", " : "", es_type_name(argtypes[i]));
		if (nargs == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
					 errmsg("%s %s must take no arguments", what, fname)));
		else if (nargs == 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
					 errmsg("%s %s must take exactly one argument of type %s", what, fname, sig.data)));
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
					 errmsg("%s %s must take exactly the arguments (%s)", what, fname, sig.data)));
	}
	if (OidIsValid(rettype) && proc->prorettype != rettype)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
				 errmsg("%s %s must return %s", what, fname, es_type_name(rettype))));
	if (must_own && !es_proc_ownercheck(fn))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of function %s to register it", fname)));
	if (es_proc_aclcheck(fn) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for function %s", fname)));
	ReleaseSysCache(tup);
}

/*
 * A function about to be registered as a handler: it must fit (see above)
 * and the caller must own it.  Returns its schema-qualified signature, to
 * store.
 */
char *
es_check_function(Oid fn, const char *what, int nargs, const Oid *argtypes, Oid rettype)
{
	es_check_handler_function(fn, what, nargs, argtypes, rettype, true);
	return format_procedure_qualified(fn);
}

/* A function about to be called as a handler: it must fit and be executable. */
void
es_check_callable(Oid fn, const char *what, int nargs, const Oid *argtypes, Oid rettype)
{
	es_check_handler_function(fn, what, nargs, argtypes, rettype, false);
}

/* The owner of function fn. */
Oid
es_function_owner(Oid fn)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function with OID %u does not exist", fn)));
	owner = ((Form_pg_proc) GETSTRUCT(tup))->proowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * Resolve a stored handler into h (strings and FmgrInfo in cxt), for a
 * registry's fill: fn is what the stored name resolves to now (fn_null: to
 * nothing).  The function must fit as at registration -- a plain function,
 * not returning a set, taking exactly argtypes and, unless rettype is
 * InvalidOid, returning rettype -- and be owned by owner, the role it was
 * registered as: a same-named function created by someone else after a DROP
 * is not picked up.  A function that does not fit is refused with the
 * reason in h->problem; it is then unusable like a missing one, and
 * es_handler_require reports it when (and only when) it is needed.  Never
 * throws for a bad handler, so one bad registration does not break the
 * others.
 */
void
es_handler_resolve(EsHandler *h, const char *name, Datum fn, bool fn_null, Oid owner,
				   int nargs, const Oid *argtypes, Oid rettype, MemoryContext cxt)
{
	HeapTuple	tup;
	Form_pg_proc proc;
	bool		args_ok;
	char	   *problem = NULL;

	memset(h, 0, sizeof(*h));
	h->name = MemoryContextStrdup(cxt, name);
	h->owner = owner;
	if (fn_null)
		return;
	tup = SearchSysCache1(PROCOID, fn);
	if (!HeapTupleIsValid(tup))
		return;
	proc = (Form_pg_proc) GETSTRUCT(tup);
	args_ok = proc->pronargs == nargs;
	for (int i = 0; args_ok && i < nargs; i++)
		args_ok = proc->proargtypes.values[i] == argtypes[i];
	h->problem_code = ERRCODE_INVALID_FUNCTION_DEFINITION;
	if (proc->prokind != PROKIND_FUNCTION)
		problem = pstrdup("It is not a plain function.");
	else if (proc->proretset)
		problem = pstrdup("It returns a set.");
	else if (!args_ok)
	{
		StringInfoData sig;

		initStringInfo(&sig);
		for (int i = 0; i < nargs; i++)
			appendStringInfo(&sig, "%s%s", i ? ", " : "", es_type_name(argtypes[i]));
		problem = psprintf("It does not take exactly the arguments (%s).", sig.data);
	}
	else if (OidIsValid(rettype) && proc->prorettype != rettype)
		problem = psprintf("It returns %s, not %s.", es_type_name(proc->prorettype),
						   es_type_name(rettype));
	else if (proc->proowner != owner)
	{
		h->problem_code = ERRCODE_INSUFFICIENT_PRIVILEGE;
		problem = psprintf("It is owned by role %s, not by role %s, as whom it was registered.",
						   GetUserNameFromId(proc->proowner, true) ? GetUserNameFromId(proc->proowner, true) : "?",
						   GetUserNameFromId(owner, true) ? GetUserNameFromId(owner, true) : "(dropped)");
	}
	ReleaseSysCache(tup);
	if (problem != NULL)
	{
		h->problem = MemoryContextStrdup(cxt, problem);
		return;
	}
	h->fn = DatumGetObjectId(fn);
	fmgr_info_cxt(h->fn, &h->flinfo, cxt);
}

/*
 * Fail unless h is usable: what names the handler's kind, of what it serves
 * (for "handler f(...) of projection "p""), hint what to do.
 */
void
es_handler_require(EsHandler *h, const char *what, const char *of, const char *hint)
{
	if (OidIsValid(h->fn))
		return;
	if (h->problem == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("%s %s of %s does not exist", what, h->name, of),
				 errhint("%s", hint)));
	ereport(ERROR,
			(errcode(h->problem_code),
			 errmsg("%s %s of %s cannot be used", what, h->name, of),
			 errdetail("%s", h->problem),
			 errhint("%s", hint)));
}

/* True when function fn sets its own search_path (SET search_path = ...). */
static bool
es_function_sets_search_path(Oid fn)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	bool		isnull;
	bool		found = false;
	Datum		config;

	if (!HeapTupleIsValid(tup))
		return false;
	config = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_proconfig, &isnull);
	if (!isnull)
	{
		Datum	   *items;
		int			n;

		deconstruct_array(DatumGetArrayTypeP(config), TEXTOID, -1, false, TYPALIGN_INT,
						  &items, NULL, &n);
		for (int i = 0; i < n && !found; i++)
			found = pg_strncasecmp(TextDatumGetCString(items[i]), "search_path=", 12) == 0;
	}
	ReleaseSysCache(tup);
	return found;
}

/*
 * Call a handler as owner (its owner at registration), like a SECURITY
 * DEFINER function: whoever triggers it -- a writer, a reader, a superuser
 * -- lends it no privileges.  SECURITY_LOCAL_USERID_CHANGE keeps the handler
 * from SET ROLE back.  The user is restored on the way out, also on error.
 *
 * Unlike a SECURITY DEFINER function, whose author is told to pin its
 * search_path, a handler runs because someone else appended or read: with
 * the caller's search_path, a caller who can create objects in a schema
 * could make the owner's unqualified names resolve to its own functions.  So
 * when the identity changes and the handler does not set search_path
 * itself, it runs with search_path = pg_catalog, pg_temp: it must
 * schema-qualify what it uses, or SET its own search_path.
 */
Datum
es_call_as(Oid owner, FunctionCallInfo fcinfo)
{
	Oid			save_userid;
	int			save_sec;
	volatile int nestlevel = -1;
	volatile Datum result = (Datum) 0;

	GetUserIdAndSecContext(&save_userid, &save_sec);
	if (owner == save_userid)
		return FunctionCallInvoke(fcinfo);
	if (!es_function_sets_search_path(fcinfo->flinfo->fn_oid))
	{
		nestlevel = NewGUCNestLevel();
		(void) set_config_option("search_path", "pg_catalog, pg_temp",
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	}
	SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		result = FunctionCallInvoke(fcinfo);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();
	/* on error, the (sub)transaction's abort undoes the setting */
	if (nestlevel >= 0)
		AtEOXact_GUC(true, nestlevel);
	return result;
}

/*
 * Registries per store: who may manage an entry of a store.  On the default
 * store, EXECUTE on the management function is the privilege (granted by
 * grant_access); on any other store the caller must also own the store (be
 * a member of its owner): a store's owner decides what runs on its events.
 * relid is the entry's store as stored; a table that is gone or no longer a
 * store is judged by its owner alone, so its entries can still be removed.
 */
void
es_registry_store_check(Oid relid, const char *what)
{
	HeapTuple	tup;
	Oid			owner;

	if (relid == es_events_relid())
		return;
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		return;					/* gone: eventstore._forget_store removes its entries */
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	if (!has_privs_of_role(GetUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of store %s to manage its %s",
						quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
												   get_rel_name(relid)), what),
				 errhint("The registries of a store other than eventstore.events are managed by the store's owner.")));
}

/*
 * The store argument argno of a registry function: a store the caller may
 * use, and manage the registry entries of (es_registry_store_check).
 */
EsStore *
es_registry_store_arg(FunctionCallInfo fcinfo, int argno, const char *what)
{
	EsStore    *st = es_store_arg(fcinfo, argno, 0);

	es_registry_store_check(st->relid, what);
	return st;
}
