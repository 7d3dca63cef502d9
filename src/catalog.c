/*
 * catalog.c
 *		OIDs of the extension's own objects, looked up once per backend.
 *
 * The append and read paths need the events table, its position sequence and
 * their owner on every call.  They are cached here and forgotten whenever the
 * relcache or the namespace cache is invalidated, so DROP/CREATE EXTENSION in
 * another session is picked up at the next lookup.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "compat.h"
#include "eventstore.h"

typedef struct EsCatalogCache
{
	bool		valid;
	Oid			schema;
	Oid			events;
	Oid			position_seq;
	Oid			version_index;	/* events_pkey (stream_id, stream_version) */
	Oid			event_id_index; /* events_stream_event_id_key (stream_id, event_id) */
	Oid			outbox_seq;		/* outbox_id_seq */
	Oid			owner;
} EsCatalogCache;

static EsCatalogCache es_cat;
static bool es_cat_callbacks_registered = false;

static void es_store_reset_rel(Datum arg, Oid relid);
static void es_store_invalidate(Oid relid);
static void es_store_forget_names(void);

/* Relcache invalidation: forget the cache if it concerns our relations. */
static void
es_catalog_reset_rel(Datum arg, Oid relid)
{
	(void) arg;
	if (!OidIsValid(relid) || relid == es_cat.events || relid == es_cat.position_seq ||
		relid == es_cat.version_index || relid == es_cat.event_id_index ||
		relid == es_cat.outbox_seq)
		es_cat.valid = false;
	es_store_reset_rel(arg, relid);
}

/* Namespace cache invalidation: the schema may be gone. */
static void
es_catalog_reset_sys(Datum arg, int cacheid, uint32 hashvalue)
{
	(void) arg;
	(void) cacheid;
	(void) hashvalue;
	es_cat.valid = false;
	es_store_forget_names();
	es_store_invalidate(InvalidOid);	/* a schema renamed renames its stores */
}

/* Fill the cache, or fail with a hint when the extension is not installed. */
static void
es_catalog_load(void)
{
	Oid			schema;

	if (es_cat.valid)
		return;

	if (!es_cat_callbacks_registered)
	{
		CacheRegisterRelcacheCallback(es_catalog_reset_rel, (Datum) 0);
		CacheRegisterSyscacheCallback(NAMESPACEOID, es_catalog_reset_sys, (Datum) 0);
		es_cat_callbacks_registered = true;
	}

	schema = get_namespace_oid("eventstore", true);
	if (!OidIsValid(schema) || !OidIsValid(get_extension_oid("eventstore", true)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"eventstore\" is not installed in this database"),
				 errhint("Run CREATE EXTENSION eventstore.")));

	es_cat.schema = schema;
	es_cat.events = get_relname_relid("events", schema);
	es_cat.position_seq = get_relname_relid("events_global_position_seq", schema);
	es_cat.version_index = get_relname_relid("events_pkey", schema);
	es_cat.event_id_index = get_relname_relid("events_stream_event_id_key", schema);
	es_cat.outbox_seq = get_relname_relid("outbox_id_seq", schema);
	if (!OidIsValid(es_cat.events) || !OidIsValid(es_cat.position_seq) ||
		!OidIsValid(es_cat.version_index) || !OidIsValid(es_cat.event_id_index))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("eventstore's events table or position sequence is missing"),
				 errhint("Reinstall the extension with DROP EXTENSION eventstore; CREATE EXTENSION eventstore.")));

	{
		HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(es_cat.events));

		if (!HeapTupleIsValid(tup))
			elog(ERROR, "cache lookup failed for relation %u", es_cat.events);
		es_cat.owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
		ReleaseSysCache(tup);
	}
	es_cat.valid = true;
}

Oid
es_schema_oid(void)
{
	es_catalog_load();
	return es_cat.schema;
}

Oid
es_events_relid(void)
{
	es_catalog_load();
	return es_cat.events;
}

Oid
es_position_seqid(void)
{
	es_catalog_load();
	return es_cat.position_seq;
}

/*
 * The outbox's id sequence, or InvalidOid in a schema that has none yet (it
 * is looked for again then: creating it invalidates nothing cached here).
 */
