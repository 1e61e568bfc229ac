--- The per-record C surface, declared for LuaJIT's FFI.
---
--- The declarations below repeat, verbatim, the block between "cdef begin"
--- and "cdef end" in core/include/dstream/ffi.h (spec/unit/cdef_spec.lua
--- checks that they agree). The functions live in the dstream.core module
--- (linked whole for this); `require` loads it without exporting its symbols,
--- so it is opened again here with ffi.load, which shares the same copy.
local ffi = require "ffi"


local cdef = {}

--- The declarations, as given to ffi.cdef.
cdef.declarations = [[
typedef struct ds_state_s ds_state_t;

typedef enum {
  DS_STATE_NUM = 0,
  DS_STATE_STR = 1,
  DS_STATE_ENC = 2
} ds_state_kind_t;

/* A key or a value handed out by the store: num for DS_STATE_NUM, else len
 * bytes at ptr (borrowed, see above). */
typedef struct {
  int32_t kind;
  uint32_t len;
  double num;
  const char *ptr;
} ds_state_item_t;

/* A new empty store; timeout_ms 0 for none. NULL if out of memory or
 * timeout_ms < 0. The caller owns it and frees it with ds_state_free(). */
ds_state_t *ds_state_new(int64_t timeout_ms);
/* Free the store and everything in it (NULL is allowed). */
void ds_state_free(ds_state_t *s);
/* Live keys. */
uint32_t ds_state_count(const ds_state_t *s);
/* Bytes the store has allocated, everything included. */
size_t ds_state_memory(const ds_state_t *s);

/* Look up a number key / a key of len bytes of kind (STR or ENC): its slot,
 * with its value in *value (borrowed) if value is not NULL; -1 if absent
 * (value untouched). */
int ds_state_get_num(const ds_state_t *s, double key, ds_state_item_t *value);
int ds_state_get_bytes(const ds_state_t *s, int kind, const char *key,
                       uint32_t len, ds_state_item_t *value);
/* A value cell, as ds_state_find_nums() hands it out: when half[1] (its
 * high half) is below 0xfff00000 it holds a number (num), NaN included;
 * else bytes or -inf (ask ds_state_value). Lua must not read num then:
 * LuaJIT would take such a NaN for a value of another type. */
typedef union {
  double num;
  uint32_t half[2];
} ds_state_cell_t;

/* Look up n number keys (a NaN key gives -1): how many are present;
 * slots[i] gets the slot of keys[i], or -1 if absent, and cells[i] (unless
 * cells is NULL) its value cell, or NULL. The same as n calls of
 * ds_state_get_num without a value, but the cache misses of the lookups
 * overlap. A value cell stays where it is while its key lives. A number
 * other than NaN may be written into one that holds a number in place of
 * ds_state_set_num when the store has no timeout and does not track its
 * changes (what set_num does more). */
uint32_t ds_state_find_nums(const ds_state_t *s, const double *keys,
                            uint32_t n, int32_t *slots, ds_state_cell_t **cells);
/* The same for n STR keys of lens[i] bytes at keys[i]. */
uint32_t ds_state_find_strs(const ds_state_t *s, const char *const *keys,
                            const uint32_t *lens, uint32_t n, int32_t *slots,
                            ds_state_cell_t **cells);

/* Insert or update a key with a value (key and value bytes are copied):
 * put_<key>_<value>, a number or bytes key, a number or ENC bytes value.
 * The key's slot, or DS_ENOMEM, DS_EINVAL (NaN key, bad kind, empty value,
 * time going backwards), DS_ERANGE (too many keys), with nothing changed. */
int ds_state_put_num_num(ds_state_t *s, double key, double value,
                         int64_t now_ms);
int ds_state_put_num_enc(ds_state_t *s, double key, const char *value,
                         uint32_t vlen, int64_t now_ms);
int ds_state_put_bytes_num(ds_state_t *s, int kind, const char *key,
                           uint32_t klen, double value, int64_t now_ms);
int ds_state_put_bytes_enc(ds_state_t *s, int kind, const char *key,
                           uint32_t klen, const char *value, uint32_t vlen,
                           int64_t now_ms);

/* Replace the value of a live slot (bytes copied). 0, or DS_ENOMEM /
 * DS_EINVAL with nothing changed. */
int ds_state_set_num(ds_state_t *s, int slot, double value, int64_t now_ms);
int ds_state_set_enc(ds_state_t *s, int slot, const char *value,
                     uint32_t vlen, int64_t now_ms);

/* Mark a live slot's key as used at now_ms (its idle time starts again),
 * its value unchanged. 0, or DS_ENOMEM / DS_EINVAL with nothing changed. */
int ds_state_touch(ds_state_t *s, int slot, int64_t now_ms);

/* Remove a key: 1 if it was there, 0 if not. Never fails. */
int ds_state_remove_num(ds_state_t *s, double key);
int ds_state_remove_bytes(ds_state_t *s, int kind, const char *key,
                          uint32_t len);
/* Remove the key of a live slot: 0, or DS_EINVAL. */
int ds_state_remove_slot(ds_state_t *s, int slot);

/* Iterate: the first live slot after `slot` (-1 to start), or -1 at the
 * end. Each key present throughout is seen once; removing keys (the current
 * one included) while iterating is allowed, keys inserted meanwhile may or
 * may not be seen. */
int ds_state_next(const ds_state_t *s, int slot);
/* The key / value of a live slot into *out (borrowed): its kind, or
 * DS_EINVAL. */
int ds_state_key(const ds_state_t *s, int slot, ds_state_item_t *out);
int ds_state_value(const ds_state_t *s, int slot, ds_state_item_t *out);

/* Remove the next key idle for at least the timeout at batch time now_ms
 * (last update <= now_ms - timeout) and hand back its key and last value,
 * copied to a scratch area of the store (valid until the next call of
 * ds_state_expire(), ds_state_clear() or ds_state_free()). 1 when a key was
 * removed, 0 when none is left (or the store has no timeout), DS_ENOMEM
 * with nothing removed. Oldest first; each key once. */
int ds_state_expire(ds_state_t *s, int64_t now_ms, ds_state_item_t *key,
                    ds_state_item_t *value);

/* The built-in reducers a store folds number values with (reducers.lua). */
typedef enum {
  DS_FOLD_SUM = 0, /* value + v */
  DS_FOLD_MIN = 1, /* v if v < value, else value */
  DS_FOLD_MAX = 2  /* v if v > value, else value */
} ds_fold_op_t;

/* Fold the number v into the number value of a number key / a key of klen
 * bytes of kind (STR or ENC) with op, a ds_fold_op_t: an absent key is
 * inserted with v. The key's slot, with, if old is not NULL, the value it
 * had in *old (kind -1 for an inserted key); or DS_ETYPE (the key's value is
 * not a number), DS_EINVAL (NaN key, bad kind or op, time going backwards),
 * DS_ENOMEM, DS_ERANGE (too many keys), with nothing changed. */
int ds_state_fold_num(ds_state_t *s, double key, double v, int op,
                      int64_t now_ms, ds_state_item_t *old);
int ds_state_fold_bytes(ds_state_t *s, int kind, const char *key,
                        uint32_t klen, double v, int op, int64_t now_ms,
                        ds_state_item_t *old);

/* CHECKPOINTS, per batch (dstream/state.h: SNAPSHOT FORMAT, DELTA FORMAT).
 * Start recording the store's changes (idempotent): 0 or DS_ENOMEM. */
int ds_state_track(ds_state_t *s);
/* A checkpoint at batch time now_ms: with full, a snapshot of every key;
 * else a delta of the changes since the record started (DS_ESTATE if the
 * store is not tracking). Either way the record starts again. 0 with the
 * bytes in *data, *len (the store's, valid until the next checkpoint,
 * ds_state_checkpoint_free() or free), or DS_ENOMEM with the record kept. */
int ds_state_checkpoint(ds_state_t *s, int full, int64_t now_ms,
                        const char **data, size_t *len);
/* Free the bytes of the last checkpoint. */
void ds_state_checkpoint_free(ds_state_t *s);
/* Apply len bytes, exactly one snapshot (the store must be empty) or one
 * delta, onto the store; a tracking store's record starts again. 0, or a
 * DS_E* code with errbuf (may be NULL) saying what and at which byte
 * offset: a bad snapshot leaves the store empty, a bad delta unchanged
 * (DS_ENOMEM while applying one leaves it part applied). */
int ds_state_apply(ds_state_t *s, const char *data, size_t len, char *errbuf,
                   size_t errlen);
/* Right after ds_state_apply() of a delta: the number of slots whose key
 * it removed or inserted, in order (a slot may come twice), in *slots (the
 * store's, valid until the next checkpoint, apply or free); -1 when any
 * slot may have changed (a snapshot, a delta that emptied the store first,
 * a failed apply). */
int ds_state_applied(const ds_state_t *s, const int32_t **slots);

/* As in error.h: the symbolic name ("ENOMEM") and the message of a DS_E*
 * code, static strings, for the errors of the calls above. */
const char *ds_err_name(int err);
const char *ds_strerror(int err);
]]

ffi.cdef(cdef.declarations)

local path = package.searchpath("dstream.core", package.cpath)
if not path then error("dstream: cannot find the dstream.core module on package.cpath") end
require "dstream.core"

--- The C library (dstream.core) whose functions the FFI calls.
cdef.C = ffi.load(path)

return cdef
