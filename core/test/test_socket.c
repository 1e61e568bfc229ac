/* The socket receiver against a real libuv TCP server on 127.0.0.1: lines
 * arrive exactly, oversize lines are skipped and reported, refused and reset
 * connections are reported and retried with backoff, and everything is freed.
 * The loop runs until a condition holds; a 20 s guard timer only stops a
 * broken test from hanging, nothing here depends on timing. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dstream/error.h"
#include "dstream/fs.h"
#include "dstream/socket.h"
#include "dstream/wal.h"
#include "harness.h"

/* The test server: what to send on the nth connection, then how to end it. */
enum { END_KEEP, END_CLOSE, END_RESET };
#define MAX_CONNS 8

typedef struct server_s server_t;

typedef struct {
  uv_tcp_t tcp;
  uv_write_t write;
  server_t *srv;
  int index;
  int end;
  int open;
  int written;                  /* writes completed */
} conn_t;

struct server_s {
  uv_loop_t *loop;
  uv_tcp_t listener;
  int port;
  int listening;
  int accepted;
  const char *data[MAX_CONNS];
  size_t len[MAX_CONNS];
  int end[MAX_CONNS];
  conn_t *conns[MAX_CONNS];
};

static uv_loop_t loop;
static uv_timer_t guard;
static int timed_out;

static void on_guard(uv_timer_t *t) {
  (void)t;
  timed_out = 1;
}

typedef int (*pred_fn)(void *arg, long n);

/* Run the loop until pred(arg, n) holds; a check fails if the guard fires. */
static void run_until(pred_fn pred, void *arg, long n) {
  timed_out = 0;
  uv_timer_start(&guard, on_guard, 20000, 0);
  while (!pred(arg, n) && !timed_out)
    uv_run(&loop, UV_RUN_ONCE);
  uv_timer_stop(&guard);
  CHECK(!timed_out);
}

static ds_socket_stats_t stats_of(void *s) {
  ds_socket_stats_t st;
  ds_socket_stats(s, &st);
  return st;
}

static int records_reach(void *s, long n) {
  return stats_of(s).records >= (uint64_t)n;
}

static int errors_reach(void *s, long n) {
  return stats_of(s).errors >= (uint64_t)n;
}

static int bytes_reach(void *s, long n) {
  return stats_of(s).bytes >= (uint64_t)n;
}

static int connects_reach(void *s, long n) {
  return stats_of(s).connects >= (uint64_t)n;
}

static int is_closed(void *s, long n) {
  (void)n;
  return ds_socket_closed(s);
}

static int accepted_reach(void *srv, long n) {
  return ((server_t *)srv)->accepted >= n;
}

/* The server side. */

static void on_conn_closed(uv_handle_t *h) {
  conn_t *c = h->data;
  c->srv->conns[c->index] = NULL;
  free(c);
}

static void end_conn(conn_t *c) {
  c->open = 0;
  if (c->end == END_RESET)
    uv_tcp_close_reset(&c->tcp, on_conn_closed);
  else
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_written(uv_write_t *w, int status) {
  conn_t *c = w->data;
  (void)status;
  c->written++;
  if (c->end != END_KEEP && c->open)
    end_conn(c);
}

static void conn_write(conn_t *c, const char *data, size_t len) {
  uv_buf_t buf = uv_buf_init((char *)data, (unsigned)len);
  c->write.data = c;
  CHECK_EQ_INT(uv_write(&c->write, (uv_stream_t *)&c->tcp, &buf, 1, on_written), 0);
}

static void on_connection(uv_stream_t *listener, int status) {
  server_t *srv = listener->data;
  conn_t *c;
  int i = srv->accepted;
  CHECK_EQ_INT(status, 0);
  CHECK(i < MAX_CONNS);
  c = calloc(1, sizeof(*c));
  uv_tcp_init(srv->loop, &c->tcp);
  c->tcp.data = c;
  c->srv = srv;
  c->index = i;
  c->open = 1;
  c->end = srv->end[i];
  CHECK_EQ_INT(uv_accept(listener, (uv_stream_t *)&c->tcp), 0);
  srv->conns[i] = c;
  srv->accepted++;
  if (srv->data[i] != NULL)
    conn_write(c, srv->data[i], srv->len[i]);
  else if (c->end != END_KEEP)
    end_conn(c);
}

/* Bind 127.0.0.1 on a free port; connections are refused until listening. */
static void server_bind(server_t *srv) {
  struct sockaddr_in addr;
  struct sockaddr_storage name;
  int namelen = sizeof(name);
  memset(srv, 0, sizeof(*srv));
  srv->loop = &loop;
  uv_tcp_init(&loop, &srv->listener);
  srv->listener.data = srv;
  uv_ip4_addr("127.0.0.1", 0, &addr);
  CHECK_EQ_INT(uv_tcp_bind(&srv->listener, (const struct sockaddr *)&addr, 0), 0);
  CHECK_EQ_INT(uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&name, &namelen), 0);
  srv->port = ntohs(((struct sockaddr_in *)&name)->sin_port);
}

