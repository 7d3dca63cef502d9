/*
 * dcb.c
 *		Dynamic consistency boundaries: tags on events, queries over types and
 *		tags, eventstore.read_query(), and the condition of a conditional
 *		append ("append, unless an event matching this query was stored after
 *		position `after`").
 *
 * Query.  jsonb {"items": [{"types": [...], "tags": [...]}, ...]}: an event
 * matches an item when its type is one of the item's types (if "types" is
 * given) and its tags contain all of the item's tags (if "tags" is given); it
 * matches the query when it matches one of the items.  No items (or {}) and
 * an item {} match every event.  Anything else is refused: unknown keys,
 * empty arrays, non-string or empty strings, more than ES_DCB_MAX_ITEMS
 * items (see es_dcb_parse_query).  Filtering is on the stored type and tags.
 *
 * Lifecycle.  read_query leaves out events hidden by stream metadata or
 * deletes (lifecycle.c) and decrypts data, as read_all does; a condition
 * ignores hidden events too (es_dcb_check), so that whatever fails it is
 * something a read returns.  Hidden or not is decided when the condition
 * is checked; metadata changes take none of the locks below, so a
 * condition is exact about the events, as visible at its check.
 *
 * Consistency position.  read_query stops at the read horizon (horizon.c),
 * like read_all.  The position a client hands back as `after` is the
 * position of the last event read_query returned, or the after_position it
 * passed when none: every position at or below it is settled (at or below
 * the horizon of the read), and the client has seen every matching event in
 * its range.  (The horizon itself would be wrong when max_count cut the
 * read short; when it did not, "no match after the last row" and "no match
 * after the horizon" are the same condition, since nothing matched between.)
 * A position above the current horizon cannot come from a read: a matching
 * event still in flight below it would slip past the check.  The append
 * refuses it (22023) rather than clamping it, which would silently check a
 * different condition than the client decided on.
 *
 * Lock protocol.  Every append, conditional or not, takes transaction-scoped
 * advisory locks (field4 ES_LOCKTAG_DCB) on 64-bit hashed keys, all of them
 * deduplicated, sorted, and taken in that order, after the stream lock and
 * before its first position, and holds them to the end of the transaction:
 *
 *	W (writer): ROW EXCLUSIVE on K_all, and per event of type T with tags S:
 *	  K_type(T), and for each t in S K_tag(t) and K_typetag(T, t).  More than
 *	  ES_DCB_MAX_KEYS distinct such keys: K_big instead of all of them.
 *	R (reader, the condition's query), SHARE on, per item:
 *	  no types, no tags: K_all;  types only: K_type(T) for each type;
 *	  tags only: K_tag(t1);  types and tags: K_typetag(T, t1) for each type,
 *	  where t1 is the item's first tag; plus K_big.  More than
 *	  ES_DCB_MAX_KEYS distinct keys: K_all only.
 *	A key held in both roles is taken in SHARE ROW EXCLUSIVE.
 *
 * ROW EXCLUSIVE does not conflict with itself, nor SHARE with itself, so
 * writers never wait for writers and conditions never wait for conditions;
 * SHARE conflicts with ROW EXCLUSIVE (and SHARE ROW EXCLUSIVE with both).
 * With the locks held, a conditional append checks committed state (plus its
 * own rows) with SnapshotSelf: a fresh look at every isolation level, and no
 * MVCC snapshot, so SERIALIZABLE takes no predicate locks for it (no false
 * serialization failures between unrelated appends).
 *
 * Why it is exact.  Let event e (type T, tags S) be written by W and match
 * item I of the query of conditional append C.  Then W and C share a key in
 * conflicting modes: I = {}: K_all; I types only: T is one of them, K_type(T);
 * I with tags: t1 is in S, so K_tag(t1) or, with types, K_typetag(T, t1);
 * a W that fell back took K_big, which every C with fine keys takes; a C that
 * fell back took K_all, which every W takes.  So while C holds its locks no
 * such W is in flight: each one either ended before C's check (committed:
 * the check sees e; rolled back: e never existed) or starts its insert after
 * C ends, taking positions after every position C took.  Hence when C
 * commits, no event matching its query has a position above `after` except
 * those it saw and refused on, and none can later appear with a position in
 * (after, C's positions).  An in-flight matching event at a position at or
 * below `after` cannot exist either, since `after` is at or below the
 * horizon.  Hash collisions only make unrelated appends wait, never miss a
 * conflict.  Locks are taken in one sorted pass per append, so one append
 * never deadlocks with another over them; a transaction of several appends
 * can, and PostgreSQL's deadlock detector resolves that with 40P01.
 *
 * Imports (import.c) take no such locks: they hold SHARE ROW EXCLUSIVE on
 * the store's table, which every append to it waits for (and holds off)
 * before any of this, and imported events carry no tags.
 *
 * Direct scans.  A query whose items all have tags is read from the store's
 * tags index without SPI (es_dcb_scan_begin and what follows): by the
 * condition's check, with SnapshotSelf as its SQL query would, and by
 * read_query when the store needs no upcasting or lifecycle filter.  They
 * open no snapshot of their own and take the locks the executor would
 * (AccessShareLock on the table and the index, to the end of the
 * transaction).  Any other query goes through SQL.
 *
 * Stores.  A condition concerns the store its append goes to, and
 * read_query reads one store.  Every key is hashed with the store's OID as
 * the seed, so the keys of two stores differ (but for hash collisions) and
 * appends and conditions on one store never wait for another's.
 */
#include "postgres.h"

#include "access/amapi.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "nodes/tidbitmap.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/array.h"
#include "utils/arrayaccess.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"

#include "compat.h"
#include "eventstore.h"

PG_FUNCTION_INFO_V1(eventstore_read_query);

/* The kinds of key (the first byte hashed). */
#define ES_DCB_KEY_ALL		'A'
#define ES_DCB_KEY_BIG		'B'
#define ES_DCB_KEY_TYPE		'T'
#define ES_DCB_KEY_TAG		'G'
#define ES_DCB_KEY_TYPETAG	'X'

typedef struct EsDcbLock
{
	uint64		key;
	LOCKMODE	mode;
} EsDcbLock;

typedef struct EsDcbLocks
{
	EsDcbLock  *locks;
	int			n;
	int			cap;
} EsDcbLocks;

/* ---------------------------------------------------------------- tags */

static int
es_cstr_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* One tag of an event: not empty, not too long (text cannot hold a NUL). */
static void
es_dcb_check_string(int len, const char *what, int ordinal)
{
	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s of %s %d must not be empty", "a tag", what, ordinal)));
	if (len > ES_DCB_MAX_TAG_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("a tag of %s %d is too long", what, ordinal),
				 errdetail("The tag has %d bytes; the limit is %d.", len, ES_DCB_MAX_TAG_BYTES)));
}

/*
 * An event's tags argument, checked, as a canonical text[]: sorted
 * bytewise, duplicates removed (tags are a set).  NULL means none.
 */
