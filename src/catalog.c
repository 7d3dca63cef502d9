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
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "commands/extension.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "eventstore.h"

typedef struct EsCatalogCache
{
	bool		valid;
	Oid			schema;
	Oid			events;
	Oid			position_seq;
	Oid			version_index;	/* events_pkey (stream_id, stream_version) */
	Oid			event_id_index; /* events_stream_event_id_key (stream_id, event_id) */
	Oid			owner;
} EsCatalogCache;

static EsCatalogCache es_cat;
static bool es_cat_callbacks_registered = false;

/* Relcache invalidation: forget the cache if it concerns our relations. */
static void
es_catalog_reset_rel(Datum arg, Oid relid)
{
	(void) arg;
	if (!OidIsValid(relid) || relid == es_cat.events || relid == es_cat.position_seq ||
		relid == es_cat.version_index || relid == es_cat.event_id_index)
		es_cat.valid = false;
}

/* Namespace cache invalidation: the schema may be gone. */
static void
es_catalog_reset_sys(Datum arg, int cacheid, uint32 hashvalue)
{
	(void) arg;
	(void) cacheid;
	(void) hashvalue;
	es_cat.valid = false;
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
