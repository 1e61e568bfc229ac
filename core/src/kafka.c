/* Kafka consumer, producer and topic creation on librdkafka: see
 * dstream/kafka.h for the contract.
 *
 * WHY RECORDS STAY IN C: a direct stream's batch is an exact offset range
 * per partition, decided when the batch is cut, not when records arrive.
 * Until then the fetched records wait here, in blocks (each record the
 * block format of block.h around offset, key and value), costing the Lua
 * GC nothing; a take turns exactly [from, upto) into Lua strings and frees
 * everything below upto.
 *
 * HOW A PARTITION IS BUFFERED: a chain of blocks of at least BLOCK_SIZE
 * bytes, records in offset order; head_off is the first live record of the
 * head block. `from` is the lowest offset not yet taken, `upto` the next
 * offset librdkafka has not handed us (offsets may have gaps: compaction,
 * transaction markers). A partition holding more than buffer_max bytes
 * (32 MiB unless configured) is paused in librdkafka and resumed once a
 * take brings it under half, so an idle taker cannot make the process grow
 * without bound; librdkafka drops its prefetched messages on pause and
 * fetches again from our position on resume, so nothing is lost.
 *
 * WHY THE CALLBACKS ONLY RECORD: librdkafka calls error_cb, rebalance_cb,
 * offset_commit_cb and dr_msg_cb from inside rd_kafka_consumer_poll() /
 * rd_kafka_poll() on the caller's thread. They append to the queues below
 * and return; the caller drains them (events, errors, the first delivery
 * failure). The rebalance callback assigns nothing: the caller decides the
 * offsets and calls ds_kafka_consumer_assign(), and librdkafka's group
 * state machine waits for that call. Only while closing does the callback
 * answer revocations itself, since no caller is left to do it.
 *
 * GROUP PROTOCOL: the cooperative-sticky assignor by default, so events
 * carry only the partitions that move and incremental assign/unassign
 * answer them. If options choose an eager assignor, assign/unassign
 * re-assign the whole set (each kept partition at its own position).
 *
 * COSTS: one copy of each record into a block at poll, one into a Lua
 * string at take; memory at most buffer_max (plus one fetch) per partition.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "dstream/alloc.h"
#include "dstream/error.h"
#include "dstream/kafka.h"
#include "internal.h"

#define BLOCK_SIZE (64 * 1024)
#define BUFFER_MAX_DEFAULT (32 * 1024 * 1024)
#define ERRQ_MAX 1000
#define REC_HDR 12 /* offset (8) and key length (4) */
#define NO_KEY 0xffffffffu

/* ---- error queue ------------------------------------------------------ */

typedef struct {
  ds_kafka_error_t *head, *tail;
  size_t n;
  size_t dropped;
} errq_t;

static void errq_push(errq_t *q, const char *fmt, ...) DS__PRINTF(2, 3);

static void errq_push(errq_t *q, const char *fmt, ...) {
  char buf[512];
  ds_kafka_error_t *e;
  size_t len;
  va_list ap;
  if (q->n >= ERRQ_MAX) {
    q->dropped++;
    return;
  }
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  len = strlen(buf);
  e = ds_malloc(sizeof(*e) + len + 1);
  if (e == NULL) {
    q->dropped++;
    return;
  }
  memcpy(e->msg, buf, len + 1);
  e->next = NULL;
  if (q->tail != NULL)
    q->tail->next = e;
  else
    q->head = e;
  q->tail = e;
  q->n++;
}

static ds_kafka_error_t *errq_take(errq_t *q) {
  ds_kafka_error_t *h;
  if (q->dropped > 0) {
    size_t dropped = q->dropped;
    q->dropped = 0;
    q->n = 0; /* room for the note */
    errq_push(q, "%zu more errors were not kept", dropped);
  }
  h = q->head;
  q->head = q->tail = NULL;
  q->n = 0;
  return h;
}

static void errq_close(errq_t *q) {
  ds_kafka_error_t *e = q->head;
  while (e != NULL) {
    ds_kafka_error_t *next = e->next;
    ds_free(e);
    e = next;
  }
  q->head = q->tail = NULL;
  q->n = q->dropped = 0;
}

/* ---- helpers ---------------------------------------------------------- */

static int map_err(rd_kafka_resp_err_t e) {
  switch (e) {
  case RD_KAFKA_RESP_ERR__TIMED_OUT:
  case RD_KAFKA_RESP_ERR__TRANSPORT:
  case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
  case RD_KAFKA_RESP_ERR__RESOLVE:
  case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    return DS_ENET;
  case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
  case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
  case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    return DS_ENOENT;
  case RD_KAFKA_RESP_ERR__INVALID_ARG:
    return DS_EINVAL;
  default:
    return DS_EIO;
  }
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wr32(char *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (char)(v >> (8 * i));
}

static uint32_t rd32(const char *p) {
  const unsigned char *u = (const unsigned char *)p;
  return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
}

static void wr64(char *p, int64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (char)((uint64_t)v >> (8 * i));
}

static int64_t rd64(const char *p) {
  const unsigned char *u = (const unsigned char *)p;
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = v << 8 | u[i];
  return (int64_t)v;
}

int ds_kafka_record_decode(const char *rec, size_t len, ds_kafka_record_t *out) {
  uint32_t klen;
  if (len < REC_HDR)
    return DS_ECORRUPT;
  out->offset = rd64(rec);
  klen = rd32(rec + 8);
  if (klen == NO_KEY) {
    out->key = NULL;
    out->keylen = 0;
    klen = 0;
  } else {
    if (klen > len - REC_HDR)
      return DS_ECORRUPT;
    out->key = rec + REC_HDR;
    out->keylen = klen;
  }
  out->value = rec + REC_HDR + klen;
  out->valuelen = len - REC_HDR - klen;
  return 0;
}

/* Append one record to the chain head..tail, in a new block when the tail
 * has no room (blocks never move, so iterators over earlier records stay
 * valid); returns the bytes used or DS_ENOMEM / DS_ERANGE, changing
 * nothing. */
static int64_t chain_append(ds_block_t **head, ds_block_t **tail, int64_t offset,
                            const void *key, size_t klen, const void *val, size_t vlen) {
  size_t rlen = REC_HDR + klen + vlen, need = 4 + rlen;
  ds_block_t *b = *tail;
  char *p;
  if (klen >= NO_KEY || rlen > UINT32_MAX)
    return DS_ERANGE;
  if (b == NULL || b->cap - b->len < need || b->count == UINT32_MAX) {
    b = ds_block_new(need > BLOCK_SIZE ? need : BLOCK_SIZE);
    if (b == NULL)
      return DS_ENOMEM;
    if (*tail != NULL)
      (*tail)->next = b;
    else
      *head = b;
    *tail = b;
  }
  p = b->data + b->len;
  wr32(p, (uint32_t)rlen);
  wr64(p + 4, offset);
  wr32(p + 12, key != NULL ? (uint32_t)klen : NO_KEY);
  if (key != NULL && klen > 0)
    memcpy(p + 4 + REC_HDR, key, klen);
  if (vlen > 0)
    memcpy(p + 4 + REC_HDR + klen, val, vlen);
  b->len += need;
  b->count++;
  return (int64_t)need;
}

/* A configuration with librdkafka's defaults, then ours, then the
 * caller's options, then the brokers. */
static void discard_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
  (void)rk, (void)level, (void)fac, (void)buf;
}

