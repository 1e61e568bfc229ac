/* The status server: a read-only HTTP/1.1 server on a loop the caller owns
 * and runs (the engine's), parsing requests with http-parser.
 *
 * It serves bytes it was given, never computes anything: ds_http_set() puts
 * (a copy of) a resource's body and content type under a path, replacing
 * what was there; a request for a path gets the copy current when the
 * request completed. C never calls back into the caller.
 *
 * RULES: GET only (any other method: 405 with "Allow: GET"); an unknown path
 * is 404; a malformed request is 400; a request whose head is longer than
 * max_request_bytes is 431, with a body is 413 (the server never reads
 * bodies); one request per connection (the answer says "Connection: close").
 * A client that has not sent a whole request within timeout_ms, or not read
 * its answer by then, is disconnected; beyond max_clients open connections a
 * new one is closed at once. So a slow, broken or hostile client costs at most
 * max_request_bytes and one answer's copy, and the caller's loop only ever
 * spends the time of a parse and a write on it.
 *
 * LIFETIME (as the socket receiver's): ds_http_close() starts closing every
 * handle; the loop must run until ds_http_closed() is true; ds_http_free()
 * frees at once when closed, else from the last close callback.
 */
#ifndef DSTREAM_HTTP_H
#define DSTREAM_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct ds_http_s ds_http_t;

typedef struct {
  const char *host;           /* a numeric IPv4 or IPv6 address, or "localhost"; "127.0.0.1" */
  int port;                   /* 0: any free port (ds_http_port() says which) */
  size_t max_request_bytes;   /* 8192: the request line and headers */
  size_t max_clients;         /* 64 connections open at once */
  uint64_t timeout_ms;        /* 10000 */
} ds_http_opts_t;

typedef struct {
  uint64_t requests;          /* answered 200 */
  uint64_t errors;            /* answered 4xx */
  uint64_t rejected;          /* closed at once: too many clients */
  uint64_t timeouts;          /* closed by the timeout */
  size_t clients;             /* open now */
} ds_http_stats_t;

/* Fill *o with the defaults. */
void ds_http_opts_init(ds_http_opts_t *o);
/* Bind and listen; *out on success. DS_EINVAL (bad host or port), DS_ENET
 * (the address is in use, or another bind or listen failure: errbuf says
 * which), DS_ENOMEM. */
int ds_http_new(uv_loop_t *loop, const ds_http_opts_t *o, ds_http_t **out, char *errbuf,
                size_t errlen);
/* The port listened on. */
int ds_http_port(const ds_http_t *h);
/* Serve a copy of body (len bytes) as content_type at path ("/..."). */
int ds_http_set(ds_http_t *h, const char *path, const char *content_type, const char *body,
                size_t len);
/* Counters, for tests and the caller's own metrics. */
void ds_http_stats(const ds_http_t *h, ds_http_stats_t *out);
/* Start closing the listener and every connection. Idempotent. */
void ds_http_close(ds_http_t *h);
/* 1 once every handle is closed. */
int ds_http_closed(const ds_http_t *h);
/* Close if needed and free (now, or from the last close callback). */
void ds_http_free(ds_http_t *h);

#endif