Datum
es_dcb_tags(Datum arr, bool isnull, int ordinal)
{
	ArrayType  *a;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	char	  **strs;
	Datum	   *out;
	int			nout = 0;

	if (isnull)
		return PointerGetDatum(construct_empty_array(TEXTOID));
	a = DatumGetArrayTypeP(arr);
	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("tags of event %d must be a one-dimensional array", ordinal)));
	deconstruct_array(a, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n > ES_DCB_MAX_TAGS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("event %d has too many tags", ordinal),
				 errdetail("The event has %d tags; the limit is %d.", n, ES_DCB_MAX_TAGS)));
	strs = palloc(sizeof(char *) * (n + 1));
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("a tag of event %d must not be null", ordinal)));
		es_dcb_check_string(VARSIZE_ANY_EXHDR(DatumGetPointer(elems[i])), "event", ordinal);
		strs[i] = TextDatumGetCString(elems[i]);
	}
	qsort(strs, n, sizeof(char *), es_cstr_cmp);
	out = palloc(sizeof(Datum) * (n + 1));
	for (int i = 0; i < n; i++)
		if (i == 0 || strcmp(strs[i - 1], strs[i]) != 0)
			out[nout++] = CStringGetTextDatum(strs[i]);
	return PointerGetDatum(construct_array(out, nout, TEXTOID, -1, false, TYPALIGN_INT));
}

/* ---------------------------------------------------------------- queries */

/* A jsonb array of strings (types or tags) of item `item`, checked. */
static int
es_dcb_strings(JsonbValue *v, const char *key, int item, int limit, char ***out)
{
	JsonbIterator *it;
	JsonbValue	e;
	JsonbIteratorToken tok;
	int			n = 0;

	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data) ||
		JsonContainerIsScalar(v->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" of query item %d must be an array of strings", key, item)));
	n = JsonContainerSize(v->val.binary.data);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" of query item %d must not be empty", key, item),
				 errhint("Leave the key out to match any %s.", strcmp(key, "types") == 0 ? "type" : "tags")));
	if (n > limit)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("query item %d has too many %s", item, key),
				 errdetail("The item has %d; the limit is %d.", n, limit)));
	*out = palloc(sizeof(char *) * n);
	n = 0;
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		if (e.type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("\"%s\" of query item %d must be an array of strings", key, item)));
		if (e.val.string.len == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("\"%s\" of query item %d must not contain an empty string", key, item)));
		if (e.val.string.len > ES_DCB_MAX_TAG_BYTES)
			ereport(ERROR,
					(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
					 errmsg("a string in \"%s\" of query item %d is too long", key, item),
					 errdetail("It has %d bytes; the limit is %d.", e.val.string.len, ES_DCB_MAX_TAG_BYTES)));
		(*out)[n++] = pnstrdup(e.val.string.val, e.val.string.len);
	}
	return n;
}

/* The keys of a jsonb object container, checked against the allowed ones. */
static void
es_dcb_check_keys(JsonbContainer *c, const char *const *allowed, const char *what)
{
	JsonbIterator *it = JsonbIteratorInit(c);
	JsonbValue	v;
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		bool		ok = false;

		if (tok != WJB_KEY)
			continue;
		for (int i = 0; allowed[i] != NULL; i++)
			if ((int) strlen(allowed[i]) == v.val.string.len &&
				memcmp(allowed[i], v.val.string.val, v.val.string.len) == 0)
				ok = true;
		if (!ok)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown key \"%.*s\" in %s", v.val.string.len, v.val.string.val, what)));
	}
}

static JsonbValue *
es_dcb_get(JsonbContainer *c, const char *key)
{
	return getKeyJsonValueFromContainer(c, key, strlen(key), NULL);
}

/* Parse and check a query given as a jsonb container. */
static EsDcbQuery *
es_dcb_parse_container(JsonbContainer *root)
{
	static const char *const query_keys[] = {"items", NULL};
	static const char *const item_keys[] = {"types", "tags", NULL};
	EsDcbQuery *q = palloc0(sizeof(EsDcbQuery));
	JsonbValue *items;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			n;

	if (!JsonContainerIsObject(root))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a query must be a JSON object"),
				 errhint("Write {\"items\": [{\"types\": [...], \"tags\": [...]}]}.")));
	es_dcb_check_keys(root, query_keys, "a query");
	items = es_dcb_get(root, "items");
	if (items == NULL || items->type == jbvNull)
		return q;				/* matches everything */
	if (items->type != jbvBinary || !JsonContainerIsArray(items->val.binary.data) ||
		JsonContainerIsScalar(items->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"items\" of a query must be an array")));
	n = JsonContainerSize(items->val.binary.data);
	if (n > ES_DCB_MAX_ITEMS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a query has too many items"),
				 errdetail("The query has %d items; the limit is %d.", n, ES_DCB_MAX_ITEMS)));
	q->items = palloc0(sizeof(EsDcbItem) * Max(n, 1));
	it = JsonbIteratorInit(items->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		EsDcbItem  *item;
		JsonbValue *f;
		int			ord;

		if (tok != WJB_ELEM)
			continue;
		ord = q->nitems + 1;
		if (v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("query item %d must be a JSON object", ord)));
		es_dcb_check_keys(v.val.binary.data, item_keys, psprintf("query item %d", ord));
		item = &q->items[q->nitems++];
		if ((f = es_dcb_get(v.val.binary.data, "types")) != NULL)
			item->ntypes = es_dcb_strings(f, "types", ord, ES_DCB_MAX_ITEM_TYPES, &item->types);
		if ((f = es_dcb_get(v.val.binary.data, "tags")) != NULL)
			item->ntags = es_dcb_strings(f, "tags", ord, ES_DCB_MAX_TAGS, &item->tags);
	}
	return q;
}

/* A query argument: not NULL, checked. */
EsDcbQuery *
es_dcb_parse_query(Jsonb *query)
{
	if (JB_ROOT_IS_SCALAR(query))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a query must be a JSON object")));
	return es_dcb_parse_container(&query->root);
}

/*
 * A condition: {"fail_if_events_match": query, "after": position}; after
 * may be left out or null (no event may match at all).
 */
EsDcbCondition *
es_dcb_parse_condition(Jsonb *cond)
{
	static const char *const cond_keys[] = {"fail_if_events_match", "after", NULL};
	EsDcbCondition *c = palloc0(sizeof(EsDcbCondition));
	JsonbValue *q;
	JsonbValue *after;

	if (JB_ROOT_IS_SCALAR(cond) || !JB_ROOT_IS_OBJECT(cond))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("condition must be a JSON object"),
				 errhint("Write {\"fail_if_events_match\": {\"items\": [...]}, \"after\": position}.")));
	es_dcb_check_keys(&cond->root, cond_keys, "condition");
	q = es_dcb_get(&cond->root, "fail_if_events_match");
	if (q == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("condition must have \"fail_if_events_match\"")));
	if (q->type != jbvBinary || !JsonContainerIsObject(q->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"fail_if_events_match\" of condition must be a query (a JSON object)")));
	c->query = es_dcb_parse_container(q->val.binary.data);
	after = es_dcb_get(&cond->root, "after");
	if (after != NULL && after->type != jbvNull)
	{
		bool		bad = after->type != jbvNumeric;

		if (!bad)
		{
			Numeric		num = after->val.numeric;
			Datum		rounded;

			rounded = DirectFunctionCall2(numeric_round, NumericGetDatum(num), Int32GetDatum(0));
			bad = numeric_is_nan(num) ||
				!DatumGetBool(DirectFunctionCall2(numeric_eq, rounded, NumericGetDatum(num)));
			if (!bad)
				bad = DatumGetBool(DirectFunctionCall2(numeric_lt, NumericGetDatum(num),
													   NumericGetDatum(int64_to_numeric(0)))) ||
					DatumGetBool(DirectFunctionCall2(numeric_gt, NumericGetDatum(num),
													 NumericGetDatum(int64_to_numeric(PG_INT64_MAX))));
			if (!bad)
				c->after = DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(num)));
		}
		c->has_after = true;
		if (bad)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("\"after\" of condition must be a position (an integer >= 0) or null")));
	}
	return c;
}