static rd_kafka_conf_t *conf_build(const char *brokers, const char *const *dkeys,
                                   const char *const *dvalues, size_t ndefaults,
                                   const char *const *keys, const char *const *values,
                                   size_t n, int *err, char *errbuf, size_t errlen) {
  char errstr[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  int debug = 0;
  for (size_t i = 0; i < ndefaults; i++)
    if (rd_kafka_conf_set(conf, dkeys[i], dvalues[i], errstr, sizeof errstr) != RD_KAFKA_CONF_OK)
      goto fail;
  for (size_t i = 0; i < n; i++) {
    if (rd_kafka_conf_set(conf, keys[i], values[i], errstr, sizeof errstr) != RD_KAFKA_CONF_OK)
      goto fail;
    if (strcmp(keys[i], "debug") == 0)
      debug = 1;
  }
  if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof errstr) !=
      RD_KAFKA_CONF_OK)
    goto fail;
  /* librdkafka logs every failed connection to stderr; errors reach the
   * error queue instead, and "debug" asks for the logs back. */
  if (!debug)
    rd_kafka_conf_set_log_cb(conf, discard_log);
  return conf;
fail:
  rd_kafka_conf_destroy(conf);
  *err = ds__error_fill(errbuf, errlen, DS_EINVAL, "%s", errstr);
  return NULL;
}

/* ---- consumer --------------------------------------------------------- */

typedef struct {
  char *topic;
  int32_t partition;
  int64_t from, upto;
  ds_block_t *head, *tail;
  size_t head_off;
  size_t bytes;
  int paused;
} part_t;

struct ds_kafka_consumer_s {
  rd_kafka_t *rk;
  rd_kafka_t *reader;            /* for ds_kafka_consumer_read, made on first use */
  rd_kafka_conf_t *reader_conf;
  int grouped;
  int closing;
  size_t buffer_max;
  part_t **parts;
  size_t nparts, capparts;
  part_t *last;                  /* the partition of the last message */
  ds_kafka_event_t *ev_head, *ev_tail;
  errq_t errors;
  int reading;                   /* partition EOF of the reader ends a read */
};

static void part_clear(part_t *p) {
  ds_block_t *b = p->head;
  while (b != NULL) {
    ds_block_t *next = b->next;
    ds_block_free(b);
    b = next;
  }
  p->head = p->tail = NULL;
  p->head_off = 0;
  p->bytes = 0;
}

static void part_free(part_t *p) {
  if (p == NULL)
    return;
  part_clear(p);
  ds_free(p->topic);
  ds_free(p);
}

static part_t *part_new(const char *topic, int32_t partition) {
  part_t *p = ds_calloc(1, sizeof(*p));
  if (p == NULL)
    return NULL;
  p->topic = ds_strndup(topic, strlen(topic));
  if (p->topic == NULL) {
    ds_free(p);
    return NULL;
  }
  p->partition = partition;
  return p;
}

static part_t *part_find(ds_kafka_consumer_t *c, const char *topic, int32_t partition) {
  if (c->last != NULL && c->last->partition == partition && strcmp(c->last->topic, topic) == 0)
    return c->last;
  for (size_t i = 0; i < c->nparts; i++) {
    part_t *p = c->parts[i];
    if (p->partition == partition && strcmp(p->topic, topic) == 0)
      return c->last = p;
  }
  return NULL;
}

static void part_remove(ds_kafka_consumer_t *c, part_t *p) {
  for (size_t i = 0; i < c->nparts; i++)
    if (c->parts[i] == p) {
      c->parts[i] = c->parts[--c->nparts];
      break;
    }
  if (c->last == p)
    c->last = NULL;
  part_free(p);
}

static void pause_resume(ds_kafka_consumer_t *c, part_t *p, int pause) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
  if (pause)
    rd_kafka_pause_partitions(c->rk, l);
  else
    rd_kafka_resume_partitions(c->rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  p->paused = pause;
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  ds_kafka_consumer_t *c = opaque;
  (void)rk;
  errq_push(&c->errors, "%s%s: %s", err == RD_KAFKA_RESP_ERR__FATAL ? "fatal: " : "",
            rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque) {
  ds_kafka_consumer_t *c = opaque;
  (void)rk;
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET)
    return;
  if (offsets != NULL && offsets->cnt > 0)
    errq_push(&c->errors, "commit of %s/%d failed: %s", offsets->elems[0].topic,
              (int)offsets->elems[0].partition, rd_kafka_err2str(err));
  else
    errq_push(&c->errors, "commit failed: %s", rd_kafka_err2str(err));
}

static int cooperative(ds_kafka_consumer_t *c) {
  return strcmp(rd_kafka_rebalance_protocol(c->rk), "EAGER") != 0;
}

