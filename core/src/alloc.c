/* The swappable allocator behind ds_malloc/ds_realloc/ds_free. */
#include <stdlib.h>
#include <string.h>

#include "dstream/alloc.h"

static const ds_allocator_t libc_allocator = {malloc, realloc, free};
static const ds_allocator_t *current = &libc_allocator;

void ds_set_allocator(const ds_allocator_t *a) {
  current = a != NULL ? a : &libc_allocator;
}

void *ds_malloc(size_t size) {
  return current->malloc_fn(size > 0 ? size : 1);
}

void *ds_realloc(void *ptr, size_t size) {
  return current->realloc_fn(ptr, size > 0 ? size : 1);
}

void *ds_calloc(size_t nmemb, size_t size) {
  void *p;
  if (size != 0 && nmemb > (size_t)-1 / size)
    return NULL;
  p = ds_malloc(nmemb * size);
  if (p != NULL)
    memset(p, 0, nmemb * size);
  return p;
}

void ds_free(void *ptr) {
  if (ptr != NULL)
    current->free_fn(ptr);
}

char *ds_strndup(const char *s, size_t len) {
  char *p = ds_malloc(len + 1);
  if (p == NULL)
    return NULL;
  memcpy(p, s, len);
  p[len] = '\0';
  return p;
}
