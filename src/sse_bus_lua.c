/* The bus's Lua scripts (sse_bus_lua.h), one per change: the text that
 * sse_bus_redis.c sends to Redis, with the arguments it passes. */
#include "sse_bus_lua.h"

/* ARGV[1] namespace, [2] log length, [3] floor, [4] clock (us), [5] now
 * (ms), [6] deadline in Redis's clock (ms; 0: none); a script's own
 * arguments from ARGV[7] on. A script that finds its deadline passed (it
 * waited in a stopped Redis while its caller gave up and answered 503)
 * changes nothing: 503 means it did not happen. */
#define LUA_PRELUDE                                                         \
    "local ns = ARGV[1]\n"                                                  \
    "if tonumber(ARGV[6]) > 0 then\n"                                      \
    "  local t = redis.call('TIME')\n"                                     \
    "  if t[1] * 1000 + t[2] / 1000 > tonumber(ARGV[6]) then\n"            \
    "    return {-9}\n"                                                    \
    "  end\n"                                                              \
    "end\n"                                                                \
    "local function fmt(n) return string.format('%.0f', n) end\n"           \
    "local function nextseq()\n"                                            \
    "  local meta, floor = ns .. ':meta', tonumber(ARGV[3])\n"              \
    "  local s\n"                                                           \
    "  if redis.call('EXISTS', meta) == 0 then\n"                           \
    "    s = math.max(floor, tonumber(ARGV[4]))\n"                          \
    "    redis.call('HSET', meta, 'seq', fmt(s))\n"                         \
    "  else\n"                                                              \
    "    s = redis.call('HINCRBY', meta, 'seq', 1)\n"                       \
    "    if s < floor then\n"                                               \
    "      s = floor\n"                                                     \
    "      redis.call('HSET', meta, 'seq', fmt(s))\n"                       \
    "    end\n"                                                             \
    "  end\n"                                                               \
    "  return s\n"                                                          \
    "end\n"                                                                 \
    "local function append(s, ...)\n"                                       \
    "  redis.call('XADD', ns .. ':log', 'MAXLEN', '~', ARGV[2],\n"          \
    "             fmt(s) .. '-0', 'm', ARGV[5], ...)\n"                     \
    "end\n"                                                                 \
    "local function remove(id, retire)\n"                                   \
    "  local l, lk = ns .. ':l:' .. id, ns .. ':lk:' .. id\n"               \
    "  local name = redis.call('HGET', l, 'name')\n"                        \
    "  if not name then return 0 end\n"                                     \
    "  for _, k in ipairs(redis.call('HKEYS', lk)) do\n"                    \
    "    redis.call('SREM', ns .. ':k:' .. k, id)\n"                        \
    "  end\n"                                                               \
    "  redis.call('DEL', l, lk)\n"                                          \
    "  redis.call('SREM', ns .. ':n:' .. name, id)\n"                       \
    "  redis.call('ZREM', ns .. ':ids', id)\n"                              \
    "  if tonumber(retire) > 0 then\n"                                      \
    "    redis.call('SET', ns .. ':r:' .. id, '1', 'PX', retire)\n"         \
    "  end\n"                                                               \
    "  return 1\n"                                                          \
    "end\n"

/* A publish: [7] its sender, [8] the sender's count (sse_once_t). One
 * that finds the pair recorded (it was sent again: its first run's
 * answer was lost with a connection) answers as the first did. */
#define LUA_ONCE                                                            \
    "local once = ARGV[7] ~= '' and ns .. ':o:' .. ARGV[7]\n"               \
    "if once then\n"                                                        \
    "  local v = redis.call('GET', once)\n"                                 \
    "  if v and string.match(v, '^[^:]*') == ARGV[8] then\n"                \
    "    return {0, tonumber(string.match(v, ':(.*)$'))}\n"                 \
    "  end\n"                                                               \
    "end\n"                                                                 \
    "local function answer(s, n)\n"                                         \
    "  if once then\n"                                                      \
    "    redis.call('SET', once, ARGV[8] .. ':' .. n, 'PX', 60000)\n"       \
    "  end\n"                                                               \
    "  return {s, n}\n"                                                     \
    "end\n"