/* librdkafka's group state machine waits for this answer to each event. */
static void answer(ds_kafka_consumer_t *c, int type, rd_kafka_topic_partition_list_t *parts) {
  rd_kafka_error_t *e = NULL;
  if (cooperative(c))
    e = type == DS_KAFKA_ASSIGNED ? rd_kafka_incremental_assign(c->rk, parts)
                                  : rd_kafka_incremental_unassign(c->rk, parts);
  else
    rd_kafka_assign(c->rk, type == DS_KAFKA_ASSIGNED ? parts : NULL);
  if (e != NULL)
    rd_kafka_error_destroy(e);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
  ds_kafka_consumer_t *c = opaque;
  ds_kafka_event_t *ev;
  int type = err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS ? DS_KAFKA_ASSIGNED : DS_KAFKA_REVOKED;
  if (c->closing || rd_kafka_consumer_closed(rk) || parts->cnt == 0) {
    /* Nothing for the caller to decide (no partitions move), or nobody
     * left to decide: answer at once, or the group waits forever. */
    answer(c, type, parts);
    return;
  }
  if (err != RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS && err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
    errq_push(&c->errors, "rebalance failed: %s", rd_kafka_err2str(err));
    rd_kafka_assign(rk, NULL);
    return;
  }
  ev = ds_calloc(1, sizeof(*ev));
  if (ev != NULL && parts->cnt > 0) {
    ev->tps = ds_calloc((size_t)parts->cnt, sizeof(*ev->tps));
    if (ev->tps == NULL) {
      ds_free(ev);
      ev = NULL;
    }
  }
  if (ev != NULL) {
    ev->type = type;
    for (int i = 0; i < parts->cnt; i++) {
      const char *t = parts->elems[i].topic;
      ev->tps[i].topic = ds_strndup(t, strlen(t));
      ev->tps[i].partition = parts->elems[i].partition;
      ev->n = (size_t)i + 1;
      if (ev->tps[i].topic == NULL) {
        ds_kafka_event_free(ev);
        ev = NULL;
        break;
      }
    }
  }
  if (ev == NULL) {
    /* An event lost to out of memory would leave the group waiting for an
     * answer forever: say so. */
    errq_push(&c->errors, "rebalance event lost: out of memory");
    return;
  }
  if (c->ev_tail != NULL)
    c->ev_tail->next = ev;
  else
    c->ev_head = ev;
  c->ev_tail = ev;
}

void ds_kafka_event_free(ds_kafka_event_t *ev) {
  while (ev != NULL) {
    ds_kafka_event_t *next = ev->next;
    for (size_t i = 0; i < ev->n; i++)
      ds_free(ev->tps[i].topic);
    ds_free(ev->tps);
    ds_free(ev);
    ev = next;
  }
}

/* librdkafka 2.0 assigns nothing without a group.id; a consumer that never
 * subscribes never joins its group, so a name of its own is enough. */
static int set_private_group(rd_kafka_conf_t *conf, char *errbuf, size_t errlen) {
  static unsigned serial;
  char errstr[512], id[96];
  snprintf(id, sizeof id, "dstream-unjoined-%ld-%u", (long)getpid(), ++serial);
  if (rd_kafka_conf_set(conf, "group.id", id, errstr, sizeof errstr) != RD_KAFKA_CONF_OK)
    return ds__error_fill(errbuf, errlen, DS_EINVAL, "%s", errstr);
  return 0;
}

int ds_kafka_consumer_new(ds_kafka_consumer_t **out, const ds_kafka_conf_t *conf,
                          char *errbuf, size_t errlen) {
  static const char *const dkeys[] = {"enable.auto.commit", "enable.auto.offset.store",
                                      "enable.partition.eof", "auto.offset.reset"};
  static const char *const dvalues[] = {"false", "false", "false", "error"};
  char errstr[512];
  int err = 0;
  ds_kafka_consumer_t *c;
  rd_kafka_conf_t *kconf;
  *out = NULL;
  if (conf->brokers == NULL || conf->brokers[0] == '\0')
    return ds__error_fill(errbuf, errlen, DS_EINVAL, "no brokers given");
  if (conf->group != NULL && conf->ntopics == 0)
    return ds__error_fill(errbuf, errlen, DS_EINVAL, "a group needs topics to subscribe to");
  c = ds_calloc(1, sizeof(*c));
  if (c == NULL)
    return DS_ENOMEM;
  c->buffer_max = conf->buffer_max > 0 ? conf->buffer_max : BUFFER_MAX_DEFAULT;
  kconf = conf_build(conf->brokers, dkeys, dvalues, 4, conf->keys, conf->values, conf->noptions,
                     &err, errbuf, errlen);
  if (kconf == NULL) {
    ds_free(c);
    return err;
  }
  /* The reader of replays shares the options but never the group. */
  c->reader_conf = rd_kafka_conf_dup(kconf);
  if (rd_kafka_conf_set(c->reader_conf, "enable.partition.eof", "true", errstr, sizeof errstr) !=
      RD_KAFKA_CONF_OK) {
    err = ds__error_fill(errbuf, errlen, DS_EINVAL, "%s", errstr);
    goto fail;
  }
  rd_kafka_conf_set_error_cb(c->reader_conf, on_error);
  rd_kafka_conf_set_opaque(c->reader_conf, c);
  if (conf->group != NULL) {
    /* The caller may choose an eager assignor in options. */
    char value[256];
    size_t vlen = sizeof value;
    if (rd_kafka_conf_get(kconf, "partition.assignment.strategy", value, &vlen) ==
            RD_KAFKA_CONF_OK) {
      int chosen = 0;
      for (size_t i = 0; i < conf->noptions; i++)
        if (strcmp(conf->keys[i], "partition.assignment.strategy") == 0)
          chosen = 1;
      if (!chosen)
        rd_kafka_conf_set(kconf, "partition.assignment.strategy", "cooperative-sticky", errstr,
                          sizeof errstr);
    }
    if (rd_kafka_conf_set(kconf, "group.id", conf->group, errstr, sizeof errstr) !=
        RD_KAFKA_CONF_OK) {
      err = ds__error_fill(errbuf, errlen, DS_EINVAL, "%s", errstr);
      goto fail;
    }
    rd_kafka_conf_set_rebalance_cb(kconf, on_rebalance);
    rd_kafka_conf_set_offset_commit_cb(kconf, on_commit);
    c->grouped = 1;
  } else if ((err = set_private_group(kconf, errbuf, errlen)) < 0) {
    goto fail;
  }
  rd_kafka_conf_set_error_cb(kconf, on_error);
  rd_kafka_conf_set_opaque(kconf, c);
  c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, kconf, errstr, sizeof errstr);
  if (c->rk == NULL) {
    err = ds__error_fill(errbuf, errlen, DS_EINVAL, "%s", errstr);
    goto fail;
  }
  kconf = NULL;
  rd_kafka_poll_set_consumer(c->rk);
  if (conf->group != NULL) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)conf->ntopics);
    rd_kafka_resp_err_t e;
    for (size_t i = 0; i < conf->ntopics; i++)
      rd_kafka_topic_partition_list_add(l, conf->topics[i], RD_KAFKA_PARTITION_UA);
    e = rd_kafka_subscribe(c->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      err = ds__error_fill(errbuf, errlen, map_err(e), "subscribing: %s", rd_kafka_err2str(e));
      goto fail;
    }
  }
  *out = c;
  return 0;
