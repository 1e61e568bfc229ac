/* State store change tracking: what a delta checkpoint is made of.
 *
 * WHY: a checkpoint after every batch must cost what the batch changed, not
 * what the store holds. Once ds_state_track() turns it on, the store keeps
 * a record of its changes since the last checkpoint: the slots set (a put,
 * a set, a fold, a touch with a timeout) and the keys removed (by a
 * removal, by expiry), which a delta (state_snapshot.c) writes out.
 *
 * THE RECORD: a bit per slot says whether the slot is in the list of slots
 * set; the list holds each such slot once. A slot in the list is written
 * with whatever key and value it holds at the checkpoint, or skipped if it
 * is free: a slot removed and reused by another key is written with the new
 * key, which is right, since the old key is in the removed list. Removed
 * keys are kept as their codec bytes (their slots may be reused), in the
 * order removed; a delta applies removals before sets, so a key removed and
 * put again comes back with its new value. ds_state_clear() (and a removal
 * or a change that cannot be recorded for lack of memory) sets `cleared`
 * instead: the next delta says "start from empty" and writes every live
 * key. So recording never makes a change fail: memory running out costs
 * one delta as large as a snapshot, not a wrong one.
 *
 * COSTS: off (the default), a change tests one flag (measured with
 * callgrind: 2 to 3 instructions of about 300 per fold of a number). On,
 * a change tests one bit and, the first time a slot changes after a
 * checkpoint, appends it to the list here; a removal appends the key's
 * bytes. Memory: 1/8 byte per slot for the bits, 4 bytes per slot changed
 * and the removed keys' bytes, kept at the largest batch's (but removed
 * keys past 1 MiB). Starting the record again clears the bits of the slots
 * in the list: O(changes).
 */
#include <string.h>

#include "dstream/alloc.h"
#include "state_internal.h"

int ds__track_bits(ds_state_t *s, uint32_t slots) {
  uint32_t need = (slots + 63) / 64, cap = s->dwords_cap > 0 ? s->dwords_cap : 64;
  uint64_t *bits;
  if (need <= s->dwords_cap)
    return 0;
  while (cap < need)
    cap *= 2;
  bits = ds__state_alloc(s, (size_t)cap * sizeof *bits);
  if (bits == NULL)
    return DS_ENOMEM;
  memset(bits, 0, (size_t)cap * sizeof *bits);
  if (s->dwords_cap > 0)
    memcpy(bits, s->dbits, (size_t)s->dwords_cap * sizeof *bits);
  ds__state_dealloc(s, s->dbits, (size_t)s->dwords_cap * sizeof *bits);
  s->dbits = bits;
  s->dwords_cap = cap;
  s->dwords = need;
  return 0;
}

/* Out of memory for the record: the next delta writes every key instead. */
static void track_overflow(ds_state_t *s) {
  s->cleared = 1;
  ds_buf_truncate(&s->removed, 0);
  s->nremoved = 0;
}

void ds__track_set(ds_state_t *s, uint32_t slot) {
  uint64_t *w, bit;
  uint32_t *list;
  if (s->cleared)
    return; /* every key goes in the next delta anyway */
  w = &s->dbits[slot >> 6];
  bit = (uint64_t)1 << (slot & 63);
  if (s->dlen == s->dcap) {
    list = ds__state_grow(s, s->dlist, &s->dcap, sizeof *list, s->dlen + 1);
    if (list == NULL) {
      track_overflow(s);
      return;
    }
    s->dlist = list;
  }
  *w |= bit;
  s->dlist[s->dlen++] = slot;
}

void ds__track_removed(ds_state_t *s, uint32_t slot) {
  const uint64_t *kp = &entry_at(s, slot)->key;
  const unsigned char *p;
  uint32_t len;
  int err;
  if (s->cleared)
    return; /* every key goes in the next delta anyway */
  if (cell_is_num(*kp)) {
    err = ds_codec_put_number(&s->removed, num_of(*kp));
  } else {
    p = cell_bytes(s, kp, &len);
    err = cell_user_kind(*kp) == DS_STATE_STR
              ? ds_codec_put_str(&s->removed, p, len)
              : ds_buf_append(&s->removed, p, len);
  }
  if (err != 0) {
    track_overflow(s);
    return;
  }
  s->nremoved++;
}

void ds__track_restart(ds_state_t *s) {
  uint32_t i;
  for (i = 0; i < s->dlen; i++)
    s->dbits[s->dlist[i] >> 6] = 0;
  s->dlen = 0;
  s->cleared = 0;
  ds_buf_truncate(&s->removed, 0);
  s->nremoved = 0;
  /* A batch of removals far larger than usual does not keep its memory. */
  if (s->removed.cap > ((size_t)1 << 20))
    ds_buf_close(&s->removed);
}

int ds_state_track(ds_state_t *s) {
  if (s->tracking)
    return 0;
  if (s->npages > 0 && ds__track_bits(s, s->npages * PAGE_SLOTS) != 0)
    return DS_ENOMEM;
  s->tracking = 1;
  s->cleared = 0;
  s->dlen = 0;
  s->nremoved = 0;
  return 0;
}
