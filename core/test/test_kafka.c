/* The Kafka consumer and producer against librdkafka's mock cluster in this
 * process (real Kafka protocol over TCP on 127.0.0.1): exact ranges taken
 * from the buffers, replays equal to the take, "earliest"/"latest"/absolute
 * starts, delivery failures naming topic and partition, a broker down
 * reported, a group's two members getting disjoint partitions through
 * events. Waits are loops until a condition holds, bounded by a generous
 * guard that only stops a broken test from hanging; nothing here depends on
 * timing. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "dstream/alloc.h"
#include "dstream/error.h"
#include "dstream/kafka.h"
#include "harness.h"

#define GUARD_MS 30000
#define N 200

static rd_kafka_mock_cluster_t *mc;
static const char *brokers;
static char errbuf[512];

static const char *test_keys[] = {"session.timeout.ms", "max.poll.interval.ms",
                                  "heartbeat.interval.ms", "debug"};
static const char *test_values[] = {"6000", "10000", "500", "cgrp"};
static size_t ntest = 3;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static ds_kafka_consumer_t *consumer(const char *group, const char *const *topics, size_t n) {
  ds_kafka_conf_t conf = {brokers, group, topics, n, test_keys, test_values, group ? ntest : 3, 0};
  ds_kafka_consumer_t *c = NULL;
  int err = ds_kafka_consumer_new(&c, &conf, errbuf, sizeof errbuf);
  if (err < 0)
    fprintf(stderr, "consumer: %s\n", errbuf);
  CHECK_EQ_INT(err, 0);
  return c;
}

/* Message i of a partition: key "k<i>" for even i, none for odd. */
static void produce(ds_kafka_producer_t *p, const char *topic, int32_t part, int from, int n) {
  for (int i = from; i < from + n; i++) {
    char k[32], v[64];
    snprintf(k, sizeof k, "k%d", i);
    snprintf(v, sizeof v, "%s/%d value %d", topic, (int)part, i);
    CHECK_EQ_INT(ds_kafka_producer_produce(p, topic, part, i % 2 == 0 ? k : NULL, strlen(k), v,
                                           strlen(v), 10000, errbuf, sizeof errbuf),
                 0);
  }
  CHECK_EQ_INT(ds_kafka_producer_flush(p, 10000, errbuf, sizeof errbuf), 0);
}

static int check_record(const ds_kafka_record_t *r, const char *topic, int32_t part) {
  char k[32], v[64];
  int i = (int)r->offset, ok;
  snprintf(k, sizeof k, "k%d", i);
  snprintf(v, sizeof v, "%s/%d value %d", topic, (int)part, i);
  ok = r->valuelen == strlen(v) && memcmp(r->value, v, r->valuelen) == 0;
  if (i % 2 == 0)
    ok = ok && r->key != NULL && r->keylen == strlen(k) && memcmp(r->key, k, r->keylen) == 0;
  else
    ok = ok && r->key == NULL && r->keylen == 0;
  return ok;
}

/* Poll until the partition's buffer reaches upto. */
static int poll_until(ds_kafka_consumer_t *c, const char *topic, int32_t part, int64_t upto) {
  int64_t deadline = now_ms() + GUARD_MS, from, up = -1;
  while (now_ms() < deadline) {
    ds_kafka_consumer_poll(c);
    if (ds_kafka_consumer_buffered(c, topic, part, &from, &up) == 0 && up >= upto)
      return 1;
    usleep(5000);
  }
  fprintf(stderr, "%s/%d reached %lld, not %lld\n", topic, (int)part, (long long)up,
          (long long)upto);
  return 0;
}

