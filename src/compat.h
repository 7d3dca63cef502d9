/*
 * compat.h
 *		Every PostgreSQL version difference eventstore cares about, in one place.
 *
 * The code is developed against PostgreSQL 15; the shims below keep 13 to 17
 * building.  Nothing outside this header tests PG_VERSION_NUM.
 */
#ifndef EVENTSTORE_COMPAT_H
#define EVENTSTORE_COMPAT_H

#include "postgres.h"
#include "miscadmin.h"
#include "utils/guc.h"

/* A per-backend slot number, 0-based, below ES_MAX_BACKEND_SLOTS. */
#if PG_VERSION_NUM >= 170000
#include "storage/procnumber.h"
#define ES_MY_SLOT()			(MyProcNumber)
#define ES_SLOT_PROC(slot)		(GetPGProcByNumber(slot))
#else
#include "storage/backendid.h"
#include "storage/sinvaladt.h"
#define ES_MY_SLOT()			(MyBackendId - 1)
#define ES_SLOT_PROC(slot)		(BackendIdGetProc((slot) + 1))	/* the PGPROC of a slot, or NULL */
#endif

/* This backend's local transaction id (of its virtual transaction id). */
#if PG_VERSION_NUM >= 170000
#define ES_MY_LXID()			(MyProc->vxid.lxid)
#else
#define ES_MY_LXID()			(MyProc->lxid)
#endif

/*
 * How many backend slots shared memory must hold.  From 15 on MaxBackends is
 * known when shmem_request_hook runs; before that we size for the worst case
 * of the settings in force when _PG_init runs.
 */
#if PG_VERSION_NUM >= 150000
#define ES_MAX_BACKEND_SLOTS()	(MaxBackends)
#define ES_HAVE_SHMEM_REQUEST_HOOK 1
#else
#include "postmaster/autovacuum.h"
#include "replication/walsender.h"
#define ES_MAX_BACKEND_SLOTS()	(MaxConnections + autovacuum_max_workers + 1 + \
								 max_worker_processes + max_wal_senders + 1)
#endif

/* Ownership and ACL checks on functions were generalised in 16. */
#include "utils/acl.h"
#if PG_VERSION_NUM >= 160000
#include "catalog/pg_proc.h"
#include "catalog/pg_class.h"
#include "catalog/pg_namespace.h"
#define es_proc_ownercheck(fn)	object_ownercheck(ProcedureRelationId, (fn), GetUserId())
#define es_proc_aclcheck(fn)	object_aclcheck(ProcedureRelationId, (fn), GetUserId(), ACL_EXECUTE)
#define es_class_ownercheck(rel, role)	object_ownercheck(RelationRelationId, (rel), (role))
#define es_class_aclcheck(rel, role, mode)	pg_class_aclcheck((rel), (role), (mode))
#define es_namespace_aclcheck(nsp, role, mode)	object_aclcheck(NamespaceRelationId, (nsp), (role), (mode))
#else
#define es_proc_ownercheck(fn)	pg_proc_ownercheck((fn), GetUserId())
#define es_proc_aclcheck(fn)	pg_proc_aclcheck((fn), GetUserId(), ACL_EXECUTE)
#define es_class_ownercheck(rel, role)	pg_class_ownercheck((rel), (role))
#define es_class_aclcheck(rel, role, mode)	pg_class_aclcheck((rel), (role), (mode))
#define es_namespace_aclcheck(nsp, role, mode)	pg_namespace_aclcheck((nsp), (role), (mode))
#endif

/* GUC prefix reservation was renamed in 15. */
#if PG_VERSION_NUM < 150000
#define MarkGUCPrefixReserved(prefix)	EmitWarningsOnPlaceholders(prefix)
#endif

/*
 * Run a prepared read-only SPI plan with the active snapshot and send its rows
 * straight to a DestReceiver, which may stop the query by returning false
 * from receiveSlot.  SPI_execute_plan_extended() (14+) lets the rows bypass
 * SPI's own result copy; older servers copy them over and feed the receiver
 * from the copy.
 */
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "nodes/params.h"
#include "tcop/dest.h"

/* A tuplestore receiver's parameters: 14 added target_tupdesc and map_failure_msg. */
#include "executor/tstoreReceiver.h"
#if PG_VERSION_NUM >= 140000
#define es_tuplestore_dest_params(dest, tstore, cxt) \
	SetTuplestoreDestReceiverParams((dest), (tstore), (cxt), false, NULL, NULL)
#else
#define es_tuplestore_dest_params(dest, tstore, cxt) \
	SetTuplestoreDestReceiverParams((dest), (tstore), (cxt), false)
#endif

static inline void
es_spi_into_dest(SPIPlanPtr plan, int nargs, Oid *argtypes,
				 Datum *values, bool *nulls, DestReceiver *dest)
{
#if PG_VERSION_NUM >= 140000
	SPIExecuteOptions options;
	ParamListInfo params = makeParamList(nargs);

	for (int i = 0; i < nargs; i++)
	{
		params->params[i].value = values[i];
		params->params[i].isnull = nulls[i];
		params->params[i].pflags = PARAM_FLAG_CONST;
		params->params[i].ptype = argtypes[i];
	}
	memset(&options, 0, sizeof(options));
	options.params = params;
	options.read_only = true;
	options.dest = dest;
	if (SPI_execute_plan_extended(plan, &options) != SPI_OK_SELECT)
		elog(ERROR, "eventstore: read query failed");
#else
	char	   *cnulls = palloc(nargs + 1);
	TupleTableSlot *slot;

	for (int i = 0; i < nargs; i++)
		cnulls[i] = nulls[i] ? 'n' : ' ';
	cnulls[nargs] = '\0';
	if (SPI_execute_plan(plan, values, cnulls, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "eventstore: read query failed");
	slot = MakeSingleTupleTableSlot(SPI_tuptable->tupdesc, &TTSOpsHeapTuple);
	dest->rStartup(dest, CMD_SELECT, SPI_tuptable->tupdesc);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		ExecStoreHeapTuple(SPI_tuptable->vals[i], slot, false);
		if (!dest->receiveSlot(slot, dest))
			break;
	}
	dest->rShutdown(dest);
	ExecDropSingleTupleTableSlot(slot);
#endif
}

/* ExecInsertIndexTuples() gained onlySummarizing in 16. */
#if PG_VERSION_NUM >= 160000
#define ES_INSERT_INDEX_TUPLES(rri, slot, estate) \
	ExecInsertIndexTuples((rri), (slot), (estate), false, false, NULL, NIL, false)
#else
#define ES_INSERT_INDEX_TUPLES(rri, slot, estate) \
	ExecInsertIndexTuples((rri), (slot), (estate), false, false, NULL, NIL)
#endif

/* ExecComputeStoredGenerated() took the ResultRelInfo from 14 on. */
#if PG_VERSION_NUM >= 140000
#define ES_COMPUTE_STORED_GENERATED(rri, estate, slot) \
	ExecComputeStoredGenerated((rri), (estate), (slot), CMD_INSERT)
#else
#define ES_COMPUTE_STORED_GENERATED(rri, estate, slot) \
	ExecComputeStoredGenerated((estate), (slot), CMD_INSERT)
#endif

#endif							/* EVENTSTORE_COMPAT_H */
