/*
 * eventstore_hooks.h
 *		The C-level hook eventstore offers other extensions.
 *
 * Installed into $(pg_config --includedir-server)/extension/eventstore/.
 *
 * eventstore_event_appended_hook is called once for every event an append
 * stores, in position order, inside the appending transaction, after the row
 * is inserted and before the SQL projections run.  An error raised by the hook
 * aborts the append like any error.  Chain onto it the way PostgreSQL's own
 * hooks are chained: save the previous value in _PG_init and call it.
 *
 *	static eventstore_event_appended_hook_type prev_hook = NULL;
 *
 *	static void
 *	my_hook(Oid store, HeapTuple event, TupleDesc desc)
 *	{
 *		if (prev_hook)
 *			prev_hook(store, event, desc);
 *		...
 *	}
 *
 *	void
 *	_PG_init(void)
 *	{
 *		eventstore_event_appended_hook_type *hook = (eventstore_event_appended_hook_type *)
 *			find_rendezvous_variable(EVENTSTORE_HOOK_RENDEZVOUS);
 *
 *		prev_hook = *hook;
 *		*hook = my_hook;
 *	}
 *
 * The rendezvous variable is shared by every library in the backend whatever
 * the load order, so the library that sets the hook does not need to link
 * against eventstore.  store is the OID of the store (a table of type
 * eventstore.event_store; eventstore.events is the default store) the event
 * was appended to; event is its row, described by desc (the columns of
 * eventstore.events); both are valid only during the call.
 *
 * Version 2 (eventstore 0.6.0) added the store argument and renamed the
 * rendezvous variable, so a library built against version 1 sets a variable
 * eventstore no longer reads (its hook is not called) instead of being
 * called with the wrong arguments: rebuild it against this header.
 */
#ifndef EVENTSTORE_HOOKS_H
#define EVENTSTORE_HOOKS_H

#include "access/htup.h"
#include "access/tupdesc.h"

#include "postgres_ext.h"

#define EVENTSTORE_HOOKS_VERSION 2
#define EVENTSTORE_HOOK_RENDEZVOUS "eventstore_event_appended_hook_v2"

typedef void (*eventstore_event_appended_hook_type) (Oid store, HeapTuple event, TupleDesc desc);

#endif							/* EVENTSTORE_HOOKS_H */
