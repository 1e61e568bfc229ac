/* The socket receiver: see dstream/socket.h for what it promises.
 *
 * STATES: IDLE (made, not started) -> RESOLVING -> CONNECTING -> CONNECTED;
 * any failure goes through closing the TCP handle to WAITING (the retry
 * timer runs the backoff) and back to RESOLVING; STOPPED is final. Each
 * connection gets a fresh uv_tcp_t in the same embedded handle, which is why
 * the next step after a failure (next address, or the backoff timer) always
 * starts from the TCP handle's close callback: libuv forbids reusing a handle
 * before it is closed.
 *
 * WHY A PENDING COUNT: the socket owns two timers, at most one TCP handle and
 * at most one getaddrinfo request, each finishing in a callback that touches
 * the struct. `pending` counts those not finished yet; the struct may only
 * be freed when it is zero, so ds_socket_free() of a socket still closing
 * leaves the freeing to the last callback.
 *
 * RECORDS: reads land in one 64 KiB buffer inside the struct and go straight
 * through the splitter into the current block; a block is sealed (queued)
 * by the block interval timer or by a take, and a new one is allocated only
 * when the next bytes arrive.
 *
 * WITH A WAL a sealed block first joins the `unlogged` list, which is
 * appended to the WAL oldest first; only an appended block moves on to the
 * queue. The list is empty except while the WAL fails, and a block never
 * overtakes an older one, so the queue's seqs stay in order. While the WAL
 * fails the connection is not read (`paused`), so what waits in memory
 * is bounded by what had been read when it started failing.
 *
 * RATE LIMIT: a read is fed to the splitter only up to the last newline the
 * bucket has tokens for; the rest is `held` in buf (so buf is not handed to
 * libuv again until it is empty), reading stops and the `resume` timer
 * feeds it on when tokens have accrued. Reading restarts only once nothing
 * is held, the timer is idle (`throttled` clear) and the WAL is not failing.
 *
 * BATCH CAP: the same cut bounds the records waiting for a take
 * (opts.max_pending_records): a read is fed only up to the cap, the rest
 * is held, reading stops (`full`) with no timer, and the next take, having
 * emptied the queue, feeds the held bytes and reads on. A take first reads
 * what the kernel holds right now (up to the cap and the rate): when
 * batches run back to back to catch up, the loop does not run between
 * them, and each would otherwise find only what was read before the first.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "dstream/alloc.h"
#include "dstream/error.h"
#include "dstream/lines.h"
#include "dstream/rate.h"
#include "dstream/socket.h"
#include "dstream/wal.h"

#define BLOCK_CAP (64 * 1024)
#define READ_BUF (64 * 1024)

enum { S_IDLE, S_RESOLVING, S_CONNECTING, S_CONNECTED, S_WAITING, S_STOPPED };
/* What the TCP handle's close callback does next. */
enum { AFTER_NOTHING, AFTER_NEXT_ADDR, AFTER_RETRY };
/* The TCP handle: not initialised, open, closing. */
enum { HANDLE_NONE, HANDLE_OPEN, HANDLE_CLOSING };

