/*
 * shred.c
 *		Crypto-shredding: personal data appended encrypted under a key per
 *		data subject, read back in clear, and made unreadable for ever by
 *		destroying the key.
 *
 * eventstore.encrypt(subject, value, store) returns the envelope
 * {"$es_enc": {"k": key id, "c": base64 ciphertext}} that the caller puts
 * into an event's data, in place of the whole data or of chosen fields.  The
 * key (32 random bytes) lives in eventstore.subject_keys, one per subject and
 * store, readable by the extension's owner only; the cipher is pgcrypto's
 * OpenPGP symmetric encryption (AES-256, with an integrity check), called
 * through fmgr, so pgcrypto is needed only by stores that use encryption:
 * eventstore does not depend on it, and encrypt() asks for it (55000).
 *
 * forget() overwrites the key and the subject with NULL and keeps the row,
 * so a store that has had keys reads through the decrypting plan for ever.
 *
 * Reads decrypt: a store with keys reads through the lifecycle plan
 * (lifecycle.c), which passes data through eventstore._plain().  A role that
 * can read the store gets the value back in clear; once forget(subject) has
 * deleted the key, every read returns {"$es_forgotten": true} in its place.
 * Keys are looked up under the reading query's snapshot and never cached
 * across calls, so nothing decrypts after the key's deletion commits.
 *
 * The outbox (relay.c, outbox_messages) does not decrypt: NOTIFY reaches
 * whoever can LISTEN, and a consumer's copy of an envelope is erased with
 * its key.  It shows the marker for envelopes whose key is forgotten
 * (es_shred_seal) and leaves the others sealed.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/skey.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/uuid.h"

#include "compat.h"
#include "eventstore.h"

PG_FUNCTION_INFO_V1(eventstore_encrypt);
PG_FUNCTION_INFO_V1(eventstore_plain);
PG_FUNCTION_INFO_V1(eventstore_forget);
PG_FUNCTION_INFO_V1(eventstore_outbox_data);

#define ES_ENC_KEY		"$es_enc"
#define ES_FORGOTTEN	"$es_forgotten"

/* Columns of eventstore.subject_keys */
#define ANUM_SK_STORE		1
#define ANUM_SK_SUBJECT		2
#define ANUM_SK_KEY_ID		3
#define ANUM_SK_KEY			4

/* The schema an extension is installed in (get_extension_schema is not exported before 16). */
static Oid
es_extension_schema(Oid ext)
{
	Relation	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			nsp = InvalidOid;

	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(ext));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		nsp = ((Form_pg_extension) GETSTRUCT(tup))->extnamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return nsp;
}

/* pgcrypto's functions, looked up in the schema it is installed in. */
static Oid
es_pgcrypto_fn(const char *name, bool missing_ok)
{
	Oid			ext = get_extension_oid("pgcrypto", true);
	Oid			nsp;
	Oid			argtypes[3] = {BYTEAOID, TEXTOID, TEXTOID};
	Oid			fn;

	if (!OidIsValid(ext) || !OidIsValid(nsp = es_extension_schema(ext)))
	{
		if (missing_ok)
			return InvalidOid;
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("encryption needs the extension \"pgcrypto\""),
				 errhint("Run CREATE EXTENSION pgcrypto (PostgreSQL's contrib).")));
	}
	fn = LookupFuncName(list_make2(makeString(get_namespace_name(nsp)), makeString(pstrdup(name))),
						3, argtypes, true);
	if (!OidIsValid(fn))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pgcrypto's function %s(bytea, text, text) was not found", name)));
	return fn;
}

/* The key table and its indexes, or InvalidOid before the 0.6.0 update. */
static Oid
es_keys_relid(void)
{
	return get_relname_relid("subject_keys", es_schema_oid());
}

/*
 * Look a key up in subject_keys with snapshot: by (store, subject) when
 * subject is given, else by key id.  Returns whether found; *key_id and
 * *key (palloc'd) are filled.
 */