/* ------------------------------------------------------------- SQL text */

/*
 * A query as SQL: the condition on events e, with its types and tags as
 * text[] parameters, so that queries of one shape (which items have types,
 * which have tags) share one plan, prepared once per backend.
 */
typedef struct EsDcbSql
{
	StringInfoData text;
	int			nparams;
	Oid		   *types;
	Datum	   *values;
	bool	   *nulls;
} EsDcbSql;

static void
es_dcb_param(EsDcbSql *sql, Oid type, Datum value)
{
	sql->types[sql->nparams] = type;
	sql->values[sql->nparams] = value;
	sql->nulls[sql->nparams] = false;
	sql->nparams++;
	appendStringInfo(&sql->text, "$%d", sql->nparams);
}

static Datum
es_dcb_text_array(char **strs, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * n);

	for (int i = 0; i < n; i++)
		d[i] = CStringGetTextDatum(strs[i]);
	return PointerGetDatum(construct_array(d, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * Start sql with room for the query's parameters and `extra` more, which
 * the caller adds first (es_dcb_param).
 */
static void
es_dcb_sql_init(EsDcbSql *sql, EsDcbQuery *q, int extra)
{
	int			max = 2 * q->nitems + extra;

	initStringInfo(&sql->text);
	sql->nparams = 0;
	sql->types = palloc(sizeof(Oid) * max);
	sql->values = palloc(sizeof(Datum) * max);
	sql->nulls = palloc(sizeof(bool) * max);
}

/*
 * The query as an SQL condition on events e.  Items with tags repeat the
 * partial index's predicate (tags <> '{}') so the planner can use it.
 */
static void
es_dcb_where(EsDcbSql *sql, EsDcbQuery *q)
{
	StringInfo	buf = &sql->text;

	if (q->nitems == 0)
	{
		appendStringInfoString(buf, "true");
		return;
	}
	appendStringInfoChar(buf, '(');
	for (int i = 0; i < q->nitems; i++)
	{
		EsDcbItem  *item = &q->items[i];

		if (i > 0)
			appendStringInfoString(buf, " OR ");
		appendStringInfoChar(buf, '(');
		if (item->ntypes == 0 && item->ntags == 0)
			appendStringInfoString(buf, "true");
		if (item->ntypes > 0)
		{
			appendStringInfoString(buf, "e.event_type OPERATOR(pg_catalog.=) ANY (");
			es_dcb_param(sql, TEXTARRAYOID, es_dcb_text_array(item->types, item->ntypes));
			appendStringInfoChar(buf, ')');
		}
		if (item->ntags > 0)
		{
			if (item->ntypes > 0)
				appendStringInfoString(buf, " AND ");
			appendStringInfoString(buf, "e.tags OPERATOR(pg_catalog.@>) ");
			es_dcb_param(sql, TEXTARRAYOID, es_dcb_text_array(item->tags, item->ntags));
			appendStringInfoString(buf, " AND e.tags OPERATOR(pg_catalog.<>) '{}'::pg_catalog.text[]");
		}
		appendStringInfoChar(buf, ')');
	}
	appendStringInfoChar(buf, ')');
}

/*
 * Plans by SQL text, kept for the backend's life (PostgreSQL's plan cache
 * revalidates them after DDL).  Bounded: past ES_DCB_PLANS shapes a plan is
 * made for the call and freed.
 */
#define ES_DCB_PLANS 64

static struct
{
	char	   *sql;
	bool		generic;
	SPIPlanPtr	plan;
}			es_dcb_plans[ES_DCB_PLANS];
static int	es_dcb_nplans = 0;

/*
 * The plan for sql; *temporary set when the caller must free it.  With
 * generic, one plan for every value of the parameters (the check: its plan
 * does not depend on them, and replanning each call would cost more than the
 * check itself).  Otherwise planned for each call's values (read_query: a
 * generic plan may walk the position index for a LIMIT, and read the whole
 * log for a rare tag; measured 30 ms instead of 4 for 1,000 of 500,000).
 */
static SPIPlanPtr
es_dcb_plan(EsDcbSql *sql, bool generic, bool *temporary)
{
	SPIPlanPtr	plan;

	*temporary = false;
	for (int i = 0; i < es_dcb_nplans; i++)
		if (es_dcb_plans[i].generic == generic && strcmp(es_dcb_plans[i].sql, sql->text.data) == 0)
			return es_dcb_plans[i].plan;
	plan = SPI_prepare_cursor(sql->text.data, sql->nparams, sql->types,
							  generic ? CURSOR_OPT_GENERIC_PLAN : CURSOR_OPT_CUSTOM_PLAN);
	if (plan == NULL)
		elog(ERROR, "eventstore: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	if (es_dcb_nplans == ES_DCB_PLANS)
	{
		*temporary = true;
		return plan;
	}
	SPI_keepplan(plan);
	es_dcb_plans[es_dcb_nplans].sql = MemoryContextStrdup(TopMemoryContext, sql->text.data);
	es_dcb_plans[es_dcb_nplans].generic = generic;
	es_dcb_plans[es_dcb_nplans].plan = plan;
	es_dcb_nplans++;
	return plan;
}

/* ---------------------------------------------------------------- locks */

static uint64
es_dcb_key(EsStore *st, char kind, const char *a, const char *b)
{
	StringInfoData buf;
	uint64		h;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, kind);
	if (a)
		appendBinaryStringInfo(&buf, a, strlen(a) + 1);
	if (b)
		appendBinaryStringInfo(&buf, b, strlen(b) + 1);
	h = hash_bytes_extended((const unsigned char *) buf.data, buf.len, st->relid);
	pfree(buf.data);
	return h;
}

static void
es_dcb_add(EsDcbLocks *l, uint64 key, LOCKMODE mode)
{
	if (l->n == l->cap)
	{
		l->cap = l->cap ? l->cap * 2 : 16;
		l->locks = l->locks ? repalloc(l->locks, sizeof(EsDcbLock) * l->cap)
			: palloc(sizeof(EsDcbLock) * l->cap);
	}
	l->locks[l->n].key = key;
	l->locks[l->n].mode = mode;
	l->n++;
}

static int
es_dcb_lock_cmp(const void *a, const void *b)
{
	uint64		x = ((const EsDcbLock *) a)->key;
	uint64		y = ((const EsDcbLock *) b)->key;

	return x < y ? -1 : x > y ? 1 : 0;
}

/* Sort and merge duplicates; returns the number of distinct keys. */
static int
es_dcb_dedupe(EsDcbLocks *l)
{
	int			n = 0;

	if (l->n == 0)
		return 0;
	qsort(l->locks, l->n, sizeof(EsDcbLock), es_dcb_lock_cmp);
	for (int i = 0; i < l->n; i++)
	{
		if (n > 0 && l->locks[n - 1].key == l->locks[i].key)
		{
			if (l->locks[n - 1].mode != l->locks[i].mode)
				l->locks[n - 1].mode = ShareRowExclusiveLock;
			continue;
		}
		l->locks[n++] = l->locks[i];
	}
	l->n = n;
	return n;
}

/* Keys of the events written (mode ROW EXCLUSIVE). */
static void
es_dcb_writer_keys(EsStore *st, EsDcbLocks *out, Datum *types, Datum *tags, int n)
{
	EsDcbLocks	fine = {0};

	for (int i = 0; i < n; i++)
	{
		char	   *type = TextDatumGetCString(types[i]);
		Datum	   *elems;
		int			ntags;

		es_dcb_add(&fine, es_dcb_key(st, ES_DCB_KEY_TYPE, type, NULL), RowExclusiveLock);
		deconstruct_array(DatumGetArrayTypeP(tags[i]), TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, NULL, &ntags);
		for (int t = 0; t < ntags; t++)
		{
			char	   *tag = TextDatumGetCString(elems[t]);

			es_dcb_add(&fine, es_dcb_key(st, ES_DCB_KEY_TAG, tag, NULL), RowExclusiveLock);
			es_dcb_add(&fine, es_dcb_key(st, ES_DCB_KEY_TYPETAG, type, tag), RowExclusiveLock);
		}
	}
	es_dcb_add(out, es_dcb_key(st, ES_DCB_KEY_ALL, NULL, NULL), RowExclusiveLock);
	if (es_dcb_dedupe(&fine) > ES_DCB_MAX_KEYS)
		es_dcb_add(out, es_dcb_key(st, ES_DCB_KEY_BIG, NULL, NULL), RowExclusiveLock);
	else
		for (int i = 0; i < fine.n; i++)
			es_dcb_add(out, fine.locks[i].key, RowExclusiveLock);
}

/* Keys of a condition's query (mode SHARE). */
static void
es_dcb_reader_keys(EsStore *st, EsDcbLocks *out, EsDcbQuery *q)
{
	EsDcbLocks	fine = {0};
	bool		all = q->nitems == 0;

	for (int i = 0; i < q->nitems && !all; i++)
	{
		EsDcbItem  *item = &q->items[i];

		if (item->ntypes == 0 && item->ntags == 0)
			all = true;
		else if (item->ntags == 0)
			for (int t = 0; t < item->ntypes; t++)
				es_dcb_add(&fine, es_dcb_key(st, ES_DCB_KEY_TYPE, item->types[t], NULL), ShareLock);
		else if (item->ntypes == 0)
			es_dcb_add(&fine, es_dcb_key(st, ES_DCB_KEY_TAG, item->tags[0], NULL), ShareLock);
		else
			for (int t = 0; t < item->ntypes; t++)
				es_dcb_add(&fine, es_dcb_key(st, ES_DCB_KEY_TYPETAG, item->types[t], item->tags[0]),
						   ShareLock);
	}
	if (all || es_dcb_dedupe(&fine) > ES_DCB_MAX_KEYS)
	{
		es_dcb_add(out, es_dcb_key(st, ES_DCB_KEY_ALL, NULL, NULL), ShareLock);
		return;
	}
	es_dcb_add(out, es_dcb_key(st, ES_DCB_KEY_BIG, NULL, NULL), ShareLock);
	for (int i = 0; i < fine.n; i++)
		es_dcb_add(out, fine.locks[i].key, ShareLock);
}

/*
 * Take the locks of an append: its events' keys, and with cond its query's
 * keys, in one sorted pass.  Returns the number of locks taken.
 */
int
es_dcb_lock(EsStore *st, Datum *types, Datum *tags, int n, EsDcbCondition *cond)
{
	EsDcbLocks	l = {0};

	es_dcb_writer_keys(st, &l, types, tags, n);
	if (cond != NULL)
		es_dcb_reader_keys(st, &l, cond->query);
	es_dcb_dedupe(&l);
	for (int i = 0; i < l.n; i++)
	{
		LOCKTAG		tag;

		SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (l.locks[i].key >> 32),
							 (uint32) l.locks[i].key, ES_LOCKTAG_DCB);
		(void) LockAcquire(&tag, l.locks[i].mode, false, false);
	}
	pfree(l.locks);
	return l.n;
}

/* ---------------------------------------------------------- direct scans */

/*
 * Is pred the predicate every store's tags index has, tags <> '{}' (which an
 * event matching an item with tags satisfies)?
 */
static bool
es_dcb_is_nonempty_pred(Node *pred, AttrNumber tags_att)
{
	OpExpr	   *op;
	Node	   *arg;
	Const	   *c;

	if (IsA(pred, List) && list_length((List *) pred) == 1)
		pred = linitial((List *) pred);
	if (!IsA(pred, OpExpr))
		return false;
	op = (OpExpr *) pred;
	if (get_opcode(op->opno) != F_ARRAY_NE || list_length(op->args) != 2)
		return false;
	arg = linitial(op->args);
	c = (Const *) lsecond(op->args);
	if (!IsA(arg, Var) || ((Var *) arg)->varattno != tags_att || !IsA(c, Const) || c->constisnull)
		return false;
	return ArrayGetNItems(ARR_NDIM(DatumGetArrayTypeP(c->constvalue)),
						  ARR_DIMS(DatumGetArrayTypeP(c->constvalue))) == 0;
}

/*
 * Can indexoid serve direct scans of items with tags (catalog.c asks for
 * each index of a store)?  A valid index on exactly the tags column whose
 * operator family has the array @> operator (GIN's array_ops), either not
 * partial or partial on tags <> '{}' as create_store makes it.  Its access
 * method must also do bitmap scans (es_dcb_scan_begin).
 */
bool
es_dcb_is_tags_index(Oid indexoid, AttrNumber tags_att)
{
	HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexoid));
	Form_pg_index idx;
	bool		ok;
	bool		isnull;
	Datum		d;

	if (!HeapTupleIsValid(tup))
		return false;
	idx = (Form_pg_index) GETSTRUCT(tup);
	ok = idx->indisvalid && idx->indisready && idx->indislive && idx->indnkeyatts == 1 &&
		idx->indkey.values[0] == tags_att &&
		heap_attisnull(tup, Anum_pg_index_indexprs, NULL);
	if (ok)
	{
		oidvector  *classes;

		d = SysCacheGetAttr(INDEXRELID, tup, Anum_pg_index_indclass, &isnull);
		classes = (oidvector *) DatumGetPointer(d);
		ok = !isnull && get_op_opfamily_strategy(OID_ARRAY_CONTAINS_OP,
												 get_opclass_family(classes->values[0])) != 0;
	}
	if (ok)
	{
		d = SysCacheGetAttr(INDEXRELID, tup, Anum_pg_index_indpred, &isnull);
		if (!isnull)
			ok = es_dcb_is_nonempty_pred(stringToNode(TextDatumGetCString(d)), tags_att);
	}
	ReleaseSysCache(tup);
	return ok;
}

