/* Kafka for Lua: core.kafka_consumer, core.kafka_producer and
 * core.kafka_create_topic over core/src/kafka.c. Only converts and checks:
 * librdkafka's callbacks record into C queues that these functions drain,
 * so nothing here is ever called back. Failures return nil, "ENAME: msg
 * (what, topic/partition)", "ENAME"; misuse raises naming the function and
 * the argument. */
#include <string.h>

#include "lds.h"

#include "dstream/alloc.h"
#include "dstream/error.h"
#include "dstream/kafka.h"

#define CONSUMER_MT "dstream.kafka_consumer"
#define PRODUCER_MT "dstream.kafka_producer"
#define DEFAULT_WAIT_MS 10000
#define QUEUE_FULL_WAIT_MS 60000

typedef struct {
  ds_kafka_consumer_t *c;
} consumer_box;

typedef struct {
  ds_kafka_producer_t *p;
} producer_box;

static ds_kafka_consumer_t *check_consumer(lua_State *L) {
  consumer_box *box = luaL_checkudata(L, 1, CONSUMER_MT);
  if (box->c == NULL)
    luaL_error(L, "kafka consumer: used after close()");
  return box->c;
}

static ds_kafka_producer_t *check_producer(lua_State *L) {
  producer_box *box = luaL_checkudata(L, 1, PRODUCER_MT);
  if (box->p == NULL)
    luaL_error(L, "kafka producer: used after close()");
  return box->p;
}

static int check_timeout(lua_State *L, int idx, const char *fn) {
  lua_Number t = DEFAULT_WAIT_MS;
  if (!lua_isnoneornil(L, idx)) {
    if (lua_type(L, idx) != LUA_TNUMBER)
      luaL_argerror(L, idx, lua_pushfstring(L, "%s: timeout_ms must be a number", fn));
    t = lua_tonumber(L, idx);
  }
  if (!(t >= 0 && t <= 2147483647.0))
    luaL_argerror(L, idx, lua_pushfstring(L, "%s: timeout_ms must be 0 .. 2^31-1", fn));
  return (int)t;
}

static const char *check_topic(lua_State *L, int idx, const char *fn) {
  if (lua_type(L, idx) != LUA_TSTRING)
    luaL_argerror(L, idx, lua_pushfstring(L, "%s: topic must be a string", fn));
  return lua_tostring(L, idx);
}

static int32_t check_partition(lua_State *L, int idx, const char *fn, int allow_any) {
  lua_Number p;
  if (lua_type(L, idx) != LUA_TNUMBER)
    luaL_argerror(L, idx, lua_pushfstring(L, "%s: partition must be a number", fn));
  p = lua_tonumber(L, idx);
  if (!(p == (int32_t)p && (p >= 0 || (allow_any && p == -1))))
    luaL_argerror(L, idx, lua_pushfstring(L, "%s: partition must be an integer >= 0%s", fn,
                                          allow_any ? " or -1" : ""));
  return (int32_t)p;
}

static int64_t check_offset(lua_State *L, int idx, const char *fn, const char *what) {
  lua_Number o;
  if (lua_type(L, idx) != LUA_TNUMBER)
    luaL_argerror(L, idx, lua_pushfstring(L, "%s: %s must be a number", fn, what));
  o = lua_tonumber(L, idx);
  if (!(o >= 0 && o <= 9007199254740992.0 && o == (int64_t)o))
    luaL_argerror(L, idx, lua_pushfstring(L, "%s: %s must be an offset (integer >= 0)", fn, what));
  return (int64_t)o;
}

/* Reject fields other than the allowed ones (a typo must not pass). */
static void check_fields(lua_State *L, int t, const char *fn, const char *const *allowed) {
  lua_pushnil(L);
  while (lua_next(L, t) != 0) {
    int ok = 0;
    if (lua_type(L, -2) == LUA_TSTRING)
      for (const char *const *a = allowed; *a != NULL; a++)
        ok = ok || strcmp(lua_tostring(L, -2), *a) == 0;
    if (!ok) {
      luaL_Buffer b;
      luaL_buffinit(L, &b);
      for (const char *const *a = allowed; *a != NULL; a++) {
        luaL_addstring(&b, a == allowed ? "" : ", ");
        luaL_addstring(&b, *a);
      }
      luaL_pushresult(&b);
      luaL_error(L, "%s: unknown field '%s' (allowed: %s)", fn,
                 lua_type(L, -3) == LUA_TSTRING ? lua_tostring(L, -3) : luaL_typename(L, -3),
                 lua_tostring(L, -1));
    }
    lua_pop(L, 1);
  }
}

