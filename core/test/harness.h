/* A small harness for the C unit tests: checks that count, an allocator that
 * counts live allocations (so a test can end by checking that everything it
 * opened is closed) and that can be told to fail on the Nth call. */
#ifndef DS_TEST_HARNESS_H
#define DS_TEST_HARNESS_H

#include <stdio.h>
#include <string.h>

extern int ds_test_failures;
extern int ds_test_checks;

#define CHECK(cond)                                                          \
  do {                                                                       \
    ds_test_checks++;                                                        \
    if (!(cond)) {                                                           \
      ds_test_failures++;                                                    \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,       \
              #cond);                                                        \
    }                                                                        \
  } while (0)

#define CHECK_EQ_INT(a, b)                                                   \
  do {                                                                       \
    long long a_ = (long long)(a), b_ = (long long)(b);                      \
    ds_test_checks++;                                                        \
    if (a_ != b_) {                                                          \
      ds_test_failures++;                                                    \
      fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__,        \
              __LINE__, #a, a_, b_);                                         \
    }                                                                        \
  } while (0)

#define CHECK_EQ_STR(a, b) CHECK(strcmp((a), (b)) == 0)

/* Install the counting allocator. */
void ds_test_begin(void);
/* Make the allocator fail every call from the nth on (n counts from 1 after
 * this call); 0 turns failing off. */
void ds_test_fail_after(long n);
/* Allocations not yet freed. */
long ds_test_live(void);
/* Check nothing is left allocated, print a summary, return the exit code. */
int ds_test_end(const char *name);

#endif