/*
 * The memory of a direct scan: a context of the backend that keeps its first
 * block across calls (no malloc and trim of it per call), reset at the start
 * of each scan.  No other code runs during a scan, so scans never nest.
 */
#define ES_DCB_SCAN_KEEP (64 * 1024)

static MemoryContext es_dcb_scan_cxt = NULL;

static MemoryContext
es_dcb_scan_memory(void)
{
	if (es_dcb_scan_cxt == NULL)
		es_dcb_scan_cxt = AllocSetContextCreate(TopMemoryContext, "eventstore direct scan",
												ES_DCB_SCAN_KEEP, ES_DCB_SCAN_KEEP,
												ALLOCSET_DEFAULT_MAXSIZE);
	else
		MemoryContextReset(es_dcb_scan_cxt);
	return es_dcb_scan_cxt;
}

/*
 * A direct scan: the events of a store matching a query whose items all have
 * tags, found through the store's tags index (a bitmap of the union of the
 * items' @> scans, as the plan of the query's SQL does) and rechecked in the
 * heap, without SPI, planner or executor.
 */
typedef enum EsDcbScanMode
{
	ES_DCB_FIRST,				/* the lowest matching position only (a check) */
	ES_DCB_STREAM,				/* matches straight into the result, in heap order */
	ES_DCB_KEEP					/* copies of the matches, to sort */
} EsDcbScanMode;

