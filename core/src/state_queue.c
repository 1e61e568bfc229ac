/* State store timeouts: the queue of updates in time order, and expiry.
 *
 * TIMEOUTS (exact, not scanning): a store made with a timeout keeps a queue
 * of slot numbers in chunks of 4094, appended to each time a key is updated
 * in a batch other than that of its last update, so the queue is in order of
 * update time. Each appended entry gets the next sequence number, which the
 * key's slot records; an entry is current when its slot is live and records
 * its sequence number, stale when the key has been updated again or removed
 * since (a freed slot records a number no entry carries, so telling the two
 * apart reads one word). Markers, one per batch time present, give the
 * sequence number where each time starts. ds_state_expire() pops from the
 * front while the front's time is at most now - timeout, removing the keys
 * of current entries: each key is handed back once, in the first batch at
 * which it has been idle for the timeout.
 *
 * THE LIVE BITS: a ring of one bit per queue entry, set while the entry is
 * current. An update clears the bit of the key's old entry (whose number
 * its slot holds: the word is read anyway, to be rewritten), a removal that
 * of its entry. So expiry passes stale entries 64 to a word of bits, never
 * reading their slots: a batch's expiry costs its expired keys plus one
 * word per 64 stale entries in front of them, not one cache miss per stale
 * entry - at 2 000 000 keys a batch whose 1 000 keys sat among 80 000 stale
 * entries (keys updated after the last compaction) cost 6 times one whose
 * keys did not. The bits cost 1/8 to 1/4 byte per queue entry (the ring's
 * size is a power of two), under 0.3 byte per key.
 *
 * When stale entries pass a quarter of the live keys, one pass compacts the
 * queue in place and renumbers it, reading the bits, not the stale entries'
 * slots: amortized 5 entries per queued update; the queue costs 4 to 5
 * bytes per key. (An intrusive doubly-linked list would cost 8, and two
 * dependent misses per update.) Expiring a current entry asks the cache
 * ahead of time for the entries and index words of the current entries
 * after it, so with millions of keys their misses overlap rather than come
 * one after the other.
 *
 * INVARIANTS: every live key of a store with a timeout has exactly one
 * current queue entry, and sequence numbers in the queue span less than 2^32
 * (at most 1.25 * count + 4094), so 32 bits identify them. Only the bits
 * of [head_seq, tail_seq) mean anything: an appended entry's bit is set,
 * never assumed clear, so passing an entry needs no write, and no two
 * entries of the queue share a bit.
 *
 * WHERE THE PER-RECORD PARTS ARE: touch_prepare() and touch() (a store
 * without a timeout does nothing), the live bits and a slot's sequence
 * number are static inline in state_internal.h; what they call when there
 * is work to do is here.
 */
#include <string.h>

#include "dstream/alloc.h"
#include "state_internal.h"

#define LIVE_MIN_WORDS 16 /* the live bits' first ring: 1024 entries */
#define EXPIRE_AHEAD 8    /* current entries prefetched ahead of expiry */
#define EXPIRE_SPAN 1024  /* queue entries looked through for them */

static int marks_grow(ds_state_t *s) {
  uint32_t cap = s->mcap > 0 ? s->mcap * 2 : 8, i;
  marker_t *m = ds__state_alloc(s, cap * sizeof *m);
  if (m == NULL)
    return DS_ENOMEM;
  for (i = 0; i < s->mlen; i++)
    m[i] = *mark_at(s, i);
  ds__state_dealloc(s, s->marks, s->mcap * sizeof *m);
  s->marks = m;
  s->mcap = cap;
  s->mhead = 0;
  return 0;
}

static qchunk_t *chunk_new(ds_state_t *s) {
  qchunk_t *c = ds__state_alloc(s, sizeof *c);
  if (c != NULL)
    c->next = NULL;
  return c;
}

static unsigned low_bit(uint64_t w) {
#if defined(__GNUC__)
  return (unsigned)__builtin_ctzll(w);
#else
  unsigned n = 0;
  while ((w & 1) == 0) {
    w >>= 1;
    n++;
  }
  return n;
#endif
}

