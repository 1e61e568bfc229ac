/* kafka_consumer: the baseline of bench/kafka.lua, a plain librdkafka
 * consumer in C.
 *
 *   kafka_consumer BROKERS TOPIC RECORDS
 *
 * What reading a topic costs with no Lua at all: one consumer, no group,
 * every partition of TOPIC assigned from its beginning, then
 * rd_kafka_consumer_poll in a loop, counting the messages (and their value
 * bytes) until RECORDS have arrived. The time runs from making the consumer
 * to the last message, as bench/kafka.lua times kafkaStream from start() to
 * the batch that completes the count.
 *
 * It prints one JSON line, variant "plain_c": records, bytes, seconds,
 * records_per_s. Exits 1 on an error, or when no message came for 30 s.
 */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, const char *detail) {
  fprintf(stderr, "kafka_consumer: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  exit(1);
}

int main(int argc, char **argv) {
  char err[512];
  if (argc != 4) {
    fprintf(stderr, "usage: kafka_consumer BROKERS TOPIC RECORDS\n");
    return 2;
  }
  const char *brokers = argv[1], *topic = argv[2];
  long long want = atoll(argv[3]);
  double t0 = now_s();
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof err) != RD_KAFKA_CONF_OK ||
      /* rd_kafka_consumer_poll needs a group id; assign() never joins the group */
      rd_kafka_conf_set(conf, "group.id", "bench-kafka-consumer", err, sizeof err) != RD_KAFKA_CONF_OK ||
      rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err) != RD_KAFKA_CONF_OK ||
      rd_kafka_conf_set(conf, "enable.partition.eof", "false", err, sizeof err) != RD_KAFKA_CONF_OK)
    die("configuration", err);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (!rk) die("rd_kafka_new", err);
  const struct rd_kafka_metadata *md;
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
  rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
  if (e) die("metadata", rd_kafka_err2str(e));
  if (md->topic_cnt != 1 || md->topics[0].err) die("metadata", "no such topic");
  int nparts = md->topics[0].partition_cnt;
  rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(rkt);
  rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(nparts);
  for (int p = 0; p < nparts; p++)
    rd_kafka_topic_partition_list_add(list, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  e = rd_kafka_assign(rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (e) die("assign", rd_kafka_err2str(e));
  long long records = 0, bytes = 0;
  double last = now_s();
  while (records < want) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
    if (!m) {
      if (now_s() - last > 30) die("no message for 30 s", NULL);
      continue;
    }
    if (m->err) {
      if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) fprintf(stderr, "kafka_consumer: %s\n", rd_kafka_message_errstr(m));
    } else {
      records++;
      bytes += (long long)m->len;
      last = now_s();
    }
    rd_kafka_message_destroy(m);
  }
  double secs = last - t0;
  printf("{\"bench\":\"kafka\",\"variant\":\"plain_c\",\"records\":%lld,\"bytes\":%lld,\"seconds\":%.4f,"
         "\"records_per_s\":%.0f}\n",
         records, bytes, secs, (double)records / secs);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return 0;
}