Oid
es_outbox_seqid(void)
{
	es_catalog_load();
	if (!OidIsValid(es_cat.outbox_seq))
		es_cat.outbox_seq = get_relname_relid("outbox_id_seq", es_cat.schema);
	return es_cat.outbox_seq;
}

Oid
es_version_index(void)
{
	es_catalog_load();
	return es_cat.version_index;
}

Oid
es_event_id_index(void)
{
	es_catalog_load();
	return es_cat.event_id_index;
}

Oid
es_events_owner(void)
{
	es_catalog_load();
	return es_cat.owner;
}

/* Whether eventstore.events has its tags column (0.5.0 on; not before the update). */
bool
es_events_have_tags(void)
{
	return get_attnum(es_events_relid(), "tags") != InvalidAttrNumber;
}

/*
 * Stores
 *
 * A store is a table of type eventstore.event_store (the default store,
 * eventstore.events, is one) with the two unique keys an append relies on,
 * (stream_id, stream_version) and (stream_id, event_id), and the immutability
 * triggers.  Nothing else marks a table as a store: there is no registry to
 * keep in step with the tables, so pg_dump, pg_restore, pg_dump -t and
 * renames all keep a store a store.  Whether a table qualifies is checked
 * once and cached per backend together with what the append and read paths
 * need (index OIDs, owner, quoted name, prepared statements); any relcache
 * invalidation of the table (DDL, GRANT, ALTER OWNER, DROP) sends the entry
 * through the check again, and its prepared statements are replaced.
 */
static HTAB *es_stores = NULL;
static List *es_retired_plans = NIL;	/* replaced statements, freed at transaction end */
static Oid	es_store_type_oid = InvalidOid;
static Oid	es_refuse_fn = InvalidOid;
static bool es_store_names_valid = false;

static void
es_store_forget_names(void)
{
	es_store_names_valid = false;
}

static void
es_store_invalidate(Oid relid)
{
	HASH_SEQ_STATUS seq;
	EsStore    *st;

	if (es_stores == NULL)
		return;
	if (OidIsValid(relid))
	{
		st = hash_search(es_stores, &relid, HASH_FIND, NULL);
		if (st)
		{
			st->valid = false;
			st->acl_user = InvalidOid;
			st->lifecycle_known = false;
		}
		return;
	}
	hash_seq_init(&seq, es_stores);
	while ((st = hash_seq_search(&seq)) != NULL)
	{
		st->valid = false;
		st->acl_user = InvalidOid;
		st->lifecycle_known = false;
	}
}

/* Privileges may have changed (role membership, schema grants). */
static void
es_store_reset_acl(Datum arg, int cacheid, uint32 hashvalue)
{
	HASH_SEQ_STATUS seq;
	EsStore    *st;

	(void) arg;
	(void) cacheid;
	(void) hashvalue;
	es_store_forget_names();
	if (es_stores == NULL)
		return;
	hash_seq_init(&seq, es_stores);
	while ((st = hash_seq_search(&seq)) != NULL)
		st->acl_user = InvalidOid;
}

static void
es_store_reset_rel(Datum arg, Oid relid)
{
	(void) arg;
	if (!OidIsValid(relid))
		es_store_forget_names();
	es_store_invalidate(relid);
}

/* Statements of entries checked again are freed once no call can be using them. */
void
es_catalog_xact(XactEvent event)
{
	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PARALLEL_COMMIT && event != XACT_EVENT_PARALLEL_ABORT)
		return;
	if (es_retired_plans != NIL)
	{
		ListCell   *lc;

		foreach(lc, es_retired_plans)
			SPI_freeplan((SPIPlanPtr) lfirst(lc));
		list_free(es_retired_plans);
		es_retired_plans = NIL;
	}
}

/* eventstore.event_store and eventstore.refuse_change(), looked up by name. */
static void
es_store_names(void)
{
	Oid			schema;

	if (es_store_names_valid)
		return;
	schema = es_schema_oid();
	es_store_type_oid = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
										CStringGetDatum("event_store"),
										ObjectIdGetDatum(schema));
	es_refuse_fn = LookupFuncName(list_make2(makeString("eventstore"),
											 makeString("refuse_change")),
								  0, NULL, true);
	es_store_names_valid = true;
}

