/*
 * Internal to the bus's Redis engine (src/sse_bus_redis.c, which defines
 * these, and sse_bus_read.c): the reading of a reply both files share.
 * Nothing outside src/ includes it; the rest uses sse_bus_redis.h.
 */
#ifndef SSE_BUS_REDIS_INT_H
#define SSE_BUS_REDIS_INT_H

#include <hiredis/hiredis.h>

/* Why @a r is not the reply wanted: the context's error when @a r is
 * NULL, else Redis's message or "unexpected reply" (lives in @a c or
 * @a r: copy it before freeing @a r). */
const char *sse_rbus_reply_error(const redisContext *c, const redisReply *r);

/* 1 when the connection failed after the command went out, so it may
 * have run (a timeout does not count: see sse_bus_redis.c). */
int sse_rbus_sent_and_lost(const redisContext *c, const redisReply *r);

#endif /* SSE_BUS_REDIS_INT_H */