struct ds_socket_s {
  uv_loop_t *loop;
  ds_socket_opts_t opts;        /* opts.host points at host */
  char *host;
  char *peer;                   /* "host:port", for messages */
  char service[8];              /* the port as getaddrinfo wants it */
  int state;
  int closing;
  int free_when_closed;
  int pending;                  /* handles and requests not finished */
  uv_timer_t retry;
  uv_timer_t seal;
  uv_getaddrinfo_t resolve;
  int resolving;
  uv_tcp_t tcp;
  int tcp_state;
  int after_close;
  uv_connect_t connect;
  struct addrinfo *addrs;       /* the resolved list while connecting */
  struct addrinfo *next_addr;
  int last_status;              /* libuv status of the last failed connect */
  uint64_t backoff_ms;          /* the wait of the next reconnect */
  ds_lines_t lines;
  ds_block_t *cur;
  ds_blockq_t queue;
  uint64_t sealed_records;
  ds_block_t *unlogged;         /* sealed, not yet in the WAL, oldest first */
  ds_block_t *unlogged_tail;
  int wal_failing;              /* the last append failed (reported once) */
  int reading;                  /* uv_read_start is in effect */
  int paused;                   /* reading stopped because the WAL fails */
  ds_rate_t limit;
  uv_timer_t resume;            /* restarts reading once tokens accrued */
  int throttled;                /* the resume timer runs */
  int full;                     /* reading stopped: the cap of waiting records is reached */
  uint64_t queued_records;      /* records in the queue, waiting for a take */
  size_t held_off;              /* bytes of buf read but not yet paid for */
  size_t held_len;
  uint64_t first_seq;           /* WAL seqs of the queue's first and last block */
  uint64_t last_seq;
  ds_socket_report_t *reports;  /* ring of opts.max_reports */
  size_t report_head;
  size_t report_count;
  ds_socket_stats_t stats;
  char buf[READ_BUF];
};

static void resolve(ds_socket_t *s);
static void connect_next(ds_socket_t *s);
static void start_reading(ds_socket_t *s);

void ds_socket_opts_init(ds_socket_opts_t *opts) {
  memset(opts, 0, sizeof(*opts));
  opts->max_line_bytes = 1024 * 1024;
  opts->block_interval_ms = 0;
  opts->backoff_initial_ms = 100;
  opts->backoff_max_ms = 2000;
  opts->max_reports = 64;
  opts->max_rate = 0;
  opts->rate_burst_ms = 1000;
}

/* Reports. */

