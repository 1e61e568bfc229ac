/* The status server (dstream/http.h): libuv TCP, http-parser for requests.
 *
 * Each resource's body is a reference-counted copy, so an answer being
 * written keeps the body it started with while the caller replaces it, and
 * a large static resource (the chart library) is never copied per request. */
#include <limits.h>
#include <stdio.h>
#include <arpa/inet.h>
#include <string.h>

#include <http_parser.h>

#include "dstream/alloc.h"
#include "dstream/error.h"
#include "dstream/http.h"
#include "internal.h"

#define URL_MAX 1024
#define HEAD_MAX 512

typedef struct {
  size_t refs;
  size_t len;
  char data[];
} body_t;

typedef struct resource_s {
  struct resource_s *next;
  char *path;
  char *type;
  body_t *body;
} resource_t;

typedef struct client_s {
  struct client_s *next, *prev;
  ds_http_t *h;
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_write_t write;
  uv_shutdown_t shutdown;
  http_parser parser;
  size_t bytes;        /* of the request read so far */
  size_t url_len;
  char url[URL_MAX];
  char head[HEAD_MAX];
  body_t *body;        /* held while written */
  int url_too_long;
  int answered;        /* an answer is being written: ignore further input */
  int closing;
  int open_handles;
} client_t;

struct ds_http_s {
  uv_loop_t *loop;
  uv_tcp_t listener;
  int listener_open;
  int closing;
  int free_when_closed;
  int port;
  ds_http_opts_t o;
  resource_t *resources;
  client_t *clients;
  ds_http_stats_t stats;
};

static void body_unref(body_t *b) {
  if (b != NULL && --b->refs == 0)
    ds_free(b);
}

void ds_http_opts_init(ds_http_opts_t *o) {
  o->host = "127.0.0.1";
  o->port = 0;
  o->max_request_bytes = 8192;
  o->max_clients = 64;
  o->timeout_ms = 10000;
}

static void free_all(ds_http_t *h) {
  resource_t *r = h->resources;
  while (r != NULL) {
    resource_t *next = r->next;
    ds_free(r->path);
    ds_free(r->type);
    body_unref(r->body);
    ds_free(r);
    r = next;
  }
  ds_free(h);
}

int ds_http_closed(const ds_http_t *h) {
  return !h->listener_open && h->clients == NULL;
}

static void maybe_free(ds_http_t *h) {
  if (h->free_when_closed && ds_http_closed(h))
    free_all(h);
}

static void on_client_closed(uv_handle_t *handle) {
  client_t *c = handle->data;
  ds_http_t *h = c->h;
  if (--c->open_handles > 0)
    return;
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    h->clients = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  h->stats.clients--;
  body_unref(c->body);
  ds_free(c);
  maybe_free(h);
}

static void client_close(client_t *c) {
  if (c->closing)
    return;
  c->closing = 1;
  uv_close((uv_handle_t *)&c->timer, on_client_closed);
  uv_close((uv_handle_t *)&c->tcp, on_client_closed);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  static char scratch[4096]; /* one loop thread; each read is parsed or dropped at once */
  (void)handle;
  (void)suggested;
  *buf = uv_buf_init(scratch, sizeof scratch);
}

/* After the answer: drop what the client still sends until it closes (or
 * the timeout), so that closing with unread bytes does not reset the
 * connection under an answer the client has not read yet. */
static void on_drain(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  if (nread < 0)
    client_close(stream->data);
}

static void on_shut(uv_shutdown_t *req, int status) {
  client_t *c = req->data;
  if (status != 0 || c->closing || uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_drain) != 0)
    client_close(c);
}

static void on_written(uv_write_t *req, int status) {
  client_t *c = req->data;
  if (c->closing)
    return;
  c->shutdown.data = c;
  if (status != 0 || uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shut) != 0)
    client_close(c);
}

static const resource_t *find(const ds_http_t *h, const char *path, size_t len) {
  for (const resource_t *r = h->resources; r != NULL; r = r->next)
    if (strlen(r->path) == len && memcmp(r->path, path, len) == 0)
      return r;
  return NULL;
}

/* Write the answer and close once it is written. A body of NULL answers
 * with the status's text. */