/* A string->string table at idx (nil allowed) as two arrays in a userdata
 * pushed on the stack; keys and string values are borrowed from the table
 * (which the caller keeps on the stack), numbers and booleans become text
 * kept alive in the userdata's environment table. */
static size_t check_options(lua_State *L, int idx, const char *fn, const char *what,
                            const char *const **keys, const char *const **values) {
  size_t n = 0, i = 0;
  const char **arr;
  int anchor;
  idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
  if (lua_isnoneornil(L, idx)) {
    lua_newuserdata(L, 1);
    *keys = *values = NULL;
    return 0;
  }
  if (!lua_istable(L, idx))
    luaL_error(L, "%s: %s must be a table of \"key\" = \"value\"", fn, what);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    n++;
    lua_pop(L, 1);
  }
  arr = lua_newuserdata(L, (2 * n + 1) * sizeof(*arr));
  lua_newtable(L);
  anchor = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    int vt = lua_type(L, -1);
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "%s: %s keys must be strings", fn, what);
    if (vt == LUA_TBOOLEAN) {
      lua_pushstring(L, lua_toboolean(L, -1) ? "true" : "false");
    } else if (vt == LUA_TNUMBER) {
      lua_pushvalue(L, -1);
      lua_tostring(L, -1); /* converts the copy, not the table's value */
    } else if (vt == LUA_TSTRING) {
      lua_pushvalue(L, -1);
    } else {
      luaL_error(L, "%s: %s value of '%s' must be a string, number or boolean", fn, what,
                 lua_tostring(L, -2));
    }
    arr[i] = lua_tostring(L, -3);
    arr[n + i] = lua_tostring(L, -1);
    lua_rawseti(L, anchor, (int)++i);
    lua_pop(L, 1);
  }
  lua_setfenv(L, -2);
  *keys = arr;
  *values = arr + n;
  return i;
}

/* An array of {topic=, partition=[, offset=]} at idx as a ds_kafka_tp_t
 * array in a userdata pushed on the stack; topics are borrowed from the
 * tables. want_offset: 0 none, 1 required (number, "earliest", "latest"). */
static ds_kafka_tp_t *check_tps(lua_State *L, int idx, const char *fn, int want_offset,
                                size_t *count) {
  size_t n;
  ds_kafka_tp_t *tps;
  if (!lua_istable(L, idx))
    luaL_argerror(L, idx, lua_pushfstring(L, "%s: expects an array of {topic=, partition=%s}", fn,
                                          want_offset ? ", offset=" : ""));
  n = lua_objlen(L, idx);
  tps = lua_newuserdata(L, (n > 0 ? n : 1) * sizeof(*tps));
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, idx, (int)i + 1);
    if (!lua_istable(L, -1))
      luaL_error(L, "%s: item %d must be a table {topic=, partition=%s}", fn, (int)i + 1,
                 want_offset ? ", offset=" : "");
    lua_getfield(L, -1, "topic");
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "%s: item %d: topic must be a string", fn, (int)i + 1);
    tps[i].topic = lua_tostring(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, -1, "partition");
    if (!lua_isnumber(L, -1) || lua_tonumber(L, -1) < 0 ||
        lua_tonumber(L, -1) != (int32_t)lua_tonumber(L, -1))
      luaL_error(L, "%s: item %d: partition must be an integer >= 0", fn, (int)i + 1);
    tps[i].partition = (int32_t)lua_tonumber(L, -1);
    lua_pop(L, 1);
    tps[i].offset = 0;
    if (want_offset) {
      lua_getfield(L, -1, "offset");
      if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "earliest") == 0)
        tps[i].offset = DS_KAFKA_EARLIEST;
      else if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "latest") == 0)
        tps[i].offset = DS_KAFKA_LATEST;
      else if (lua_type(L, -1) == LUA_TNUMBER && lua_tonumber(L, -1) >= 0 &&
               lua_tonumber(L, -1) <= 9007199254740992.0 &&
               lua_tonumber(L, -1) == (int64_t)lua_tonumber(L, -1))
        tps[i].offset = (int64_t)lua_tonumber(L, -1);
      else
        luaL_error(L, "%s: item %d (%s/%d): offset must be an integer >= 0, \"earliest\" or "
                      "\"latest\"",
                   fn, (int)i + 1, tps[i].topic, (int)tps[i].partition);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  *count = n;
  return tps;
}