static bool
es_key_lookup(Oid store, text *subject, pg_uuid_t *key_id, bytea **key, Snapshot snapshot)
{
	Oid			relid = es_keys_relid();
	Oid			indexid;
	Relation	heap;
	Relation	index;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	ScanKeyData keys[2];
	int			nkeys;
	bool		found;

	if (!OidIsValid(relid))
		return false;
	indexid = get_relname_relid(subject ? "subject_keys_subject_key" : "subject_keys_pkey", es_schema_oid());
	if (!OidIsValid(indexid))
		return false;
	heap = table_open(relid, AccessShareLock);
	index = index_open(indexid, AccessShareLock);
	if (subject)
	{
		ScanKeyEntryInitialize(&keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
							   InvalidOid, F_OIDEQ, ObjectIdGetDatum(store));
		ScanKeyEntryInitialize(&keys[1], 0, 2, BTEqualStrategyNumber, InvalidOid,
							   index->rd_indcollation[1], F_TEXTEQ, PointerGetDatum(subject));
		nkeys = 2;
	}
	else
	{
		ScanKeyEntryInitialize(&keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
							   InvalidOid, F_UUID_EQ, UUIDPGetDatum(key_id));
		nkeys = 1;
	}
	scan = index_beginscan(heap, index, snapshot, nkeys, 0);
	index_rescan(scan, keys, nkeys, NULL, 0);
	slot = table_slot_create(heap, NULL);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	if (found)
	{
		bool		isnull;
		Datum		d = slot_getattr(slot, ANUM_SK_STORE, &isnull);

		Datum		k = slot_getattr(slot, ANUM_SK_KEY, &isnull);

		/* a key id of another store's row is no key of this store; a forgotten key is none */
		found = DatumGetObjectId(d) == store && !isnull;
		if (found)
		{
			*key = DatumGetByteaPCopy(k);
			*key_id = *DatumGetUUIDP(slot_getattr(slot, ANUM_SK_KEY_ID, &isnull));
		}
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, NoLock);
	table_close(heap, NoLock);
	return found;
}

/* Does store have any key visible to snapshot? */
bool
es_shred_active(Oid store, Snapshot snapshot)
{
	Oid			relid = es_keys_relid();
	Oid			indexid;
	Relation	heap;
	Relation	index;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	ScanKeyData key;
	bool		found;

	if (!OidIsValid(relid) ||
		!OidIsValid(indexid = get_relname_relid("subject_keys_subject_key", es_schema_oid())))
		return false;
	heap = table_open(relid, AccessShareLock);
	index = index_open(indexid, AccessShareLock);
	ScanKeyEntryInitialize(&key, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   InvalidOid, F_OIDEQ, ObjectIdGetDatum(store));
	scan = index_beginscan(heap, index, snapshot, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	slot = table_slot_create(heap, NULL);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, NoLock);
	table_close(heap, NoLock);
	return found;
}

/* The key as the OpenPGP password: its hex text. */
static Datum
es_key_password(bytea *key)
{
	return DirectFunctionCall2(binary_encode, PointerGetDatum(key), CStringGetTextDatum("hex"));
}

/*
 * eventstore.encrypt(subject text, value jsonb, store regclass): the
 * envelope of value under subject's key, made at the first use.  Needs
 * INSERT on the store (a writer's privilege).
 */
