/* The C test harness: see harness.h. */
#include <stdlib.h>

#include "dstream/alloc.h"
#include "harness.h"

int ds_test_failures;
int ds_test_checks;
static long live;
static long calls_left = -1;

static int should_fail(void) {
  if (calls_left < 0)
    return 0;
  if (calls_left == 0)
    return 1;
  calls_left--;
  return 0;
}

static void *t_malloc(size_t n) {
  void *p;
  if (should_fail())
    return NULL;
  p = malloc(n);
  if (p != NULL)
    live++;
  return p;
}

static void *t_realloc(void *ptr, size_t n) {
  void *p;
  if (should_fail())
    return NULL;
  p = realloc(ptr, n);
  if (p != NULL && ptr == NULL)
    live++;
  return p;
}

static void t_free(void *p) {
  if (p != NULL)
    live--;
  free(p);
}

static const ds_allocator_t counting = {t_malloc, t_realloc, t_free};

void ds_test_begin(void) {
  ds_set_allocator(&counting);
}

void ds_test_fail_after(long n) {
  calls_left = n > 0 ? n - 1 : -1;
}

long ds_test_live(void) {
  return live;
}

int ds_test_end(const char *name) {
  CHECK_EQ_INT(live, 0);
  printf("%s: %d checks, %d failed\n", name, ds_test_checks, ds_test_failures);
  return ds_test_failures == 0 ? 0 : 1;
}