static void test_take_and_read(ds_kafka_producer_t *p) {
  const char *t = "exact";
  ds_kafka_consumer_t *c = consumer(NULL, NULL, 0);
  ds_kafka_tp_t tp = {t, 0, DS_KAFKA_EARLIEST};
  ds_kafka_iter_t it;
  ds_kafka_record_t r;
  ds_block_t *chain = NULL;
  int64_t from, upto, lo, hi, expect;
  int ok;

  produce(p, t, 0, 0, N);
  CHECK_EQ_INT(ds_kafka_consumer_partitions(c, t, 10000, errbuf, sizeof errbuf), 3);
  CHECK_EQ_INT(ds_kafka_consumer_partitions(c, "nosuch", 10000, errbuf, sizeof errbuf), DS_ENOENT);
  CHECK(strstr(errbuf, "nosuch") != NULL);
  if (ds_kafka_consumer_assign(c, &tp, 1, 10000, errbuf, sizeof errbuf) != 0)
    fprintf(stderr, "assign: %s\n", errbuf);
  CHECK_EQ_INT(tp.offset, 0);
  CHECK(poll_until(c, t, 0, N));
  CHECK_EQ_INT(ds_kafka_consumer_buffered(c, t, 0, &from, &upto), 0);
  CHECK_EQ_INT(from, 0);
  CHECK_EQ_INT(upto, N);
  CHECK_EQ_INT(ds_kafka_consumer_buffered(c, t, 1, &from, &upto), DS_ENOENT);

  /* [10, 20): exactly ten records, keyed and unkeyed. */
  CHECK_EQ_INT(ds_kafka_consumer_range(c, t, 0, 10, 20, &it), 0);
  CHECK_EQ_INT(it.count, 10);
  expect = 10;
  ok = 1;
  while (ds_kafka_iter_next(&it, &r)) {
    ok = ok && r.offset == expect++ && check_record(&r, t, 0);
  }
  CHECK(ok);
  CHECK_EQ_INT(expect, 20);
  CHECK_EQ_INT(ds_kafka_consumer_drop(c, t, 0, 20), 0);
  CHECK_EQ_INT(ds_kafka_consumer_buffered(c, t, 0, &from, &upto), 0);
  CHECK_EQ_INT(from, 20);
  CHECK_EQ_INT(upto, N);
  /* Below upto everything is gone. */
  CHECK_EQ_INT(ds_kafka_consumer_range(c, t, 0, 0, 20, &it), 0);
  CHECK_EQ_INT(it.count, 0);

  /* The replay of [10, 20) reads the same records from the broker. */
  CHECK_EQ_INT(ds_kafka_consumer_read(c, t, 0, 10, 20, 10000, &chain, errbuf, sizeof errbuf), 0);
  expect = 10;
  ok = 1;
  for (ds_block_t *b = chain; b != NULL; b = b->next) {
    const char *rec;
    size_t len, off = 0;
    while (ds_block_next(b, &off, &rec, &len)) {
      ok = ok && ds_kafka_record_decode(rec, len, &r) == 0 && r.offset == expect++ &&
           check_record(&r, t, 0);
    }
  }
  CHECK(ok);
  CHECK_EQ_INT(expect, 20);
  while (chain != NULL) {
    ds_block_t *next = chain->next;
    ds_block_free(chain);
    chain = next;
  }
  /* A replay past the end of the log waits for its bound and says where. */
  CHECK_EQ_INT(ds_kafka_consumer_read(c, t, 0, N - 1, N + 5, 2000, &chain, errbuf, sizeof errbuf),
               DS_ENET);
  CHECK(strstr(errbuf, "exact/0") != NULL);
  CHECK(chain != NULL && chain->count == 1);
  ds_block_free(chain);
  chain = NULL;

  CHECK_EQ_INT(ds_kafka_consumer_watermarks(c, t, 0, 10000, &lo, &hi, errbuf, sizeof errbuf), 0);
  CHECK_EQ_INT(lo, 0);
  CHECK_EQ_INT(hi, N);

  /* Take everything else; the buffer is empty after. */
  CHECK_EQ_INT(ds_kafka_consumer_range(c, t, 0, 20, N, &it), 0);
  CHECK_EQ_INT(it.count, N - 20);
  CHECK_EQ_INT(ds_kafka_consumer_drop(c, t, 0, N), 0);
  CHECK_EQ_INT(ds_kafka_consumer_buffered(c, t, 0, &from, &upto), 0);
  CHECK_EQ_INT(from, N);
  CHECK_EQ_INT(upto, N);

  /* Unassigned: not buffered any more. */
  CHECK_EQ_INT(ds_kafka_consumer_unassign(c, &tp, 1, errbuf, sizeof errbuf), 0);
  CHECK_EQ_INT(ds_kafka_consumer_buffered(c, t, 0, &from, &upto), DS_ENOENT);
  ds_kafka_consumer_free(c);
}

