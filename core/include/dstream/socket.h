/* The socket receiver: lines of a TCP connection, as blocks of records.
 *
 * A ds_socket_t is a libuv TCP client living on a loop the caller owns and
 * runs (the engine's). It resolves host (asynchronously), connects to the
 * first address that accepts, and reads into the line splitter
 * (dstream/lines.h), which writes each line as one record into the current
 * block. Every block_interval_ms the current block is sealed and queued;
 * ds_socket_take() seals it too and hands the caller every queued block.
 *
 * WHEN THE CONNECTION BREAKS (refused, reset, closed by the peer, host not
 * resolved, another network error): the unfinished line is kept as a record
 * and reported (DS_ETRUNCATED, with its length: it may have been cut short),
 * the connection is closed, the event is reported, and a new connection is
 * tried after a backoff that starts at backoff_initial_ms, doubles at each
 * failure up to backoff_max_ms and goes back to backoff_initial_ms after a
 * successful connect. A line longer than max_line_bytes is skipped, counted
 * and reported, and the connection carries on.
 *
 * REPORTS: each event becomes a ds_socket_report_t (wall-clock time in ms
 * since the epoch, a DS_E* code, and a message naming the peer, e.g.
 * "ECONNREFUSED: connection refused by localhost:9") in a ring of max_reports
 * entries the caller drains with ds_socket_errors(); when the ring is full a
 * new report is dropped and counted, so a flapping server costs no memory.
 *
 * LIFETIME: libuv closes handles asynchronously, so a socket is freed in two
 * steps. ds_socket_close() starts closing its handles; the loop must run
 * until ds_socket_closed() says they are all closed. ds_socket_free() may be
 * called at any time and exactly once: it closes if needed and frees the
 * memory at once when everything is closed, else from the last close
 * callback, so the loop must still run (the engine runs it before closing).
 * Until freed, records already received stay takeable, even after a close.
 *
 * WRITE-AHEAD LOG: with opts.wal set, every sealed block is appended to the
 * WAL (dstream/wal.h) as stream opts.wal_stream and fdatasync()ed before it
 * counts as received: stats' records, and ds_socket_take(), see a block only
 * once it is in the WAL, and a take says which seqs it holds. If an append
 * fails (disk full, I/O error), the block is kept in memory, in order, and
 * the append is retried at every later seal (each block interval and each
 * take) before any newer block; the first failure of a run is reported
 * (DS_EIO, naming the segment file and the system's reason, and how many
 * lines wait), each failure is counted in stats.wal_errors, and
 * stats.wal_pending says how many lines wait. Meanwhile the connection is
 * not read (TCP holds the sender back), so memory stays bounded by what had
 * been read when the WAL started failing; reading resumes once every
 * waiting block is in the WAL.
 * The socket borrows the WAL, which must outlive it; a closed WAL fails
 * appends like a full disk (DS_ECLOSED).
 *
 * RATE LIMIT: with opts.max_rate > 0 (or ds_socket_set_rate()), a token
 * bucket (dstream/rate.h, burst opts.rate_burst_ms) caps the lines accepted
 * per second. A read holding more lines than there are tokens is split at
 * the last line paid for; the rest stays in the read buffer, reading stops
 * (uv_read_stop) and a timer resumes it when tokens have accrued. While it
 * is stopped the kernel's buffers fill and TCP slows the sender down, so
 * dstream itself never holds more than one read buffer (64 KiB) beyond its
 * rate. A stop, and a graceful drain, take the held bytes in regardless of
 * the rate: they were read, and nothing read is lost.
 *
 * BATCH CAP: with opts.max_pending_records > 0, at most that many records
 * wait for a take: a read is cut at the last line that fits, the rest is
 * held and reading stops (TCP slows the sender, as for the rate) until a
 * take empties the queue. So a take never returns more records than the
 * cap (except the lines a stop, a drain or a broken connection flush in,
 * which were read and are never dropped). Each take also reads, without
 * waiting, what the kernel holds at that moment (within the cap and the
 * rate), so takes made back to back, with no loop run between them, still
 * see the data that arrived meanwhile.
 *
 * OUT OF MEMORY: if the splitter cannot grow a block even after the current
 * block is sealed, the bytes of that read and the unfinished line are
 * dropped, the connection is closed and retried after backoff, and DS_ENOMEM
 * is reported with the number of bytes lost. Records already in blocks are
 * never lost.
 *
 * COSTS: one 64 KiB read buffer and max_reports reports per socket; records
 * cost their bytes plus 4 in a block; nothing is allocated per record.
 */
#ifndef DSTREAM_SOCKET_H
#define DSTREAM_SOCKET_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "dstream/block.h"
#include "dstream/wal.h"

