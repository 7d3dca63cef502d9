/*
 * registry.c
 *		What the registry tables (eventstore.projections, eventstore.routes)
 *		share: argument checks, writes made as the extension's owner, the
 *		trigger that keeps every backend's cache of them current, and copying
 *		their text[] columns into a cache.
 *
 * The management functions are C functions running with the caller's
 * privileges: EXECUTE on them is the privilege to manage (revoked from
 * PUBLIC), ownership checks see the real caller, and only the final write
 * switches to the table owner.  Nobody needs rights on the tables.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/rel.h"

#include "eventstore.h"

PG_FUNCTION_INFO_V1(eventstore_registry_changed);

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
 * Statement trigger on the registry tables: send a relcache invalidation for
 * the table, so every backend's cache of it is rebuilt -- this one at its
 * next command, the others at their next transaction.  Row changes alone
 * would not tell them.
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
	return PointerGetDatum(NULL);
}