Oid
es_store_type(void)
{
	es_store_names();
	return es_store_type_oid;
}

/* The column names of a store, in EsColumn order. */
static const char *const es_column_names[ES_NCOLS] = {
	[ES_COL_POSITION] = "global_position",
	[ES_COL_STREAM] = "stream_id",
	[ES_COL_VERSION] = "stream_version",
	[ES_COL_ID] = "event_id",
	[ES_COL_TYPE] = "event_type",
	[ES_COL_DATA] = "data",
	[ES_COL_METADATA] = "metadata",
	[ES_COL_CREATED_AT] = "created_at",
	[ES_COL_TAGS] = "tags",
};

/* A unique btree index on exactly (stream_id, second) without predicate or expressions. */
static bool
es_is_key_index(Oid indexoid, AttrNumber stream_att, AttrNumber second_att)
{
	HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexoid));
	Form_pg_index idx;
	bool		ok;

	if (!HeapTupleIsValid(tup))
		return false;
	idx = (Form_pg_index) GETSTRUCT(tup);
	ok = idx->indisunique && idx->indisvalid && idx->indimmediate &&
		idx->indnkeyatts == 2 &&
		idx->indkey.values[0] == stream_att && idx->indkey.values[1] == second_att &&
		heap_attisnull(tup, Anum_pg_index_indpred, NULL) &&
		heap_attisnull(tup, Anum_pg_index_indexprs, NULL);
	ReleaseSysCache(tup);
	if (ok)
	{
		tup = SearchSysCache1(RELOID, ObjectIdGetDatum(indexoid));
		if (!HeapTupleIsValid(tup))
			return false;
		ok = ((Form_pg_class) GETSTRUCT(tup))->relam == BTREE_AM_OID;
		ReleaseSysCache(tup);
	}
	return ok;
}

/* Does rel have an enabled-always BEFORE trigger calling refuse_change for these events? */
static bool
es_has_refuse_trigger(Relation rel, bool row, int16 events)
{
	TriggerDesc *td = rel->trigdesc;

	if (td == NULL || !OidIsValid(es_refuse_fn))
		return false;
	for (int i = 0; i < td->numtriggers; i++)
	{
		Trigger    *t = &td->triggers[i];

		if (t->tgfoid == es_refuse_fn && t->tgenabled == TRIGGER_FIRES_ALWAYS &&
			TRIGGER_FOR_BEFORE(t->tgtype) && (TRIGGER_FOR_ROW(t->tgtype) == row) &&
			(t->tgtype & events) == events)
			return true;
	}
	return false;
}

static void
es_not_a_store(Oid relid, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_WRONG_OBJECT_TYPE),
			 errmsg("\"%s\" is not an event store", get_rel_name(relid)),
			 errdetail("%s", why),
			 errhint("Create a store with eventstore.create_store(name); it also makes an existing table of type eventstore.event_store a store.")));
}