typedef struct EsDcbScan
{
	EsStore    *st;
	EsDcbQuery *q;
	Relation	rel;
	Relation	index;
	Snapshot	snapshot;
	TIDBitmap  *tbm;
	EsDcbScanMode mode;
	int64		first;			/* the lowest matching position, 0: none */
	/* ES_DCB_KEEP: copies of the matches */
	int			nrows;
	int			caprows;
	int64	   *positions;
	HeapTuple  *rows;
	/* ES_DCB_STREAM: the result, its layout, and how far it got */
	Tuplestorestate *out;
	TupleDesc	outdesc;
	AttrNumber *map;			/* see es_dcb_column_map */
	bool		same;			/* out's layout is the table's */
	Datum	   *in_values;
	bool	   *in_nulls;
	Datum	   *values;
	bool	   *nulls;
	bool		limited;
	int64		limit;
	int64		nput;
	int64		last;			/* the last position put */
	bool		disorder;		/* a match below it came later */
} EsDcbScan;

/*
 * Start a direct scan of st for q with snapshot, in the current memory
 * context: false (and nothing open) when it cannot serve q: an item without
 * tags, no usable tags index, row-level security, a distributed table.
 */
static bool
es_dcb_scan_begin(EsDcbScan *s, EsStore *st, EsDcbQuery *q, Snapshot snapshot)
{
	StrategyNumber strategy;

	if (!OidIsValid(st->tags_index) || st->distributed || q->nitems == 0)
		return false;
	for (int i = 0; i < q->nitems; i++)
		if (q->items[i].ntags == 0)
			return false;
	memset(s, 0, sizeof(EsDcbScan));
	s->rel = table_open(st->relid, AccessShareLock);
	/* the lock may have brought news of the indexes (st->valid false) */
	if (!st->valid || s->rel->rd_rel->relrowsecurity)
	{
		table_close(s->rel, NoLock);
		return false;
	}
	s->st = st;
	s->q = q;
	s->snapshot = snapshot;
	s->index = index_open(st->tags_index, AccessShareLock);
	if (s->index->rd_indam->amgetbitmap == NULL)
	{
		index_close(s->index, NoLock);
		table_close(s->rel, NoLock);
		return false;
	}
	strategy = get_op_opfamily_strategy(OID_ARRAY_CONTAINS_OP, s->index->rd_opfamily[0]);
	for (int i = 0; i < q->nitems; i++)
	{
		TIDBitmap  *tbm = tbm_create(work_mem * 1024L, NULL);
		IndexScanDesc scan;
		ScanKeyData key;

		ScanKeyEntryInitialize(&key, 0, 1, strategy, ANYARRAYOID, s->index->rd_indcollation[0],
							   F_ARRAYCONTAINS, es_dcb_text_array(q->items[i].tags, q->items[i].ntags));
		scan = index_beginscan_bitmap(s->index, snapshot, 1);
		index_rescan(scan, &key, 1, NULL, 0);
		(void) index_getbitmap(scan, tbm);
		index_endscan(scan);
		if (s->tbm == NULL)
			s->tbm = tbm;
		else
		{
			tbm_union(s->tbm, tbm);
			tbm_free(tbm);
		}
	}
	return true;
}

static void
es_dcb_scan_end(EsDcbScan *s)
{
	tbm_free(s->tbm);
	index_close(s->index, NoLock);
	table_close(s->rel, NoLock);
}

/* How many events the bitmap holds; -1 when it is lossy (only pages). */
static int64
es_dcb_scan_size(EsDcbScan *s)
{
	TBMIterator *it = tbm_begin_iterate(s->tbm);
	TBMIterateResult *res;
	int64		n = 0;

	while ((res = tbm_iterate(it)) != NULL && n >= 0)
		n = res->ntuples < 0 ? -1 : n + res->ntuples;
	tbm_end_iterate(it);
	return n;
}

/* Is the text datum equal to the string s? */
static bool
es_dcb_text_is(Datum d, const char *s)
{
	text	   *t = DatumGetTextPP(d);
	size_t		len = VARSIZE_ANY_EXHDR(t);

	return strlen(s) == len && memcmp(VARDATA_ANY(t), s, len) == 0;
}

/*
 * Does the event in slot match the scan's query (any item: type and all
 * tags)?  Its tags, usually a short varlena, are copied to the stack, not
 * detoasted into palloc'd memory, and read in place.
 */
static bool
es_dcb_scan_matches(EsDcbScan *s, TupleTableSlot *slot)
{
	bool		isnull;
	Datum		type = slot_getattr(slot, s->st->attnum[ES_COL_TYPE], &isnull);
	Datum		tagsd = slot_getattr(slot, s->st->attnum[ES_COL_TAGS], &isnull);
	struct varlena *v = (struct varlena *) DatumGetPointer(tagsd);
	union
	{
		int64		align;
		char		data[1024];
	}			buf;
	ArrayType  *tags;
	array_iter	iter;
	Datum		local[ES_DCB_MAX_TAGS];
	Datum	   *elems = local;
	int			ntags;

	if (isnull)
		return false;
	if (VARATT_IS_SHORT(v) && VARSIZE_SHORT(v) - VARHDRSZ_SHORT + VARHDRSZ <= sizeof(buf.data))
	{
		memcpy(buf.data + VARHDRSZ, VARDATA_SHORT(v), VARSIZE_SHORT(v) - VARHDRSZ_SHORT);
		SET_VARSIZE(buf.data, VARSIZE_SHORT(v) - VARHDRSZ_SHORT + VARHDRSZ);
		tags = (ArrayType *) buf.data;
	}
	else
		tags = DatumGetArrayTypeP(tagsd);
	ntags = ArrayGetNItems(ARR_NDIM(tags), ARR_DIMS(tags));
	if (ntags > ES_DCB_MAX_TAGS)
		elems = palloc(sizeof(Datum) * ntags);
	array_iter_setup(&iter, (AnyArrayType *) tags);
	for (int e = 0; e < ntags; e++)
	{
		elems[e] = array_iter_next(&iter, &isnull, e, -1, false, TYPALIGN_INT);
		if (isnull)
			elems[e] = (Datum) 0;
	}
	for (int i = 0; i < s->q->nitems; i++)
	{
		EsDcbItem  *item = &s->q->items[i];
		bool		ok = item->ntypes == 0;

		for (int t = 0; t < item->ntypes && !ok; t++)
			ok = es_dcb_text_is(type, item->types[t]);
		for (int g = 0; g < item->ntags && ok; g++)
		{
			ok = false;
			for (int e = 0; e < ntags && !ok; e++)
				ok = elems[e] != (Datum) 0 && es_dcb_text_is(elems[e], item->tags[g]);
		}
		if (ok)
			return true;
	}
	return false;
}

