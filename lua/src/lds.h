/* Shared declarations of the dstream.core glue: each glue file converts and
 * checks for one C component and registers its functions into the module
 * table through its lds_open_<file>() function. The glue never keeps a
 * reference to a Lua function: C never calls Lua. */
#ifndef LDS_H
#define LDS_H

#include <lua.h>
#include <lauxlib.h>
#include <uv.h>

#include "dstream/block.h"

/* Push the failure triple nil, "ENAME: message", "ENAME"; returns 3. */
int lds_fail(lua_State *L, int err, const char *detail);

/* Push an empty box for a block chain and return its slot: whatever the
 * caller stores there is owned by Lua from then on (freed by the box's __gc
 * if nothing takes it), so a Lua error half way leaks no block. */
ds_block_t **lds_chain_new(lua_State *L);

/* Append the records of the chain in the box at box_idx to the table at t,
 * after index n, as Lua strings, freeing each block once it is pushed;
 * returns the new last index. May raise (out of memory): the box keeps the
 * blocks not yet pushed. */
size_t lds_append_blocks(lua_State *L, int box_idx, int t, size_t n);

/* Replace the box at -1 by an array of its chain's records as Lua strings,
 * freeing the blocks; returns the number of records. */
size_t lds_push_blocks(lua_State *L);

/* The libuv loop of an engine userdata at idx (raises if it is not one). */
uv_loop_t *lds_check_loop(lua_State *L, int idx);

/* Registration of each glue file's functions into the module table at -1. */
void lds_open_engine(lua_State *L);
void lds_open_codec(lua_State *L);
void lds_open_socket(lua_State *L);
void lds_open_rate(lua_State *L);
void lds_open_fs(lua_State *L);
void lds_open_window(lua_State *L);
void lds_open_checkpoint(lua_State *L);
void lds_open_http(lua_State *L);
void lds_open_kafka(lua_State *L);
void lds_open_wal(lua_State *L); /* after lds_open_codec: replay uses core.decode */
struct ds_wal_s *lds_check_wal(lua_State *L, int idx); /* a "dstream.wal" userdata's WAL */

#endif