static void test_start_offsets(ds_kafka_producer_t *p) {
  const char *t = "starts";
  ds_kafka_consumer_t *c = consumer(NULL, NULL, 0);
  ds_kafka_tp_t tps[3] = {{t, 0, DS_KAFKA_EARLIEST}, {t, 1, DS_KAFKA_LATEST}, {t, 2, 3}};
  ds_kafka_iter_t it;
  ds_kafka_record_t r;
  int64_t from, upto;

  produce(p, t, 0, 0, 5);
  produce(p, t, 1, 0, 5);
  produce(p, t, 2, 0, 5);
  CHECK_EQ_INT(ds_kafka_consumer_assign(c, tps, 3, 10000, errbuf, sizeof errbuf), 0);
  CHECK_EQ_INT(tps[0].offset, 0);
  CHECK_EQ_INT(tps[1].offset, 5);
  CHECK_EQ_INT(tps[2].offset, 3);
  CHECK(poll_until(c, t, 0, 5));
  CHECK(poll_until(c, t, 2, 5));
  CHECK_EQ_INT(ds_kafka_consumer_buffered(c, t, 2, &from, &upto), 0);
  CHECK_EQ_INT(from, 3);
  CHECK_EQ_INT(upto, 5);
  CHECK_EQ_INT(ds_kafka_consumer_buffered(c, t, 1, &from, &upto), 0);
  CHECK_EQ_INT(from, 5);
  CHECK_EQ_INT(upto, 5);
  /* "latest" sees only what comes after. */
  produce(p, t, 1, 5, 2);
  CHECK(poll_until(c, t, 1, 7));
  CHECK_EQ_INT(ds_kafka_consumer_range(c, t, 1, 0, 100, &it), 0);
  CHECK_EQ_INT(it.count, 2);
  CHECK(ds_kafka_iter_next(&it, &r) && r.offset == 5 && check_record(&r, t, 1));
  CHECK(ds_kafka_iter_next(&it, &r) && r.offset == 6 && check_record(&r, t, 1));
  CHECK(!ds_kafka_iter_next(&it, &r));

  /* Assigning an assigned partition again restarts it there. */
  tps[2].offset = 1;
  CHECK_EQ_INT(ds_kafka_consumer_assign(c, &tps[2], 1, 10000, errbuf, sizeof errbuf), 0);
  CHECK_EQ_INT(ds_kafka_consumer_buffered(c, t, 2, &from, &upto), 0);
  CHECK_EQ_INT(from, 1);
  CHECK_EQ_INT(upto, 1);
  CHECK(poll_until(c, t, 2, 5));
  CHECK_EQ_INT(ds_kafka_consumer_range(c, t, 2, 0, 100, &it), 0);
  CHECK_EQ_INT(it.count, 4);

  /* Bad offsets and duplicates change nothing. */
  tps[0].offset = -5;
  CHECK_EQ_INT(ds_kafka_consumer_assign(c, tps, 1, 10000, errbuf, sizeof errbuf), DS_EINVAL);
  tps[0].offset = 0;
  tps[1] = tps[0];
  CHECK_EQ_INT(ds_kafka_consumer_assign(c, tps, 2, 10000, errbuf, sizeof errbuf), DS_EINVAL);
  CHECK(strstr(errbuf, "twice") != NULL);
  ds_kafka_consumer_free(c);
}