static void push_errors(lua_State *L, ds_kafka_error_t *e) {
  int i = 0;
  if (e == NULL) {
    lua_pushnil(L);
    return;
  }
  /* The strings are pushed before any is freed: a raise (out of memory)
   * leaks the rest, which is what an error queue can afford. */
  lua_newtable(L);
  while (e != NULL) {
    ds_kafka_error_t *next = e->next;
    lua_pushstring(L, e->msg);
    ds_free(e);
    lua_rawseti(L, -2, ++i);
    e = next;
  }
}

/* ---- consumer --------------------------------------------------------- */

/* core.kafka_consumer{brokers=, group=, topics=, options=} -> consumer | nil, err */
static int consumer_new(lua_State *L) {
  static const char *const fields[] = {"brokers", "group", "topics", "options", NULL};
  static const char *fn = "core.kafka_consumer";
  ds_kafka_conf_t conf;
  const char **topics = NULL;
  char errbuf[512] = "";
  consumer_box *box;
  size_t ntopics = 0;
  int err;
  if (!lua_istable(L, 1))
    luaL_argerror(L, 1, "core.kafka_consumer: expects a table {brokers=, group=, topics=, options=}");
  lua_settop(L, 1);
  check_fields(L, 1, fn, fields);
  memset(&conf, 0, sizeof conf);
  lua_getfield(L, 1, "brokers"); /* 2 */
  if (lua_type(L, 2) != LUA_TSTRING)
    luaL_error(L, "%s: brokers must be a string \"host:port,...\"", fn);
  conf.brokers = lua_tostring(L, 2);
  lua_getfield(L, 1, "group"); /* 3 */
  if (!lua_isnil(L, 3) && lua_type(L, 3) != LUA_TSTRING)
    luaL_error(L, "%s: group must be a string or nil", fn);
  conf.group = lua_tostring(L, 3);
  lua_getfield(L, 1, "topics"); /* 4 */
  if (!lua_isnil(L, 4)) {
    if (!lua_istable(L, 4))
      luaL_error(L, "%s: topics must be an array of strings", fn);
    ntopics = lua_objlen(L, 4);
    topics = lua_newuserdata(L, (ntopics + 1) * sizeof(*topics)); /* 5 */
    for (size_t i = 0; i < ntopics; i++) {
      lua_rawgeti(L, 4, (int)i + 1);
      if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "%s: topics[%d] must be a string", fn, (int)i + 1);
      topics[i] = lua_tostring(L, -1);
      lua_pop(L, 1);
    }
  } else {
    lua_pushnil(L); /* 5 */
  }
  if (conf.group != NULL && ntopics == 0)
    luaL_error(L, "%s: a group needs topics to subscribe to", fn);
  lua_getfield(L, 1, "options"); /* 6 */
  conf.noptions = check_options(L, 6, fn, "options", &conf.keys, &conf.values);
  conf.topics = topics;
  conf.ntopics = ntopics;
  box = lua_newuserdata(L, sizeof(*box));
  box->c = NULL;
  luaL_getmetatable(L, CONSUMER_MT);
  lua_setmetatable(L, -2);
  err = ds_kafka_consumer_new(&box->c, &conf, errbuf, sizeof errbuf);
  if (err < 0)
    return lds_fail(L, err, errbuf);
  return 1;
}

static int consumer_close(lua_State *L) {
  consumer_box *box = luaL_checkudata(L, 1, CONSUMER_MT);
  ds_kafka_consumer_t *c = box->c;
  box->c = NULL;
  ds_kafka_consumer_free(c);
  return 0;
}

/* c:poll() -> records buffered by this call */
static int consumer_poll(lua_State *L) {
  lua_pushinteger(L, ds_kafka_consumer_poll(check_consumer(L)));
  return 1;
}

