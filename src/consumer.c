/*
 * consumer.c
 *		Durable consumers: the entry points consumer_poll, consumer_ack,
 *		drop_consumer and consumer_status.
 *
 * A checkpoint belongs to a role (eventstore.consumers.owner), so these
 * functions must know who calls them.  A SECURITY DEFINER function cannot
 * tell (inside it, current_user is its owner), so each entry point is a C
 * function running with the caller's privileges: it takes the caller's role,
 * then runs the SQL body (eventstore._consumer_poll() and friends, in the
 * install script) as the extension's owner with that role as an argument.
 * The bodies are executable by the owner only, so the role argument cannot
 * be forged.  Consumers need EXECUTE on the entry points, no table rights.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tstoreReceiver.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/tuplestore.h"

#include "eventstore.h"

PG_FUNCTION_INFO_V1(eventstore_consumer_poll);
PG_FUNCTION_INFO_V1(eventstore_consumer_ack);
PG_FUNCTION_INFO_V1(eventstore_drop_consumer);
PG_FUNCTION_INFO_V1(eventstore_consumer_status);

/*
 * Run sql (whose last parameter is the caller's role) as the extension's
 * owner, with the function's arguments and then the caller's role as its
 * parameters; the plan is kept in *plan.  With set, the rows it returns
 * become the function's result (materialize mode, in the shape the SQL
 * declares for the function).  Subscriptions (subscription.c) use it too.
 */
void
es_consumer_call(FunctionCallInfo fcinfo, SPIPlanPtr *plan, const char *sql, const Oid *argtypes,
				 bool set, bool read_only)
{
	int			nargs = PG_NARGS();
	Datum		values[FUNC_MAX_ARGS];
	char		nulls[FUNC_MAX_ARGS];
	Oid			types[FUNC_MAX_ARGS];
	Oid			caller = GetUserId();
	Oid			save_userid;
	int			save_sec;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	Assert(nargs + 1 <= FUNC_MAX_ARGS);
	for (int i = 0; i < nargs; i++)
	{
		values[i] = PG_GETARG_DATUM(i);
		nulls[i] = PG_ARGISNULL(i) ? 'n' : ' ';
		types[i] = argtypes[i];
	}
	values[nargs] = ObjectIdGetDatum(caller);
	nulls[nargs] = ' ';
	types[nargs] = OIDOID;

	if (set)
		InitMaterializedSRF(fcinfo, 0);

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(es_events_owner(), save_sec | SECURITY_LOCAL_USERID_CHANGE);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "eventstore: SPI_connect failed");
	if (*plan == NULL)
	{
		*plan = SPI_prepare(sql, nargs + 1, types);
		if (*plan == NULL)
			elog(ERROR, "eventstore: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(*plan);
	}
#if PG_VERSION_NUM >= 140000
	if (set)
	{
		/*
		 * The rows go straight into the function's result (a batch of poll
		 * is 1,000 rows: no copy through SPI_tuptable), each checked against
		 * the shape the function declares.
		 */
		DestReceiver *dest = CreateTuplestoreDestReceiver();
		ParamListInfo params = makeParamList(nargs + 1);
		SPIExecuteOptions options;

		for (int i = 0; i <= nargs; i++)
		{
			params->params[i].value = values[i];
			params->params[i].isnull = nulls[i] == 'n';
			params->params[i].pflags = PARAM_FLAG_CONST;
			params->params[i].ptype = types[i];
		}
		SetTuplestoreDestReceiverParams(dest, rsinfo->setResult, rsinfo->econtext->ecxt_per_query_memory,
										false, rsinfo->setDesc,
										"eventstore: a consumer call returned rows of another shape than its function's");
		memset(&options, 0, sizeof(options));
		options.params = params;
		options.read_only = read_only;
		options.dest = dest;
		if (SPI_execute_plan_extended(*plan, &options) < 0)
			elog(ERROR, "eventstore: consumer call failed: %s", sql);
		dest->rDestroy(dest);
		SPI_finish();
		SetUserIdAndSecContext(save_userid, save_sec);
		return;
	}
#endif
	if (SPI_execute_plan(*plan, values, nulls, read_only, 0) < 0)
		elog(ERROR, "eventstore: consumer call failed: %s", sql);
	if (set)
	{
		TupleDesc	desc = SPI_tuptable->tupdesc;

		if (desc->natts != rsinfo->setDesc->natts)
			elog(ERROR, "eventstore: consumer call returned %d columns, expected %d",
				 desc->natts, rsinfo->setDesc->natts);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			Datum		cols[FUNC_MAX_ARGS];
			bool		colnulls[FUNC_MAX_ARGS];

			heap_deform_tuple(SPI_tuptable->vals[i], desc, cols, colnulls);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, cols, colnulls);
		}
	}
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec);
}

/* eventstore.consumer_poll(consumer text, channel text, max_count integer DEFAULT 100) */
Datum
eventstore_consumer_poll(PG_FUNCTION_ARGS)
{
	static const Oid argtypes[3] = {TEXTOID, TEXTOID, INT4OID};
	static SPIPlanPtr plan = NULL;

	es_consumer_call(fcinfo, &plan, "SELECT * FROM eventstore._consumer_poll($1, $2, $3, $4)",
					 argtypes, true, true);
	return (Datum) 0;
}

/* eventstore.consumer_ack(consumer text, channel text, id bigint) */
Datum
eventstore_consumer_ack(PG_FUNCTION_ARGS)
{
	static const Oid argtypes[3] = {TEXTOID, TEXTOID, INT8OID};
	static SPIPlanPtr plan = NULL;

	es_consumer_call(fcinfo, &plan, "SELECT eventstore._consumer_ack($1, $2, $3, $4)", argtypes, false, false);
	PG_RETURN_VOID();
}

/* eventstore.drop_consumer(consumer text, channel text) */
Datum
eventstore_drop_consumer(PG_FUNCTION_ARGS)
{
	static const Oid argtypes[2] = {TEXTOID, TEXTOID};
	static SPIPlanPtr plan = NULL;

	es_consumer_call(fcinfo, &plan, "SELECT eventstore._drop_consumer($1, $2, $3)", argtypes, false, false);
	PG_RETURN_VOID();
}

/* eventstore.consumer_status(): the checkpoints the caller may use. */
Datum
eventstore_consumer_status(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;

	es_consumer_call(fcinfo, &plan, "SELECT * FROM eventstore._consumer_status($1)", NULL, true, true);
	return (Datum) 0;
}
