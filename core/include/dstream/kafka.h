/* Kafka on librdkafka: a consumer that keeps fetched records in C memory
 * until a batch takes an exact offset range, a producer that never drops,
 * and topic creation.
 *
 * THE CONSUMER follows Spark's direct approach: the caller decides every
 * offset (explicit-offset assignment), ds_kafka_consumer_poll() moves what
 * librdkafka fetched into per-partition buffers, and a batch takes the
 * records of [from, upto) of a partition. With a group, librdkafka only does
 * membership: its rebalance callback records an event and assigns nothing,
 * the caller answers each event with ds_kafka_consumer_assign() /
 * ds_kafka_consumer_unassign(). librdkafka's callbacks run only inside our
 * own poll calls, on the caller's thread, and only record into C queues
 * (events, errors, delivery failures): C never calls Lua.
 *
 * RECORD FORMAT: taken and read records are the payloads of ds_block_t
 * records: 8-byte little-endian offset, 4-byte little-endian key length
 * (0xffffffff: no key), the key, then the value up to the record's end.
 * ds_kafka_record_decode() reads one.
 *
 * BLOCKING: poll, events, take, buffered, errors, produce (unless the local
 * queue is full) and commit never wait for the network; assign (only for
 * "earliest"/"latest"), partitions, read, watermarks, committed, flush and
 * create_topic wait at most the time they are given.
 *
 * ERRORS: functions return 0 (or a count) or a negative DS_E* code and fill
 * the caller's errbuf with what failed, naming topic and partition:
 * DS_EINVAL (bad configuration), DS_ENOENT (unknown topic, partition not
 * assigned or not existing), DS_ENET (broker unreachable, timed out),
 * DS_EIO (any other Kafka error: librdkafka's reason is in errbuf),
 * DS_ENOMEM.
 */
#ifndef DSTREAM_KAFKA_H
#define DSTREAM_KAFKA_H

#include <stddef.h>
#include <stdint.h>

#include "dstream/block.h"

/* Special start offsets of ds_kafka_consumer_assign() (librdkafka's values). */
#define DS_KAFKA_EARLIEST (-2)
#define DS_KAFKA_LATEST (-1)
/* Offset of ds_kafka_consumer_committed() where the group has none. */
#define DS_KAFKA_NO_OFFSET (-1001)

typedef struct ds_kafka_consumer_s ds_kafka_consumer_t;
typedef struct ds_kafka_producer_s ds_kafka_producer_t;

/* A topic partition and an offset; topic is borrowed from the caller. */
typedef struct {
  const char *topic;
  int32_t partition;
  int64_t offset;
} ds_kafka_tp_t;

/* Configuration: options are librdkafka's "key" = "value" pairs. */
typedef struct {
  const char *brokers;
  const char *group;          /* NULL: no group, the caller assigns */
  const char *const *topics;  /* subscribed with a group */
  size_t ntopics;
  const char *const *keys;    /* options */
  const char *const *values;
  size_t noptions;
  size_t buffer_max;          /* bytes buffered per partition before it is
                               * paused; 0: 32 MiB */
} ds_kafka_conf_t;

enum { DS_KAFKA_ASSIGNED = 1, DS_KAFKA_REVOKED = 2 };

/* A rebalance event; owns its topic strings. */
typedef struct ds_kafka_event_s {
  struct ds_kafka_event_s *next;
  int type;                   /* DS_KAFKA_ASSIGNED or DS_KAFKA_REVOKED */
  size_t n;
  struct {
    char *topic;
    int32_t partition;
  } *tps;
} ds_kafka_event_t;

/* A queued error message (owned, NUL-terminated). */
typedef struct ds_kafka_error_s {
  struct ds_kafka_error_s *next;
  char msg[];
} ds_kafka_error_t;

/* One record decoded from a block record (pointers borrowed from it). */
typedef struct {
  int64_t offset;
  const char *key;            /* NULL: the message had no key */
  size_t keylen;
  const char *value;
  size_t valuelen;
} ds_kafka_record_t;

/* A cursor over buffered records of one partition, from
 * ds_kafka_consumer_range(); borrowed until the next call on the consumer. */
typedef struct {
  const ds_block_t *blk;
  size_t off;
  int64_t from, upto;
  size_t count;               /* records the cursor will give */
} ds_kafka_iter_t;

/* Decode a record of a taken or read block; DS_ECORRUPT if it is not one. */
int ds_kafka_record_decode(const char *rec, size_t len, ds_kafka_record_t *out);

/* Create a consumer (subscribed when conf->group is set). */
int ds_kafka_consumer_new(ds_kafka_consumer_t **out, const ds_kafka_conf_t *conf,
                          char *errbuf, size_t errlen);
/* Leave the group, free every buffer and the handle (NULL allowed). */
void ds_kafka_consumer_free(ds_kafka_consumer_t *c);
/* Serve librdkafka without waiting: buffer fetched records, queue events and
 * errors; returns the number of records buffered by this call. */
int ds_kafka_consumer_poll(ds_kafka_consumer_t *c);
/* Take the queued rebalance events (oldest first; caller frees the chain). */
ds_kafka_event_t *ds_kafka_consumer_events(ds_kafka_consumer_t *c);
/* Free a chain of events. */
void ds_kafka_event_free(ds_kafka_event_t *ev);
/* Take the queued errors (oldest first; caller frees each with ds_free). */
ds_kafka_error_t *ds_kafka_consumer_errors(ds_kafka_consumer_t *c);
/* Add the partitions to the assignment, each starting at tps[i].offset
 * (absolute, DS_KAFKA_EARLIEST or DS_KAFKA_LATEST, resolved with a wait of
 * at most timeout_ms and written back); drops what was buffered for them.
 * On error nothing is assigned. */