/* c:events() -> nil | {{type=, partitions={{topic=, partition=}, ...}}, ...} */
static int consumer_events(lua_State *L) {
  ds_kafka_event_t *evs = ds_kafka_consumer_events(check_consumer(L)), *ev;
  int i = 0;
  if (evs == NULL) {
    lua_pushnil(L);
    return 1;
  }
  /* A raise (out of memory) half way leaks the chain: events are few. */
  lua_newtable(L);
  for (ev = evs; ev != NULL; ev = ev->next) {
    lua_createtable(L, 0, 2);
    lua_pushstring(L, ev->type == DS_KAFKA_ASSIGNED ? "assigned" : "revoked");
    lua_setfield(L, -2, "type");
    lua_createtable(L, (int)ev->n, 0);
    for (size_t j = 0; j < ev->n; j++) {
      lua_createtable(L, 0, 2);
      lua_pushstring(L, ev->tps[j].topic);
      lua_setfield(L, -2, "topic");
      lua_pushinteger(L, ev->tps[j].partition);
      lua_setfield(L, -2, "partition");
      lua_rawseti(L, -2, (int)j + 1);
    }
    lua_setfield(L, -2, "partitions");
    lua_rawseti(L, -2, ++i);
  }
  ds_kafka_event_free(evs);
  return 1;
}

/* c:assign({{topic=, partition=, offset=}, ...}[, timeout_ms]) -> starts | nil, err */
static int consumer_assign(lua_State *L) {
  ds_kafka_consumer_t *c = check_consumer(L);
  char errbuf[512] = "";
  size_t n;
  ds_kafka_tp_t *tps;
  lua_settop(L, 3);
  tps = check_tps(L, 2, "kafka consumer:assign", 1, &n);
  int timeout = check_timeout(L, 3, "kafka consumer:assign");
  int err = ds_kafka_consumer_assign(c, tps, n, timeout, errbuf, sizeof errbuf);
  if (err < 0)
    return lds_fail(L, err, errbuf);
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_pushnumber(L, (lua_Number)tps[i].offset);
    lua_rawseti(L, -2, (int)i + 1);
  }
  return 1;
}

/* c:unassign({{topic=, partition=}, ...}) -> true | nil, err */
static int consumer_unassign(lua_State *L) {
  ds_kafka_consumer_t *c = check_consumer(L);
  char errbuf[512] = "";
  size_t n;
  ds_kafka_tp_t *tps;
  lua_settop(L, 2);
  tps = check_tps(L, 2, "kafka consumer:unassign", 0, &n);
  int err = ds_kafka_consumer_unassign(c, tps, n, errbuf, sizeof errbuf);
  if (err < 0)
    return lds_fail(L, err, errbuf);
  lua_pushboolean(L, 1);
  return 1;
}

/* c:partitions(topic[, timeout_ms]) -> n | nil, err */
static int consumer_partitions(lua_State *L) {
  ds_kafka_consumer_t *c = check_consumer(L);
  const char *topic = check_topic(L, 2, "kafka consumer:partitions");
  char errbuf[512] = "";
  int n = ds_kafka_consumer_partitions(c, topic, check_timeout(L, 3, "kafka consumer:partitions"),
                                       errbuf, sizeof errbuf);
  if (n < 0)
    return lds_fail(L, n, errbuf);
  lua_pushinteger(L, n);
  return 1;
}

static int not_assigned(lua_State *L, const char *topic, int32_t partition) {
  char errbuf[256];
  snprintf(errbuf, sizeof errbuf, "%s/%d is not assigned", topic, (int)partition);
  return lds_fail(L, DS_ENOENT, errbuf);
}

/* c:buffered(topic, partition) -> from, upto | nil, err */
static int consumer_buffered(lua_State *L) {
  ds_kafka_consumer_t *c = check_consumer(L);
  const char *topic = check_topic(L, 2, "kafka consumer:buffered");
  int32_t part = check_partition(L, 3, "kafka consumer:buffered", 0);
  int64_t from, upto;
  if (ds_kafka_consumer_buffered(c, topic, part, &from, &upto) < 0)
    return not_assigned(L, topic, part);
  lua_pushnumber(L, (lua_Number)from);
  lua_pushnumber(L, (lua_Number)upto);
  return 2;
}