/* [9] key [10] payload */
const char sse_lua_notify[] = LUA_PRELUDE LUA_ONCE
    "local n = redis.call('SCARD', ns .. ':k:' .. ARGV[9])\n"
    "if n == 0 then return {0, 0} end\n"
    "local s = nextseq()\n"
    "append(s, 't', 'k', 'k', ARGV[9], 'p', ARGV[10])\n"
    "return answer(s, n)\n";

/* [9] id [10] name [11] task id [12] payload */
const char sse_lua_complete[] = LUA_PRELUDE LUA_ONCE
    "if redis.call('EXISTS', ns .. ':l:' .. ARGV[9]) == 0 then\n"
    "  return {0, -1}\n"
    "end\n"
    "local n = redis.call('SCARD', ns .. ':n:' .. ARGV[10])\n"
    "local s = nextseq()\n"
    "append(s, 't', 'n', 'k', ARGV[10], 'd', ARGV[11], 'p', ARGV[12])\n"
    "return answer(s, n)\n";

/* [7] id [8] name [9] max listeners [10] active since (ms)
 * -> {seq, serial, created, created seq, last seq, registered, keys},
 *    {-1} retired, {-2} full */
const char sse_lua_connect[] = LUA_PRELUDE
    "local id = ARGV[7]\n"
    "local l, ids = ns .. ':l:' .. id, ns .. ':ids'\n"
    "if redis.call('EXISTS', ns .. ':r:' .. id) == 1 then return {-1} end\n"
    "local created = 0\n"
    "if redis.call('EXISTS', l) == 0 then\n"
    "  if redis.call('ZCARD', ids) >= tonumber(ARGV[9]) then\n"
    "    local old = redis.call('ZRANGE', ids, 0, 0, 'WITHSCORES')\n"
    "    if tonumber(old[2]) >= tonumber(ARGV[10]) then return {-2} end\n"
    "    remove(old[1], 0)\n"
    "    append(nextseq(), 't', 'u', 'i', old[1], 'r', '0')\n"
    "  end\n"
    "  local cur = redis.call('HGET', ns .. ':meta', 'seq') or '0'\n"
    "  redis.call('HSET', l, 'name', ARGV[8], 'created', cur, 'last', cur,\n"
    "             'reg', ARGV[5])\n"
    "  redis.call('SADD', ns .. ':n:' .. ARGV[8], id)\n"
    "  created = 1\n"
    "end\n"
    "local serial = redis.call('HINCRBY', l, 'conn', 1)\n"
    "redis.call('HSET', l, 'open', '1')\n"
    "redis.call('ZADD', ids, ARGV[5], id)\n"
    "local s = nextseq()\n"
    "append(s, 't', 'c', 'i', id, 's', serial)\n"
    "local f = redis.call('HMGET', l, 'created', 'last', 'reg')\n"
    "return {s, serial, created, f[1], f[2], f[3],\n"
    "        redis.call('HGETALL', ns .. ':lk:' .. id)}\n";

/* [7] id [8] serial [9] last seq */
const char sse_lua_release[] = LUA_PRELUDE
    "local l = ns .. ':l:' .. ARGV[7]\n"
    "if redis.call('HGET', l, 'conn') ~= ARGV[8] then return {0} end\n"
    "if tonumber(ARGV[9]) > tonumber(redis.call('HGET', l, 'last') or '0')\n"
    "then redis.call('HSET', l, 'last', ARGV[9]) end\n"
    "redis.call('HSET', l, 'open', '0')\n"
    "redis.call('ZADD', ns .. ':ids', 'XX', ARGV[5], ARGV[7])\n"
    "return {1}\n";

/* [7] id [8] key [9] max keys -> {seq} added, {0} held, {-1} no
 * listener, {-2} full */