fail:
  if (kconf != NULL)
    rd_kafka_conf_destroy(kconf);
  c->closing = 1;
  if (c->rk != NULL)
    rd_kafka_destroy(c->rk);
  rd_kafka_conf_destroy(c->reader_conf);
  errq_close(&c->errors);
  ds_free(c);
  return err;
}

void ds_kafka_consumer_free(ds_kafka_consumer_t *c) {
  if (c == NULL)
    return;
  c->closing = 1;
  /* Events the caller never saw still wait for their answer. */
  for (ds_kafka_event_t *ev = c->ev_head; ev != NULL; ev = ev->next) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)ev->n);
    for (size_t i = 0; i < ev->n; i++)
      rd_kafka_topic_partition_list_add(l, ev->tps[i].topic, ev->tps[i].partition);
    answer(c, ev->type, l);
    rd_kafka_topic_partition_list_destroy(l);
  }
  /* Leaves the group; revocations during the close are answered by
   * on_rebalance itself. */
  rd_kafka_consumer_close(c->rk);
  rd_kafka_destroy(c->rk);
  if (c->reader != NULL)
    rd_kafka_destroy(c->reader);
  rd_kafka_conf_destroy(c->reader_conf);
  for (size_t i = 0; i < c->nparts; i++)
    part_free(c->parts[i]);
  ds_free(c->parts);
  ds_kafka_event_free(c->ev_head);
  errq_close(&c->errors);
  ds_free(c);
}

static void seek_back(ds_kafka_consumer_t *c, const char *topic, int32_t partition, int64_t offset) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_error_t *e;
  rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
  e = rd_kafka_seek_partitions(c->rk, l, 0);
  if (e != NULL)
    rd_kafka_error_destroy(e);
  rd_kafka_topic_partition_list_destroy(l);
}

int ds_kafka_consumer_poll(ds_kafka_consumer_t *c) {
  rd_kafka_message_t *m;
  int n = 0;
  while ((m = rd_kafka_consumer_poll(c->rk, 0)) != NULL) {
    const char *topic = m->rkt != NULL ? rd_kafka_topic_name(m->rkt) : NULL;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        if (topic != NULL)
          errq_push(&c->errors, "%s/%d: %s: %s", topic, (int)m->partition,
                    rd_kafka_err2name(m->err), rd_kafka_message_errstr(m));
        else
          errq_push(&c->errors, "%s: %s", rd_kafka_err2name(m->err), rd_kafka_message_errstr(m));
      }
    } else if (topic != NULL) {
      part_t *p = part_find(c, topic, m->partition);
      /* Not assigned any more, or already buffered (refetched after a
       * pause): nothing to keep. */
      if (p != NULL && m->offset >= p->upto) {
        int64_t used = chain_append(&p->head, &p->tail, m->offset, m->key, m->key_len,
                                    m->payload, m->len);
        if (used >= 0) {
          p->upto = m->offset + 1;
          p->bytes += (size_t)used;
          n++;
          if (p->bytes > c->buffer_max && !p->paused)
            pause_resume(c, p, 1);
        } else {
          /* Fetch it again rather than lose it. */
          errq_push(&c->errors, "%s/%d: offset %lld not buffered: %s", topic, (int)m->partition,
                    (long long)m->offset, ds_strerror((int)used));
          seek_back(c, topic, m->partition, m->offset);
        }
      }
    }
    rd_kafka_message_destroy(m);
  }
  return n;
}

ds_kafka_event_t *ds_kafka_consumer_events(ds_kafka_consumer_t *c) {
  ds_kafka_event_t *h = c->ev_head;
  c->ev_head = c->ev_tail = NULL;
  return h;
}

ds_kafka_error_t *ds_kafka_consumer_errors(ds_kafka_consumer_t *c) {
  return errq_take(&c->errors);
}

static int resolve(rd_kafka_t *rk, ds_kafka_tp_t *tp, int timeout_ms, char *errbuf, size_t errlen) {
  int64_t lo, hi;
  rd_kafka_resp_err_t e;
  if (tp->offset >= 0)
    return 0;
  if (tp->offset != DS_KAFKA_EARLIEST && tp->offset != DS_KAFKA_LATEST)
    return ds__error_fill(errbuf, errlen, DS_EINVAL, "%s/%d: bad start offset %lld", tp->topic,
                          (int)tp->partition, (long long)tp->offset);
  e = rd_kafka_query_watermark_offsets(rk, tp->topic, tp->partition, &lo, &hi, timeout_ms);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return ds__error_fill(errbuf, errlen, map_err(e), "%s/%d: watermarks: %s", tp->topic,
                          (int)tp->partition, rd_kafka_err2str(e));
  tp->offset = tp->offset == DS_KAFKA_EARLIEST ? lo : hi;
  return 0;
}

/* With an eager assignor librdkafka takes only whole assignments: the set
 * after the change, kept partitions at their positions. */
static rd_kafka_error_t *assign_whole(ds_kafka_consumer_t *c, const ds_kafka_tp_t *add, size_t nadd,
                                      const ds_kafka_tp_t *drop, size_t ndrop) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)(c->nparts + nadd));
  rd_kafka_resp_err_t e;
  for (size_t i = 0; i < c->nparts; i++) {
    part_t *p = c->parts[i];
    int skip = 0;
    for (size_t j = 0; j < nadd + ndrop && !skip; j++) {
      const ds_kafka_tp_t *t = j < nadd ? &add[j] : &drop[j - nadd];
      skip = t->partition == p->partition && strcmp(t->topic, p->topic) == 0;
    }
    if (!skip)
      rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = p->upto;
  }
  for (size_t j = 0; j < nadd; j++)
    rd_kafka_topic_partition_list_add(l, add[j].topic, add[j].partition)->offset = add[j].offset;
  e = rd_kafka_assign(c->rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  return e == RD_KAFKA_RESP_ERR_NO_ERROR ? NULL : rd_kafka_error_new(e, "%s", rd_kafka_err2str(e));
}