/* c:take(topic, partition, from, upto) -> keys, values, n | nil, err */
static int consumer_take(lua_State *L) {
  static const char *fn = "kafka consumer:take";
  ds_kafka_consumer_t *c = check_consumer(L);
  const char *topic = check_topic(L, 2, fn);
  int32_t part = check_partition(L, 3, fn, 0);
  int64_t from = check_offset(L, 4, fn, "from"), upto = check_offset(L, 5, fn, "upto");
  ds_kafka_iter_t it;
  ds_kafka_record_t r;
  int i = 0;
  luaL_argcheck(L, from <= upto, 5, "kafka consumer:take: upto must be >= from");
  if (ds_kafka_consumer_range(c, topic, part, from, upto, &it) < 0)
    return not_assigned(L, topic, part);
  lua_createtable(L, (int)it.count, 0);
  lua_createtable(L, (int)it.count, 0);
  /* Nothing is freed before every string is made: a raise leaves the
   * buffer as it was. */
  while (ds_kafka_iter_next(&it, &r)) {
    i++;
    lua_pushlstring(L, r.key != NULL ? r.key : "", r.keylen);
    lua_rawseti(L, -3, i);
    lua_pushlstring(L, r.value, r.valuelen);
    lua_rawseti(L, -2, i);
  }
  ds_kafka_consumer_drop(c, topic, part, upto);
  lua_pushinteger(L, i);
  return 3;
}

/* c:read(topic, partition, from, upto, timeout_ms) -> keys, values, n | nil, err */
static int consumer_read(lua_State *L) {
  static const char *fn = "kafka consumer:read";
  ds_kafka_consumer_t *c = check_consumer(L);
  const char *topic = check_topic(L, 2, fn);
  int32_t part = check_partition(L, 3, fn, 0);
  int64_t from = check_offset(L, 4, fn, "from"), upto = check_offset(L, 5, fn, "upto");
  int timeout = check_timeout(L, 6, fn), err, n = 0, box;
  char errbuf[512] = "";
  ds_block_t **chain;
  luaL_argcheck(L, from <= upto, 5, "kafka consumer:read: upto must be >= from");
  lua_settop(L, 6);
  chain = lds_chain_new(L);
  box = lua_gettop(L);
  err = ds_kafka_consumer_read(c, topic, part, from, upto, timeout, chain, errbuf, sizeof errbuf);
  if (err < 0)
    return lds_fail(L, err, errbuf); /* the box frees what was read */
  for (const ds_block_t *b = *chain; b != NULL; b = b->next)
    n += (int)b->count;
  lua_createtable(L, n, 0);
  lua_createtable(L, n, 0);
  n = 0;
  for (const ds_block_t *b = *chain; b != NULL; b = b->next) {
    const char *rec;
    size_t len, off = 0;
    ds_kafka_record_t r;
    while (ds_block_next(b, &off, &rec, &len)) {
      if (ds_kafka_record_decode(rec, len, &r) < 0)
        continue;
      n++;
      lua_pushlstring(L, r.key != NULL ? r.key : "", r.keylen);
      lua_rawseti(L, box + 1, n);
      lua_pushlstring(L, r.value, r.valuelen);
      lua_rawseti(L, box + 2, n);
    }
  }
  lua_pushinteger(L, n);
  return 3;
}

/* c:watermarks(topic, partition[, timeout_ms]) -> low, high | nil, err */
static int consumer_watermarks(lua_State *L) {
  static const char *fn = "kafka consumer:watermarks";
  ds_kafka_consumer_t *c = check_consumer(L);
  const char *topic = check_topic(L, 2, fn);
  int32_t part = check_partition(L, 3, fn, 0);
  int timeout = check_timeout(L, 4, fn);
  int64_t lo, hi;
  char errbuf[512] = "";
  int err = ds_kafka_consumer_watermarks(c, topic, part, timeout, &lo, &hi, errbuf, sizeof errbuf);
  if (err < 0)
    return lds_fail(L, err, errbuf);
  lua_pushnumber(L, (lua_Number)lo);
  lua_pushnumber(L, (lua_Number)hi);
  return 2;
}

/* c:committed({{topic=, partition=}, ...}[, timeout_ms]) -> offsets | nil, err */
static int consumer_committed(lua_State *L) {
  ds_kafka_consumer_t *c = check_consumer(L);
  char errbuf[512] = "";
  size_t n;
  ds_kafka_tp_t *tps;
  lua_settop(L, 3);
  tps = check_tps(L, 2, "kafka consumer:committed", 0, &n);
  int timeout = check_timeout(L, 3, "kafka consumer:committed");
  int err = ds_kafka_consumer_committed(c, tps, n, timeout, errbuf, sizeof errbuf);
  if (err < 0)
    return lds_fail(L, err, errbuf);
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    if (tps[i].offset == DS_KAFKA_NO_OFFSET)
      continue;
    lua_pushnumber(L, (lua_Number)tps[i].offset);
    lua_rawseti(L, -2, (int)i + 1);
  }
  return 1;
}