static int64_t now_ms(void) {
  uv_timeval64_t tv;
  if (uv_gettimeofday(&tv) != 0)
    return 0;
  return tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

__attribute__((format(printf, 3, 4)))
static void report(ds_socket_t *s, int code, const char *fmt, ...) {
  ds_socket_report_t *r;
  va_list ap;
  s->stats.errors++;
  if (s->report_count == s->opts.max_reports) {
    s->stats.dropped_reports++;
    return;
  }
  r = &s->reports[(s->report_head + s->report_count) % s->opts.max_reports];
  s->report_count++;
  r->time_ms = now_ms();
  r->code = code;
  va_start(ap, fmt);
  vsnprintf(r->message, sizeof(r->message), fmt, ap);
  va_end(ap);
}

/* Report the lines the splitter skipped since it had skipped `before`. */
static void report_skips(ds_socket_t *s, uint64_t before) {
  uint64_t n = s->lines.skipped - before;
  if (n == 1)
    report(s, DS_ETOOLONG, "ETOOLONG: line of %zu+ bytes skipped (maxLineBytes %zu) from %s",
           s->lines.last_skip_len, s->lines.max_line_bytes, s->peer);
  else if (n > 1)
    report(s, DS_ETOOLONG, "ETOOLONG: %llu lines of %zu+ bytes skipped (maxLineBytes %zu) from %s",
           (unsigned long long)n, s->lines.max_line_bytes + 1, s->lines.max_line_bytes, s->peer);
}

/* A libuv failure of the connection, as a report. */
static void report_failure(ds_socket_t *s, int status, const char *doing) {
  switch (status) {
  case UV_ECONNREFUSED:
    report(s, DS_ECONNREFUSED, "ECONNREFUSED: connection refused by %s", s->peer);
    break;
  case UV_ECONNRESET:
    report(s, DS_ECONNRESET, "ECONNRESET: connection reset by %s", s->peer);
    break;
  case UV_EOF:
    report(s, DS_EEOF, "EEOF: connection closed by %s", s->peer);
    break;
  default:
    report(s, DS_ENET, "ENET: %s %s failed (%s: %s)", doing, s->peer,
           uv_err_name(status), uv_strerror(status));
    break;
  }
}

/* Blocks. */

/* A block the WAL holds (or any block without a WAL) counts as received. */
static void receive(ds_socket_t *s, ds_block_t *blk, uint64_t seq) {
  s->sealed_records += blk->count;
  s->queued_records += blk->count;
  if (s->queue.head == NULL)
    s->first_seq = seq;
  s->last_seq = seq;
  ds_blockq_push(&s->queue, blk);
}

/* Append the unlogged blocks to the WAL, oldest first, until one fails. */
static void log_blocks(ds_socket_t *s) {
  char err[DS_SOCKET_MESSAGE_MAX - 160];
  while (s->unlogged != NULL) {
    ds_block_t *blk = s->unlogged;
    uint64_t seq;
    int rc = ds_wal_append_block(s->opts.wal, s->opts.wal_stream, blk, &seq, err, sizeof err);
    if (rc != 0) {
      s->stats.wal_errors++;
      if (!s->wal_failing)
        report(s, rc, "%s: write-ahead log append failed (%s); %llu lines from %s kept in memory, "
               "reading paused, retried at the next seal", ds_err_name(rc), err,
               (unsigned long long)s->stats.wal_pending, s->peer);
      s->wal_failing = 1;
      if (s->reading) {
        uv_read_stop((uv_stream_t *)&s->tcp);
        s->reading = 0;
        s->paused = 1;
      }
      return;
    }
    s->wal_failing = 0;
    s->unlogged = blk->next;
    if (s->unlogged == NULL)
      s->unlogged_tail = NULL;
    blk->next = NULL;
    s->stats.wal_pending -= blk->count;
    receive(s, blk, seq);
  }
  if (s->paused) {
    s->paused = 0;
    if (s->state == S_CONNECTED && s->tcp_state == HANDLE_OPEN && !s->throttled && !s->full)
      start_reading(s);
  }
}

static void seal(ds_socket_t *s) {
  ds_block_t *blk = s->cur;
  if (blk != NULL && blk->count > 0) {
    s->cur = NULL;
    if (s->opts.wal == NULL) {
      receive(s, blk, 0);
      return;
    }
    if (s->unlogged_tail != NULL)
      s->unlogged_tail->next = blk;
    else
      s->unlogged = blk;
    s->unlogged_tail = blk;
    s->stats.wal_pending += blk->count;
  }
  if (s->opts.wal != NULL)
    log_blocks(s);
}

/* Run a splitter step (feed, or finish when p is NULL) into the current
 * block; if the block cannot grow, seal it and try once more in a new one. */
static int split(ds_socket_t *s, const char *p, size_t n) {
  int rc = DS_ENOMEM, attempt;
  for (attempt = 0; attempt < 2 && rc < 0; attempt++) {
    if (attempt > 0) {
      if (s->cur->count == 0)
        break;
      seal(s);
    }
    if (s->cur == NULL && (s->cur = ds_block_new(BLOCK_CAP)) == NULL)
      break;
    rc = p != NULL ? ds_lines_feed(&s->lines, p, n, s->cur) : ds_lines_finish(&s->lines, s->cur);
  }
  return rc;
}

/* The connection ended (why: "the connection ended", "the receiver
 * stopped"): keep its unfinished line as a record, and say so, since the
 * line may have been cut short. */
static void flush_line(ds_socket_t *s, const char *why) {
  uint64_t before = s->lines.skipped;
  size_t carried = s->lines.len;
  if (carried == 0) {
    ds_lines_reset(&s->lines); /* ends a skip in progress, if any */
    return;
  }
  if (split(s, NULL, 0) < 0) {
    report(s, DS_ENOMEM, "ENOMEM: out of memory, unfinished line of %zu bytes from %s dropped",
           carried, s->peer);
    ds_lines_reset(&s->lines);
  } else if (s->lines.skipped == before) {
    s->stats.truncated++;
    report(s, DS_ETRUNCATED, "ETRUNCATED: last line from %s had no newline when %s: "
           "its %zu bytes were kept as a record, possibly cut short", s->peer, why, carried);
  }
  report_skips(s, before);
}

/* The connection. */

static void free_addrs(ds_socket_t *s) {
  if (s->addrs != NULL)
    uv_freeaddrinfo(s->addrs);
  s->addrs = NULL;
  s->next_addr = NULL;
}

static void destroy(ds_socket_t *s) {
  free_addrs(s);
  ds_lines_close(&s->lines);
  ds_block_free(s->cur);
  while (s->unlogged != NULL) {
    ds_block_t *next = s->unlogged->next;
    ds_block_free(s->unlogged);
    s->unlogged = next;
  }
  ds_blockq_close(&s->queue);
  ds_free(s->reports);
  ds_free(s->peer);
  ds_free(s->host);
  ds_free(s);
}

/* One handle or request finished; free if that was the last and asked to. */
static void finished(ds_socket_t *s) {
  s->pending--;
  if (s->closing && s->pending == 0 && s->free_when_closed)
    destroy(s);
}

static void on_handle_closed(uv_handle_t *h) {
  finished(h->data);
}

static void on_retry(uv_timer_t *t) {
  resolve(t->data);
}

static void schedule_retry(ds_socket_t *s) {
  uint64_t wait = s->backoff_ms;
  s->state = S_WAITING;
  s->stats.backoff_ms = wait;
  s->backoff_ms = wait * 2 < s->opts.backoff_max_ms ? wait * 2 : s->opts.backoff_max_ms;
  uv_timer_start(&s->retry, on_retry, wait, 0);
}

static void on_tcp_closed(uv_handle_t *h) {
  ds_socket_t *s = h->data;
  int after = s->after_close;
  s->tcp_state = HANDLE_NONE;
  if (s->closing || s->state == S_STOPPED) {
    finished(s);
    return;
  }
  s->pending--;
  if (after == AFTER_NEXT_ADDR)
    connect_next(s);
  else if (after == AFTER_RETRY)
    schedule_retry(s);
}

static void close_tcp(ds_socket_t *s, int after) {
  s->after_close = after;
  s->reading = 0;
  s->paused = 0;
  s->tcp_state = HANDLE_CLOSING;
  s->stats.connected = 0;
  uv_close((uv_handle_t *)&s->tcp, on_tcp_closed);
}

/* libuv reports an end of stream when a reset arrives together with the
 * last bytes (it sees the hang-up after a short read and never reads the
 * error); the socket's pending error tells the two apart. */
static int real_status(ds_socket_t *s, int status) {
  uv_os_fd_t fd;
  int err = 0;
  socklen_t len = sizeof(err);
  if (status == UV_EOF && uv_fileno((uv_handle_t *)&s->tcp, &fd) == 0 &&
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0)
    return uv_translate_sys_error(err);
  return status;
}

/* The connection broke (status: a libuv error or UV_EOF). */
static void disconnect(ds_socket_t *s, int status) {
  report_failure(s, real_status(s, status), "read from");
  flush_line(s, "the connection ended");
  close_tcp(s, AFTER_RETRY);
}

/* Bytes read: split them into the current block. On out of memory they and
 * the unfinished line are dropped and the connection closed; returns -1. */
static int take_in(ds_socket_t *s, const char *p, size_t n) {
  uint64_t before = s->lines.skipped;
  s->stats.bytes += n;
  if (split(s, p, n) < 0) {
    report(s, DS_ENOMEM, "ENOMEM: out of memory, %zu bytes and the unfinished line from %s "
           "dropped; reconnecting", n, s->peer);
    ds_lines_reset(&s->lines);
    close_tcp(s, AFTER_RETRY);
    return -1;
  }
  report_skips(s, before);
  return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  ds_socket_t *s = h->data;
  (void)suggested;
  *buf = uv_buf_init(s->buf, sizeof(s->buf));
}

static void on_resume(uv_timer_t *t);

/* How many more records may wait for a take (UINT64_MAX: no cap). Lines
 * sealed but not yet in the WAL count as waiting. */
static uint64_t room(const ds_socket_t *s) {
  uint64_t cap = s->opts.max_pending_records, waiting;
  if (cap == 0)
    return UINT64_MAX;
  waiting = s->queued_records + s->stats.wal_pending + (s->cur != NULL ? s->cur->count : 0);
  return waiting >= cap ? 0 : cap - waiting;
}

/* Stop reading until a take makes room (no timer: see BATCH CAP). */
static void fill(ds_socket_t *s) {
  if (s->reading) {
    uv_read_stop((uv_stream_t *)&s->tcp);
    s->reading = 0;
  }
  if (!s->full)
    s->stats.capped++;
  s->full = 1;
}

/* Stop reading until the bucket has a token again. */
static void throttle(ds_socket_t *s) {
  uint64_t wait = ds_rate_wait_ms(&s->limit);
  if (s->reading) {
    uv_read_stop((uv_stream_t *)&s->tcp);
    s->reading = 0;
  }
  s->throttled = 1;
  s->stats.throttles++;
  uv_timer_start(&s->resume, on_resume, wait > 0 ? wait : 1, 0);
}

/* Feed buf[off, off + n) to the splitter as far as the rate allows: whole
 * lines up to the tokens available (an unfinished line costs nothing until
 * its newline comes). What is left is held and reading stops; returns -1 if
 * the connection was closed (out of memory). */
static int feed(ds_socket_t *s, size_t off, size_t n) {
  const char *p = s->buf + off;
  uint64_t tokens = ds_rate_available(&s->limit, uv_now(s->loop)), lines = 0;
  uint64_t space = room(s), allow = space < tokens ? space : tokens;
  size_t cut = n;
  if (allow != UINT64_MAX) {
    const char *q = p, *end = p + n;
    while (q < end && (q = memchr(q, '\n', (size_t)(end - q))) != NULL) {
      if (lines == allow) {
        cut = (size_t)(q - p);
        break;
      }
      lines++;
      q++;
    }
    if (cut < n) /* the held part starts after the last line paid for */
      while (cut > 0 && p[cut - 1] != '\n')
        cut--;
    if (tokens != UINT64_MAX)
      ds_rate_spend(&s->limit, lines);
  }
  s->held_len = 0;
  s->stats.held_bytes = 0;
  if (cut > 0 && take_in(s, p, cut) < 0)
    return -1;
  if (cut < n) {
    s->held_off = off + cut;
    s->held_len = n - cut;
    s->stats.held_bytes = s->held_len;
    if (space < tokens)
      fill(s);
    else
      throttle(s);
  }
  return 0;
}

/* Take the held bytes in whatever the rate (a stop or a drain: they were
 * read, and nothing read is lost). */
static void release_held(ds_socket_t *s) {
  size_t off = s->held_off, n = s->held_len;
  s->held_len = 0;
  s->stats.held_bytes = 0;
  if (n > 0)
    take_in(s, s->buf + off, n);
}

static void on_resume(uv_timer_t *t) {
  ds_socket_t *s = t->data;
  s->throttled = 0;
  if (s->state != S_CONNECTED || s->tcp_state != HANDLE_OPEN || s->full)
    return;
  if (s->held_len > 0 && (feed(s, s->held_off, s->held_len) < 0 || s->throttled || s->full))
    return;
  if (s->wal_failing)
    s->paused = 1;
  else if (!s->reading)
    start_reading(s);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  ds_socket_t *s = stream->data;
  if (nread < 0)
    disconnect(s, (int)nread);
  else if (nread > 0)
    feed(s, (size_t)(buf->base - s->buf), (size_t)nread);
}

/* A reset that arrives before libuv has seen the connect complete fails the
 * connect, yet the handshake was done and the peer's bytes are waiting in the
 * socket: read them (the error is consumed, so reads end at end of stream)
 * before closing, as a blocking client would have. */
static void salvage_reset(ds_socket_t *s) {
  uv_os_fd_t fd;
  ssize_t n;
  free_addrs(s);
  s->state = S_CONNECTED;
  s->stats.connects++;
  s->backoff_ms = s->opts.backoff_initial_ms;
  if (uv_fileno((uv_handle_t *)&s->tcp, &fd) == 0)
    while ((n = recv(fd, s->buf, sizeof(s->buf), MSG_DONTWAIT)) > 0)
      if (take_in(s, s->buf, (size_t)n) < 0)
        return;
  disconnect(s, UV_ECONNRESET);
}

static void on_connect(uv_connect_t *req, int status) {
  ds_socket_t *s = req->data;
  if (status == UV_ECANCELED)
    return; /* we closed the handle: its close callback decides */
  if (status == UV_ECONNRESET) {
    salvage_reset(s);
    return;
  }
  if (status < 0) {
    s->last_status = status;
    close_tcp(s, AFTER_NEXT_ADDR);
    return;
  }
  free_addrs(s);
  s->state = S_CONNECTED;
  s->stats.connected = 1;
  s->stats.connects++;
  s->stats.backoff_ms = 0;
  s->backoff_ms = s->opts.backoff_initial_ms;
  uv_tcp_keepalive(&s->tcp, 1, 60);
  if (s->wal_failing)
    s->paused = 1;
  else if (!s->throttled && !s->full)
    start_reading(s);
}

/* Read the connection (not while the WAL fails: see socket.h). */
static void start_reading(ds_socket_t *s) {
  int rc = uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
  if (rc < 0) {
    report_failure(s, rc, "read from");
    close_tcp(s, AFTER_RETRY);
    return;
  }
  s->reading = 1;
}

/* Try the next resolved address; when none is left, report and back off. */
static void connect_next(ds_socket_t *s) {
  struct addrinfo *ai = s->next_addr;
  int rc;
  if (ai == NULL) {
    free_addrs(s);
    report_failure(s, s->last_status, "connect to");
    schedule_retry(s);
    return;
  }
  s->next_addr = ai->ai_next;
  s->state = S_CONNECTING;
  uv_tcp_init(s->loop, &s->tcp);
  s->tcp.data = s;
  s->tcp_state = HANDLE_OPEN;
  s->pending++;
  s->connect.data = s;
  if ((rc = uv_tcp_connect(&s->connect, &s->tcp, ai->ai_addr, on_connect)) < 0) {
    s->last_status = rc;
    close_tcp(s, AFTER_NEXT_ADDR);
  }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  ds_socket_t *s = req->data;
  s->resolving = 0;
  if (s->closing || s->state == S_STOPPED) {
    if (res != NULL)
      uv_freeaddrinfo(res);
    finished(s);
    return;
  }
  s->pending--;
  if (status < 0) {
    report(s, DS_ERESOLVE, "ERESOLVE: cannot resolve %s (%s: %s)", s->peer,
           uv_err_name(status), uv_strerror(status));
    schedule_retry(s);
    return;
  }
  s->addrs = res;
  s->next_addr = res;
  s->last_status = UV_ECONNREFUSED;
  connect_next(s);
}

static void resolve(ds_socket_t *s) {
  struct addrinfo hints;
  int rc;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  s->state = S_RESOLVING;
  s->resolve.data = s;
  rc = uv_getaddrinfo(s->loop, &s->resolve, on_resolved, s->host, s->service, &hints);
  if (rc < 0) {
    report(s, DS_ERESOLVE, "ERESOLVE: cannot resolve %s (%s: %s)", s->peer,
           uv_err_name(rc), uv_strerror(rc));
    schedule_retry(s);
    return;
  }
  s->resolving = 1;
  s->pending++;
}

static void on_seal(uv_timer_t *t) {
  seal(t->data);
}

/* The public face. */

static char *make_peer(const char *host, int port) {
  size_t n = strlen(host) + 16;
  char *peer = ds_malloc(n);
  if (peer == NULL)
    return NULL;
  snprintf(peer, n, strchr(host, ':') != NULL ? "[%s]:%d" : "%s:%d", host, port);
  return peer;
}

int ds_socket_new(uv_loop_t *loop, const ds_socket_opts_t *opts, ds_socket_t **out) {
  ds_socket_t *s;
  if (opts->host == NULL || opts->host[0] == '\0' || opts->port < 1 || opts->port > 65535 ||
      opts->max_line_bytes == 0 || opts->max_reports == 0 ||
      opts->backoff_initial_ms == 0 || opts->backoff_initial_ms > opts->backoff_max_ms)
    return DS_EINVAL;
  if ((s = ds_calloc(1, sizeof(*s))) == NULL)
    return DS_ENOMEM;
  s->host = ds_strndup(opts->host, strlen(opts->host));
  s->peer = make_peer(opts->host, opts->port);
  s->reports = ds_calloc(opts->max_reports, sizeof(*s->reports));
  if (s->host == NULL || s->peer == NULL || s->reports == NULL) {
    destroy(s);
    return DS_ENOMEM;
  }
  s->loop = loop;
  s->opts = *opts;
  s->opts.host = s->host;
  snprintf(s->service, sizeof(s->service), "%d", opts->port);
  s->state = S_IDLE;
  s->backoff_ms = opts->backoff_initial_ms;
  ds_lines_init(&s->lines, opts->max_line_bytes);
  ds_blockq_init(&s->queue);
  uv_timer_init(loop, &s->retry);
  uv_timer_init(loop, &s->seal);
  uv_timer_init(loop, &s->resume);
  s->retry.data = s;
  s->seal.data = s;
  s->resume.data = s;
  s->pending = 3;
  *out = s;
  return 0;
}

int ds_socket_start(ds_socket_t *s) {
  if (s->closing)
    return DS_ECLOSED;
  if (s->state != S_IDLE)
    return DS_ESTATE;
  if (s->opts.block_interval_ms > 0)
    uv_timer_start(&s->seal, on_seal, s->opts.block_interval_ms, s->opts.block_interval_ms);
  ds_rate_init(&s->limit, s->opts.max_rate, s->opts.rate_burst_ms, uv_now(s->loop));
  s->stats.rate = s->limit.rate;
  resolve(s);
  return 0;
}

/* Read, without waiting, what the kernel holds right now, as far as the cap
 * and the rate allow (see BATCH CAP). */
static void read_waiting(ds_socket_t *s) {
  uv_os_fd_t fd;
  int avail = 0;
  size_t got = 0;
  ssize_t n;
  if (s->state != S_CONNECTED || s->tcp_state != HANDLE_OPEN || s->throttled || s->full ||
      s->paused || s->wal_failing || s->held_len > 0 ||
      uv_fileno((uv_handle_t *)&s->tcp, &fd) != 0 || ioctl(fd, FIONREAD, &avail) != 0)
    return;
  /* Only what is there now (a sender that never pauses must not keep the
   * take going); feed stops it by holding bytes once the cap or the rate
   * is reached. */
  while (got < (size_t)avail && s->held_len == 0 && s->tcp_state == HANDLE_OPEN) {
    size_t want = (size_t)avail - got < sizeof(s->buf) ? (size_t)avail - got : sizeof(s->buf);
    n = recv(fd, s->buf, want, MSG_DONTWAIT);
    if (n <= 0 || feed(s, 0, (size_t)n) < 0)
      break;
    got += (size_t)n;
  }
}

/* The queue was taken: feed what the cap held back and read on. */
static void make_room(ds_socket_t *s) {
  s->queued_records = 0;
  if (!s->full)
    return;
  s->full = 0;
  if (s->state != S_CONNECTED || s->tcp_state != HANDLE_OPEN)
    return;
  if (s->held_len > 0 && (feed(s, s->held_off, s->held_len) < 0 || s->throttled || s->full))
    return;
  if (s->wal_failing)
    s->paused = 1;
  else if (!s->throttled && !s->reading)
    start_reading(s);
}

ds_block_t *ds_socket_take_seqs(ds_socket_t *s, uint64_t *first_seq, uint64_t *last_seq) {
  ds_block_t *taken;
  read_waiting(s);
  seal(s);
  *first_seq = s->queue.head != NULL ? s->first_seq : 0;
  *last_seq = s->queue.head != NULL ? s->last_seq : 0;
  s->first_seq = s->last_seq = 0;
  taken = ds_blockq_take(&s->queue);
  make_room(s);
  return taken;
}

ds_block_t *ds_socket_take(ds_socket_t *s) {
  uint64_t first, last;
  return ds_socket_take_seqs(s, &first, &last);
}

void ds_socket_set_rate(ds_socket_t *s, double rate) {
  if (s->state == S_IDLE)
    s->opts.max_rate = rate > 0 ? rate : 0;
  else
    ds_rate_set(&s->limit, rate, uv_now(s->loop));
  s->stats.rate = rate > 0 ? rate : 0;
}

size_t ds_socket_errors(ds_socket_t *s, ds_socket_report_t *out, size_t max) {
  size_t n = 0;
  while (n < max && s->report_count > 0) {
    out[n++] = s->reports[s->report_head];
    s->report_head = (s->report_head + 1) % s->opts.max_reports;
    s->report_count--;
  }
  return n;
}

void ds_socket_stats(const ds_socket_t *s, ds_socket_stats_t *st) {
  *st = s->stats;
  /* Without a WAL a line counts once split; with one, once in the WAL. */
  st->records = s->sealed_records +
                (s->cur != NULL && s->opts.wal == NULL ? s->cur->count : 0);
  st->skipped = s->lines.skipped;
}

size_t ds_socket_drain(ds_socket_t *s) {
  uv_os_fd_t fd;
  int avail = 0;
  size_t got = 0;
  ssize_t n;
  if (s->state == S_CONNECTED)
    release_held(s); /* the held bytes come first, and buf is free for the drain */
  if (s->state != S_CONNECTED || s->tcp_state != HANDLE_OPEN ||
      uv_fileno((uv_handle_t *)&s->tcp, &fd) != 0 || ioctl(fd, FIONREAD, &avail) != 0)
    return 0;
  /* Only what is there now: a sender that never pauses must not keep the
   * drain going forever. */
  while (got < (size_t)avail) {
    size_t want = (size_t)avail - got < sizeof(s->buf) ? (size_t)avail - got : sizeof(s->buf);
    n = recv(fd, s->buf, want, MSG_DONTWAIT);
    if (n <= 0 || take_in(s, s->buf, (size_t)n) < 0)
      break;
    got += (size_t)n;
  }
  return got;
}

void ds_socket_stop(ds_socket_t *s) {
  if (s->state == S_STOPPED)
    return;
  if (s->state == S_CONNECTED) {
    release_held(s);
    flush_line(s, "the receiver stopped");
  }
  s->state = S_STOPPED;
  if (s->resolving)
    uv_cancel((uv_req_t *)&s->resolve); /* if it already runs, its callback frees */
  free_addrs(s);
  if (s->tcp_state == HANDLE_OPEN)
    close_tcp(s, AFTER_NOTHING);
  uv_timer_stop(&s->retry);
  uv_timer_stop(&s->seal);
  uv_timer_stop(&s->resume);
  s->throttled = 0;
  s->stats.connected = 0;
  s->stats.backoff_ms = 0;
}

void ds_socket_close(ds_socket_t *s) {
  if (s->closing)
    return;
  ds_socket_stop(s);
  s->closing = 1;
  uv_close((uv_handle_t *)&s->retry, on_handle_closed);
  uv_close((uv_handle_t *)&s->seal, on_handle_closed);
  uv_close((uv_handle_t *)&s->resume, on_handle_closed);
}

int ds_socket_closed(const ds_socket_t *s) {
  return s->closing && s->pending == 0;
}

void ds_socket_free(ds_socket_t *s) {
  ds_socket_close(s);
  if (s->pending == 0)
    destroy(s);
  else
    s->free_when_closed = 1;
}
