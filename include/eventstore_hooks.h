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
 *	my_hook(HeapTuple event, TupleDesc desc)
 *	{
 *		if (prev_hook)
 *			prev_hook(event, desc);
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
 * against eventstore.  event is a row of eventstore.events described by desc;
 * both are valid only during the call.
 */
#ifndef EVENTSTORE_HOOKS_H
#define EVENTSTORE_HOOKS_H

#include "access/htup.h"
#include "access/tupdesc.h"

#define EVENTSTORE_HOOK_RENDEZVOUS "eventstore_event_appended_hook"

typedef void (*eventstore_event_appended_hook_type) (HeapTuple event, TupleDesc desc);

#endif							/* EVENTSTORE_HOOKS_H */
