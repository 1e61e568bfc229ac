/* ds_kafka_broker: a Kafka cluster for the tests, in a process of its own.
 *
 *   ds_kafka_broker --brokers N --out FILE [--topic NAME:PARTITIONS]...
 *
 * Debian has no Kafka broker; librdkafka ships a mock cluster that speaks
 * the Kafka protocol over TCP (rdkafka_mock.h). This program starts one with
 * N brokers, creates the topics, writes the bootstrap address as one line to
 * FILE (through FILE.tmp and a rename, so a reader never sees half a line)
 * and runs until SIGTERM or SIGINT. SIGUSR1 sets every broker down, SIGUSR2
 * up again: the specs' "broker down and back".
 *
 * The signals are blocked before librdkafka starts its threads (which
 * inherit the mask) and taken here with sigwait(), so no handler runs on a
 * librdkafka thread.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

static void usage(void) {
  fprintf(stderr, "usage: ds_kafka_broker --brokers N --out FILE [--topic NAME:PARTITIONS]...\n");
  exit(2);
}

int main(int argc, char **argv) {
  int nbrokers = 1;
  const char *out = NULL;
  char errstr[512], tmp[4096];
  rd_kafka_conf_t *conf;
  rd_kafka_t *rk;
  rd_kafka_mock_cluster_t *mc;
  sigset_t set;
  FILE *f;
  int sig;

  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &set, NULL);

  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--brokers") == 0 && i + 1 < argc)
      nbrokers = atoi(argv[++i]);
    else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
      out = argv[++i];
    else if (strcmp(argv[i], "--topic") == 0 && i + 1 < argc)
      i++; /* created once the cluster runs */
    else
      usage();
  }
  if (out == NULL || nbrokers < 1)
    usage();

  conf = rd_kafka_conf_new();
  /* The handle only hosts the cluster; it must not log the clients' retries. */
  rd_kafka_conf_set(conf, "log_level", "0", errstr, sizeof errstr);
  rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (rk == NULL) {
    fprintf(stderr, "ds_kafka_broker: %s\n", errstr);
    return 1;
  }
  mc = rd_kafka_mock_cluster_new(rk, nbrokers);
  if (mc == NULL) {
    fprintf(stderr, "ds_kafka_broker: cannot start the mock cluster\n");
    return 1;
  }
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--topic") == 0) {
      char *spec = argv[++i], *colon = strrchr(spec, ':'), name[1024];
      int parts = colon != NULL ? atoi(colon + 1) : 1;
      size_t len = colon != NULL ? (size_t)(colon - spec) : strlen(spec);
      rd_kafka_resp_err_t e;
      if (len == 0 || len >= sizeof name || parts < 1) {
        fprintf(stderr, "ds_kafka_broker: bad --topic %s (NAME:PARTITIONS)\n", spec);
        return 2;
      }
      memcpy(name, spec, len);
      name[len] = '\0';
      e = rd_kafka_mock_topic_create(mc, name, parts, nbrokers < 3 ? nbrokers : 3);
      if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "ds_kafka_broker: topic %s: %s\n", name, rd_kafka_err2str(e));
        return 1;
      }
    }
  }

  snprintf(tmp, sizeof tmp, "%s.tmp", out);
  f = fopen(tmp, "w");
  if (f == NULL || fprintf(f, "%s\n", rd_kafka_mock_cluster_bootstraps(mc)) < 0 || fclose(f) != 0 ||
      rename(tmp, out) != 0) {
    perror("ds_kafka_broker: writing the address");
    return 1;
  }

  for (;;) {
    if (sigwait(&set, &sig) != 0)
      continue;
    if (sig == SIGUSR1 || sig == SIGUSR2) {
      for (int id = 1; id <= nbrokers; id++) {
        if (sig == SIGUSR1)
          rd_kafka_mock_broker_set_down(mc, id);
        else
          rd_kafka_mock_broker_set_up(mc, id);
      }
      continue;
    }
    break;
  }
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(rk);
  unlink(out);
  return 0;
}