static void server_listen(server_t *srv) {
  CHECK_EQ_INT(uv_listen((uv_stream_t *)&srv->listener, 16, on_connection), 0);
  srv->listening = 1;
}

static void server_script(server_t *srv, int i, const char *data, size_t len, int end) {
  srv->data[i] = data;
  srv->len[i] = len;
  srv->end[i] = end;
}

static void server_close(server_t *srv) {
  int i;
  for (i = 0; i < srv->accepted; i++)
    if (srv->conns[i] != NULL && srv->conns[i]->open) {
      srv->conns[i]->end = END_CLOSE;
      end_conn(srv->conns[i]);
    }
  uv_close((uv_handle_t *)&srv->listener, NULL);
}

/* The client side. */

static ds_socket_t *client_new(int port, size_t max_line_bytes, uint64_t block_interval_ms) {
  ds_socket_opts_t o;
  ds_socket_t *s = NULL;
  ds_socket_opts_init(&o);
  o.host = "127.0.0.1";
  o.port = port;
  o.max_line_bytes = max_line_bytes;
  o.block_interval_ms = block_interval_ms;
  o.backoff_initial_ms = 5;
  o.backoff_max_ms = 20;
  CHECK_EQ_INT(ds_socket_new(&loop, &o, &s), 0);
  return s;
}

static ds_socket_t *client_with_wal(int port, uint64_t block_interval_ms, ds_wal_t *wal,
                                    uint64_t stream) {
  ds_socket_opts_t o;
  ds_socket_t *s = NULL;
  ds_socket_opts_init(&o);
  o.host = "127.0.0.1";
  o.port = port;
  o.block_interval_ms = block_interval_ms;
  o.wal = wal;
  o.wal_stream = stream;
  CHECK_EQ_INT(ds_socket_new(&loop, &o, &s), 0);
  return s;
}

static ds_wal_t *wal_in(char *dir, size_t n) {
  ds_wal_opts_t o;
  ds_wal_t *w = NULL;
  snprintf(dir, n, "/tmp/test_socket_wal_XXXXXX");
  CHECK(mkdtemp(dir) != NULL);
  ds_wal_opts_init(&o);
  CHECK_EQ_INT(ds_wal_open(dir, &o, &w, NULL, 0), 0);
  return w;
}

static void client_close(ds_socket_t *s) {
  ds_socket_close(s);
  run_until(is_closed, s, 0);
  ds_socket_free(s);
}

/* Check the taken records equal want[0..n) (lengths wlen). */
static void check_take(ds_socket_t *s, const char *const *want, const size_t *wlen, size_t n) {
  ds_block_t *chain = ds_socket_take(s), *next;
  size_t i = 0;
  for (; chain != NULL; chain = next) {
    const char *rec;
    size_t len, off = 0;
    next = chain->next;
    while (ds_block_next(chain, &off, &rec, &len)) {
      CHECK(i < n);
      if (i < n)
        CHECK(len == wlen[i] && memcmp(rec, want[i], len) == 0);
      i++;
    }
    ds_block_free(chain);
  }
  CHECK_EQ_INT(i, n);
}

/* Drain one report; check its code and that its message is fmt with the
 * port put in. */
static void check_report(ds_socket_t *s, int code, const char *fmt, int port) {
  ds_socket_report_t r;
  char want[DS_SOCKET_MESSAGE_MAX];
  CHECK_EQ_INT(ds_socket_errors(s, &r, 1), 1);
  CHECK_EQ_INT(r.code, code);
  CHECK(r.time_ms > 1500000000000LL);
  snprintf(want, sizeof(want), fmt, port);
  CHECK_EQ_STR(r.message, want);
  if (strcmp(r.message, want) != 0)
    fprintf(stderr, "  got \"%s\"\n", r.message);
}