int ds_kafka_consumer_assign(ds_kafka_consumer_t *c, ds_kafka_tp_t *tps, size_t n,
                             int timeout_ms, char *errbuf, size_t errlen) {
  part_t **fresh;
  rd_kafka_topic_partition_list_t *add = NULL, *seek = NULL;
  rd_kafka_error_t *e = NULL;
  size_t nfresh = 0;
  int err = 0;
  if (n == 0)
    return 0;
  for (size_t i = 0; i < n; i++) {
    if (tps[i].partition < 0)
      return ds__error_fill(errbuf, errlen, DS_EINVAL, "%s/%d: bad partition", tps[i].topic,
                            (int)tps[i].partition);
    for (size_t j = 0; j < i; j++)
      if (tps[j].partition == tps[i].partition && strcmp(tps[j].topic, tps[i].topic) == 0)
        return ds__error_fill(errbuf, errlen, DS_EINVAL, "%s/%d given twice", tps[i].topic,
                              (int)tps[i].partition);
  }
  for (size_t i = 0; i < n; i++)
    if ((err = resolve(c->rk, &tps[i], timeout_ms, errbuf, errlen)) < 0)
      return err;
  /* Everything that can fail is allocated before librdkafka changes. */
  fresh = ds_calloc(n, sizeof(*fresh));
  if (fresh == NULL)
    return DS_ENOMEM;
  if (c->capparts < c->nparts + n) {
    size_t cap = (c->nparts + n) * 2;
    part_t **parts = ds_realloc(c->parts, cap * sizeof(*parts));
    if (parts == NULL) {
      ds_free(fresh);
      return DS_ENOMEM;
    }
    c->parts = parts;
    c->capparts = cap;
  }
  add = rd_kafka_topic_partition_list_new((int)n);
  seek = rd_kafka_topic_partition_list_new((int)n);
  for (size_t i = 0; i < n; i++) {
    if (part_find(c, tps[i].topic, tps[i].partition) != NULL) {
      rd_kafka_topic_partition_list_add(seek, tps[i].topic, tps[i].partition)->offset =
          tps[i].offset;
      continue;
    }
    fresh[nfresh] = part_new(tps[i].topic, tps[i].partition);
    if (fresh[nfresh] == NULL) {
      err = DS_ENOMEM;
      goto done;
    }
    fresh[nfresh]->from = fresh[nfresh]->upto = tps[i].offset;
    nfresh++;
    rd_kafka_topic_partition_list_add(add, tps[i].topic, tps[i].partition)->offset = tps[i].offset;
  }
  if (add->cnt > 0) {
    if (c->grouped && !cooperative(c)) {
      ds_kafka_tp_t *t = ds_calloc((size_t)add->cnt, sizeof(*t));
      if (t == NULL) {
        err = DS_ENOMEM;
        goto done;
      }
      for (int i = 0; i < add->cnt; i++) {
        t[i].topic = add->elems[i].topic;
        t[i].partition = add->elems[i].partition;
        t[i].offset = add->elems[i].offset;
      }
      e = assign_whole(c, t, (size_t)add->cnt, NULL, 0);
      ds_free(t);
    } else {
      e = rd_kafka_incremental_assign(c->rk, add);
    }
    if (e != NULL) {
      err = ds__error_fill(errbuf, errlen, map_err(rd_kafka_error_code(e)), "assign: %s",
                           rd_kafka_error_string(e));
      rd_kafka_error_destroy(e);
      goto done;
    }
  }
  for (size_t i = 0; i < nfresh; i++)
    c->parts[c->nparts++] = fresh[i];
  nfresh = 0;
  for (int i = 0; i < seek->cnt; i++) {
    part_t *p = part_find(c, seek->elems[i].topic, seek->elems[i].partition);
    part_clear(p);
    p->from = p->upto = seek->elems[i].offset;
    if (p->paused)
      pause_resume(c, p, 0);
  }
  if (seek->cnt > 0) {
    e = rd_kafka_seek_partitions(c->rk, seek, 0);
    if (e != NULL) {
      err = ds__error_fill(errbuf, errlen, map_err(rd_kafka_error_code(e)), "seek: %s",
                           rd_kafka_error_string(e));
      rd_kafka_error_destroy(e);
    }
  }
done:
  for (size_t i = 0; i < nfresh; i++)
    part_free(fresh[i]);
  ds_free(fresh);
  rd_kafka_topic_partition_list_destroy(add);
  rd_kafka_topic_partition_list_destroy(seek);
  return err;
}

int ds_kafka_consumer_unassign(ds_kafka_consumer_t *c, const ds_kafka_tp_t *tps, size_t n,
                               char *errbuf, size_t errlen) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)(n > 0 ? n : 1));
  rd_kafka_error_t *e = NULL;
  for (size_t i = 0; i < n; i++)
    if (part_find(c, tps[i].topic, tps[i].partition) != NULL)
      rd_kafka_topic_partition_list_add(l, tps[i].topic, tps[i].partition);
  if (l->cnt > 0) {
    if (c->grouped && !cooperative(c))
      e = assign_whole(c, NULL, 0, tps, n);
    else
      e = rd_kafka_incremental_unassign(c->rk, l);
  }
  if (e != NULL) {
    int err = ds__error_fill(errbuf, errlen, map_err(rd_kafka_error_code(e)), "unassign: %s",
                             rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    rd_kafka_topic_partition_list_destroy(l);
    return err;
  }
  for (int i = 0; i < l->cnt; i++)
    part_remove(c, part_find(c, l->elems[i].topic, l->elems[i].partition));
  rd_kafka_topic_partition_list_destroy(l);
  return 0;
}