const char sse_lua_listen[] = LUA_PRELUDE
    "local id, key = ARGV[7], ARGV[8]\n"
    "local lk = ns .. ':lk:' .. id\n"
    "if redis.call('EXISTS', ns .. ':l:' .. id) == 0 then return {-1} end\n"
    "redis.call('ZADD', ns .. ':ids', 'XX', ARGV[5], id)\n"
    "if redis.call('HEXISTS', lk, key) == 1 then return {0} end\n"
    "if redis.call('HLEN', lk) >= tonumber(ARGV[9]) then return {-2} end\n"
    "local s = nextseq()\n"
    "redis.call('HSET', lk, key, fmt(s))\n"
    "redis.call('SADD', ns .. ':k:' .. key, id)\n"
    "append(s, 't', 'l', 'i', id, 'k', key)\n"
    "return {s}\n";

/* [7] id [8] retire for (ms) [9] retired until (ms) */
const char sse_lua_remove[] = LUA_PRELUDE
    "if remove(ARGV[7], ARGV[8]) == 0 then return {-1} end\n"
    "local s = nextseq()\n"
    "append(s, 't', 'u', 'i', ARGV[7], 'r', ARGV[9])\n"
    "return {s}\n";

/* [7] retire for (ms) [8] retired until (ms) */
const char sse_lua_clear[] = LUA_PRELUDE
    "local ids = redis.call('ZRANGE', ns .. ':ids', 0, -1)\n"
    "for _, id in ipairs(ids) do remove(id, ARGV[7]) end\n"
    "local s = nextseq()\n"
    "append(s, 't', 'x', 'r', ARGV[8])\n"
    "return {s, #ids}\n";

/* [7] inactive since (ms) */
const char sse_lua_cleanup[] = LUA_PRELUDE
    "local ids = redis.call('ZRANGEBYSCORE', ns .. ':ids', '-inf',\n"
    "                       '(' .. ARGV[7], 'LIMIT', 0, 500)\n"
    "for _, id in ipairs(ids) do\n"
    "  remove(id, 0)\n"
    "  append(nextseq(), 't', 'u', 'i', id, 'r', '0')\n"
    "end\n"
    "return {0, #ids}\n";

/* from [7]: per stream: id, serial, key count, then key, since... */
const char sse_lua_touch[] = LUA_PRELUDE
    "local i, now, ids = 7, ARGV[5], ns .. ':ids'\n"
    "local cur = redis.call('HGET', ns .. ':meta', 'seq') or '0'\n"
    "while i <= #ARGV do\n"
    "  local id, nk = ARGV[i], tonumber(ARGV[i + 2])\n"
    "  local l = ns .. ':l:' .. id\n"
    "  if redis.call('EXISTS', l) == 1 then\n"
    "    redis.call('ZADD', ids, now, id)\n"
    "  elseif redis.call('EXISTS', ns .. ':r:' .. id) == 0 then\n"
    "    local name = string.match(id, '^(.*)_[^_]*$')\n"
    "    redis.call('HSET', l, 'name', name, 'created', cur, 'last', cur,\n"
    "               'reg', now, 'conn', ARGV[i + 1], 'open', '1')\n"
    "    redis.call('SADD', ns .. ':n:' .. name, id)\n"
    "    redis.call('ZADD', ids, now, id)\n"
    "    for k = 0, nk - 1 do\n"
    "      local key = ARGV[i + 3 + 2 * k]\n"
    "      redis.call('HSET', ns .. ':lk:' .. id, key, ARGV[i + 4 + 2 * k])\n"
    "      redis.call('SADD', ns .. ':k:' .. key, id)\n"
    "    end\n"
    "  end\n"
    "  i = i + 3 + 2 * nk\n"
    "end\n"
    "return {0}\n";

/* [7] active since (ms) -> {id, registered, activity, connected, keys}* */
const char sse_lua_list[] = LUA_PRELUDE
    "local ids = redis.call('ZRANGE', ns .. ':ids', 0, -1, 'WITHSCORES')\n"
    "local out = {}\n"
    "for i = 1, #ids, 2 do\n"
    "  local id = ids[i]\n"
    "  local f = redis.call('HMGET', ns .. ':l:' .. id, 'reg', 'open')\n"
    "  local on = f[2] == '1' and tonumber(ids[i + 1]) >= tonumber(ARGV[7])\n"
    "  out[#out + 1] = {id, f[1] or '0', ids[i + 1], on and 1 or 0,\n"
    "                   redis.call('HKEYS', ns .. ':lk:' .. id)}\n"
    "end\n"
    "return out\n";