/* c:commit({{topic=, partition=, offset=}, ...}) -> true | nil, err */
static int consumer_commit(lua_State *L) {
  ds_kafka_consumer_t *c = check_consumer(L);
  char errbuf[512] = "";
  size_t n;
  ds_kafka_tp_t *tps;
  lua_settop(L, 2);
  tps = check_tps(L, 2, "kafka consumer:commit", 1, &n);
  int err;
  for (size_t i = 0; i < n; i++)
    if (tps[i].offset < 0)
      luaL_error(L, "kafka consumer:commit: item %d: offset must be a number", (int)i + 1);
  err = ds_kafka_consumer_commit(c, tps, n, errbuf, sizeof errbuf);
  if (err < 0)
    return lds_fail(L, err, errbuf);
  lua_pushboolean(L, 1);
  return 1;
}

/* c:errors() -> nil | array of strings */
static int consumer_errors(lua_State *L) {
  push_errors(L, ds_kafka_consumer_errors(check_consumer(L)));
  return 1;
}

static int consumer_tostring(lua_State *L) {
  consumer_box *box = luaL_checkudata(L, 1, CONSUMER_MT);
  lua_pushfstring(L, "kafka consumer (%s)", box->c != NULL ? "open" : "closed");
  return 1;
}

/* ---- producer --------------------------------------------------------- */

/* core.kafka_producer{brokers=, options=} -> producer | nil, err */
static int producer_new(lua_State *L) {
  static const char *const fields[] = {"brokers", "options", NULL};
  static const char *fn = "core.kafka_producer";
  const char *const *keys, *const *values;
  char errbuf[512] = "";
  producer_box *box;
  size_t n;
  int err;
  if (!lua_istable(L, 1))
    luaL_argerror(L, 1, "core.kafka_producer: expects a table {brokers=, options=}");
  lua_settop(L, 1);
  check_fields(L, 1, fn, fields);
  lua_getfield(L, 1, "brokers"); /* 2 */
  if (lua_type(L, 2) != LUA_TSTRING)
    luaL_error(L, "%s: brokers must be a string \"host:port,...\"", fn);
  lua_getfield(L, 1, "options"); /* 3 */
  n = check_options(L, 3, fn, "options", &keys, &values);
  box = lua_newuserdata(L, sizeof(*box));
  box->p = NULL;
  luaL_getmetatable(L, PRODUCER_MT);
  lua_setmetatable(L, -2);
  err = ds_kafka_producer_new(&box->p, lua_tostring(L, 2), keys, values, n, errbuf, sizeof errbuf);
  if (err < 0)
    return lds_fail(L, err, errbuf);
  return 1;
}

static int producer_close(lua_State *L) {
  producer_box *box = luaL_checkudata(L, 1, PRODUCER_MT);
  ds_kafka_producer_t *p = box->p;
  box->p = NULL;
  ds_kafka_producer_free(p);
  return 0;
}

/* p:produce(topic, partition, key, value) -> true | nil, err */
static int producer_produce(lua_State *L) {
  static const char *fn = "kafka producer:produce";
  ds_kafka_producer_t *p = check_producer(L);
  const char *topic = check_topic(L, 2, fn), *key = NULL, *value;
  int32_t part = check_partition(L, 3, fn, 1);
  size_t klen = 0, vlen;
  char errbuf[512] = "";
  int err;
  if (!lua_isnil(L, 4)) {
    if (lua_type(L, 4) != LUA_TSTRING)
      luaL_argerror(L, 4, "kafka producer:produce: key must be a string or nil");
    key = lua_tolstring(L, 4, &klen);
  }
  if (lua_type(L, 5) != LUA_TSTRING)
    luaL_argerror(L, 5, "kafka producer:produce: value must be a string");
  value = lua_tolstring(L, 5, &vlen);
  err = ds_kafka_producer_produce(p, topic, part, key, klen, value, vlen, QUEUE_FULL_WAIT_MS,
                                  errbuf, sizeof errbuf);
  if (err < 0)
    return lds_fail(L, err, errbuf);
  lua_pushboolean(L, 1);
  return 1;
}