int ds_kafka_consumer_partitions(ds_kafka_consumer_t *c, const char *topic, int timeout_ms,
                                 char *errbuf, size_t errlen) {
  const struct rd_kafka_metadata *md;
  rd_kafka_resp_err_t e;
  int n = -1;
  /* All topics: asking for one by name could create it on brokers that
   * create topics on a metadata request. */
  e = rd_kafka_metadata(c->rk, 1, NULL, &md, timeout_ms);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return ds__error_fill(errbuf, errlen, map_err(e), "metadata of %s: %s", topic,
                          rd_kafka_err2str(e));
  for (int i = 0; i < md->topic_cnt; i++)
    if (strcmp(md->topics[i].topic, topic) == 0) {
      e = md->topics[i].err;
      n = md->topics[i].partition_cnt;
    }
  rd_kafka_metadata_destroy(md);
  if (n < 0 || e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return ds__error_fill(errbuf, errlen, DS_ENOENT, "topic %s: %s", topic,
                          n < 0 ? "no such topic" : rd_kafka_err2str(e));
  return n;
}

int ds_kafka_consumer_buffered(ds_kafka_consumer_t *c, const char *topic, int32_t partition,
                               int64_t *from, int64_t *upto) {
  part_t *p = part_find(c, topic, partition);
  if (p == NULL)
    return DS_ENOENT;
  *from = p->from;
  *upto = p->upto;
  return 0;
}

int ds_kafka_consumer_stats(ds_kafka_consumer_t *c, const char *topic, int32_t partition,
                            size_t *bytes, int *paused) {
  part_t *p = part_find(c, topic, partition);
  if (p == NULL)
    return DS_ENOENT;
  *bytes = p->bytes;
  *paused = p->paused;
  return 0;
}

int ds_kafka_consumer_range(ds_kafka_consumer_t *c, const char *topic, int32_t partition,
                            int64_t from, int64_t upto, ds_kafka_iter_t *it) {
  part_t *p = part_find(c, topic, partition);
  ds_kafka_iter_t count;
  ds_kafka_record_t rec;
  if (p == NULL)
    return DS_ENOENT;
  it->blk = p->head;
  it->off = p->head_off;
  it->from = from;
  it->upto = upto;
  it->count = 0;
  count = *it;
  while (ds_kafka_iter_next(&count, &rec))
    it->count++;
  return 0;
}

int ds_kafka_iter_next(ds_kafka_iter_t *it, ds_kafka_record_t *rec) {
  while (it->blk != NULL) {
    const char *r;
    size_t len, off = it->off;
    if (!ds_block_next(it->blk, &off, &r, &len)) {
      it->blk = it->blk->next;
      it->off = 0;
      continue;
    }
    if (ds_kafka_record_decode(r, len, rec) < 0 || rec->offset >= it->upto) {
      it->blk = NULL;
      return 0;
    }
    it->off = off;
    if (rec->offset >= it->from)
      return 1;
  }
  return 0;
}

int ds_kafka_consumer_drop(ds_kafka_consumer_t *c, const char *topic, int32_t partition,
                           int64_t upto) {
  part_t *p = part_find(c, topic, partition);
  if (p == NULL)
    return DS_ENOENT;
  while (p->head != NULL) {
    ds_block_t *b = p->head;
    const char *r;
    size_t len, off = p->head_off;
    if (!ds_block_next(b, &off, &r, &len)) {
      p->head = b->next;
      if (p->head == NULL)
        p->tail = NULL;
      p->head_off = 0;
      ds_block_free(b);
      continue;
    }
    if (len < REC_HDR || rd64(r) >= upto)
      break;
    p->bytes -= off - p->head_off;
    p->head_off = off;
  }
  if (upto > p->upto)
    upto = p->upto;
  if (upto > p->from)
    p->from = upto;
  if (p->paused && p->bytes < c->buffer_max / 2)
    pause_resume(c, p, 0);
  return 0;
}

static int reader_open(ds_kafka_consumer_t *c, char *errbuf, size_t errlen) {
  char errstr[512];
  rd_kafka_conf_t *conf;
  int err;
  if (c->reader != NULL)
    return 0;
  conf = rd_kafka_conf_dup(c->reader_conf);
  if ((err = set_private_group(conf, errbuf, errlen)) < 0) {
    rd_kafka_conf_destroy(conf);
    return err;
  }
  c->reader = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
  if (c->reader == NULL) {
    rd_kafka_conf_destroy(conf);
    return ds__error_fill(errbuf, errlen, DS_EINVAL, "reader: %s", errstr);
  }
  return 0;
}

int ds_kafka_consumer_read(ds_kafka_consumer_t *c, const char *topic, int32_t partition,
                           int64_t from, int64_t upto, int timeout_ms, ds_block_t **chain,
                           char *errbuf, size_t errlen) {
  rd_kafka_topic_t *rkt;
  ds_block_t *tail = *chain;
  int64_t deadline = now_ms() + timeout_ms, next = from;
  int err = 0;
  while (tail != NULL && tail->next != NULL)
    tail = tail->next;
  if (from < 0 || upto < from)
    return ds__error_fill(errbuf, errlen, DS_EINVAL, "%s/%d: bad range [%lld, %lld)", topic,
                          (int)partition, (long long)from, (long long)upto);
  if (from == upto)
    return 0;
  if ((err = reader_open(c, errbuf, errlen)) < 0)
    return err;
  /* The simple consumer API, not an assignment: rd_kafka_consume_stop()
   * waits for the fetcher to stop, so the next read may start the same
   * partition at once (re-assigning a partition whose stop is still in
   * flight trips an assertion in librdkafka 2.0.2). */
  rkt = rd_kafka_topic_new(c->reader, topic, NULL);
  if (rkt == NULL)
    return ds__error_fill(errbuf, errlen, DS_ENOMEM, "%s/%d: topic handle", topic, (int)partition);
  if (rd_kafka_consume_start(rkt, partition, from) == -1) {
    rd_kafka_resp_err_t e = rd_kafka_last_error();
    rd_kafka_topic_destroy(rkt);
    return ds__error_fill(errbuf, errlen, map_err(e), "%s/%d: %s", topic, (int)partition,
                          rd_kafka_err2str(e));
  }
  while (next < upto) {
    int64_t left = deadline - now_ms();
    rd_kafka_message_t *m;
    if (left <= 0) {
      err = ds__error_fill(errbuf, errlen, DS_ENET,
                           "%s/%d: reading [%lld, %lld) timed out after %d ms at offset %lld",
                           topic, (int)partition, (long long)from, (long long)upto, timeout_ms,
                           (long long)next);
      break;
    }
    m = rd_kafka_consume(rkt, partition, left > 100 ? 100 : (int)left);
    if (m == NULL)
      continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      /* The end of the log: past upto means the rest are gaps. */
      if (m->offset >= upto)
        next = upto;
    } else if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      err = ds__error_fill(errbuf, errlen, map_err(m->err), "%s/%d: reading [%lld, %lld): %s",
                           topic, (int)partition, (long long)from, (long long)upto,
                           rd_kafka_message_errstr(m));
    } else if (m->offset >= next) {
      if (m->offset < upto) {
        int64_t used = chain_append(chain, &tail, m->offset, m->key, m->key_len, m->payload, m->len);
        if (used < 0)
          err = (int)used;
      }
      next = m->offset + 1;
    }
    rd_kafka_message_destroy(m);
    if (err < 0)
      break;
  }
  rd_kafka_consume_stop(rkt, partition);
  rd_kafka_topic_destroy(rkt);
  return err;
}