static void answer(client_t *c, int status, const char *reason, const char *type, body_t *body,
                   const char *extra) {
  char text[96];
  const char *data;
  size_t len;
  uv_buf_t bufs[2];
  int n, nbufs = 1;
  if (c->answered || c->closing)
    return;
  c->answered = 1;
  uv_read_stop((uv_stream_t *)&c->tcp);
  if (body != NULL) {
    body->refs++;
    c->body = body;
    data = body->data;
    len = body->len;
  } else {
    n = snprintf(text, sizeof text, "%d %s\n", status, reason);
    type = "text/plain; charset=utf-8";
    data = text;
    len = (size_t)n;
  }
  if (status == 200)
    c->h->stats.requests++;
  else
    c->h->stats.errors++;
  n = snprintf(c->head, sizeof c->head,
               "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
               "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
               status, reason, type, len, extra != NULL ? extra : "");
  if (n < 0 || (size_t)n >= sizeof c->head) {
    client_close(c);
    return;
  }
  bufs[0] = uv_buf_init(c->head, (unsigned)n);
  if (body != NULL) {
    bufs[1] = uv_buf_init((char *)data, (unsigned)len);
    nbufs = 2;
  } else {
    /* the text lives on this stack frame: append it to the head instead */
    if ((size_t)n + len >= sizeof c->head) {
      client_close(c);
      return;
    }
    memcpy(c->head + n, data, len);
    bufs[0] = uv_buf_init(c->head, (unsigned)((size_t)n + len));
  }
  c->write.data = c;
  if (uv_write(&c->write, (uv_stream_t *)&c->tcp, bufs, (unsigned)nbufs, on_written) != 0)
    client_close(c);
}

static int on_url(http_parser *p, const char *at, size_t len) {
  client_t *c = p->data;
  if (c->url_len + len > URL_MAX) {
    c->url_too_long = 1;
    return 0;
  }
  memcpy(c->url + c->url_len, at, len);
  c->url_len += len;
  return 0;
}

/* The method and the path are known: answer now (the server reads no body). */
static int on_headers_complete(http_parser *p) {
  client_t *c = p->data;
  struct http_parser_url u;
  const resource_t *r;
  if (p->method != HTTP_GET) {
    answer(c, 405, "Method Not Allowed", NULL, NULL, "Allow: GET\r\n");
    return 2;
  }
  if (c->url_too_long) {
    answer(c, 414, "URI Too Long", NULL, NULL, NULL);
    return 2;
  }
  if (p->content_length > 0 && p->content_length != ULLONG_MAX) {
    answer(c, 413, "Payload Too Large", NULL, NULL, NULL);
    return 2;
  }
  http_parser_url_init(&u);
  if (http_parser_parse_url(c->url, c->url_len, 0, &u) != 0 || !(u.field_set & (1 << UF_PATH))) {
    answer(c, 400, "Bad Request", NULL, NULL, NULL);
    return 2;
  }
  r = find(c->h, c->url + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
  if (r == NULL)
    answer(c, 404, "Not Found", NULL, NULL, NULL);
  else
    answer(c, 200, "OK", r->type, r->body, NULL);
  return 2; /* no body expected; the answer is on its way */
}

static const http_parser_settings settings = {
  .on_url = on_url,
  .on_headers_complete = on_headers_complete,
};

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  client_t *c = stream->data;
  size_t done;
  if (nread < 0) {
    client_close(c);
    return;
  }
  if (nread == 0 || c->answered)
    return;
  if (c->bytes + (size_t)nread > c->h->o.max_request_bytes) {
    /* parse only up to the limit: a request complete within it is answered */
    nread = (ssize_t)(c->h->o.max_request_bytes - c->bytes);
    c->bytes = c->h->o.max_request_bytes;
    if (nread > 0)
      http_parser_execute(&c->parser, &settings, buf->base, (size_t)nread);
    answer(c, 431, "Request Header Fields Too Large", NULL, NULL, NULL);
    return;
  }
  c->bytes += (size_t)nread;
  done = http_parser_execute(&c->parser, &settings, buf->base, (size_t)nread);
  if (c->answered)
    return;
  if (HTTP_PARSER_ERRNO(&c->parser) != HPE_OK || done != (size_t)nread)
    answer(c, 400, "Bad Request", NULL, NULL, NULL);
}

static void on_timeout(uv_timer_t *timer) {
  client_t *c = timer->data;
  c->h->stats.timeouts++;
  client_close(c);
}

static void on_rejected_closed(uv_handle_t *handle) {
  ds_free(handle);
}