/* Take everything buffered of a partition, checking each record is the
 * next one; returns how many were taken. */
static int take_all(ds_kafka_consumer_t *c, const char *t, int32_t part, int64_t *next, int *ok) {
  ds_kafka_iter_t it;
  ds_kafka_record_t r;
  int64_t from, upto;
  int n = 0;
  ds_kafka_consumer_buffered(c, t, part, &from, &upto);
  ds_kafka_consumer_range(c, t, part, from, upto, &it);
  while (ds_kafka_iter_next(&it, &r)) {
    *ok = *ok && r.offset == (*next)++ && check_record(&r, t, part);
    n++;
  }
  ds_kafka_consumer_drop(c, t, part, upto);
  return n;
}

static void test_pause_when_full(ds_kafka_producer_t *p) {
  const char *t = "full";
  ds_kafka_conf_t conf = {brokers, NULL, NULL, 0, test_keys, test_values, 3, 4096};
  ds_kafka_consumer_t *c = NULL;
  ds_kafka_tp_t tp = {t, 0, 0};
  int64_t deadline = now_ms() + GUARD_MS, next = 0;
  size_t bytes = 0;
  int paused = 0, was_paused = 0, ok = 1, total = 0;
  CHECK_EQ_INT(ds_kafka_consumer_new(&c, &conf, errbuf, sizeof errbuf), 0);
  produce(p, t, 0, 0, 2000);
  CHECK_EQ_INT(ds_kafka_consumer_assign(c, &tp, 1, 10000, errbuf, sizeof errbuf), 0);
  /* Untaken records fill the buffer until the partition pauses. */
  while (!paused && now_ms() < deadline) {
    ds_kafka_consumer_poll(c);
    ds_kafka_consumer_stats(c, t, 0, &bytes, &paused);
    usleep(2000);
  }
  CHECK(paused);
  CHECK(bytes > 4096);
  /* Taking resumes it; every record arrives once, in order. */
  while (total < 2000 && now_ms() < deadline) {
    ds_kafka_consumer_poll(c);
    ds_kafka_consumer_stats(c, t, 0, &bytes, &paused);
    was_paused += paused;
    total += take_all(c, t, 0, &next, &ok);
    usleep(2000);
  }
  CHECK_EQ_INT(total, 2000);
  CHECK(ok);
  CHECK(was_paused > 0);
  ds_kafka_consumer_stats(c, t, 0, &bytes, &paused);
  CHECK_EQ_INT(bytes, 0);
  CHECK_EQ_INT(paused, 0);
  ds_kafka_consumer_free(c);
}

static void test_out_of_memory_loses_nothing(ds_kafka_producer_t *p) {
  const char *t = "oom";
  ds_kafka_consumer_t *c = consumer(NULL, NULL, 0);
  ds_kafka_tp_t tp = {t, 0, 0};
  ds_kafka_error_t *e = NULL;
  int64_t deadline = now_ms() + GUARD_MS, next = 0;
  int ok = 1, total = 0;
  produce(p, t, 0, 0, 50);
  CHECK_EQ_INT(ds_kafka_consumer_assign(c, &tp, 1, 10000, errbuf, sizeof errbuf), 0);
  /* Polls whose every allocation fails: the records are fetched again. */
  while (e == NULL && now_ms() < deadline) {
    ds_test_fail_after(1);
    ds_kafka_consumer_poll(c);
    ds_test_fail_after(0);
    e = ds_kafka_consumer_errors(c);
    usleep(2000);
  }
  CHECK(e != NULL);
  if (e != NULL)
    fprintf(stderr, "out of memory: %s\n", e->msg);
  while (e != NULL) {
    ds_kafka_error_t *n = e->next;
    ds_free(e);
    e = n;
  }
  while (total < 50 && now_ms() < deadline) {
    ds_kafka_consumer_poll(c);
    total += take_all(c, t, 0, &next, &ok);
    usleep(2000);
  }
  CHECK_EQ_INT(total, 50);
  CHECK(ok);
  ds_kafka_consumer_free(c);
}