int ds_kafka_consumer_watermarks(ds_kafka_consumer_t *c, const char *topic, int32_t partition,
                                 int timeout_ms, int64_t *low, int64_t *high, char *errbuf,
                                 size_t errlen) {
  rd_kafka_resp_err_t e =
      rd_kafka_query_watermark_offsets(c->rk, topic, partition, low, high, timeout_ms);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return ds__error_fill(errbuf, errlen, map_err(e), "%s/%d: watermarks: %s", topic,
                          (int)partition, rd_kafka_err2str(e));
  return 0;
}

int ds_kafka_consumer_committed(ds_kafka_consumer_t *c, ds_kafka_tp_t *tps, size_t n,
                                int timeout_ms, char *errbuf, size_t errlen) {
  rd_kafka_topic_partition_list_t *l;
  rd_kafka_resp_err_t e;
  int err = 0;
  if (!c->grouped)
    return ds__error_fill(errbuf, errlen, DS_ESTATE, "committed offsets need a group");
  if (n == 0)
    return 0;
  l = rd_kafka_topic_partition_list_new((int)n);
  for (size_t i = 0; i < n; i++)
    rd_kafka_topic_partition_list_add(l, tps[i].topic, tps[i].partition);
  e = rd_kafka_committed(c->rk, l, timeout_ms);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    err = ds__error_fill(errbuf, errlen, map_err(e), "committed offsets: %s", rd_kafka_err2str(e));
  } else {
    for (size_t i = 0; i < n && err == 0; i++) {
      rd_kafka_topic_partition_t *t = &l->elems[i];
      if (t->err != RD_KAFKA_RESP_ERR_NO_ERROR)
        err = ds__error_fill(errbuf, errlen, map_err(t->err), "%s/%d: committed offset: %s",
                             t->topic, (int)t->partition, rd_kafka_err2str(t->err));
      else
        tps[i].offset = t->offset >= 0 ? t->offset : DS_KAFKA_NO_OFFSET;
    }
  }
  rd_kafka_topic_partition_list_destroy(l);
  return err;
}

int ds_kafka_consumer_commit(ds_kafka_consumer_t *c, const ds_kafka_tp_t *tps, size_t n,
                             char *errbuf, size_t errlen) {
  rd_kafka_topic_partition_list_t *l;
  rd_kafka_resp_err_t e;
  if (!c->grouped)
    return ds__error_fill(errbuf, errlen, DS_ESTATE, "commit needs a group");
  if (n == 0)
    return 0;
  l = rd_kafka_topic_partition_list_new((int)n);
  for (size_t i = 0; i < n; i++)
    rd_kafka_topic_partition_list_add(l, tps[i].topic, tps[i].partition)->offset = tps[i].offset;
  e = rd_kafka_commit(c->rk, l, 1);
  rd_kafka_topic_partition_list_destroy(l);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return ds__error_fill(errbuf, errlen, map_err(e), "commit: %s", rd_kafka_err2str(e));
  return 0;
}

/* ---- producer --------------------------------------------------------- */

struct ds_kafka_producer_s {
  rd_kafka_t *rk;
  errq_t errors;
  int failed;                  /* a delivery failed since the last flush */
  char failure[512];           /* the first one: topic, partition, reason */
  unsigned produced;
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  ds_kafka_producer_t *p = opaque;
  (void)rk;
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR || p->failed)
    return;
  p->failed = 1;
  snprintf(p->failure, sizeof p->failure, "delivery to %s/%d failed: %s",
           m->rkt != NULL ? rd_kafka_topic_name(m->rkt) : "?", (int)m->partition,
           rd_kafka_err2str(m->err));
}