/* p:flush([timeout_ms]) -> true | nil, err */
static int producer_flush(lua_State *L) {
  ds_kafka_producer_t *p = check_producer(L);
  char errbuf[512] = "";
  int err = ds_kafka_producer_flush(p, check_timeout(L, 2, "kafka producer:flush"), errbuf,
                                    sizeof errbuf);
  if (err < 0)
    return lds_fail(L, err, errbuf);
  lua_pushboolean(L, 1);
  return 1;
}

/* p:errors() -> nil | array of strings */
static int producer_errors(lua_State *L) {
  push_errors(L, ds_kafka_producer_errors(check_producer(L)));
  return 1;
}

static int producer_tostring(lua_State *L) {
  producer_box *box = luaL_checkudata(L, 1, PRODUCER_MT);
  lua_pushfstring(L, "kafka producer (%s)", box->p != NULL ? "open" : "closed");
  return 1;
}

/* ---- topics ----------------------------------------------------------- */

/* core.kafka_create_topic(brokers, topic, partitions, configs, options[, timeout_ms])
 * -> true | nil, err */
static int create_topic(lua_State *L) {
  static const char *fn = "core.kafka_create_topic";
  const char *brokers, *topic;
  lua_Number parts;
  if (lua_type(L, 1) != LUA_TSTRING)
    luaL_argerror(L, 1, "core.kafka_create_topic: brokers must be a string \"host:port,...\"");
  brokers = lua_tostring(L, 1);
  topic = check_topic(L, 2, fn);
  if (lua_type(L, 3) != LUA_TNUMBER)
    luaL_argerror(L, 3, "core.kafka_create_topic: partitions must be a number");
  parts = lua_tonumber(L, 3);
  const char *const *ckeys, *const *cvalues, *const *keys, *const *values;
  size_t nconfigs, noptions;
  char errbuf[512] = "";
  int timeout, err;
  luaL_argcheck(L, parts >= 1 && parts <= 1000000 && parts == (int)parts, 3,
                "core.kafka_create_topic: partitions must be an integer >= 1");
  timeout = check_timeout(L, 6, fn);
  lua_settop(L, 5);
  nconfigs = check_options(L, 4, fn, "configs", &ckeys, &cvalues);
  noptions = check_options(L, 5, fn, "options", &keys, &values);
  err = ds_kafka_create_topic(brokers, topic, (int)parts, ckeys, cvalues, nconfigs, keys, values,
                              noptions, timeout, errbuf, sizeof errbuf);
  if (err < 0)
    return lds_fail(L, err, errbuf);
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg consumer_methods[] = {
  {"poll", consumer_poll},
  {"events", consumer_events},
  {"assign", consumer_assign},
  {"unassign", consumer_unassign},
  {"partitions", consumer_partitions},
  {"buffered", consumer_buffered},
  {"take", consumer_take},
  {"read", consumer_read},
  {"watermarks", consumer_watermarks},
  {"committed", consumer_committed},
  {"commit", consumer_commit},
  {"errors", consumer_errors},
  {"close", consumer_close},
  {NULL, NULL},
};

static const luaL_Reg producer_methods[] = {
  {"produce", producer_produce},
  {"flush", producer_flush},
  {"errors", producer_errors},
  {"close", producer_close},
  {NULL, NULL},
};

static void metatable(lua_State *L, const char *name, const luaL_Reg *methods,
                      lua_CFunction gc, lua_CFunction tostring) {
  luaL_newmetatable(L, name);
  lua_newtable(L);
  luaL_register(L, NULL, methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
}

void lds_open_kafka(lua_State *L) {
  metatable(L, CONSUMER_MT, consumer_methods, consumer_close, consumer_tostring);
  metatable(L, PRODUCER_MT, producer_methods, producer_close, producer_tostring);
  lua_pushcfunction(L, consumer_new);
  lua_setfield(L, -2, "kafka_consumer");
  lua_pushcfunction(L, producer_new);
  lua_setfield(L, -2, "kafka_producer");
  lua_pushcfunction(L, create_topic);
  lua_setfield(L, -2, "kafka_create_topic");
}