/* The first current entry in [seq, end), end <= tail_seq, or end; adds to
 * *empty (if not NULL) the words read that held none. */
static uint64_t live_next(const ds_state_t *s, uint64_t seq, uint64_t end,
                          uint64_t *empty) {
  while (seq < end) {
    uint64_t w = *live_word(s, seq) >> (seq & 63);
    if (w != 0) {
      seq += low_bit(w);
      return seq < end ? seq : end;
    }
    seq = (seq | 63) + 1;
    if (empty != NULL)
      (*empty)++;
  }
  return end;
}

/* The n-th (n >= 1) current entry in [seq, end), end <= tail_seq, or end. */
static uint64_t live_nth(const ds_state_t *s, uint64_t seq, uint64_t end,
                         unsigned n) {
  while (seq < end) {
    uint64_t w = *live_word(s, seq) >> (seq & 63);
    for (; w != 0; w &= w - 1) {
      if (--n == 0) {
        seq += low_bit(w);
        return seq < end ? seq : end;
      }
    }
    seq = (seq | 63) + 1;
  }
  return end;
}

/* Double the ring of live bits, keeping those of [head_seq, tail_seq). */
static int live_grow(ds_state_t *s) {
  uint32_t n = s->lwords > 0 ? s->lwords * 2 : LIVE_MIN_WORDS;
  uint64_t *bits = ds__state_alloc(s, (size_t)n * sizeof *bits), w;
  if (bits == NULL)
    return DS_ENOMEM;
  memset(bits, 0, (size_t)n * sizeof *bits);
  /* At most lwords + 1 words, each to a word of its own in the new ring. */
  if (s->head_seq < s->tail_seq) {
    for (w = s->head_seq >> 6; w <= (s->tail_seq - 1) >> 6; w++)
      bits[w & (n - 1)] = s->live[w & (s->lwords - 1)];
  }
  ds__state_dealloc(s, s->live, (size_t)s->lwords * sizeof *bits);
  s->live = bits;
  s->lwords = n;
  return 0;
}

int ds__queue_reserve(ds_state_t *s, int64_t now) {
  if (now < s->last_time)
    return DS_EINVAL;
  if (s->mlen == s->mcap && marks_grow(s) != 0)
    return DS_ENOMEM;
  if (s->tail_seq + 1 - s->head_seq > (uint64_t)s->lwords * 64 &&
      live_grow(s) != 0)
    return DS_ENOMEM;
  if (s->qtail == NULL) {
    s->qtail = chunk_new(s);
    if (s->qtail == NULL)
      return DS_ENOMEM;
    s->qhead = s->qtail;
    s->qhead_first = s->qtail_first = s->tail_seq;
  } else if (s->tail_seq - s->qtail_first == QCHUNK && s->qtail->next == NULL) {
    s->qtail->next = chunk_new(s);
    if (s->qtail->next == NULL)
      return DS_ENOMEM;
  }
  return 0;
}

/* Drop stale entries, renumbering the rest from head_seq, in place. The
 * bit of w is set after that of r >= w is read, and no entry still to be
 * read shares it (it would be w + 64 * lwords >= tail_seq). */