static void on_producer_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  ds_kafka_producer_t *p = opaque;
  (void)rk;
  errq_push(&p->errors, "%s%s: %s", err == RD_KAFKA_RESP_ERR__FATAL ? "fatal: " : "",
            rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

int ds_kafka_producer_new(ds_kafka_producer_t **out, const char *brokers,
                          const char *const *keys, const char *const *values, size_t noptions,
                          char *errbuf, size_t errlen) {
  static const char *const dkeys[] = {"enable.idempotence", "acks"};
  static const char *const dvalues[] = {"true", "all"};
  char errstr[512];
  int err = 0;
  ds_kafka_producer_t *p;
  rd_kafka_conf_t *conf;
  *out = NULL;
  if (brokers == NULL || brokers[0] == '\0')
    return ds__error_fill(errbuf, errlen, DS_EINVAL, "no brokers given");
  p = ds_calloc(1, sizeof(*p));
  if (p == NULL)
    return DS_ENOMEM;
  conf = conf_build(brokers, dkeys, dvalues, 2, keys, values, noptions, &err, errbuf, errlen);
  if (conf == NULL) {
    ds_free(p);
    return err;
  }
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_conf_set_error_cb(conf, on_producer_error);
  rd_kafka_conf_set_opaque(conf, p);
  p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (p->rk == NULL) {
    rd_kafka_conf_destroy(conf);
    ds_free(p);
    return ds__error_fill(errbuf, errlen, DS_EINVAL, "%s", errstr);
  }
  *out = p;
  return 0;
}

void ds_kafka_producer_free(ds_kafka_producer_t *p) {
  if (p == NULL)
    return;
  /* What the caller did not flush is given a bounded chance, then purged:
   * a close must not hang on a dead broker. */
  rd_kafka_flush(p->rk, 2000);
  rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  rd_kafka_poll(p->rk, 0);
  rd_kafka_destroy(p->rk);
  errq_close(&p->errors);
  ds_free(p);
}

int ds_kafka_producer_produce(ds_kafka_producer_t *p, const char *topic, int32_t partition,
                              const char *key, size_t keylen, const char *value,
                              size_t valuelen, int timeout_ms, char *errbuf, size_t errlen) {
  int64_t deadline = now_ms() + timeout_ms;
  void *kptr = (void *)key, *vptr = (void *)value;
  size_t klen = key != NULL ? keylen : 0;
  for (;;) {
    rd_kafka_resp_err_t e = rd_kafka_producev(
        p->rk, RD_KAFKA_V_TOPIC(topic),
        RD_KAFKA_V_PARTITION(partition < 0 ? RD_KAFKA_PARTITION_UA : partition),
        RD_KAFKA_V_KEY(kptr, klen), RD_KAFKA_V_VALUE(vptr, valuelen), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_END);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
      break;
    if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
      return ds__error_fill(errbuf, errlen, map_err(e), "producing to %s/%d: %s", topic,
                            (int)partition, rd_kafka_err2str(e));
    /* Full: wait for deliveries to make room, never drop. */
    if (now_ms() >= deadline)
      return ds__error_fill(errbuf, errlen, DS_ENET,
                            "producing to %s/%d: the local queue stayed full for %d ms", topic,
                            (int)partition, timeout_ms);
    rd_kafka_poll(p->rk, 10);
  }
  /* Delivery reports are served now and then so they do not pile up. */
  if ((++p->produced & 1023) == 0)
    rd_kafka_poll(p->rk, 0);
  return 0;
}

int ds_kafka_producer_flush(ds_kafka_producer_t *p, int timeout_ms, char *errbuf, size_t errlen) {
  rd_kafka_resp_err_t e = rd_kafka_flush(p->rk, timeout_ms);
  if (p->failed) {
    p->failed = 0;
    return ds__error_fill(errbuf, errlen, DS_EIO, "%s", p->failure);
  }
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return ds__error_fill(errbuf, errlen, map_err(e),
                          "flush: %d messages not acknowledged after %d ms", rd_kafka_outq_len(p->rk),
                          timeout_ms);
  return 0;
}

void ds_kafka_producer_poll(ds_kafka_producer_t *p) {
  rd_kafka_poll(p->rk, 0);
}

ds_kafka_error_t *ds_kafka_producer_errors(ds_kafka_producer_t *p) {
  rd_kafka_poll(p->rk, 0);
  return errq_take(&p->errors);
}

/* ---- topics ----------------------------------------------------------- */

static int topic_exists(rd_kafka_t *rk, const char *topic, int timeout_ms) {
  const struct rd_kafka_metadata *md;
  int found = 0;
  if (rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR)
    return 0;
  for (int i = 0; i < md->topic_cnt; i++)
    if (strcmp(md->topics[i].topic, topic) == 0 && md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR)
      found = 1;
  rd_kafka_metadata_destroy(md);
  return found;
}

int ds_kafka_create_topic(const char *brokers, const char *topic, int partitions,
                          const char *const *ckeys, const char *const *cvalues, size_t nconfigs,
                          const char *const *keys, const char *const *values, size_t noptions,
                          int timeout_ms, char *errbuf, size_t errlen) {
  char errstr[512];
  int err = 0;
  rd_kafka_conf_t *conf;
  rd_kafka_t *rk;
  rd_kafka_NewTopic_t *nt;
  rd_kafka_AdminOptions_t *ao;
  rd_kafka_queue_t *q;
  rd_kafka_event_t *ev;
  rd_kafka_resp_err_t e;
  const char *reason = NULL;
  if (partitions < 1)
    return ds__error_fill(errbuf, errlen, DS_EINVAL, "topic %s: %d partitions", topic, partitions);
  conf = conf_build(brokers, NULL, NULL, 0, keys, values, noptions, &err, errbuf, errlen);
  if (conf == NULL)
    return err;
  rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (rk == NULL) {
    rd_kafka_conf_destroy(conf);
    return ds__error_fill(errbuf, errlen, DS_EINVAL, "%s", errstr);
  }
  nt = rd_kafka_NewTopic_new(topic, partitions, -1, errstr, sizeof errstr);
  if (nt == NULL) {
    rd_kafka_destroy(rk);
    return ds__error_fill(errbuf, errlen, DS_EINVAL, "topic %s: %s", topic, errstr);
  }
  for (size_t i = 0; i < nconfigs; i++) {
    e = rd_kafka_NewTopic_set_config(nt, ckeys[i], cvalues[i]);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_NewTopic_destroy(nt);
      rd_kafka_destroy(rk);
      return ds__error_fill(errbuf, errlen, DS_EINVAL, "topic %s: config %s: %s", topic,
                            ckeys[i], rd_kafka_err2str(e));
    }
  }
  ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_request_timeout(ao, timeout_ms, errstr, sizeof errstr);
  rd_kafka_AdminOptions_set_operation_timeout(ao, timeout_ms, errstr, sizeof errstr);
  q = rd_kafka_queue_new(rk);
  rd_kafka_CreateTopics(rk, &nt, 1, ao, q);
  ev = rd_kafka_queue_poll(q, timeout_ms + 1000);
  if (ev == NULL) {
    e = RD_KAFKA_RESP_ERR__TIMED_OUT;
  } else if ((e = rd_kafka_event_error(ev)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    reason = rd_kafka_event_error_string(ev);
  } else {
    size_t cnt = 0;
    const rd_kafka_topic_result_t **res =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
    if (cnt > 0) {
      e = rd_kafka_topic_result_error(res[0]);
      reason = rd_kafka_topic_result_error_string(res[0]);
    }
  }
  if (e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
    e = RD_KAFKA_RESP_ERR_NO_ERROR;
  /* Brokers without CreateTopics (librdkafka's mock cluster among them):
   * a topic that exists is what the caller wanted. */
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR && topic_exists(rk, topic, timeout_ms))
    e = RD_KAFKA_RESP_ERR_NO_ERROR;
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    err = ds__error_fill(errbuf, errlen, map_err(e), "creating topic %s: %s", topic,
                         reason != NULL && reason[0] != '\0' ? reason : rd_kafka_err2str(e));
  if (ev != NULL)
    rd_kafka_event_destroy(ev);
  rd_kafka_queue_destroy(q);
  rd_kafka_AdminOptions_destroy(ao);
  rd_kafka_NewTopic_destroy(nt);
  rd_kafka_destroy(rk);
  return err;
}
