/* Memory allocation for the engine.
 *
 * Every allocation in dstream goes through these three functions so that a C
 * test can install an allocator that fails on the Nth call and check, under
 * AddressSanitizer, that every out-of-memory path leaves things as they were.
 * Unlike zmalloc, nothing here aborts: a failed allocation is returned to the
 * caller as NULL and becomes DS_ENOMEM, because accepted data must not be lost
 * to a crash.
 */
#ifndef DSTREAM_ALLOC_H
#define DSTREAM_ALLOC_H

#include <stddef.h>

typedef struct {
  void *(*malloc_fn)(size_t size);
  void *(*realloc_fn)(void *ptr, size_t size);
  void (*free_fn)(void *ptr);
} ds_allocator_t;

/* Allocate size bytes; NULL on failure. */
void *ds_malloc(size_t size);
/* Resize ptr to size bytes; NULL on failure, ptr then left untouched. */
void *ds_realloc(void *ptr, size_t size);
/* Allocate nmemb * size zeroed bytes; NULL on failure or overflow. */
void *ds_calloc(size_t nmemb, size_t size);
/* Free ptr (NULL is allowed). */
void ds_free(void *ptr);
/* Duplicate len bytes of s as a NUL-terminated string; NULL on failure. */
char *ds_strndup(const char *s, size_t len);

/* Install a (borrowed, must outlive its use) allocator; NULL restores libc's. */
void ds_set_allocator(const ds_allocator_t *a);

#endif