static void queue_compact(ds_state_t *s) {
  qchunk_t *rc = s->qhead, *wc = s->qhead, *c;
  uint64_t rfirst = s->qhead_first, wfirst = s->qhead_first;
  uint64_t r = s->head_seq, w = s->head_seq;
  uint32_t mi = 0, mo = 0; /* marker read, markers written */
  for (;; r++) {
    uint32_t slot;
    r = live_next(s, r, s->tail_seq, NULL);
    if (r == s->tail_seq)
      break;
    while (r - rfirst >= QCHUNK) {
      rc = rc->next;
      rfirst += QCHUNK;
    }
    while (mi + 1 < s->mlen && mark_at(s, mi + 1)->first <= r)
      mi++;
    slot = rc->slot[r - rfirst];
    if (w - wfirst == QCHUNK) {
      wc = wc->next;
      wfirst += QCHUNK;
    }
    wc->slot[w - wfirst] = slot;
    *seq_at(s, slot) = (uint32_t)w;
    live_set(s, w);
    /* Markers are written at mo <= mi: never over one still to be read. */
    if (mo == 0 || mark_at(s, mo - 1)->time != mark_at(s, mi)->time) {
      marker_t m = {mark_at(s, mi)->time, w};
      *mark_at(s, mo++) = m;
    }
    w++;
  }
  for (c = wc->next; c != NULL;) {
    qchunk_t *next = c->next;
    ds__state_dealloc(s, c, sizeof *c);
    c = next;
  }
  wc->next = NULL;
  s->qtail = wc;
  s->qtail_first = wfirst;
  s->tail_seq = w;
  s->mlen = mo;
  s->compactions++;
}

void ds__queue_touch(ds_state_t *s, uint32_t slot, int fresh, int64_t now) {
  marker_t *last;
  uint64_t old = 0;
  s->last_time = now;
  if (s->head_seq == s->tail_seq)
    s->mlen = 0; /* markers of an empty queue mark nothing */
  last = s->mlen > 0 ? mark_at(s, s->mlen - 1) : NULL;
  if (last != NULL && last->time == now) {
    /* Already queued in this batch: its entry is at or after last->first. */
    if (!fresh && (uint32_t)(*seq_at(s, slot) - (uint32_t)last->first) <
                      (uint32_t)(s->tail_seq - last->first))
      return;
  } else {
    last = mark_at(s, s->mlen++);
    last->time = now;
    last->first = s->tail_seq;
  }
  if (!fresh)
    old = slot_seq(s, slot);
  if (s->tail_seq - s->qtail_first == QCHUNK) {
    s->qtail = s->qtail->next;
    s->qtail_first += QCHUNK;
  }
  s->qtail->slot[s->tail_seq - s->qtail_first] = slot;
  *seq_at(s, slot) = (uint32_t)s->tail_seq;
  live_set(s, s->tail_seq);
  if (!fresh)
    live_clear(s, old);
  s->tail_seq++;
  if (s->tail_seq - s->head_seq > (uint64_t)s->count + s->count / 4 + QCHUNK)
    queue_compact(s);
}

/* Move the front of the queue on to seq (<= tail_seq), freeing the chunks
 * left behind (but the tail's). */
static void queue_advance(ds_state_t *s, uint64_t seq) {
  s->head_seq = seq;
  while (s->head_seq - s->qhead_first >= QCHUNK && s->qhead != s->qtail) {
    qchunk_t *done = s->qhead;
    s->qhead = done->next;
    s->qhead_first += QCHUNK;
    ds__state_dealloc(s, done, sizeof *done);
  }
}

void ds__queue_release(ds_state_t *s) {
  qchunk_t *c;
  for (c = s->qhead; c != NULL;) {
    qchunk_t *next = c->next;
    ds__state_dealloc(s, c, sizeof *c);
    c = next;
  }
  ds__state_dealloc(s, s->marks, s->mcap * sizeof *s->marks);
  ds__state_dealloc(s, s->live, (size_t)s->lwords * sizeof *s->live);
}

int ds_state_time(const ds_state_t *s, int slot, int64_t *time_ms) {
  uint64_t seq;
  uint32_t lo = 0, hi;
  if (!slot_live(s, slot))
    return DS_EINVAL;
  if (s->timeout == 0)
    return DS_ESTATE;
  /* The slot's entry is current, so within [head_seq, tail_seq). */
  seq = s->head_seq + (uint32_t)(*seq_at(s, (uint32_t)slot) -
                                 (uint32_t)s->head_seq);
  hi = s->mlen - 1;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo + 1) / 2;
    if (mark_at(s, mid)->first <= seq)
      lo = mid;
    else
      hi = mid - 1;
  }
  *time_ms = mark_at(s, lo)->time;
  return 0;
}