static void on_connection(uv_stream_t *server, int status) {
  ds_http_t *h = server->data;
  client_t *c;
  if (status != 0 || h->closing)
    return;
  if (h->stats.clients >= h->o.max_clients) {
    uv_tcp_t *t = ds_malloc(sizeof *t);
    if (t == NULL)
      return;
    uv_tcp_init(h->loop, t);
    (void)uv_accept(server, (uv_stream_t *)t);
    h->stats.rejected++;
    uv_close((uv_handle_t *)t, on_rejected_closed);
    return;
  }
  c = ds_calloc(1, sizeof *c);
  if (c == NULL)
    return;
  c->h = h;
  uv_tcp_init(h->loop, &c->tcp);
  uv_timer_init(h->loop, &c->timer);
  c->tcp.data = c;
  c->timer.data = c;
  c->open_handles = 2;
  c->next = h->clients;
  if (h->clients != NULL)
    h->clients->prev = c;
  h->clients = c;
  h->stats.clients++;
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
      uv_timer_start(&c->timer, on_timeout, h->o.timeout_ms, 0) != 0 ||
      uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
    client_close(c);
}

static void on_listener_closed(uv_handle_t *handle) {
  ds_http_t *h = handle->data;
  h->listener_open = 0;
  maybe_free(h);
}

int ds_http_new(uv_loop_t *loop, const ds_http_opts_t *o, ds_http_t **out, char *errbuf,
                size_t errlen) {
  struct sockaddr_storage addr;
  struct sockaddr_storage bound;
  int namelen = sizeof bound;
  const char *host = o->host;
  ds_http_t *h;
  int rc;
  *out = NULL;
  if (o->port < 0 || o->port > 65535 || o->max_request_bytes < 64 || o->max_clients < 1 ||
      o->timeout_ms < 1)
    return ds__error_fill(errbuf, errlen, DS_EINVAL, "bad options");
  if (strcmp(host, "localhost") == 0)
    host = "127.0.0.1";
  if (uv_ip4_addr(host, o->port, (struct sockaddr_in *)&addr) != 0 &&
      uv_ip6_addr(host, o->port, (struct sockaddr_in6 *)&addr) != 0)
    return ds__error_fill(errbuf, errlen, DS_EINVAL,
                          "%s is not a numeric IPv4 or IPv6 address, nor localhost", o->host);
  h = ds_calloc(1, sizeof *h);
  if (h == NULL)
    return ds__error_fill(errbuf, errlen, DS_ENOMEM, "the status server");
  h->loop = loop;
  h->o = *o;
  h->o.host = NULL;
  uv_tcp_init(loop, &h->listener);
  h->listener.data = h;
  h->listener_open = 1;
  rc = uv_tcp_bind(&h->listener, (const struct sockaddr *)&addr, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&h->listener, 128, on_connection);
  if (rc == 0)
    rc = uv_tcp_getsockname(&h->listener, (struct sockaddr *)&bound, &namelen);
  if (rc != 0) {
    ds__error_fill(errbuf, errlen, DS_ENET, "%s port %d: %s", o->host, o->port, uv_strerror(rc));
    h->free_when_closed = 1;
    h->closing = 1;
    uv_close((uv_handle_t *)&h->listener, on_listener_closed);
    return DS_ENET;
  }
  h->port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                        : ntohs(((struct sockaddr_in *)&bound)->sin_port);
  *out = h;
  return 0;
}

int ds_http_port(const ds_http_t *h) {
  return h->port;
}

int ds_http_set(ds_http_t *h, const char *path, const char *content_type, const char *body,
                size_t len) {
  resource_t *r = (resource_t *)find(h, path, strlen(path));
  body_t *b;
  char *type;
  if (path[0] != '/')
    return DS_EINVAL;
  b = ds_malloc(sizeof *b + len);
  type = ds_strndup(content_type, strlen(content_type));
  if (b == NULL || type == NULL) {
    ds_free(b);
    ds_free(type);
    return DS_ENOMEM;
  }
  b->refs = 1;
  b->len = len;
  if (len > 0)
    memcpy(b->data, body, len);
  if (r == NULL) {
    r = ds_calloc(1, sizeof *r);
    if (r == NULL || (r->path = ds_strndup(path, strlen(path))) == NULL) {
      ds_free(r);
      ds_free(b);
      ds_free(type);
      return DS_ENOMEM;
    }
    r->next = h->resources;
    h->resources = r;
  }
  ds_free(r->type);
  body_unref(r->body);
  r->type = type;
  r->body = b;
  return 0;
}

void ds_http_stats(const ds_http_t *h, ds_http_stats_t *out) {
  *out = h->stats;
}

void ds_http_close(ds_http_t *h) {
  if (h->closing)
    return;
  h->closing = 1;
  uv_close((uv_handle_t *)&h->listener, on_listener_closed);
  for (client_t *c = h->clients; c != NULL; c = c->next)
    client_close(c);
}

void ds_http_free(ds_http_t *h) {
  ds_http_close(h);
  h->free_when_closed = 1;
  maybe_free(h);
}
