/*
 * read.c
 *		Reading the store: one stream forwards or backwards, the global log,
 *		one category of it.
 *
 * Reads never write, so they run on a hot standby too.  read_stream and
 * read_stream_backwards are SQL functions the planner inlines into the
 * calling query (no copy of the rows at all); this file only provides the
 * argument checks they call.  read_all and read_category stop at the read
 * horizon (horizon.c) and read with the snapshot taken together with it, so a
 * reader that resumes after the last position it saw never skips an event
 * that commits late.  Their rows go from the executor straight into the
 * function's result tuplestore.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"

#include "compat.h"
#include "eventstore.h"

PG_FUNCTION_INFO_V1(eventstore_stream_arg);
PG_FUNCTION_INFO_V1(eventstore_count_arg);
PG_FUNCTION_INFO_V1(eventstore_read_all);
PG_FUNCTION_INFO_V1(eventstore_read_category);

typedef enum EsReadKind
{
	ES_READ_ALL,
	ES_READ_CATEGORY,
	ES_READ_KINDS
} EsReadKind;

/* Each read is one prepared query: key $1, range ($2, $3], limit $4. */
static const char *const es_read_sql[ES_READ_KINDS] = {
	[ES_READ_ALL] =
	"SELECT e.* FROM eventstore.events e"
	" WHERE e.global_position OPERATOR(pg_catalog.>) $2"
	" AND e.global_position OPERATOR(pg_catalog.<=) $3"
	" ORDER BY e.global_position LIMIT $4",
	[ES_READ_CATEGORY] =
	"SELECT e.* FROM eventstore.events e"
	" WHERE pg_catalog.split_part(e.stream_id, '-', 1) OPERATOR(pg_catalog.=) $1"
	" AND e.global_position OPERATOR(pg_catalog.>) $2"
	" AND e.global_position OPERATOR(pg_catalog.<=) $3"
	" ORDER BY e.global_position LIMIT $4",
};

static SPIPlanPtr es_read_plans[ES_READ_KINDS];

/* max_count argument: NULL means no limit; negative is an error. */
static bool
es_limit_arg(FunctionCallInfo fcinfo, int argno, int64 *limit)
{
	int32		n;

	if (PG_ARGISNULL(argno))
		return false;
	n = PG_GETARG_INT32(argno);
	if (n < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_count must not be negative")));
	*limit = n;
	return true;
}

static text *
es_required_text_arg(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
	return PG_GETARG_TEXT_PP(argno);
}

/*
 * Run read query kind with key $1, range ($2, $3) and limit $4 into the
 * function's result.  With snapshot given, the query reads with it.
 */
static void
es_read(FunctionCallInfo fcinfo, EsReadKind kind, Datum key, int64 lo, int64 hi,
		bool limited, int64 limit, Snapshot snapshot)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			argtypes[4] = {TEXTOID, INT8OID, INT8OID, INT8OID};
	Datum		values[4] = {key, Int64GetDatum(lo), Int64GetDatum(hi), Int64GetDatum(limit)};
	bool		nulls[4] = {false, false, false, !limited};

	InitMaterializedSRF(fcinfo, 0);
	if (lo >= hi)
		return;					/* nothing can be in an empty range */

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "eventstore: SPI_connect failed");
	if (es_read_plans[kind] == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(es_read_sql[kind], 4, argtypes);

		if (plan == NULL)
			elog(ERROR, "eventstore: SPI_prepare failed: %s",
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		es_read_plans[kind] = plan;
	}
	if (snapshot != NULL)
		PushActiveSnapshot(snapshot);
	es_spi_into_tuplestore(es_read_plans[kind], 4, argtypes, values, nulls,
						   rsinfo->setResult, rsinfo->econtext->ecxt_per_query_memory);
	if (snapshot != NULL)
		PopActiveSnapshot();
	SPI_finish();
}

/*
 * eventstore._stream_arg(stream_id text) RETURNS text: stream_id, checked
 * (not NULL, not empty, not too long).  The read_stream functions wrap their
 * argument in it.
 */
Datum
eventstore_stream_arg(PG_FUNCTION_ARGS)
{
	text	   *stream_id = es_required_text_arg(fcinfo, 0, "stream_id");

	es_check_stream_id(stream_id);
	PG_RETURN_TEXT_P(stream_id);
}

/* eventstore._count_arg(max_count integer) RETURNS bigint: NULL (no limit) or >= 0. */
Datum
eventstore_count_arg(PG_FUNCTION_ARGS)
{
	int64		limit;

	if (!es_limit_arg(fcinfo, 0, &limit))
		PG_RETURN_NULL();
	PG_RETURN_INT64(limit);
}

/*
 * The shared body of read_all and read_category: after_position is argument
 * argno, max_count the next one.  Reads stop at the horizon.
 */
static void
es_read_log(FunctionCallInfo fcinfo, EsReadKind kind, Datum key, int argno)
{
	int64		after = PG_ARGISNULL(argno) ? 0 : PG_GETARG_INT64(argno);
	int64		limit = 0;
	bool		limited = es_limit_arg(fcinfo, argno + 1, &limit);
	Snapshot	snapshot;
	int64		horizon;

	horizon = es_read_horizon(ES_COUNTER_POSITION, es_position_seqid(), &snapshot);
	es_read(fcinfo, kind, key, after, horizon, limited, limit, snapshot);
	UnregisterSnapshot(snapshot);
}

/* eventstore.read_all(after_position DEFAULT 0, max_count DEFAULT 1000) */
Datum
eventstore_read_all(PG_FUNCTION_ARGS)
{
	es_read_log(fcinfo, ES_READ_ALL, CStringGetTextDatum(""), 0);
	return (Datum) 0;
}

/* eventstore.read_category(category, after_position DEFAULT 0, max_count DEFAULT 1000) */
Datum
eventstore_read_category(PG_FUNCTION_ARGS)
{
	text	   *category = es_required_text_arg(fcinfo, 0, "category");

	if (VARSIZE_ANY_EXHDR(category) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("category must not be empty")));
	es_read_log(fcinfo, ES_READ_CATEGORY, PointerGetDatum(category), 1);
	return (Datum) 0;
}