int ds_kafka_consumer_assign(ds_kafka_consumer_t *c, ds_kafka_tp_t *tps, size_t n,
                             int timeout_ms, char *errbuf, size_t errlen);
/* Remove the partitions from the assignment and drop their buffers
 * (partitions not assigned are ignored). */
int ds_kafka_consumer_unassign(ds_kafka_consumer_t *c, const ds_kafka_tp_t *tps,
                               size_t n, char *errbuf, size_t errlen);
/* The number of partitions of topic (metadata, waits at most timeout_ms). */
int ds_kafka_consumer_partitions(ds_kafka_consumer_t *c, const char *topic,
                                 int timeout_ms, char *errbuf, size_t errlen);
/* Records [*from, *upto) of an assigned partition are buffered; *upto is the
 * next offset not yet fetched. DS_ENOENT if the partition is not assigned. */
int ds_kafka_consumer_buffered(ds_kafka_consumer_t *c, const char *topic,
                               int32_t partition, int64_t *from, int64_t *upto);
/* Bytes buffered for the partition and whether it is paused because they
 * exceed buffer_max. DS_ENOENT if the partition is not assigned. */
int ds_kafka_consumer_stats(ds_kafka_consumer_t *c, const char *topic, int32_t partition,
                            size_t *bytes, int *paused);
/* Start a cursor over the buffered records with from <= offset < upto;
 * nothing is freed until ds_kafka_consumer_drop(). */
int ds_kafka_consumer_range(ds_kafka_consumer_t *c, const char *topic,
                            int32_t partition, int64_t from, int64_t upto,
                            ds_kafka_iter_t *it);
/* The next record of a cursor: 1 and *rec, or 0 at its end. */
int ds_kafka_iter_next(ds_kafka_iter_t *it, ds_kafka_record_t *rec);
/* Free every buffered record of the partition below upto. */
int ds_kafka_consumer_drop(ds_kafka_consumer_t *c, const char *topic,
                           int32_t partition, int64_t upto);
/* Read exactly the records of [from, upto) of a partition from the broker
 * (a separate handle, not the assignment), waiting at most timeout_ms; the
 * records are appended as blocks to *chain (caller owns them, even when
 * this fails half way). */
int ds_kafka_consumer_read(ds_kafka_consumer_t *c, const char *topic,
                           int32_t partition, int64_t from, int64_t upto,
                           int timeout_ms, ds_block_t **chain, char *errbuf,
                           size_t errlen);
/* The partition's low and high watermarks (waits at most timeout_ms). */
int ds_kafka_consumer_watermarks(ds_kafka_consumer_t *c, const char *topic,
                                 int32_t partition, int timeout_ms, int64_t *low,
                                 int64_t *high, char *errbuf, size_t errlen);
/* The group's committed offsets into tps[i].offset (DS_KAFKA_NO_OFFSET where
 * none); waits at most timeout_ms. */
int ds_kafka_consumer_committed(ds_kafka_consumer_t *c, ds_kafka_tp_t *tps, size_t n,
                                int timeout_ms, char *errbuf, size_t errlen);
/* Commit the offsets to the group without waiting (failures reach the
 * error queue). */
int ds_kafka_consumer_commit(ds_kafka_consumer_t *c, const ds_kafka_tp_t *tps,
                             size_t n, char *errbuf, size_t errlen);

/* Create a producer: enable.idempotence=true and acks=all unless options
 * say otherwise. */
int ds_kafka_producer_new(ds_kafka_producer_t **out, const char *brokers,
                          const char *const *keys, const char *const *values,
                          size_t noptions, char *errbuf, size_t errlen);
/* Flush what it can (bounded) and free (NULL allowed). */
void ds_kafka_producer_free(ds_kafka_producer_t *p);
/* Queue a message (key NULL: none; partition -1: the partitioner); when the
 * local queue is full, serve deliveries and retry for at most timeout_ms
 * (the message is never dropped silently: an error says it was not queued). */
int ds_kafka_producer_produce(ds_kafka_producer_t *p, const char *topic,
                              int32_t partition, const char *key, size_t keylen,
                              const char *value, size_t valuelen, int timeout_ms,
                              char *errbuf, size_t errlen);
/* Wait until every queued message is acknowledged (at most timeout_ms);
 * fails naming topic, partition and reason of the first failed delivery
 * since the previous flush. */
int ds_kafka_producer_flush(ds_kafka_producer_t *p, int timeout_ms, char *errbuf,
                            size_t errlen);
/* Serve delivery reports and errors without waiting. */
void ds_kafka_producer_poll(ds_kafka_producer_t *p);
/* Take the queued errors (oldest first; caller frees each with ds_free). */
ds_kafka_error_t *ds_kafka_producer_errors(ds_kafka_producer_t *p);

/* Create a topic (CreateTopics; "already exists" is success), waiting at
 * most timeout_ms. configs are topic settings ("cleanup.policy" =
 * "compact"), options librdkafka's. */
int ds_kafka_create_topic(const char *brokers, const char *topic, int partitions,
                          const char *const *ckeys, const char *const *cvalues,
                          size_t nconfigs, const char *const *keys,
                          const char *const *values, size_t noptions, int timeout_ms,
                          char *errbuf, size_t errlen);

#endif