static void test_queue_full_never_drops(void) {
  const char *k[] = {"queue.buffering.max.messages", "linger.ms"}, *v[] = {"5", "0"};
  const char *t = "queuefull";
  ds_kafka_producer_t *p = NULL;
  ds_kafka_consumer_t *c;
  ds_kafka_tp_t tp = {t, 0, 0};
  int64_t deadline = now_ms() + GUARD_MS, next = 0;
  int ok = 1, total = 0;
  CHECK_EQ_INT(ds_kafka_producer_new(&p, brokers, k, v, 2, errbuf, sizeof errbuf), 0);
  produce(p, t, 0, 0, 500);
  ds_kafka_producer_free(p);
  c = consumer(NULL, NULL, 0);
  CHECK_EQ_INT(ds_kafka_consumer_assign(c, &tp, 1, 10000, errbuf, sizeof errbuf), 0);
  while (total < 500 && now_ms() < deadline) {
    ds_kafka_consumer_poll(c);
    total += take_all(c, t, 0, &next, &ok);
    usleep(2000);
  }
  CHECK_EQ_INT(total, 500);
  CHECK(ok);
  ds_kafka_consumer_free(c);
}

static void test_delivery_failure(ds_kafka_producer_t *p) {
  ds_kafka_error_t *e;
  int err;
  /* Partition 7 of a topic of 3: refused at once (metadata known) or at
   * delivery; either way the error names topic and partition. */
  err = ds_kafka_producer_produce(p, "exact", 7, NULL, 0, "v", 1, 1000, errbuf, sizeof errbuf);
  if (err == 0)
    err = ds_kafka_producer_flush(p, 10000, errbuf, sizeof errbuf);
  CHECK(err < 0);
  CHECK(strstr(errbuf, "exact/7") != NULL);
  /* A broker's refusal at delivery: the flush fails naming it. */
  rd_kafka_mock_push_request_errors(mc, 0 /* Produce */, 1,
                                    RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
  CHECK_EQ_INT(ds_kafka_producer_produce(p, "exact", 1, "k", 1, "v", 1, 1000, errbuf,
                                         sizeof errbuf),
               0);
  CHECK_EQ_INT(ds_kafka_producer_flush(p, 10000, errbuf, sizeof errbuf), DS_EIO);
  CHECK(strstr(errbuf, "delivery to exact/1 failed") != NULL);
  fprintf(stderr, "delivery failure: %s\n", errbuf);
  /* The failure is reported once; the next flush is clean. */
  CHECK_EQ_INT(ds_kafka_producer_flush(p, 10000, errbuf, sizeof errbuf), 0);
  e = ds_kafka_producer_errors(p);
  while (e != NULL) {
    ds_kafka_error_t *next = e->next;
    ds_free(e);
    e = next;
  }
}

static void test_broker_down(ds_kafka_producer_t *p) {
  const char *t = "down";
  ds_kafka_consumer_t *c = consumer(NULL, NULL, 0);
  ds_kafka_tp_t tp = {t, 0, 0};
  ds_kafka_error_t *e = NULL;
  int64_t deadline;
  produce(p, t, 0, 0, 3);
  CHECK_EQ_INT(ds_kafka_consumer_assign(c, &tp, 1, 10000, errbuf, sizeof errbuf), 0);
  CHECK(poll_until(c, t, 0, 3));
  rd_kafka_mock_broker_set_down(mc, 1);
  deadline = now_ms() + GUARD_MS;
  while (e == NULL && now_ms() < deadline) {
    ds_kafka_consumer_poll(c);
    e = ds_kafka_consumer_errors(c);
    usleep(10000);
  }
  CHECK(e != NULL);
  if (e != NULL)
    fprintf(stderr, "broker down: %s\n", e->msg);
  while (e != NULL) {
    ds_kafka_error_t *next = e->next;
    ds_free(e);
    e = next;
  }
  rd_kafka_mock_broker_set_up(mc, 1);
  /* Back up: what is produced now arrives. */
  produce(p, t, 0, 3, 2);
  CHECK(poll_until(c, t, 0, 5));
  ds_kafka_consumer_free(c);
}

/* Poll a member and answer its events as the caller must; returns the
 * number of partitions it holds after. */
static int serve_member(ds_kafka_consumer_t *c, int *held, int32_t *parts) {
  ds_kafka_event_t *evs, *ev;
  ds_kafka_consumer_poll(c);
  evs = ds_kafka_consumer_events(c);
  for (ev = evs; ev != NULL; ev = ev->next) {
    ds_kafka_tp_t tps[16];
    for (size_t i = 0; i < ev->n && i < 16; i++) {
      tps[i].topic = ev->tps[i].topic;
      tps[i].partition = ev->tps[i].partition;
      tps[i].offset = 0;
    }
    if (ev->type == DS_KAFKA_ASSIGNED) {
      CHECK_EQ_INT(ds_kafka_consumer_assign(c, tps, ev->n, 10000, errbuf, sizeof errbuf), 0);
      for (size_t i = 0; i < ev->n; i++)
        parts[(*held)++] = ev->tps[i].partition;
    } else {
      CHECK_EQ_INT(ds_kafka_consumer_unassign(c, tps, ev->n, errbuf, sizeof errbuf), 0);
      for (size_t i = 0; i < ev->n; i++)
        for (int j = 0; j < *held; j++)
          if (parts[j] == ev->tps[i].partition) {
            parts[j] = parts[--(*held)];
            break;
          }
    }
  }
  ds_kafka_event_free(evs);
  return *held;
}

static void test_group(void) {
  const char *const topics[] = {"grouped"};
  ds_kafka_consumer_t *a = consumer("g1", topics, 1), *b;
  int32_t pa[16], pb[16];
  int ha = 0, hb = 0;
  int64_t t0 = now_ms(), deadline = t0 + GUARD_MS, from, upto;
  ds_kafka_tp_t tp = {"grouped", 0, 0};

  /* Alone, the first member gets all four partitions. */
  while (serve_member(a, &ha, pa) < 4 && now_ms() < deadline)
    usleep(10000);
  CHECK_EQ_INT(ha, 4);
  fprintf(stderr, "group: first member assigned after %lld ms\n", (long long)(now_ms() - t0));
  /* A second one joins: cooperative rebalance moves some over, disjoint. */
  b = consumer("g1", topics, 1);
  t0 = now_ms();
  while ((ha + hb != 4 || hb == 0) && now_ms() < deadline) {
    serve_member(a, &ha, pa);
    serve_member(b, &hb, pb);
    usleep(10000);
  }
  fprintf(stderr, "group: rebalanced to %d + %d after %lld ms\n", ha, hb,
          (long long)(now_ms() - t0));
  CHECK(ha > 0 && hb > 0);
  CHECK_EQ_INT(ha + hb, 4);
  for (int i = 0; i < ha; i++)
    for (int j = 0; j < hb; j++)
      CHECK(pa[i] != pb[j]);
  for (int i = 0; i < ha; i++) {
    CHECK_EQ_INT(ds_kafka_consumer_buffered(a, "grouped", pa[i], &from, &upto), 0);
    CHECK_EQ_INT(ds_kafka_consumer_buffered(b, "grouped", pa[i], &from, &upto), DS_ENOENT);
  }
  /* Commit and read back committed offsets. */
  tp.partition = pa[0];
  tp.offset = 0;
  CHECK_EQ_INT(ds_kafka_consumer_commit(a, &tp, 1, errbuf, sizeof errbuf), 0);
  tp.offset = 12345;
  {
    int64_t until = now_ms() + GUARD_MS;
    while (now_ms() < until) {
      ds_kafka_consumer_poll(a);
      CHECK_EQ_INT(ds_kafka_consumer_committed(a, &tp, 1, 10000, errbuf, sizeof errbuf), 0);
      if (tp.offset == 0)
        break;
      usleep(10000);
    }
  }
  CHECK_EQ_INT(tp.offset, 0);
  ds_kafka_consumer_free(b);
  ds_kafka_consumer_free(a);
}

static void test_create_topic(void) {
  const char *ck[] = {"cleanup.policy"}, *cv[] = {"compact"};
  int err = ds_kafka_create_topic(brokers, "created", 2, ck, cv, 1, NULL, NULL, 0, 1000, errbuf,
                                  sizeof errbuf);
  if (err < 0)
    fprintf(stderr, "create_topic on the mock: %s\n", errbuf);
  /* Already there (made by the mock): success. */
  CHECK_EQ_INT(ds_kafka_create_topic(brokers, "exact", 3, NULL, NULL, 0, NULL, NULL, 0, 5000,
                                     errbuf, sizeof errbuf),
               0);
}

static void test_bad_config(void) {
  const char *k[] = {"no.such.option"}, *v[] = {"1"};
  ds_kafka_conf_t conf = {brokers, NULL, NULL, 0, k, v, 1, 0};
  ds_kafka_consumer_t *c = NULL;
  ds_kafka_producer_t *p = NULL;
  CHECK_EQ_INT(ds_kafka_consumer_new(&c, &conf, errbuf, sizeof errbuf), DS_EINVAL);
  CHECK(strstr(errbuf, "no.such.option") != NULL);
  CHECK_EQ_INT(ds_kafka_producer_new(&p, brokers, k, v, 1, errbuf, sizeof errbuf), DS_EINVAL);
  conf.brokers = "";
  conf.noptions = 0;
  CHECK_EQ_INT(ds_kafka_consumer_new(&c, &conf, errbuf, sizeof errbuf), DS_EINVAL);
  conf.brokers = brokers;
  conf.group = "g";
  CHECK_EQ_INT(ds_kafka_consumer_new(&c, &conf, errbuf, sizeof errbuf), DS_EINVAL);
}

int main(void) {
  char errstr[256];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_t *host;
  ds_kafka_producer_t *p = NULL;
  ds_test_begin();
  rd_kafka_conf_set(conf, "log_level", "0", errstr, sizeof errstr);
  host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  mc = rd_kafka_mock_cluster_new(host, 1);
  rd_kafka_mock_topic_create(mc, "exact", 3, 1);
  rd_kafka_mock_topic_create(mc, "starts", 3, 1);
  rd_kafka_mock_topic_create(mc, "down", 1, 1);
  rd_kafka_mock_topic_create(mc, "grouped", 4, 1);
  rd_kafka_mock_topic_create(mc, "full", 1, 1);
  rd_kafka_mock_topic_create(mc, "oom", 1, 1);
  rd_kafka_mock_topic_create(mc, "queuefull", 1, 1);
  brokers = rd_kafka_mock_cluster_bootstraps(mc);

  /* DS_KAFKA_DEBUG=1 shows librdkafka's group protocol logs. */
  if (getenv("DS_KAFKA_DEBUG") != NULL)
    ntest = 4;
  test_bad_config();
  CHECK_EQ_INT(ds_kafka_producer_new(&p, brokers, NULL, NULL, 0, errbuf, sizeof errbuf), 0);
  test_take_and_read(p);
  test_start_offsets(p);
  test_pause_when_full(p);
  test_out_of_memory_loses_nothing(p);
  test_queue_full_never_drops();
  test_delivery_failure(p);
  test_create_topic();
  test_broker_down(p);
  ds_kafka_producer_free(p);
  test_group();

  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(host);
  return ds_test_end("test_kafka");
}