#define DS_SOCKET_MESSAGE_MAX 384

typedef struct ds_socket_s ds_socket_t;

typedef struct {
  const char *host;             /* copied by ds_socket_new() */
  int port;                     /* 1..65535 */
  size_t max_line_bytes;        /* 1 MiB */
  uint64_t block_interval_ms;   /* 0: blocks are sealed only by take */
  uint64_t backoff_initial_ms;  /* 100 */
  uint64_t backoff_max_ms;      /* 2000 */
  size_t max_reports;           /* 64 */
  ds_wal_t *wal;                /* NULL: no WAL; borrowed, must outlive the socket */
  uint64_t wal_stream;          /* the stream number of its blocks in the WAL */
  double max_rate;              /* lines/s; 0: unlimited */
  uint64_t rate_burst_ms;       /* the bucket holds this long's worth: 1000 */
  uint64_t max_pending_records; /* records waiting for a take at most; 0: no cap */
} ds_socket_opts_t;

typedef struct {
  int64_t time_ms;              /* wall clock, ms since the Unix epoch */
  int code;                     /* DS_E* */
  char message[DS_SOCKET_MESSAGE_MAX];
} ds_socket_report_t;

typedef struct {
  uint64_t records;             /* lines received as records */
  uint64_t bytes;               /* bytes read from the network */
  uint64_t skipped;             /* oversize lines skipped */
  uint64_t truncated;           /* unfinished last lines kept as records */
  uint64_t connects;            /* successful connects */
  uint64_t errors;              /* events reported, dropped ones included */
  uint64_t dropped_reports;     /* reports lost to a full ring */
  uint64_t backoff_ms;          /* wait before the next reconnect */
  uint64_t wal_errors;          /* failed WAL appends (each retry counts) */
  uint64_t wal_pending;         /* lines sealed, waiting for the WAL to accept them */
  uint64_t throttles;           /* times reading stopped for the rate limit */
  uint64_t held_bytes;          /* bytes read, waiting for tokens or for room */
  uint64_t capped;              /* times reading stopped for max_pending_records */
  double rate;                  /* the current limit, lines/s; 0: unlimited */
  int connected;
} ds_socket_stats_t;

/* Fill opts with the defaults above (host NULL, port 0). */
void ds_socket_opts_init(ds_socket_opts_t *opts);
/* Create a socket receiver on loop (borrowed, must outlive the socket);
 * nothing happens until ds_socket_start(). DS_EINVAL for a missing host, a
 * port out of range or backoff_initial_ms > backoff_max_ms; DS_ENOMEM. */
int ds_socket_new(uv_loop_t *loop, const ds_socket_opts_t *opts, ds_socket_t **out);
/* Start resolving and connecting. DS_ESTATE if already started or stopped,
 * DS_ECLOSED once closing. */
int ds_socket_start(ds_socket_t *s);
/* Seal the current block and return every queued block as a chain the caller
 * owns (each block freed with ds_block_free); NULL if nothing was received. */
ds_block_t *ds_socket_take(ds_socket_t *s);
/* ds_socket_take(), also giving the WAL seqs of the first and the last block
 * taken (both 0 without a WAL or when nothing is taken). */
ds_block_t *ds_socket_take_seqs(ds_socket_t *s, uint64_t *first_seq, uint64_t *last_seq);
/* Change the rate limit (lines/s; 0: unlimited) from now on. */
void ds_socket_set_rate(ds_socket_t *s, double rate);
/* Move up to max of the oldest reports into out; returns how many. */
size_t ds_socket_errors(ds_socket_t *s, ds_socket_report_t *out, size_t max);
/* Fill *st with the counters. */
void ds_socket_stats(const ds_socket_t *s, ds_socket_stats_t *st);
/* Read, without waiting, the bytes the connection holds right now (in the
 * kernel's buffer, not yet read by the loop) into records: a graceful stop
 * calls this before ds_socket_stop() so that nothing sent before the stop is
 * lost and the sender sees a normal close, not a reset. Returns the bytes
 * read (0 when not connected). */
size_t ds_socket_drain(ds_socket_t *s);
/* Close the connection (its unfinished line becomes a record, reported as
 * DS_ETRUNCATED) and stop reconnecting; records received stay takeable.
 * Idempotent. */
void ds_socket_stop(ds_socket_t *s);
/* Stop, then start closing every handle; idempotent. */
void ds_socket_close(ds_socket_t *s);
/* 1 once ds_socket_close() was called and every handle is closed. */
int ds_socket_closed(const ds_socket_t *s);
/* Close if needed and free s, now or from the last close callback; s must
 * not be used after this call. */
void ds_socket_free(ds_socket_t *s);

#endif