/*
 * Put a row of the table into the result: as it is when the layouts agree
 * and every column is stored, else column by column (by name).
 */
static void
es_dcb_put_row(EsDcbScan *s, HeapTuple row)
{
	if (s->same && HeapTupleHeaderGetNatts(row->t_data) == s->outdesc->natts)
	{
		tuplestore_puttuple(s->out, row);
		return;
	}
	heap_deform_tuple(row, RelationGetDescr(s->rel), s->in_values, s->in_nulls);
	for (int o = 0; o < s->outdesc->natts; o++)
	{
		AttrNumber	a = s->map[o];

		s->nulls[o] = a == 0 || s->in_nulls[a - 1];
		s->values[o] = a == 0 ? (Datum) 0 : s->in_values[a - 1];
	}
	tuplestore_putvalues(s->out, s->outdesc, s->values, s->nulls);
}

/*
 * Read the events of the bitmap with a position in (lo, hi] that match: the
 * lowest position in s->first (0: none), and by s->mode a copy of each, or
 * each put into the result as it comes.  Streaming relies on heap order
 * being position order (an append-only table); past max_count rows only
 * positions are read; the first match lower than the last row put sets
 * s->disorder and ends the scan.  Per event the arrays of its tags are
 * made in a context reset per event.
 */
static void
es_dcb_scan_run(EsDcbScan *s, int64 lo, int64 hi)
{
	TableScanDesc scan = table_beginscan_bm(s->rel, s->snapshot, 0, NULL);
	TupleTableSlot *slot = table_slot_create(s->rel, NULL);
	TBMIterator *it = tbm_begin_iterate(s->tbm);
	TBMIterateResult *res;
	MemoryContext row_cxt = AllocSetContextCreate(CurrentMemoryContext, "eventstore direct scan row",
												  ALLOCSET_SMALL_SIZES);
	AttrNumber	posatt = s->st->attnum[ES_COL_POSITION];

	s->first = 0;
	while ((res = tbm_iterate(it)) != NULL)
	{
		CHECK_FOR_INTERRUPTS();
		if (!table_scan_bitmap_next_block(scan, res))
			continue;
		while (table_scan_bitmap_next_tuple(scan, res, slot))
		{
			bool		isnull;
			int64		pos = DatumGetInt64(slot_getattr(slot, posatt, &isnull));
			MemoryContext old;
			bool		match;

			if (pos <= lo || pos > hi)
				continue;
			if (s->mode == ES_DCB_STREAM && s->limited && s->nput >= s->limit && pos > s->last)
				continue;		/* after the whole result, so not in it */
			old = MemoryContextSwitchTo(row_cxt);
			match = es_dcb_scan_matches(s, slot);
			MemoryContextSwitchTo(old);
			MemoryContextReset(row_cxt);
			if (!match)
				continue;
			if (s->first == 0 || pos < s->first)
				s->first = pos;
			if (s->mode == ES_DCB_FIRST)
				continue;
			if (s->mode == ES_DCB_STREAM)
			{
				if (pos < s->last)
				{
					s->disorder = true;
					goto done;
				}
				es_dcb_put_row(s, ExecFetchSlotHeapTuple(slot, false, NULL));
				s->last = pos;
				s->nput++;
				continue;
			}
			if (s->nrows == s->caprows)
			{
				s->caprows = s->caprows ? s->caprows * 2 : 1024;
				s->positions = s->positions ? repalloc(s->positions, sizeof(int64) * s->caprows)
					: palloc(sizeof(int64) * s->caprows);
				s->rows = s->rows ? repalloc(s->rows, sizeof(HeapTuple) * s->caprows)
					: palloc(sizeof(HeapTuple) * s->caprows);
			}
			s->positions[s->nrows] = pos;
			s->rows[s->nrows] = ExecCopySlotHeapTuple(slot);
			s->nrows++;
		}
	}
done:
	tbm_end_iterate(it);
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	MemoryContextDelete(row_cxt);
}

/*
 * The condition check without SPI, when a direct scan can serve its query:
 * returns -1 when it cannot, else whether an event matching the query has a
 * position above after (the first one in *found), in committed state plus
 * this transaction's rows (SnapshotSelf), as es_dcb_first_match.
 */
static int
es_dcb_direct_first(EsStore *st, EsDcbCondition *cond, int64 *found)
{
	MemoryContext old = MemoryContextSwitchTo(es_dcb_scan_memory());
	EsDcbScan	s;
	int			r = -1;

	if (es_dcb_scan_begin(&s, st, cond->query, SnapshotSelf))
	{
		s.mode = ES_DCB_FIRST;
		es_dcb_scan_run(&s, cond->after, PG_INT64_MAX);
		es_dcb_scan_end(&s);
		*found = s.first;
		r = s.first != 0;
	}
	MemoryContextSwitchTo(old);
	return r;
}