static void finish_loop(void) {
  uv_close((uv_handle_t *)&guard, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

static void start_loop(void) {
  uv_loop_init(&loop);
  uv_timer_init(&loop, &guard);
}

/* The tests. */

static void test_lines_arrive_exactly(void) {
  static const char first[] = "one\ntwo\r\nthr\0ee\n\nlast, no newline";
  static const char second[] = "again\n";
  const char *want[] = {"one", "two", "thr\0ee", "", "last, no newline", "again"};
  size_t wlen[] = {3, 3, 6, 0, 16, 5};
  server_t srv;
  ds_socket_t *s;
  ds_socket_stats_t st;
  start_loop();
  server_bind(&srv);
  server_script(&srv, 0, first, sizeof(first) - 1, END_CLOSE);
  server_script(&srv, 1, second, sizeof(second) - 1, END_KEEP);
  server_listen(&srv);
  s = client_new(srv.port, 1024, 0);
  CHECK_EQ_INT(ds_socket_start(s), 0);
  CHECK_EQ_INT(ds_socket_start(s), DS_ESTATE);
  run_until(records_reach, s, 6);
  check_take(s, want, wlen, 6);
  CHECK(ds_socket_take(s) == NULL);
  check_report(s, DS_EEOF, "EEOF: connection closed by 127.0.0.1:%d", srv.port);
  check_report(s, DS_ETRUNCATED, "ETRUNCATED: last line from 127.0.0.1:%d had no newline when the "
               "connection ended: its 16 bytes were kept as a record, possibly cut short", srv.port);
  st = stats_of(s);
  CHECK_EQ_INT(st.connects, 2);
  CHECK_EQ_INT(st.connected, 1);
  CHECK_EQ_INT(st.errors, 2);
  CHECK_EQ_INT(st.truncated, 1);
  CHECK_EQ_INT(st.bytes, sizeof(first) - 1 + sizeof(second) - 1);
  CHECK_EQ_INT(st.skipped, 0);
  client_close(s);
  server_close(&srv);
  finish_loop();
}

static void test_many_lines_across_reads(void) {
  size_t n = 100000, i, len = 0;
  char *text = malloc(n * 16);
  server_t srv;
  ds_socket_t *s;
  ds_block_t *chain, *next;
  size_t got = 0;
  int exact = 1;
  for (i = 0; i < n; i++)
    len += (size_t)sprintf(text + len, i % 2 ? "line %zu\r\n" : "line %zu\n", i);
  start_loop();
  server_bind(&srv);
  server_script(&srv, 0, text, len, END_KEEP);
  server_listen(&srv);
  s = client_new(srv.port, 64, 1);
  CHECK_EQ_INT(ds_socket_start(s), 0);
  run_until(records_reach, s, (long)n);
  for (chain = ds_socket_take(s); chain != NULL; chain = next) {
    const char *rec;
    size_t rlen, off = 0;
    char want[32];
    next = chain->next;
    while (ds_block_next(chain, &off, &rec, &rlen)) {
      int wlen = sprintf(want, "line %zu", got++);
      exact = exact && rlen == (size_t)wlen && memcmp(rec, want, rlen) == 0;
    }
    ds_block_free(chain);
  }
  CHECK_EQ_INT(got, n);
  CHECK(exact);
  CHECK_EQ_INT(stats_of(s).bytes, len);
  client_close(s);
  server_close(&srv);
  finish_loop();
  free(text);
}

static void test_oversize_line_is_skipped_and_reported(void) {
  static const char data[] = "short\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\nnext\r\n";
  const char *want[] = {"short", "next"};
  size_t wlen[] = {5, 4};
  server_t srv;
  ds_socket_t *s;
  ds_socket_report_t r;
  char suffix[96];
  start_loop();
  server_bind(&srv);
  server_script(&srv, 0, data, sizeof(data) - 1, END_KEEP);
  server_listen(&srv);
  s = client_new(srv.port, 16, 0);
  CHECK_EQ_INT(ds_socket_start(s), 0);
  run_until(records_reach, s, 2);
  check_take(s, want, wlen, 2);
  CHECK_EQ_INT(stats_of(s).skipped, 1);
  CHECK_EQ_INT(stats_of(s).connected, 1);
  CHECK_EQ_INT(ds_socket_errors(s, &r, 1), 1);
  CHECK_EQ_INT(r.code, DS_ETOOLONG);
  CHECK(strncmp(r.message, "ETOOLONG: line of ", 18) == 0);
  snprintf(suffix, sizeof(suffix), "+ bytes skipped (maxLineBytes 16) from 127.0.0.1:%d", srv.port);
  CHECK(strlen(r.message) > strlen(suffix) &&
        strcmp(r.message + strlen(r.message) - strlen(suffix), suffix) == 0);
  CHECK_EQ_INT(ds_socket_errors(s, &r, 1), 0);
  client_close(s);
  server_close(&srv);
  finish_loop();
}

static void test_refused_connection_is_retried_with_backoff(void) {
  static const char data[] = "hello\n";
  const char *want[] = {"hello"};
  size_t wlen[] = {5};
  uint64_t waits[] = {5, 10, 20, 20};
  server_t srv;
  ds_socket_t *s;
  int i;
  start_loop();
  server_bind(&srv); /* bound, not listening: connections are refused */
  server_script(&srv, 0, data, sizeof(data) - 1, END_CLOSE);
  s = client_new(srv.port, 1024, 0);
  CHECK_EQ_INT(ds_socket_start(s), 0);
  for (i = 0; i < 4; i++) {
    run_until(errors_reach, s, i + 1);
    CHECK_EQ_INT(stats_of(s).backoff_ms, waits[i]);
    check_report(s, DS_ECONNREFUSED, "ECONNREFUSED: connection refused by 127.0.0.1:%d", srv.port);
  }
  CHECK_EQ_INT(stats_of(s).connects, 0);
  server_listen(&srv);
  run_until(records_reach, s, 1);
  CHECK_EQ_INT(stats_of(s).connects, 1);
  check_take(s, want, wlen, 1);
  /* The server closed after "hello": the backoff starts over. */
  run_until(errors_reach, s, 5);
  check_report(s, DS_EEOF, "EEOF: connection closed by 127.0.0.1:%d", srv.port);
  CHECK_EQ_INT(stats_of(s).backoff_ms, 5);
  client_close(s);
  server_close(&srv);
  finish_loop();
}

static void test_reset_connection_is_reported_and_reconnected(void) {
  static const char first[] = "a\nb\npart";
  static const char second[] = "c\n";
  const char *want[] = {"a", "b", "part", "c"};
  size_t wlen[] = {1, 1, 4, 1};
  server_t srv;
  ds_socket_t *s;
  start_loop();
  server_bind(&srv);
  server_script(&srv, 0, first, sizeof(first) - 1, END_KEEP);
  server_script(&srv, 1, second, sizeof(second) - 1, END_KEEP);
  server_listen(&srv);
  s = client_new(srv.port, 1024, 0);
  CHECK_EQ_INT(ds_socket_start(s), 0);
  run_until(records_reach, s, 2);
  CHECK_EQ_INT(stats_of(s).bytes, sizeof(first) - 1);
  srv.conns[0]->end = END_RESET;
  end_conn(srv.conns[0]);
  run_until(records_reach, s, 4);
  check_take(s, want, wlen, 4);
  check_report(s, DS_ECONNRESET, "ECONNRESET: connection reset by 127.0.0.1:%d", srv.port);
  CHECK_EQ_INT(stats_of(s).connects, 2);
  client_close(s);
  server_close(&srv);
  finish_loop();
}

/* Data and the reset arrive together: still reported as a reset. */
static void test_reset_right_after_data(void) {
  static const char first[] = "a\nb\npart";
  static const char second[] = "c\n";
  const char *want[] = {"a", "b", "part", "c"};
  size_t wlen[] = {1, 1, 4, 1};
  int round;
  for (round = 0; round < 5; round++) {
    server_t srv;
    ds_socket_t *s;
    start_loop();
    server_bind(&srv);
    server_script(&srv, 0, first, sizeof(first) - 1, END_RESET);
    server_script(&srv, 1, second, sizeof(second) - 1, END_KEEP);
    server_listen(&srv);
    s = client_new(srv.port, 1024, 0);
    CHECK_EQ_INT(ds_socket_start(s), 0);
    run_until(records_reach, s, 4);
    check_take(s, want, wlen, 4);
    check_report(s, DS_ECONNRESET, "ECONNRESET: connection reset by 127.0.0.1:%d", srv.port);
    client_close(s);
    server_close(&srv);
    finish_loop();
  }
}

/* A plain POSIX server that, from a prepare callback (before the loop polls,
 * so before the client can see its connect complete), accepts, sends and
 * resets: the client's connect fails with ECONNRESET while the bytes wait. */
typedef struct {
  int fd;
  const char *data;
  size_t len;
  int served;
} raw_server_t;

static void on_prepare(uv_prepare_t *p) {
  raw_server_t *rs = p->data;
  struct linger lin = {1, 0};
  int c = accept(rs->fd, NULL, NULL);
  if (c < 0)
    return;
  CHECK_EQ_INT(write(c, rs->data, rs->len), rs->len);
  setsockopt(c, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin));
  close(c);
  rs->served = 1;
  uv_prepare_stop(p);
}

static void test_reset_before_the_connect_is_seen(void) {
  static const char data[] = "a\nb\npart";
  const char *want[] = {"a", "b", "part"};
  size_t wlen[] = {1, 1, 4};
  raw_server_t rs;
  struct sockaddr_in addr;
  socklen_t alen = sizeof(addr);
  uv_prepare_t prepare;
  ds_socket_t *s;
  start_loop();
  rs.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  rs.data = data;
  rs.len = sizeof(data) - 1;
  rs.served = 0;
  uv_ip4_addr("127.0.0.1", 0, &addr);
  CHECK_EQ_INT(bind(rs.fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
  CHECK_EQ_INT(listen(rs.fd, 4), 0);
  CHECK_EQ_INT(getsockname(rs.fd, (struct sockaddr *)&addr, &alen), 0);
  uv_prepare_init(&loop, &prepare);
  prepare.data = &rs;
  uv_prepare_start(&prepare, on_prepare);
  s = client_new(ntohs(addr.sin_port), 1024, 0);
  CHECK_EQ_INT(ds_socket_start(s), 0);
  run_until(records_reach, s, 3);
  check_take(s, want, wlen, 3);
  check_report(s, DS_ECONNRESET, "ECONNRESET: connection reset by 127.0.0.1:%d", ntohs(addr.sin_port));
  CHECK(stats_of(s).connects >= 1);
  client_close(s);
  uv_close((uv_handle_t *)&prepare, NULL);
  close(rs.fd);
  finish_loop();
}

static void test_stop_keeps_received_lines(void) {
  static const char data[] = "whole\nhalf";
  const char *want[] = {"whole", "half"};
  size_t wlen[] = {5, 4};
  server_t srv;
  ds_socket_t *s;
  start_loop();
  server_bind(&srv);
  server_script(&srv, 0, data, sizeof(data) - 1, END_KEEP);
  server_listen(&srv);
  s = client_new(srv.port, 1024, 0);
  CHECK_EQ_INT(ds_socket_start(s), 0);
  run_until(bytes_reach, s, sizeof(data) - 1);
  CHECK_EQ_INT(stats_of(s).records, 1);
  ds_socket_stop(s);
  ds_socket_stop(s);
  CHECK_EQ_INT(stats_of(s).records, 2);
  CHECK_EQ_INT(stats_of(s).connected, 0);
  CHECK_EQ_INT(ds_socket_start(s), DS_ESTATE);
  ds_socket_close(s);
  CHECK_EQ_INT(ds_socket_start(s), DS_ECLOSED);
  run_until(is_closed, s, 0);
  check_take(s, want, wlen, 2);
  CHECK_EQ_INT(stats_of(s).errors, 1);
  check_report(s, DS_ETRUNCATED, "ETRUNCATED: last line from 127.0.0.1:%d had no newline when the "
               "receiver stopped: its 4 bytes were kept as a record, possibly cut short", srv.port);
  CHECK_EQ_INT(srv.accepted, 1);
  ds_socket_free(s);
  server_close(&srv);
  finish_loop();
}

static void test_free_while_connected(void) {
  static const char data[] = "kept until freed\n";
  server_t srv;
  ds_socket_t *s;
  start_loop();
  server_bind(&srv);
  server_script(&srv, 0, data, sizeof(data) - 1, END_KEEP);
  server_listen(&srv);
  s = client_new(srv.port, 1024, 1);
  CHECK_EQ_INT(ds_socket_start(s), 0);
  run_until(records_reach, s, 1);
  ds_socket_free(s); /* freed by its last close callback */
  CHECK(ds_test_live() > 0);
  server_close(&srv);
  finish_loop();
}

static void test_free_while_resolving(void) {
  ds_socket_opts_t o;
  ds_socket_t *s;
  start_loop();
  ds_socket_opts_init(&o);
  o.host = "localhost";
  o.port = 9;
  CHECK_EQ_INT(ds_socket_new(&loop, &o, &s), 0);
  CHECK_EQ_INT(ds_socket_start(s), 0);
  ds_socket_free(s);
  finish_loop();
}

static void test_full_report_ring_counts_what_it_drops(void) {
  ds_socket_opts_t o;
  ds_socket_report_t r[4];
  ds_socket_stats_t st;
  server_t srv;
  ds_socket_t *s;
  start_loop();
  server_bind(&srv); /* refuses */
  ds_socket_opts_init(&o);
  o.host = "127.0.0.1";
  o.port = srv.port;
  o.backoff_initial_ms = 1;
  o.backoff_max_ms = 1;
  o.max_reports = 2;
  CHECK_EQ_INT(ds_socket_new(&loop, &o, &s), 0);
  CHECK_EQ_INT(ds_socket_start(s), 0);
  run_until(errors_reach, s, 5);
  st = stats_of(s);
  CHECK_EQ_INT(ds_socket_errors(s, r, 4), 2);
  CHECK_EQ_INT(st.dropped_reports, st.errors - 2);
  run_until(errors_reach, s, (long)st.errors + 1);
  CHECK_EQ_INT(ds_socket_errors(s, r, 4), 1);
  CHECK_EQ_INT(r[0].code, DS_ECONNREFUSED);
  client_close(s);
  server_close(&srv);
  finish_loop();
}

/* "bad..host" has an empty label: the resolver rejects it without asking DNS. */
static void test_unresolvable_host_is_reported_and_retried(void) {
  ds_socket_opts_t o;
  ds_socket_report_t r[2];
  ds_socket_t *s;
  start_loop();
  ds_socket_opts_init(&o);
  o.host = "bad..host";
  o.port = 9;
  o.backoff_initial_ms = 5;
  CHECK_EQ_INT(ds_socket_new(&loop, &o, &s), 0);
  CHECK_EQ_INT(ds_socket_start(s), 0);
  run_until(errors_reach, s, 2);
  CHECK_EQ_INT(ds_socket_errors(s, r, 2), 2);
  CHECK_EQ_INT(r[0].code, DS_ERESOLVE);
  CHECK_EQ_STR(r[0].message, "ERESOLVE: cannot resolve bad..host:9 (EAI_NONAME: unknown node or service)");
  CHECK_EQ_INT(r[1].code, DS_ERESOLVE);
  CHECK_EQ_INT(stats_of(s).connects, 0);
  client_close(s);
  finish_loop();
}

static void test_out_of_memory_drops_the_read_and_reconnects(void) {
  static const char first[] = "lost\n";
  static const char second[] = "kept\n";
  const char *want[] = {"kept"};
  size_t wlen[] = {4};
  server_t srv;
  ds_socket_t *s;
  start_loop();
  server_bind(&srv);
  server_script(&srv, 1, second, sizeof(second) - 1, END_KEEP);
  server_listen(&srv);
  s = client_new(srv.port, 1024, 0);
  CHECK_EQ_INT(ds_socket_start(s), 0);
  run_until(connects_reach, s, 1);
  run_until(accepted_reach, &srv, 1);
  ds_test_fail_after(1);
  conn_write(srv.conns[0], first, sizeof(first) - 1);
  run_until(errors_reach, s, 1);
  ds_test_fail_after(0);
  check_report(s, DS_ENOMEM, "ENOMEM: out of memory, 5 bytes and the unfinished line from "
               "127.0.0.1:%d dropped; reconnecting", srv.port);
  run_until(records_reach, s, 1);
  check_take(s, want, wlen, 1);
  CHECK_EQ_INT(stats_of(s).connects, 2);
  client_close(s);
  server_close(&srv);
  finish_loop();
}

static void test_new_checks_options_and_memory(void) {
  ds_socket_opts_t o;
  ds_socket_t *s = NULL;
  long nth;
  start_loop();
  ds_socket_opts_init(&o);
  CHECK_EQ_INT(o.max_line_bytes, 1024 * 1024);
  CHECK_EQ_INT(o.backoff_initial_ms, 100);
  CHECK_EQ_INT(o.backoff_max_ms, 2000);
  CHECK_EQ_INT(ds_socket_new(&loop, &o, &s), DS_EINVAL);
  o.host = "localhost";
  CHECK_EQ_INT(ds_socket_new(&loop, &o, &s), DS_EINVAL);
  o.port = 70000;
  CHECK_EQ_INT(ds_socket_new(&loop, &o, &s), DS_EINVAL);
  o.port = 9999;
  o.backoff_initial_ms = 3000;
  CHECK_EQ_INT(ds_socket_new(&loop, &o, &s), DS_EINVAL);
  o.backoff_initial_ms = 100;
  for (nth = 1; nth <= 4; nth++) {
    ds_test_fail_after(nth);
    CHECK_EQ_INT(ds_socket_new(&loop, &o, &s), DS_ENOMEM);
    ds_test_fail_after(0);
    CHECK_EQ_INT(ds_test_live(), 0);
  }
  CHECK_EQ_INT(ds_socket_new(&loop, &o, &s), 0);
  ds_socket_free(s);
  finish_loop();
}

/* With a WAL, a line counts as received only once its block is in the WAL,
 * and each take says which seqs it holds: replaying them gives the lines. */
static void test_wal_holds_every_line_taken(void) {
  size_t n = 20000, i, len = 0, got = 0;
  char *text = malloc(n * 16), dir[64];
  uint64_t first, last, prev_last = 1; /* seq 1 is another stream's */
  ds_block_t *chain, *next;
  ds_wal_t *wal = wal_in(dir, sizeof dir);
  server_t srv;
  ds_socket_t *s;
  int exact = 1, ordered = 1;
  for (i = 0; i < n; i++)
    len += (size_t)sprintf(text + len, "line %zu\n", i);
  CHECK_EQ_INT(ds_wal_append(wal, 1, DS_WAL_LINES, "", 0, &first, NULL, 0), 0);
  start_loop();
  server_bind(&srv);
  server_script(&srv, 0, text, len, END_KEEP);
  server_listen(&srv);
  s = client_with_wal(srv.port, 1, wal, 9);
  CHECK_EQ_INT(ds_socket_start(s), 0);
  while (got < n && !timed_out) {
    run_until(records_reach, s, (long)got + 1);
    chain = ds_socket_take_seqs(s, &first, &last);
    if (chain == NULL)
      continue;
    ordered = ordered && first == prev_last + 1 && last >= first;
    prev_last = last;
    for (; chain != NULL; chain = next) {
      ds_wal_iter_t it;
      ds_wal_block_t blk;
      next = chain->next;
      ds_wal_iter_init(&it, wal, 9, first - 1, last);
      CHECK_EQ_INT(ds_wal_iter_next(&it, &blk, NULL, 0), 1);
      exact = exact && blk.seq == first && blk.len == chain->len &&
              memcmp(blk.data, chain->data, blk.len) == 0;
      ds_wal_iter_close(&it);
      got += chain->count;
      first++;
      ds_block_free(chain);
    }
  }
  CHECK_EQ_INT(got, n);
  CHECK(exact);
  CHECK(ordered);
  CHECK_EQ_INT(prev_last, ds_wal_last_seq(wal));
  CHECK(ds_socket_take_seqs(s, &first, &last) == NULL && first == 0 && last == 0);
  client_close(s);
  server_close(&srv);
  finish_loop();
  ds_wal_free(wal);
  CHECK_EQ_INT(ds_fs_remove_tree(dir, NULL, 0), 0);
  free(text);
}

static int written_reach(void *c, long n) {
  return ((conn_t *)c)->written >= n;
}

/* A WAL that cannot take a block (a real file size limit, as a full disk):
 * the lines do not count, stay in memory, the failure is reported once,
 * the connection is not read meanwhile, and the next seal after room is
 * made logs and hands them over, and reading resumes. */
static void test_wal_failure_keeps_the_lines(void) {
  static const char text[] = "one\ntwo\n";
  const char *want[] = {"one", "two"}, *want3[] = {"three"};
  size_t wlen[] = {3, 3}, wlen3[] = {5};
  char dir[64], path[128], msg[DS_SOCKET_MESSAGE_MAX];
  ds_wal_t *wal = wal_in(dir, sizeof dir);
  struct rlimit saved, full;
  uint64_t first = 9, last = 9;
  ds_socket_report_t r;
  ds_socket_stats_t st;
  server_t srv;
  ds_socket_t *s;
  start_loop();
  server_bind(&srv);
  server_script(&srv, 0, text, sizeof(text) - 1, END_KEEP);
  server_listen(&srv);
  s = client_with_wal(srv.port, 0, wal, 0);
  CHECK_EQ_INT(ds_socket_start(s), 0);
  run_until(bytes_reach, s, (long)sizeof(text) - 1);
  CHECK_EQ_INT(stats_of(s).records, 0); /* split, not yet in the WAL */
  signal(SIGXFSZ, SIG_IGN);
  CHECK_EQ_INT(getrlimit(RLIMIT_FSIZE, &saved), 0);
  full = saved;
  full.rlim_cur = 1;
  CHECK_EQ_INT(setrlimit(RLIMIT_FSIZE, &full), 0);
  CHECK(ds_socket_take_seqs(s, &first, &last) == NULL && first == 0 && last == 0);
  CHECK(ds_socket_take(s) == NULL);
  CHECK_EQ_INT(setrlimit(RLIMIT_FSIZE, &saved), 0);
  st = stats_of(s);
  CHECK_EQ_INT(st.records, 0);
  CHECK_EQ_INT(st.wal_pending, 2);
  CHECK_EQ_INT(st.wal_errors, 2);
  CHECK_EQ_INT(ds_socket_errors(s, &r, 1), 1);
  CHECK_EQ_INT(r.code, DS_EIO);
  snprintf(path, sizeof path, "%s/wal-0000000000000001.log", dir);
  snprintf(msg, sizeof msg, "EIO: write-ahead log append failed (%s (File too large)); 2 lines "
           "from 127.0.0.1:%d kept in memory, reading paused, retried at the next seal", path,
           srv.port);
  CHECK_EQ_STR(r.message, msg);
  CHECK_EQ_INT(ds_socket_errors(s, &r, 1), 0); /* one report per run of failures */
  /* More lines sent now wait in the kernel: the socket does not read them. */
  conn_write(srv.conns[0], "three\n", 6);
  run_until(written_reach, srv.conns[0], 2);
  for (int i = 0; i < 10; i++)
    uv_run(&loop, UV_RUN_NOWAIT);
  CHECK_EQ_INT(stats_of(s).bytes, sizeof(text) - 1);
  check_take(s, want, wlen, 2);
  st = stats_of(s);
  CHECK_EQ_INT(st.records, 2);
  CHECK_EQ_INT(st.wal_pending, 0);
  CHECK_EQ_INT(ds_wal_last_seq(wal), 1);
  /* The WAL took them: reading resumed. */
  run_until(bytes_reach, s, (long)sizeof(text) - 1 + 6);
  check_take(s, want3, wlen3, 1);
  CHECK_EQ_INT(ds_wal_last_seq(wal), 2);
  client_close(s);
  server_close(&srv);
  finish_loop();
  ds_wal_free(wal);
  CHECK_EQ_INT(ds_fs_remove_tree(dir, NULL, 0), 0);
}

/* The rate limit. */

static ds_socket_t *client_limited(int port, double rate) {
  ds_socket_opts_t o;
  ds_socket_t *s = NULL;
  ds_socket_opts_init(&o);
  o.host = "127.0.0.1";
  o.port = port;
  o.max_rate = rate;
  o.rate_burst_ms = 100;
  CHECK_EQ_INT(ds_socket_new(&loop, &o, &s), 0);
  return s;
}

static int throttles_reach(void *s, long n) {
  return stats_of(s).throttles >= (uint64_t)n;
}

/* Lines of 9 bytes ("%08zu\n"): a flood the kernel cannot buffer whole. */
#define FLOOD_LINES 1500000
#define LINE_BYTES 9

static char *flood_text(size_t *len) {
  char *text = malloc((size_t)FLOOD_LINES * LINE_BYTES + 1);
  size_t i;
  for (i = 0; i < FLOOD_LINES; i++)
    sprintf(text + i * LINE_BYTES, "%08zu\n", i);
  *len = (size_t)FLOOD_LINES * LINE_BYTES;
  return text;
}

static void test_rate_limit_stops_reading_and_holds_the_sender_back(void) {
  size_t len, got = 0;
  char *text = flood_text(&len);
  server_t srv;
  ds_socket_t *s;
  ds_socket_stats_t st;
  ds_block_t *chain, *next;
  int exact = 1;
  start_loop();
  server_bind(&srv);
  server_script(&srv, 0, text, len, END_KEEP);
  server_listen(&srv);
  s = client_limited(srv.port, 2000);
  CHECK_EQ_INT(ds_socket_start(s), 0);
  run_until(records_reach, s, 500);
  run_until(throttles_reach, s, 5);
  st = stats_of(s);
  /* dstream holds at most one read buffer beyond the lines it accepted... */
  CHECK(st.held_bytes <= 64 * 1024);
  CHECK(st.bytes <= st.records * LINE_BYTES + LINE_BYTES + 64 * 1024);
  /* ...and the rest waits in the sender: its write is not done */
  CHECK_EQ_INT(srv.conns[0]->written, 0);
  CHECK(st.rate == 2000.0);
  /* lifting the limit lets every line through, once and in order */
  ds_socket_set_rate(s, 0);
  run_until(records_reach, s, FLOOD_LINES);
  for (chain = ds_socket_take(s); chain != NULL; chain = next) {
    const char *rec;
    size_t rlen, off = 0;
    char want[16];
    next = chain->next;
    while (ds_block_next(chain, &off, &rec, &rlen)) {
      sprintf(want, "%08zu", got++);
      exact = exact && rlen == LINE_BYTES - 1 && memcmp(rec, want, rlen) == 0;
    }
    ds_block_free(chain);
  }
  CHECK_EQ_INT(got, FLOOD_LINES);
  CHECK(exact);
  CHECK_EQ_INT(stats_of(s).bytes, len);
  client_close(s);
  server_close(&srv);
  finish_loop();
  free(text);
}

static void test_stop_while_throttled_keeps_what_was_read(void) {
  size_t len;
  char *text = flood_text(&len);
  server_t srv;
  ds_socket_t *s;
  ds_socket_stats_t st;
  start_loop();
  server_bind(&srv);
  server_script(&srv, 0, text, len, END_KEEP);
  server_listen(&srv);
  s = client_limited(srv.port, 1000);
  CHECK_EQ_INT(ds_socket_start(s), 0);
  run_until(throttles_reach, s, 3);
  ds_socket_drain(s); /* a graceful stop: what the kernel holds, regardless of the rate */
  ds_socket_stop(s);
  st = stats_of(s);
  CHECK_EQ_INT(st.held_bytes, 0);
  /* every byte read became a line (a cut-off last line included) */
  CHECK(st.records * LINE_BYTES >= st.bytes);
  CHECK(st.records * LINE_BYTES < st.bytes + LINE_BYTES);
  CHECK(st.records > 0);
  client_close(s);
  server_close(&srv);
  finish_loop();
  free(text);
}

int main(void) {
  ds_test_begin();
  test_lines_arrive_exactly();
  test_many_lines_across_reads();
  test_oversize_line_is_skipped_and_reported();
  test_refused_connection_is_retried_with_backoff();
  test_reset_connection_is_reported_and_reconnected();
  test_reset_right_after_data();
  test_reset_before_the_connect_is_seen();
  test_stop_keeps_received_lines();
  test_free_while_connected();
  test_free_while_resolving();
  test_full_report_ring_counts_what_it_drops();
  test_unresolvable_host_is_reported_and_retried();
  test_out_of_memory_drops_the_read_and_reconnects();
  test_new_checks_options_and_memory();
  test_wal_holds_every_line_taken();
  test_wal_failure_keeps_the_lines();
  test_rate_limit_stops_reading_and_holds_the_sender_back();
  test_stop_while_throttled_keeps_what_was_read();
  return ds_test_end("test_socket");
}
