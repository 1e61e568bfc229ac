/* Words: the split of dstream.words and a table counting each word, the C
 * loop behind `flatMap(dstream.words):countByValue()`.
 *
 * A word is a maximal run of bytes other than the six whitespace bytes of
 * Lua's %s in the C locale: " ", "\t", "\n", "\v", "\f", "\r". NUL and every
 * byte >= 0x80 are word bytes. So the words of a string are exactly those of
 * line:gmatch("%S+"), in the same order.
 *
 * HOW WORDS ARE COUNTED: the table keeps its words' bytes back to back in
 * one arena and one entry per distinct word (offset, length, hash, count) in
 * a dense array, in the order the words were first seen; an open-addressing
 * index (linear probing, power-of-two size, at most half full) maps a hash
 * to an entry. Each index slot holds the entry number and the hash's high
 * bits, so a probe that misses costs one load and one compare, not a visit
 * to the entry. A batch is counted into the table, read out entry by entry,
 * then cleared: clearing keeps the memory for the next batch (a table far
 * larger than its last batch needed is freed), so a steady stream of
 * batches allocates nothing.
 *
 * ON ERROR NOTHING CHANGES: adding a string or a block either counts all of
 * its words or, on DS_ENOMEM / DS_ERANGE, none: the words already counted by
 * the failing call are taken out again (their entries are the newest ones,
 * so the entries, the arena and the index go back exactly; that path
 * allocates nothing).
 *
 * COSTS: one pass over the bytes (a table lookup per byte, a hash step per
 * word byte), one probe per word; memory per distinct word 24 bytes of
 * entry, 16 to 32 of index, its bytes.
 */
#ifndef DSTREAM_WORDS_H
#define DSTREAM_WORDS_H

#include <stddef.h>
#include <stdint.h>

#include "dstream/block.h"

typedef struct {
  size_t off;     /* of the word's bytes in the arena */
  uint32_t len;
  uint32_t hash;
  uint64_t count;
} ds_words_entry_t;

typedef struct {
  uint64_t *index;           /* mask + 1 slots: 0 empty, else hash << 32 | entry + 1 */
  size_t mask;               /* 0 while index is NULL */
  ds_words_entry_t *entries; /* n used of ecap */
  size_t n;
  size_t ecap;
  char *bytes;               /* the arena: blen used of bcap */
  size_t blen;
  size_t bcap;
  uint64_t total;            /* words counted since the last clear */
} ds_words_t;

/* Whether byte c separates words (one of " \t\n\v\f\r"). */
int ds_words_is_space(unsigned char c);
/* Step through the words of s[0, len): *off starts at 0; returns 1 and sets
 * *start and *wlen (the word is s[*start, *start + *wlen)) while words
 * remain, 0 at the end. */
int ds_words_next(const char *s, size_t len, size_t *off, size_t *start, size_t *wlen);

/* Prepare an empty table (allocates nothing yet). */
void ds_words_init(ds_words_t *w);
/* Free the table's memory; it may be init'ed again. */
void ds_words_close(ds_words_t *w);
/* Count every word of s[0, len) (borrowed). Returns 0, or DS_ENOMEM /
 * DS_ERANGE (a word over 4 GiB, or 2^32 distinct words) with w unchanged. */
int ds_words_add(ds_words_t *w, const char *s, size_t len);
/* Count every word of every record of blk (borrowed). Returns 0, or
 * DS_ENOMEM / DS_ERANGE with w unchanged. */
int ds_words_add_block(ds_words_t *w, const ds_block_t *blk);
/* Distinct words counted since the last clear. */
size_t ds_words_distinct(const ds_words_t *w);
/* The i-th distinct word (0 <= i < distinct, in order of first sight):
 * *word borrowed until the next add or clear. */
void ds_words_get(const ds_words_t *w, size_t i, const char **word, size_t *len, uint64_t *count);
/* Forget every word; keeps the memory unless it is far more than the words
 * just forgotten needed. */
void ds_words_clear(ds_words_t *w);

#endif
