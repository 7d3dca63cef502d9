/*
 * immutable.c
 *		The trigger that makes stored events immutable.
 *
 * It is attached to eventstore.events twice, both enabled ALWAYS so they
 * also fire with session_replication_role = replica: as a statement-level
 * BEFORE UPDATE, DELETE and TRUNCATE trigger, and as a row-level BEFORE
 * UPDATE and DELETE trigger.  The row-level one is for the logical
 * replication apply worker, which fires row triggers only (and statement
 * triggers for TRUNCATE): without it a subscriber would apply a publisher's
 * UPDATEs and DELETEs.  Only dropping or disabling the triggers, which takes
 * ownership of the table, gets past them.
 *
 * The one DELETE let through is the purge's (lifecycle.c): while its
 * statement runs, es_purging names the store being purged.  It is a
 * backend-local variable no SQL can set, reset when the statement ends.
 *
 * From 0.6.0 the statement-level trigger also fires BEFORE INSERT: INSERT on
 * a store is the privilege to append to it, and appends insert as the
 * table's owner, so an INSERT by any role that does not own the table is one
 * that did not go through eventstore.append(), and is refused.
 */
#include "postgres.h"

#include "commands/trigger.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/rel.h"

#include "compat.h"
#include "eventstore.h"

PG_FUNCTION_INFO_V1(eventstore_refuse_change);

Datum
eventstore_refuse_change(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	const char *op;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("eventstore_refuse_change() must be called as a trigger")));

	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
	{
		if (es_class_ownercheck(RelationGetRelid(trigdata->tg_relation), GetUserId()))
		{
			/*
			 * The owner's own INSERT writes stream versions no append saw:
			 * the cached stream heads (stream_head.c) are not used again,
			 * and it holds SHARE ROW EXCLUSIVE, as an import does, so that no
			 * append writes an entry before its rows are committed (nor
			 * while it is prepared for two-phase commit).
			 */
			if (!es_head_appending)
			{
				LockRelationOid(RelationGetRelid(trigdata->tg_relation), ShareRowExclusiveLock);
				es_head_invalidate(true);
			}
			return PointerGetDatum(NULL);
		}
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("INSERT into %s is not allowed: append with eventstore.append()",
						RelationGetRelationName(trigdata->tg_relation)),
				 errdetail("INSERT on a store is the privilege to append to it; only its owner inserts directly.")));
	}
	/*
	 * The purge's own DELETE (lifecycle.c): es_purging names the store only
	 * while that statement runs, and nothing but the purge sets it.
	 */
	if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event) && OidIsValid(es_purging) &&
		es_purging == RelationGetRelid(trigdata->tg_relation))
		return TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ?
			PointerGetDatum(trigdata->tg_trigtuple) : PointerGetDatum(NULL);
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		op = "UPDATE";
	else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		op = "DELETE";
	else if (TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
		op = "TRUNCATE";
	else
		op = "this change";

	ereport(ERROR,
			(errcode(ERRCODE_ES_IMMUTABLE),
			 errmsg("%s of %s is not allowed: events are immutable", op,
					RelationGetRelationName(trigdata->tg_relation)),
			 errhint("Append a compensating event instead.")));
	PG_RETURN_NULL();
}
