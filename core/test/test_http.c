/* The status server against real TCP clients on 127.0.0.1: each client runs
 * in its own thread with blocking sockets while the test's loop serves, so
 * the server is seen as a browser or curl sees it. Nothing depends on
 * timing: the loop runs until the client is done (a 20 s guard only stops a
 * broken test from hanging). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dstream/error.h"
#include "dstream/http.h"
#include "harness.h"

static uv_loop_t loop;
static uv_timer_t guard;
static uv_async_t wake;
static int timed_out;

typedef struct {
  int port;
  const char *req;
  size_t req_len;
  int hold;             /* connect, send req, then keep the connection without reading */
  char resp[65536];
  size_t resp_len;
  atomic_int done;
} client_t;

static void on_guard(uv_timer_t *t) {
  (void)t;
  timed_out = 1;
}

static void on_wake(uv_async_t *a) {
  (void)a;
}

static int connect_to(int port) {
  struct sockaddr_in a;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Send the request, then read the whole answer (until the server closes). */
static void *client_run(void *arg) {
  client_t *c = arg;
  int fd = connect_to(c->port);
  if (fd >= 0) {
    size_t off = 0;
    ssize_t n;
    while (off < c->req_len && (n = send(fd, c->req + off, c->req_len - off, MSG_NOSIGNAL)) > 0)
      off += (size_t)n;
    while (c->resp_len < sizeof c->resp - 1 &&
           (n = recv(fd, c->resp + c->resp_len, sizeof c->resp - 1 - c->resp_len, 0)) > 0)
      c->resp_len += (size_t)n;
    c->resp[c->resp_len] = '\0';
    close(fd);
  }
  atomic_store(&c->done, 1);
  uv_async_send(&wake);
  return NULL;
}

/* Run one client to its end while the loop serves. */
static void exchange(client_t *c, int port, const char *req, size_t len) {
  pthread_t th;
  memset(c, 0, sizeof *c);
  c->port = port;
  c->req = req;
  c->req_len = len;
  timed_out = 0;
  uv_timer_start(&guard, on_guard, 20000, 0);
  pthread_create(&th, NULL, client_run, c);
  while (!atomic_load(&c->done) && !timed_out)
    uv_run(&loop, UV_RUN_ONCE);
  uv_timer_stop(&guard);
  pthread_join(th, NULL);
  CHECK(!timed_out);
}

static int status_of(const client_t *c) {
  int code = 0;
  if (sscanf(c->resp, "HTTP/1.1 %d", &code) != 1)
    return -1;
  return code;
}

static const char *body_of(const client_t *c) {
  const char *p = strstr(c->resp, "\r\n\r\n");
  return p != NULL ? p + 4 : "";
}

static ds_http_t *serve(ds_http_opts_t *o) {
  ds_http_t *h = NULL;
  char err[128];
  CHECK_EQ_INT(ds_http_new(&loop, o, &h, err, sizeof err), 0);
  CHECK(ds_http_port(h) > 0);
  return h;
}

static void finish(ds_http_t *h) {
  ds_http_close(h);
  while (!ds_http_closed(h))
    uv_run(&loop, UV_RUN_ONCE);
  ds_http_free(h);
}

static void test_get_serves_what_was_set(void) {
  static client_t c;
  ds_http_opts_t o;
  ds_http_t *h;
  const char *get = "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n";
  ds_http_opts_init(&o);
  h = serve(&o);
  CHECK_EQ_INT(ds_http_set(h, "/metrics", "text/plain; version=0.0.4", "a 1\n", 4), 0);
  exchange(&c, ds_http_port(h), get, strlen(get));
  CHECK_EQ_INT(status_of(&c), 200);
  CHECK(strstr(c.resp, "Content-Type: text/plain; version=0.0.4\r\n") != NULL);
  CHECK(strstr(c.resp, "Content-Length: 4\r\n") != NULL);
  CHECK_EQ_STR(body_of(&c), "a 1\n");
  /* a new body replaces the old one for the next request */
  CHECK_EQ_INT(ds_http_set(h, "/metrics", "text/plain", "a 2\n", 4), 0);
  exchange(&c, ds_http_port(h), get, strlen(get));
  CHECK_EQ_STR(body_of(&c), "a 2\n");
  exchange(&c, ds_http_port(h), "GET /nothing HTTP/1.0\r\n\r\n", 25);
  CHECK_EQ_INT(status_of(&c), 404);
  {
    ds_http_stats_t st;
    ds_http_stats(h, &st);
    CHECK_EQ_INT(st.requests, 2);
    CHECK_EQ_INT(st.errors, 1);
  }
  CHECK_EQ_INT(ds_http_set(h, "metrics", "text/plain", "", 0), DS_EINVAL);
  finish(h);
}

static void test_bad_requests_get_errors(void) {
  static client_t c;
  static char big[20000];
  ds_http_opts_t o;
  ds_http_t *h;
  const char *post = "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
  const char *head = "HEAD / HTTP/1.1\r\n\r\n";
  const char *garbage = "\x01\x02 not http at all\r\n\r\n";
  const char *body = "GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
  size_t n;
  ds_http_opts_init(&o);
  o.max_request_bytes = 4096;
  h = serve(&o);
  CHECK_EQ_INT(ds_http_set(h, "/", "text/html", "<p>ok</p>", 9), 0);
  exchange(&c, ds_http_port(h), post, strlen(post));
  CHECK_EQ_INT(status_of(&c), 405);
  CHECK(strstr(c.resp, "Allow: GET\r\n") != NULL);
  exchange(&c, ds_http_port(h), head, strlen(head));
  CHECK_EQ_INT(status_of(&c), 405);
  exchange(&c, ds_http_port(h), garbage, strlen(garbage));
  CHECK_EQ_INT(status_of(&c), 400);
  exchange(&c, ds_http_port(h), body, strlen(body));
  CHECK_EQ_INT(status_of(&c), 413);
  /* a header far beyond the limit */
  n = (size_t)snprintf(big, sizeof big, "GET / HTTP/1.1\r\nX-Big: ");
  memset(big + n, 'x', sizeof big - n - 5);
  memcpy(big + sizeof big - 5, "\r\n\r\n", 4);
  exchange(&c, ds_http_port(h), big, sizeof big - 1);
  CHECK_EQ_INT(status_of(&c), 431);
  /* a path longer than the server keeps */
  n = (size_t)snprintf(big, sizeof big, "GET /");
  memset(big + n, 'p', 2000);
  n += 2000;
  n += (size_t)snprintf(big + n, sizeof big - n, " HTTP/1.1\r\n\r\n");
  exchange(&c, ds_http_port(h), big, n);
  CHECK_EQ_INT(status_of(&c), 414);
  /* and the server still answers */
  exchange(&c, ds_http_port(h), "GET / HTTP/1.1\r\n\r\n", 18);
  CHECK_EQ_INT(status_of(&c), 200);
  CHECK_EQ_STR(body_of(&c), "<p>ok</p>");
  finish(h);
}

/* Idle clients hold no more than max_clients connections, and each is let
 * go at the timeout. */
static void test_slow_and_many_clients_are_bounded(void) {
  static client_t c;
  ds_http_opts_t o;
  ds_http_t *h;
  ds_http_stats_t st;
  int idle[2];
  ds_http_opts_init(&o);
  o.max_clients = 2;
  o.timeout_ms = 100;
  h = serve(&o);
  CHECK_EQ_INT(ds_http_set(h, "/", "text/plain", "x", 1), 0);
  for (int i = 0; i < 2; i++) {
    idle[i] = connect_to(ds_http_port(h));
    CHECK(idle[i] >= 0);
    CHECK(send(idle[i], "GET / HT", 8, 0) == 8);
  }
  /* both are accepted before the third arrives */
  timed_out = 0;
  uv_timer_start(&guard, on_guard, 20000, 0);
  do {
    uv_run(&loop, UV_RUN_ONCE);
    ds_http_stats(h, &st);
  } while (st.clients < 2 && !timed_out);
  uv_timer_stop(&guard);
  /* the third connection is closed without an answer, unless the timeout
   * freed a place first */
  exchange(&c, ds_http_port(h), "GET / HTTP/1.1\r\n\r\n", 18);
  ds_http_stats(h, &st);
  CHECK(st.rejected == 1 || (st.timeouts >= 1 && status_of(&c) == 200));
  CHECK(c.resp_len == 0 || status_of(&c) == 200);
  /* the idle ones are disconnected by the timeout */
  timed_out = 0;
  uv_timer_start(&guard, on_guard, 20000, 0);
  do {
    uv_run(&loop, UV_RUN_ONCE);
    ds_http_stats(h, &st);
  } while (st.timeouts < 2 && !timed_out);
  uv_timer_stop(&guard);
  CHECK(!timed_out);
  for (int i = 0; i < 2; i++) {
    char buf[16];
    CHECK_EQ_INT(recv(idle[i], buf, sizeof buf, 0), 0);
    close(idle[i]);
  }
  exchange(&c, ds_http_port(h), "GET / HTTP/1.1\r\n\r\n", 18);
  CHECK_EQ_INT(status_of(&c), 200);
  finish(h);
}

static void test_new_checks_address_and_memory(void) {
  ds_http_opts_t o;
  ds_http_t *h, *h2 = NULL;
  char err[128];
  ds_http_opts_init(&o);
  o.host = "example.org";
  CHECK_EQ_INT(ds_http_new(&loop, &o, &h2, err, sizeof err), DS_EINVAL);
  CHECK(strstr(err, "example.org") != NULL);
  CHECK(h2 == NULL);
  ds_http_opts_init(&o);
  h = serve(&o);
  o.port = ds_http_port(h);
  CHECK_EQ_INT(ds_http_new(&loop, &o, &h2, err, sizeof err), DS_ENET);
  CHECK(strstr(err, "address already in use") != NULL);
  uv_run(&loop, UV_RUN_NOWAIT); /* the failed listener's close */
  o.port = 0;
  ds_test_fail_after(1);
  CHECK_EQ_INT(ds_http_new(&loop, &o, &h2, err, sizeof err), DS_ENOMEM);
  CHECK_EQ_INT(ds_http_set(h, "/", "text/plain", "x", 1), DS_ENOMEM);
  ds_test_fail_after(0);
  finish(h);
  /* freed while serving a client: the last close callback frees it */
  ds_http_opts_init(&o);
  h = serve(&o);
  {
    int fd = connect_to(ds_http_port(h));
    ds_http_stats_t st;
    do {
      uv_run(&loop, UV_RUN_ONCE);
      ds_http_stats(h, &st);
    } while (st.clients < 1);
    ds_http_free(h);
    uv_run(&loop, UV_RUN_NOWAIT);
    close(fd);
  }
  CHECK_EQ_INT(ds_test_live(), 0);
}

int main(void) {
  ds_test_begin();
  uv_loop_init(&loop);
  uv_timer_init(&loop, &guard);
  uv_async_init(&loop, &wake, on_wake);
  uv_unref((uv_handle_t *)&guard);
  test_get_serves_what_was_set();
  test_bad_requests_get_errors();
  test_slow_and_many_clients_are_bounded();
  test_new_checks_address_and_memory();
  uv_close((uv_handle_t *)&guard, NULL);
  uv_close((uv_handle_t *)&wake, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
  return ds_test_end("test_http");
}