/* Check that relid is a store and fill st; errors leave st invalid. */
static void
es_store_fill(EsStore *st)
{
	Oid			relid = st->relid;
	HeapTuple	tup;
	Form_pg_class cls;
	Relation	rel;
	AttrNumber	stream_att,
				version_att,
				id_att;
	List	   *indexes;
	ListCell   *lc;
	bool		is_default;

	es_store_names();
	is_default = relid == es_events_relid();

	st->distributed = !OidIsValid(st->shard_of) && es_citus_distributed(relid);
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	cls = (Form_pg_class) GETSTRUCT(tup);
	st->rel_xmin = HeapTupleHeaderGetRawXmin(tup->t_data);
	if (cls->relkind != RELKIND_RELATION)
	{
		ReleaseSysCache(tup);
		es_not_a_store(relid, "It is not an ordinary table.");
	}
	/*
	 * The default store is one by definition, also before 0.6.0 made it
	 * typed.  Citus creates a distributed store's table on the other nodes
	 * and its shards without the type (eventstore.distribute() checked it);
	 * the keys and triggers are checked below all the same.
	 */
	if (!is_default && !OidIsValid(st->shard_of) && !st->distributed &&
		(!OidIsValid(es_store_type_oid) || cls->reloftype != es_store_type_oid))
	{
		ReleaseSysCache(tup);
		es_not_a_store(relid, "It is not a table of type eventstore.event_store.");
	}
	st->owner = cls->relowner;
	st->nspid = cls->relnamespace;
	ReleaseSysCache(tup);

	for (int c = 0; c < ES_NCOLS; c++)
		st->attnum[c] = get_attnum(relid, es_column_names[c]);
	stream_att = st->attnum[ES_COL_STREAM];
	version_att = st->attnum[ES_COL_VERSION];
	id_att = st->attnum[ES_COL_ID];
	st->has_tags = st->attnum[ES_COL_TAGS] != InvalidAttrNumber;
	for (int c = 0; c < ES_COL_TAGS; c++)
		if (st->attnum[c] == InvalidAttrNumber)
			es_not_a_store(relid, psprintf("It has no column %s.", es_column_names[c]));

	rel = table_open(relid, AccessShareLock);
	st->version_index = InvalidOid;
	st->event_id_index = InvalidOid;
	st->tags_index = InvalidOid;
	indexes = RelationGetIndexList(rel);
	foreach(lc, indexes)
	{
		Oid			indexoid = lfirst_oid(lc);

		if (!OidIsValid(st->version_index) && es_is_key_index(indexoid, stream_att, version_att))
			st->version_index = indexoid;
		else if (!OidIsValid(st->event_id_index) && es_is_key_index(indexoid, stream_att, id_att))
			st->event_id_index = indexoid;
		else if (!OidIsValid(st->tags_index) && st->has_tags &&
				 es_dcb_is_tags_index(indexoid, st->attnum[ES_COL_TAGS]))
			st->tags_index = indexoid;
	}
	list_free(indexes);
	/* a Citus shard (citus.c) has its store's columns and keys, not its type */
	if (!is_default && !OidIsValid(st->shard_of))
	{
		bool		stmt_ok = es_has_refuse_trigger(rel, false,
													TRIGGER_TYPE_INSERT | TRIGGER_TYPE_UPDATE |
													TRIGGER_TYPE_DELETE | TRIGGER_TYPE_TRUNCATE);
		bool		row_ok = es_has_refuse_trigger(rel, true,
												   TRIGGER_TYPE_UPDATE | TRIGGER_TYPE_DELETE);

		table_close(rel, NoLock);
		if (!stmt_ok || !row_ok)
			es_not_a_store(relid, "It lacks the triggers that keep its events immutable (enabled ALWAYS).");
	}
	else
		table_close(rel, NoLock);
	if (!OidIsValid(st->version_index))
		es_not_a_store(relid, "It has no unique index on (stream_id, stream_version).");
	if (!OidIsValid(st->event_id_index))
		es_not_a_store(relid, "It has no unique index on (stream_id, event_id).");

	if (st->name)
		pfree(st->name);
	st->name = MemoryContextStrdup(TopMemoryContext,
								   quote_qualified_identifier(get_namespace_name(st->nspid),
															  get_rel_name(relid)));
	st->is_default = is_default;
	st->valid = true;
}

/* Replace the statements of an entry that is checked again, then check it. */
static void
es_store_refill(EsStore *st)
{
	for (int i = 0; i < ES_NPLANS; i++)
	{
		if (st->plans[i] != NULL)
		{
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

			es_retired_plans = lappend(es_retired_plans, st->plans[i]);
			MemoryContextSwitchTo(old);
			st->plans[i] = NULL;
		}
	}
	st->acl_user = InvalidOid;
	es_store_fill(st);
}

/*
 * The entry of relid, made unchecked (valid false) when absent: what a
 * module caches per store that need not be a checked store -- lifecycle.c's
 * answer whether it has lifecycle rows, asked of any relation by
 * _lifecycle_active().  es_store() checks the entry.
 */