Datum
eventstore_encrypt(PG_FUNCTION_ARGS)
{
	EsStore    *st = es_store_arg(fcinfo, 2, ACL_INSERT);
	text	   *subject;
	Jsonb	   *value;
	pg_uuid_t	key_id;
	bytea	   *key = NULL;
	Oid			enc;
	Datum		plain;
	Datum		cipher;
	char	   *b64;
	char	   *json;
	char	   *uuid;

	subject = es_name_arg(fcinfo, 0, "subject");
	if (VARSIZE_ANY_EXHDR(subject) > ES_MAX_STREAM_ID_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("subject is too long"),
				 errdetail("The subject has %d bytes; the limit is %d.",
						   (int) VARSIZE_ANY_EXHDR(subject), ES_MAX_STREAM_ID_BYTES)));
	if (PG_ARGISNULL(1))
		PG_RETURN_NULL();
	value = PG_GETARG_JSONB_P(1);
	if (!OidIsValid(es_keys_relid()))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("eventstore.subject_keys does not exist"),
				 errhint("Run ALTER EXTENSION eventstore UPDATE.")));

	enc = es_pgcrypto_fn("pgp_sym_encrypt_bytea", false);
	if (!es_key_lookup(st->relid, subject, &key_id, &key, SnapshotSelf))
	{
		Oid			argtypes[4] = {REGCLASSOID, TEXTOID, UUIDOID, BYTEAOID};
		Datum		values[4];
		bytea	   *fresh = palloc(VARHDRSZ + 32);

		SET_VARSIZE(fresh, VARHDRSZ + 32);
		if (!pg_strong_random(VARDATA(fresh), 32) || !pg_strong_random(key_id.data, UUID_LEN))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate a random key")));
		key_id.data[6] = (key_id.data[6] & 0x0f) | 0x40;
		key_id.data[8] = (key_id.data[8] & 0x3f) | 0x80;
		/* the first key of a store switches its reads to the decrypting plan */
		es_lifecycle_switch_store(st);
		values[0] = ObjectIdGetDatum(st->relid);
		values[1] = PointerGetDatum(subject);
		values[2] = UUIDPGetDatum(&key_id);
		values[3] = PointerGetDatum(fresh);
		(void) es_registry_write("INSERT INTO eventstore.subject_keys (store, subject, key_id, key)"
								 " VALUES ($1, $2, $3, $4) ON CONFLICT ON CONSTRAINT subject_keys_subject_key DO NOTHING",
								 4, argtypes, values, NULL);
		if (!es_key_lookup(st->relid, subject, &key_id, &key, SnapshotSelf))
			elog(ERROR, "eventstore: the key of a subject vanished");
	}

	plain = DirectFunctionCall2(pg_convert_to, CStringGetTextDatum(JsonbToCString(NULL, &value->root, VARSIZE(value))),
								CStringGetDatum("UTF8"));
	cipher = OidFunctionCall3(enc, plain, es_key_password(key),
							  CStringGetTextDatum("cipher-algo=aes256, s2k-mode=1"));
	b64 = TextDatumGetCString(DirectFunctionCall2(binary_encode, cipher, CStringGetTextDatum("base64")));
	/* base64 of encode() breaks lines; the envelope holds it on one */
	{
		char	   *w = b64;

		for (char *r = b64; *r; r++)
			if (*r != '\n')
				*w++ = *r;
		*w = '\0';
	}
	uuid = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&key_id)));
	json = psprintf("{\"" ES_ENC_KEY "\": {\"k\": \"%s\", \"c\": \"%s\"}}", uuid, b64);
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
}

/* Is container c an envelope: an object whose one key is "$es_enc"? */
static JsonbValue *
es_envelope(JsonbContainer *c)
{
	JsonbValue	k;

	if (!JsonContainerIsObject(c) || JsonContainerSize(c) != 1)
		return NULL;
	k.type = jbvString;
	k.val.string.val = ES_ENC_KEY;
	k.val.string.len = strlen(ES_ENC_KEY);
	return findJsonbValueFromContainer(c, JB_FOBJECT, &k);
}

/* Does container c hold an envelope anywhere? */
static bool
es_has_envelope(JsonbContainer *c)
{
	JsonbIterator *it = JsonbIteratorInit(c);
	JsonbValue	v;
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
		if (tok == WJB_KEY && v.val.string.len == (int) strlen(ES_ENC_KEY) &&
			memcmp(v.val.string.val, ES_ENC_KEY, v.val.string.len) == 0)
			return true;
	return false;
}

typedef struct EsPlainCtx
{
	Oid			store;
	Oid			dec;			/* pgp_sym_decrypt_bytea, or InvalidOid without pgcrypto */
	bool		seal;			/* leave envelopes whose key lives as they are */
} EsPlainCtx;