static int
es_dcb_position_cmp(const void *a, const void *b)
{
	int64		x = **(const int64 *const *) a;
	int64		y = **(const int64 *const *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * Most events a direct read_query reads for max_count events: a bitmap with
 * more (a common tag, or a tag read from late in the log) goes to the
 * planner, which may walk the position index instead.
 */
#define ES_DCB_DIRECT_ROWS(limit) (4 * (limit) + 1000)

/*
 * The attribute of rel (1-based; 0: none, a dropped column) for each column
 * of the result rowtype out, by name and type; NULL when one is missing.
 */
static AttrNumber *
es_dcb_column_map(Relation rel, TupleDesc out)
{
	TupleDesc	in = RelationGetDescr(rel);
	AttrNumber *map = palloc0(sizeof(AttrNumber) * out->natts);

	for (int o = 0; o < out->natts; o++)
	{
		Form_pg_attribute oa = TupleDescAttr(out, o);

		if (oa->attisdropped)
			continue;
		for (int i = 0; i < in->natts && map[o] == 0; i++)
		{
			Form_pg_attribute ia = TupleDescAttr(in, i);

			if (!ia->attisdropped && ia->atttypid == oa->atttypid &&
				strcmp(NameStr(ia->attname), NameStr(oa->attname)) == 0)
				map[o] = i + 1;
		}
		if (map[o] == 0)
			return NULL;
	}
	return map;
}

/*
 * read_query by a direct scan with snapshot, its rows put straight into the
 * function's result: for a store whose rows need no upcasting, lifecycle
 * filter or decryption (the caller checks), a query a direct scan can serve,
 * and a bitmap of at most ES_DCB_DIRECT_ROWS events.  The matches in
 * (after, horizon] are sorted by position and the first max_count kept, the
 * plan the planner makes for the same SQL then.  Returns false, with nothing
 * in the result, when it cannot.
 */
static bool
es_dcb_direct_read(FunctionCallInfo fcinfo, EsStore *st, EsDcbQuery *q, int64 after,
				   int64 horizon, bool limited, int64 limit, Snapshot snapshot)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TupleDesc	out = rsinfo->setDesc;
	MemoryContext old = MemoryContextSwitchTo(es_dcb_scan_memory());
	EsDcbScan	s;
	TupleDesc	in;
	int64		size;
	int64	  **order;

	if (!es_dcb_scan_begin(&s, st, q, snapshot))
	{
		MemoryContextSwitchTo(old);
		return false;
	}
	in = RelationGetDescr(s.rel);
	s.map = es_dcb_column_map(s.rel, out);
	size = es_dcb_scan_size(&s);
	if (s.map == NULL || size < 0 || (limited && size > ES_DCB_DIRECT_ROWS(limit)))
	{
		es_dcb_scan_end(&s);
		MemoryContextSwitchTo(old);
		return false;
	}
	s.out = rsinfo->setResult;
	s.outdesc = out;
	s.same = out->natts == in->natts;
	for (int o = 0; o < out->natts && s.same; o++)
	{
		Form_pg_attribute oa = TupleDescAttr(out, o);
		Form_pg_attribute ia = TupleDescAttr(in, o);

		s.same = oa->attisdropped == ia->attisdropped && oa->attlen == ia->attlen &&
			oa->attalign == ia->attalign && (oa->attisdropped || s.map[o] == o + 1);
	}
	s.in_values = palloc(sizeof(Datum) * in->natts);
	s.in_nulls = palloc(sizeof(bool) * in->natts);
	s.values = palloc(sizeof(Datum) * out->natts);
	s.nulls = palloc(sizeof(bool) * out->natts);
	s.limited = limited;
	s.limit = limit;
	if (limited && limit == 0)
	{
		es_dcb_scan_end(&s);
		MemoryContextSwitchTo(old);
		return true;
	}

	/*
	 * Usually the heap holds the events in position order, and the rows go
	 * straight into the result.  When it does not (space freed by a purge
	 * and reused), the result is emptied and the matches are sorted.
	 */
	s.mode = ES_DCB_STREAM;
	es_dcb_scan_run(&s, after, horizon);
	if (s.disorder)
	{
		tuplestore_clear(s.out);
		s.mode = ES_DCB_KEEP;
		es_dcb_scan_run(&s, after, horizon);
		order = palloc(sizeof(int64 *) * Max(s.nrows, 1));
		for (int i = 0; i < s.nrows; i++)
			order[i] = &s.positions[i];
		qsort(order, s.nrows, sizeof(int64 *), es_dcb_position_cmp);
		for (int i = 0; i < s.nrows && (!limited || i < limit); i++)
			es_dcb_put_row(&s, s.rows[order[i] - s.positions]);
	}
	es_dcb_scan_end(&s);
	MemoryContextSwitchTo(old);
	return true;
}

/* ---------------------------------------------------------------- checks */

/*
 * Refuse an `after` above the read horizon: it cannot come from a read, and
 * a matching event in flight below it would escape the check.
 */
void
es_dcb_check_after(EsDcbCondition *cond)
{
	int64		horizon;

	if (!cond->has_after)
		return;
	/*
	 * Bounded by the newest position, read before the in-flight registry
	 * (horizon.c): a position taken meanwhile is not counted as settled.
	 */
	horizon = es_settled_horizon(ES_COUNTER_POSITION, es_position_seqid());
	if (cond->after > horizon)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"after\" position " INT64_FORMAT " of condition is beyond the read horizon " INT64_FORMAT,
						cond->after, horizon),
				 errdetail("A position above the horizon is not settled: an event below it may still commit."),
				 errhint("Use the position of the last event read_query returned.")));
}

/*
 * The first event matching cond's query with a position above its after, in
 * committed state plus this transaction's own rows (SnapshotSelf); with
 * visible, only events the lifecycle lets be read (as read_query does: see
 * es_dcb_check).  Returns false when there is none.  The query selects
 * tags, which no btree index holds: an index-only scan cannot run with a
 * non-MVCC snapshot.
 */