EsStore *
es_store_entry(Oid relid)
{
	EsStore    *st;
	bool		found;

	if (es_stores == NULL)
	{
		HASHCTL		ctl;

		es_catalog_load();		/* registers the invalidation callbacks */
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(EsStore);
		ctl.hcxt = TopMemoryContext;
		es_stores = hash_create("eventstore stores", 16, &ctl,
								HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, es_store_reset_acl, (Datum) 0);
		CacheRegisterSyscacheCallback(TYPEOID, es_store_reset_acl, (Datum) 0);
		CacheRegisterSyscacheCallback(PROCOID, es_store_reset_acl, (Datum) 0);
	}
	st = hash_search(es_stores, &relid, HASH_ENTER, &found);
	if (!found)
		memset(((char *) st) + sizeof(Oid), 0, sizeof(EsStore) - sizeof(Oid));
	return st;
}

/* The store with OID relid, checked; an error if the table is not a store. */
EsStore *
es_store(Oid relid)
{
	EsStore    *st = es_store_entry(relid);

	if (OidIsValid(st->shard_of))
	{
		/* named as a store itself, a shard is checked as one */
		st->shard_of = InvalidOid;
		st->valid = false;
	}
	if (!st->valid)
		es_store_refill(st);
	return st;
}

/*
 * The local Citus shard of store parent with OID shard, checked for the two
 * unique keys and cached like a store (citus.c).  Appends lock, count and
 * check privileges on parent; they look up and insert through this entry.
 */
EsStore *
es_store_shard(Oid shard, EsStore *parent)
{
	EsStore    *st;
	bool		found;

	st = hash_search(es_stores, &shard, HASH_ENTER, &found);
	if (!found)
		memset(((char *) st) + sizeof(Oid), 0, sizeof(EsStore) - sizeof(Oid));
	if (st->shard_of != parent->relid)
	{
		st->shard_of = parent->relid;
		st->valid = false;
	}
	if (!st->valid)
		es_store_refill(st);
	return st;
}

EsStore *
es_default_store(void)
{
	return es_store(es_events_relid());
}

/*
 * The store argument argno: not NULL, a store, in a schema the user may use,
 * with the privileges in required (ACL_SELECT to read, ACL_INSERT to append;
 * 0 for none).  The answer is cached per store for the current user.
 */
EsStore *
es_store_arg(FunctionCallInfo fcinfo, int argno, AclMode required)
{
	EsStore    *st;
	Oid			user = GetUserId();

	if (PG_NARGS() <= argno)
		return es_default_store();
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("store must not be null"),
				 errhint("Leave the store argument out for the default store, eventstore.events.")));
	st = es_store(PG_GETARG_OID(argno));
	es_store_check(st, required);
	(void) user;
	return st;
}

/* Raise 42501 unless the current user may use the store's schema and has required on it. */
void
es_store_check(EsStore *st, AclMode required)
{
	Oid			user = GetUserId();

	if (st->acl_user != user)
	{
		st->acl_user = user;
		st->acl_usage = es_namespace_aclcheck(st->nspid, user, ACL_USAGE) == ACLCHECK_OK;
		st->acl_granted = 0;
		if (es_class_aclcheck(st->relid, user, ACL_SELECT) == ACLCHECK_OK)
			st->acl_granted |= ACL_SELECT;
		if (es_class_aclcheck(st->relid, user, ACL_INSERT) == ACLCHECK_OK)
			st->acl_granted |= ACL_INSERT;
	}
	if (!st->acl_usage)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for schema %s", get_namespace_name(st->nspid))));
	if ((st->acl_granted & required) != required)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for store %s", st->name),
				 errdetail("%s needs %s on the store's table.",
						   required & ACL_INSERT ? "Appending" : "Reading",
						   required & ACL_INSERT ? "INSERT" : "SELECT"),
				 errhint("A store's owner grants it with eventstore.grant_access(role, level, store).")));
}

/*
 * A statement on the store, prepared at its first use and kept with the
 * store (replaced when the store changes).  sql is built with st->name.
 */
SPIPlanPtr
es_store_plan(EsStore *st, EsPlanSlot slot, const char *sql, int nargs, Oid *argtypes,
			  int cursor_options)
{
	if (st->plans[slot] == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, argtypes, cursor_options);

		if (plan == NULL)
			elog(ERROR, "eventstore: SPI_prepare failed for \"%s\": %s",
				 sql, SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		st->plans[slot] = plan;
	}
	return st->plans[slot];
}