/* What replaces the envelope env (its "$es_enc" value): the clear value, or the marker. */
static Jsonb *
es_open_envelope(EsPlainCtx *ctx, JsonbValue *env)
{
	JsonbValue	k;
	JsonbValue *kid;
	JsonbValue *c;
	pg_uuid_t	key_id;
	bytea	   *key;
	Datum		cipher;
	Datum		plain;

	if (env->type != jbvBinary || !JsonContainerIsObject(env->val.binary.data))
		return NULL;
	k.type = jbvString;
	k.val.string.val = "k";
	k.val.string.len = 1;
	kid = findJsonbValueFromContainer(env->val.binary.data, JB_FOBJECT, &k);
	k.val.string.val = "c";
	c = findJsonbValueFromContainer(env->val.binary.data, JB_FOBJECT, &k);
	if (kid == NULL || c == NULL || kid->type != jbvString || c->type != jbvString)
		return NULL;
	/* a key id that is not a UUID: not an envelope of ours, left as it is */
	if (kid->val.string.len != 36)
		return NULL;
	for (int i = 0; i < 36; i++)
	{
		char		ch = kid->val.string.val[i];

		if ((i == 8 || i == 13 || i == 18 || i == 23) ? ch != '-' : !isxdigit((unsigned char) ch))
			return NULL;
	}
	key_id = *DatumGetUUIDP(DirectFunctionCall1(uuid_in,
												CStringGetDatum(pnstrdup(kid->val.string.val, kid->val.string.len))));
	if (!es_key_lookup(ctx->store, NULL, &key_id, &key, GetActiveSnapshot()))
		return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{\"" ES_FORGOTTEN "\": true}")));
	if (ctx->seal)
		return NULL;			/* sealed: left as it is */
	if (!OidIsValid(ctx->dec))
		ctx->dec = es_pgcrypto_fn("pgp_sym_decrypt_bytea", false);
	cipher = DirectFunctionCall2(binary_decode,
								 PointerGetDatum(cstring_to_text_with_len(c->val.string.val, c->val.string.len)),
								 CStringGetTextDatum("base64"));
	plain = OidFunctionCall3(ctx->dec, cipher, es_key_password(key), CStringGetTextDatum(""));
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
											  CStringGetDatum(TextDatumGetCString(DirectFunctionCall2(pg_convert_from, plain,
																									   CStringGetDatum("UTF8"))))));
}

/* Copy container c into ps, envelopes replaced; returns the last value pushed. */
static JsonbValue *
es_plain_container(EsPlainCtx *ctx, JsonbContainer *c, JsonbParseState **ps)
{
	JsonbIterator *it = JsonbIteratorInit(c);
	JsonbValue	v;
	JsonbIteratorToken tok;
	JsonbValue *res = NULL;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if ((tok == WJB_VALUE || tok == WJB_ELEM) && v.type == jbvBinary)
		{
			JsonbValue *env = es_envelope(v.val.binary.data);
			Jsonb	   *open = env ? es_open_envelope(ctx, env) : NULL;

			if (open != NULL)
			{
				JsonbValue	ov;

				if (JB_ROOT_IS_SCALAR(open))
					JsonbExtractScalar(&open->root, &ov);
				else
				{
					ov.type = jbvBinary;
					ov.val.binary.data = &open->root;
					ov.val.binary.len = VARSIZE(open) - VARHDRSZ;
				}
				res = pushJsonbValue(ps, tok, &ov);
			}
			else
				res = es_plain_container(ctx, v.val.binary.data, ps);
		}
		else
			res = pushJsonbValue(ps, tok, tok < WJB_BEGIN_ARRAY ? &v : NULL);
	}
	return res;
}

/* value with its envelopes opened (or the same datum when it has none). */
static Datum
es_plain(EsPlainCtx *ctx, Jsonb *value)
{
	JsonbParseState *ps = NULL;
	JsonbValue *env;

	if (JB_ROOT_IS_SCALAR(value) || !es_has_envelope(&value->root))
		return JsonbPGetDatum(value);
	env = es_envelope(&value->root);
	if (env != NULL)
	{
		Jsonb	   *open = es_open_envelope(ctx, env);

		if (open != NULL)
			return JsonbPGetDatum(open);
	}
	return JsonbPGetDatum(JsonbValueToJsonb(es_plain_container(ctx, &value->root, &ps)));
}

/*
 * eventstore._plain(value jsonb, store regclass): value with every
 * envelope of the store replaced by its clear value, or by
 * {"$es_forgotten": true} once its key is gone.  Needs SELECT on the store.
 */
