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

/* Push an array of the records of a block chain as Lua strings and free the
 * chain; returns the number of records pushed into the table. */
size_t lds_push_blocks(lua_State *L, ds_block_t *chain);

/* The libuv loop of an engine userdata at idx (raises if it is not one). */
uv_loop_t *lds_check_loop(lua_State *L, int idx);

/* Registration of each glue file's functions into the module table at -1. */
void lds_open_engine(lua_State *L);
void lds_open_codec(lua_State *L);
void lds_open_socket(lua_State *L);
void lds_open_fs(lua_State *L);
void lds_open_window(lua_State *L);

#endif