static bool
es_dcb_first_match(EsStore *st, EsDcbCondition *cond, bool visible, int64 *found)
{
	EsDcbSql	sql;
	SPIPlanPtr	plan;
	bool		temporary;
	char	   *cnulls;
	bool		isnull;

	es_dcb_sql_init(&sql, cond->query, 1);
	appendStringInfo(&sql.text, "SELECT e.global_position, e.tags FROM %s e"
					 " WHERE e.global_position OPERATOR(pg_catalog.>) ", st->name);
	es_dcb_param(&sql, INT8OID, Int64GetDatum(cond->after));
	appendStringInfoString(&sql.text, " AND ");
	es_dcb_where(&sql, cond->query);
	if (visible)
		appendStringInfo(&sql.text, " AND eventstore._visible(%u::pg_catalog.oid::pg_catalog.regclass,"
						 " e.stream_id, e.stream_version, e.created_at)", st->relid);

	/*
	 * Usually nothing matches: walking the position index in order, which
	 * the planner may prefer for a LIMIT 1, would then read every position
	 * after `after` (all of them without one).  Ordering by an expression
	 * keeps it to the query's own indexes and a sort of the matches.
	 */
	appendStringInfoString(&sql.text, " ORDER BY e.global_position OPERATOR(pg_catalog.+) 0 LIMIT 1");
	plan = es_dcb_plan(&sql, true, &temporary);
	cnulls = palloc0(sql.nparams + 1);
	memset(cnulls, ' ', sql.nparams);
	if (SPI_execute_snapshot(plan, sql.values, cnulls, SnapshotSelf, InvalidSnapshot,
							 true, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "eventstore: the condition's query failed");
	if (temporary)
		SPI_freeplan(plan);
	if (SPI_processed == 0)
		return false;
	*found = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	return true;
}

/*
 * The condition check, run with the append's locks held and SPI connected:
 * raises ES412 naming the first event matching the query with a position
 * above after.  An event hidden by the lifecycle (stream metadata, deletes;
 * lifecycle.c) does not count: read_query does not return it, so a client
 * could never read past it, and it would fail every retry.  Hidden or not
 * is decided at the check, with the same fresh look.  Usually nothing
 * matches at all, and then no lifecycle lookup is made.  The first look is
 * a direct scan when one can serve the query.
 */
void
es_dcb_check(EsStore *st, EsDcbCondition *cond, Datum stream_id)
{
	int64		found;

	int			direct = es_dcb_direct_first(st, cond, &found);

	if (direct == 0 || (direct < 0 && !es_dcb_first_match(st, cond, false, &found)))
		return;
	if (es_lifecycle_active(st->relid, GetLatestSnapshot()) &&
		!es_dcb_first_match(st, cond, true, &found))
		return;
	es_stats_conflict(st, stream_id);
	ereport(ERROR,
			(errcode(ERRCODE_ES_CONDITION_FAILED),
			 errmsg("append condition failed: an event matching the query exists after position " INT64_FORMAT,
					cond->after),
			 errdetail("The first conflicting event is at position " INT64_FORMAT ". Nothing was appended.", found),
			 errhint("Read the query again and decide again.")));
}

/* ---------------------------------------------------------------- reads */

/*
 * read_query's result.  A result of 1,000 events is a few hundred kB of
 * tuples: allocated in the per-query context, it is freed back to the
 * operating system at the end of every call and faulted in again by the next
 * (most of read_query's cost over the plain SELECT, measured in page
 * faults).  So the result goes in a context of the backend that keeps its
 * first block, ES_DCB_RESULT_KEEP bytes, across calls.  One result at a time
 * uses it: from the call that takes it until the end of that call's query
 * (a reset callback on the per-query context gives it back and resets it, on
 * error too).  A second read_query in the same query, while the first one's
 * result is still held, builds its result in the per-query context as before.
 */
#define ES_DCB_RESULT_KEEP (512 * 1024)

static MemoryContext es_dcb_result_cxt = NULL;
static bool es_dcb_result_busy = false;

static void
es_dcb_result_release(void *arg)
{
	(void) arg;
	MemoryContextReset(es_dcb_result_cxt);
	es_dcb_result_busy = false;
}

/*
 * InitMaterializedSRF, with the tuplestore in the backend's result context
 * when it is free.
 */
static void
es_dcb_materialize(FunctionCallInfo fcinfo)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext per_query;
	MemoryContext old;
	MemoryContextCallback *cb;
	TupleDesc	desc;

	if (es_dcb_result_busy)
	{
		InitMaterializedSRF(fcinfo, 0);
		return;
	}
	/* the checks InitMaterializedSRF makes */
	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
	if (!(rsinfo->allowedModes & SFRM_Materialize))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("materialize mode required, but it is not allowed in this context")));
	per_query = rsinfo->econtext->ecxt_per_query_memory;
	if (es_dcb_result_cxt == NULL)
		es_dcb_result_cxt = AllocSetContextCreate(TopMemoryContext, "eventstore read_query result",
												  ES_DCB_RESULT_KEEP, ES_DCB_RESULT_KEEP,
												  ALLOCSET_DEFAULT_MAXSIZE);
	old = MemoryContextSwitchTo(per_query);
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "eventstore: read_query must return a row type");
	desc = CreateTupleDescCopy(desc);
	cb = palloc(sizeof(MemoryContextCallback));
	cb->func = es_dcb_result_release;
	cb->arg = NULL;
	MemoryContextRegisterResetCallback(per_query, cb);
	es_dcb_result_busy = true;
	MemoryContextSwitchTo(es_dcb_result_cxt);
	rsinfo->setResult = tuplestore_begin_heap((rsinfo->allowedModes & SFRM_Materialize_Random) != 0,
											  false, work_mem);
	MemoryContextSwitchTo(old);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setDesc = desc;
}

/*
 * eventstore.read_query(query jsonb, after_position bigint DEFAULT 0,
 *						 max_count integer DEFAULT 1000, store regclass DEFAULT
 *						 'eventstore.events') RETURNS SETOF events:
 * events of the store matching query in (after_position, horizon], in
 * position order, hidden events left out and data decrypted as read_all
 * does.  The caller reads with its own rights (SELECT on the store).
 */
Datum
eventstore_read_query(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	EsDcbQuery *q;
	int64		after = PG_ARGISNULL(1) ? 0 : PG_GETARG_INT64(1);
	int64		limit = 0;
	bool		limited = !PG_ARGISNULL(2);
	Snapshot	snapshot;
	int64		horizon;
	EsDcbSql	sql;
	SPIPlanPtr	plan;
	bool		temporary;
	DestReceiver *dest;
	const char *cols;
	const char *from;
	const char *filter;
	EsStore    *st;
	bool		upcast;
	bool		lifecycle;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("query must not be null"),
				 errhint("Use '{}' to match every event.")));
	q = es_dcb_parse_query(PG_GETARG_JSONB_P(0));
	if (limited)
	{
		limit = PG_GETARG_INT32(2);
		if (limit < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("max_count must not be negative")));
	}

	st = es_store_arg(fcinfo, 3, ACL_SELECT);

	es_dcb_materialize(fcinfo);
	horizon = es_read_horizon(ES_COUNTER_POSITION, es_position_seqid(), &snapshot);
	if (after >= horizon)
	{
		UnregisterSnapshot(snapshot);
		return (Datum) 0;
	}

	/*
	 * As read_all: with stream metadata, deleted streams or keys in the
	 * store, hidden events are left out (before the limit) and data is
	 * decrypted (read.c).  Without them, and for a query of items with tags
	 * and a bitmap of moderate size, the tags index is read directly.
	 */
	upcast = es_upcasting(st);
	lifecycle = es_lifecycle_active(st->relid, snapshot);
	if (!upcast && !lifecycle &&
		es_dcb_direct_read(fcinfo, st, q, after, horizon, limited, limit, snapshot))
	{
		UnregisterSnapshot(snapshot);
		return (Datum) 0;
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "eventstore: SPI_connect failed");
	es_read_sql_parts(st, upcast, lifecycle, &cols, &from, &filter);
	es_dcb_sql_init(&sql, q, 3);
	/* on a Citus worker the node's own shards, refused on the coordinator (citus.c) */
	appendStringInfo(&sql.text, "SELECT %s FROM %s e%s WHERE e.global_position OPERATOR(pg_catalog.>) ",
					 cols, es_store_local_sql(st, "read_query", ES_CITUS_LOG_HINT), from);
	es_dcb_param(&sql, INT8OID, Int64GetDatum(after));
	appendStringInfoString(&sql.text, " AND e.global_position OPERATOR(pg_catalog.<=) ");
	es_dcb_param(&sql, INT8OID, Int64GetDatum(horizon));
	appendStringInfoString(&sql.text, " AND ");
	es_dcb_where(&sql, q);
	appendStringInfoString(&sql.text, filter);
	appendStringInfoString(&sql.text, " ORDER BY e.global_position LIMIT ");
	es_dcb_param(&sql, INT8OID, Int64GetDatum(limit));
	sql.nulls[sql.nparams - 1] = !limited;
	plan = es_dcb_plan(&sql, false, &temporary);
	dest = CreateTuplestoreDestReceiver();
	es_tuplestore_dest_params(dest, rsinfo->setResult,
							  rsinfo->econtext->ecxt_per_query_memory);
	PushActiveSnapshot(snapshot);
	es_spi_into_dest(plan, sql.nparams, sql.types, sql.values, sql.nulls, dest);
	PopActiveSnapshot();
	dest->rDestroy(dest);
	if (temporary)
		SPI_freeplan(plan);
	SPI_finish();
	UnregisterSnapshot(snapshot);
	return (Datum) 0;
}
