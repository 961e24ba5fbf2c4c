/**
 * @file sse_bus_lua.h
 * @brief The Lua scripts of the bus's Redis engine (sse_bus_redis.h), one
 *        per change, as C strings that sse_bus_redis.c runs by EVALSHA.
 *
 * Every script takes the same first arguments (ARGV[1] namespace, [2] log
 * length, [3] floor, [4] clock in us, [5] now in ms, [6] deadline in
 * Redis's clock) and its own from ARGV[7] on; sse_bus_lua.c names them
 * above each script.
 */
#ifndef SSE_BUS_LUA_H
#define SSE_BUS_LUA_H

/** A notification of a key (a publish: sent again, it happens once). */
extern const char sse_lua_notify[];
/** A completion for an id's name (a publish, as sse_lua_notify). */
extern const char sse_lua_complete[];
/** A stream opens: the listener made or taken, its CONNECT logged. */
extern const char sse_lua_connect[];
/** A stream ended after delivering up to a seq. */
extern const char sse_lua_release[];
/** A listener takes a key. */
extern const char sse_lua_listen[];
/** A listener is removed and its id retired. */
extern const char sse_lua_remove[];
/** Every listener is removed and retired. */
extern const char sse_lua_clear[];
/** The dormant cleanup: listeners inactive since a time are removed. */
extern const char sse_lua_cleanup[];
/** A host's streams are active: their records refreshed (or made again). */
extern const char sse_lua_touch[];
/** Every listener, for list-registrants. */
extern const char sse_lua_list[];

#endif /* SSE_BUS_LUA_H */