Datum
eventstore_plain(PG_FUNCTION_ARGS)
{
	EsPlainCtx *ctx = (EsPlainCtx *) fcinfo->flinfo->fn_extra;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	if (ctx == NULL || (!PG_ARGISNULL(1) && ctx->store != PG_GETARG_OID(1)))
	{
		EsStore    *st = es_store_arg(fcinfo, 1, ACL_SELECT);

		if (ctx == NULL)
			ctx = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(EsPlainCtx));
		ctx->store = st->relid;
		ctx->dec = es_pgcrypto_fn("pgp_sym_decrypt_bytea", true);
		fcinfo->flinfo->fn_extra = ctx;
	}
	PG_RETURN_DATUM(es_plain(ctx, PG_GETARG_JSONB_P(0)));
}

/*
 * value with the envelopes of the forgotten keys of store replaced by the
 * marker, and those of live keys left sealed: what the outbox publishes
 * (relay.c, outbox_messages).  The value itself when store has neither
 * lifecycle rows nor keys (the cached answer).
 */
Datum
es_shred_seal(Oid store, Jsonb *value)
{
	EsPlainCtx	ctx = {.store = store, .dec = InvalidOid, .seal = true};

	if (!es_lifecycle_active_cached(store))
		return JsonbPGetDatum(value);
	return es_plain(&ctx, value);
}

/*
 * eventstore._outbox_data(data jsonb, store regclass): data of an event of
 * store as outbox_messages shows it (es_shred_seal).  Whoever may read
 * outbox_messages or the store may call it.
 */
Datum
eventstore_outbox_data(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	if (PG_ARGISNULL(1))
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	/* the privilege is checked once per store and query */
	if (fcinfo->flinfo->fn_extra == NULL ||
		*(Oid *) fcinfo->flinfo->fn_extra != PG_GETARG_OID(1))
	{
		if (es_outbox_reader_store(PG_GETARG_OID(1)) == NULL)
			PG_RETURN_DATUM(PG_GETARG_DATUM(0));
		if (fcinfo->flinfo->fn_extra == NULL)
			fcinfo->flinfo->fn_extra = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(Oid));
		*(Oid *) fcinfo->flinfo->fn_extra = PG_GETARG_OID(1);
	}
	PG_RETURN_DATUM(es_shred_seal(PG_GETARG_OID(1), PG_GETARG_JSONB_P(0)));
}

/*
 * eventstore.forget(subject text, reason text, store regclass): destroy the
 * subject's key.  Every envelope made with it reads as the marker from the
 * commit on; snapshots of the streams that hold one are deleted (folded in
 * clear, they would keep the data).  Needs lifecycle access (DELETE on the
 * store).  Returns whether there was a key.
 */
Datum
eventstore_forget(PG_FUNCTION_ARGS)
{
	EsStore    *st = es_store_arg(fcinfo, 2, ACL_SELECT);
	text	   *subject;
	text	   *reason = PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1);
	pg_uuid_t	key_id;
	bytea	   *key;
	Oid			argtypes[3] = {REGCLASSOID, TEXTOID, TEXTOID};
	Datum		values[3];
	char	   *uuid;
	bool		found;

	es_lifecycle_require_acl(st);
	subject = es_name_arg(fcinfo, 0, "subject");
	found = es_key_lookup(st->relid, subject, &key_id, &key, SnapshotSelf);
	if (found)
	{
		uuid = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&key_id)));
		values[0] = ObjectIdGetDatum(st->relid);
		values[1] = PointerGetDatum(subject);
		values[2] = CStringGetTextDatum(uuid);
		/* the row stays, without key and subject: the store keeps decrypting (to the marker) */
		(void) es_registry_write("UPDATE eventstore.subject_keys k SET key = NULL, subject = NULL"
								 " WHERE k.store OPERATOR(pg_catalog.=) $1 AND k.subject OPERATOR(pg_catalog.=) $2",
								 2, argtypes, values, NULL);
		/* snapshots of the streams whose events hold an envelope of the key */
		es_lifecycle_forget_snapshots(st, psprintf("\"%s\"", uuid));
	}
	es_lifecycle_log_forget(st, subject, reason);
	PG_RETURN_BOOL(found);
}