/* --- expiry -------------------------------------------------------------- */

/* Copy a slot's key and value into the scratch area and describe them. */
static int copy_out(ds_state_t *s, uint32_t slot, ds_state_item_t *key,
                    ds_state_item_t *value) {
  entry_t *e = entry_at(s, slot);
  ds_state_item_t k, v;
  char *p;
  item_of(s, &e->key, &k);
  item_of(s, &e->val, &v);
  ds_buf_truncate(&s->scratch, 0);
  if (ds_buf_reserve(&s->scratch, (size_t)k.len + v.len) != 0)
    return DS_ENOMEM;
  p = s->scratch.data;
  if (k.len > 0) {
    memcpy(p, k.ptr, k.len);
    k.ptr = p;
  }
  if (v.len > 0) {
    memcpy(p + k.len, v.ptr, v.len);
    v.ptr = p + k.len;
  }
  *key = k;
  *value = v;
  return 0;
}

/* The slot of queue entry seq, in [head_seq, tail_seq). */
static uint32_t queue_at(const ds_state_t *s, uint64_t seq) {
  const qchunk_t *c = s->qhead;
  uint64_t first = s->qhead_first;
  while (seq - first >= QCHUNK) {
    c = c->next;
    first += QCHUNK;
  }
  return c->slot[seq - first];
}

/* Ask the cache for what expiring the current entries after seq will read,
 * so that their misses overlap: EXPIRE_AHEAD of them ahead, the entry; half
 * as far, the index word at its key's home (numbers and inline bytes: a
 * blob would be a miss of its own), its entry asked for before. Looks only
 * EXPIRE_SPAN entries ahead, so that a long stale run costs once. */
static void expire_prefetch(const ds_state_t *s, uint64_t seq) {
#if defined(__GNUC__)
  uint64_t end = s->tail_seq - seq > EXPIRE_SPAN ? seq + EXPIRE_SPAN
                                                 : s->tail_seq;
  uint32_t slot;
  seq = live_nth(s, seq + 1, end, EXPIRE_AHEAD / 2);
  if (seq == end)
    return;
  slot = queue_at(s, seq);
  if (!cell_is_ref(entry_at(s, slot)->key))
    __builtin_prefetch(&s->index[idx_home(slot_hash(s, slot), s->cap)]);
  seq = live_nth(s, seq + 1, end, EXPIRE_AHEAD / 2);
  if (seq == end)
    return;
  slot = queue_at(s, seq);
  __builtin_prefetch(entry_at(s, slot));
  __builtin_prefetch(seq_at(s, slot), 1);
#else
  (void)s;
  (void)seq;
#endif
}

/* Stale entries in front are passed by their live bits (each word of them
 * that holds no current entry counts as one visited); each current entry
 * expired counts one. */
int ds_state_expire(ds_state_t *s, int64_t now_ms, ds_state_item_t *key,
                    ds_state_item_t *value) {
  int64_t limit;
  uint64_t seq;
  uint32_t slot;
  int err;
  if (s->timeout == 0 || now_ms < INT64_MIN + s->timeout)
    return 0;
  limit = now_ms - s->timeout;
  seq = live_next(s, s->head_seq, s->tail_seq, &s->visited);
  queue_advance(s, seq);
  if (seq == s->tail_seq)
    return 0;
  while (s->mlen > 1 && mark_at(s, 1)->first <= seq) {
    s->mhead = (s->mhead + 1) & (s->mcap - 1);
    s->mlen--;
  }
  if (mark_at(s, 0)->time > limit)
    return 0;
  slot = s->qhead->slot[seq - s->qhead_first];
  s->visited++;
  expire_prefetch(s, seq);
  err = copy_out(s, slot, key, value);
  if (err != 0)
    return err;
  s->head_seq++;
  remove_at(s, slot, index_pos_of(s, slot));
  return 1;
}
