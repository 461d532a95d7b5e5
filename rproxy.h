/*
 * rproxy.h - what the parts of mod_rproxy share with each other.
 * Not installed: the public interface is mod_rproxy.h.
 *
 * The layering rule: calls between the module's files only go down.  This
 * header is ordered bottom-up, one section per file after the shared
 * types, and a file calls only the files declared above its own section.
 * So the handler in mod_rproxy.c decides what happens next, and helpers
 * that several files need live in leaves (rproxy_fields.c, rproxy_util.c)
 * rather than in the file that happened to need them first.
 */
#ifndef RPROXY_H
#define RPROXY_H

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "apr_network_io.h"
#include "apr_atomic.h"

#include "mod_rproxy.h"
#include "rproxy_parse.h"

extern module AP_MODULE_DECLARE_DATA rproxy_module;

/* mod_rproxy.c gets this from AP_DECLARE_MODULE. */
#if defined(APLOG_USE_MODULE) && !defined(RPROXY_MODULE_FILE)
APLOG_USE_MODULE(rproxy);
#endif

/* ---- configuration (mod_rproxy.c) ---- */

typedef struct {
    const char *url;          /* as written, for log lines */
    const char *host;         /* for connect() */
    apr_port_t port;
    const char *authority;    /* host[:port] as written: the default Host */
    const char *path;         /* raw path, "" when the URL has none */
    const char *query;        /* raw query, NULL when none */
    const char *key;          /* "host:port": idle connections are shared by key */
} rproxy_target;

typedef struct {
    const rproxy_target *target;
    const char *strip_prefix;          /* literal <Location> path, or NULL */
    const rproxy_buffer_pool *pool;    /* NULL: the apr pool */
    apr_interval_time_t timeout;       /* -1: the server's Timeout */
    apr_interval_time_t connect_timeout;
    apr_interval_time_t flush_interval;/* 0 end only, -1 every write */
    int flush_interval_set;
    int preserve_host;                 /* -1 unset */
    int add_forwarded;                 /* -1 unset */
    apr_array_header_t *upgrades;      /* RProxyAllowUpgrade; NULL unset */
    int allow_underscores;             /* RProxyAllowUnderscoresInHeaders;
                                        * -1 unset */
} rproxy_dir_conf;

typedef struct {
    apr_size_t buffer_size;
    int buffer_size_set;
    int idle_max;                      /* idle backend connections per process */
    apr_interval_time_t idle_timeout;
    apr_size_t max_head_size;          /* backend response head, in bytes */
    int max_headers;                   /* backend response header lines */
} rproxy_server_conf;

/* ---- types every layer shares ---- */

/* The one buffer a request copies its bodies through. */
typedef struct {
    char *data;
    apr_size_t len;
    const rproxy_buffer_pool *pool;    /* NULL: request-pool fallback */
    server_rec *s;
} rproxy_buf;

typedef struct rproxy_conn {
    apr_pool_t *pool;                  /* lives exactly as long as the socket */
    apr_socket_t *sock;
    const char *key;
    apr_time_t idle_since;
    int reused;                        /* came from the idle set */
} rproxy_conn;

typedef enum {
    RPROXY_BODY_NONE, RPROXY_BODY_LENGTH, RPROXY_BODY_CHUNKED,
    RPROXY_BODY_INVALID
} rproxy_body_framing;

/* One proxied exchange: what the handler's phases hand each other. */
typedef struct {
    request_rec *r;
    const rproxy_dir_conf *dc;
    const rproxy_server_conf *sc;
    rproxy_conn *conn;
    rproxy_buf buf;
    rproxy_reader rd;           /* backend read window over buf */
    apr_interval_time_t timeout;
    int got_bytes;              /* the backend sent something */
    int head_sent;              /* the client has our status line */
    int reusable;               /* backend connection may go back idle */
    int failed;                 /* the backend failed after our head went
                                 * out: an error, though the status is OK */
    int idempotent;             /* may be retried on a fresh connection */
    int body_started;           /* client body reading began: no retry */
    int expect_continue;        /* the backend is asked for a 100 */
    apr_status_t send_failed;   /* writing to the backend failed */
    const char *phase;          /* for log lines */
    struct rproxy_response *resp; /* rproxy_response.c's state */
    const char *upgrade;        /* protocol offered to the backend */
    apr_table_t *switched;      /* the backend's 101 fields: tunnel now */
    apr_time_t started;         /* this attempt began (for the log note) */
    char *head;                 /* the request head, built once */
    apr_size_t head_len;
    rproxy_body_framing framing; /* of the request body to the backend */
} rproxy_exchange;

/*
 * The files' functions follow, one section per file, bottom-up.  The rule:
 * a file calls only the files declared above its own section (rproxy_parse.c,
 * the httpd-free parser, is the lowest, in rproxy_parse.h).  mod_rproxy.c,
 * the configuration, hooks and handler, sits on top and declares nothing
 * here.  A new concern gets a new file and a new section at the height of
 * what it calls; it never calls up.
 */

/* ---- header-field rules (rproxy_fields.c): a leaf ---- */

/* Where a field name may not go on as it is. */
#define RPROXY_FIELD_NOT_IN_REQUEST  0x01  /* dropped from the client's
                                            * request: hop-by-hop, or the
                                            * proxy writes its own */
#define RPROXY_FIELD_NOT_IN_RESPONSE 0x02  /* dropped from the backend's
                                            * response: hop-by-hop */
#define RPROXY_FIELD_NOT_IN_TRAILER  0x04  /* never in a trailer section */
#define RPROXY_FIELD_X_FORWARDED     0x08  /* replaced under
                                            * RProxyAddForwarded On */

unsigned int rproxy_field_flags(const char *name);
/* The tokens of every Connection line of h, lower-cased. */
apr_array_header_t *rproxy_connection_tokens(apr_pool_t *p, apr_table_t *h);
/* Whether those tokens name the field (or option) name. */
int rproxy_connection_names(const apr_array_header_t *tokens,
                            const char *name);
/* Whether name is hop-by-hop for a message going in direction (one of the
 * NOT_IN flags above), by the table or by the message's Connection. */
int rproxy_field_is_hop_by_hop(const char *name, unsigned int direction,
                               const apr_array_header_t *tokens);
#define rproxy_field_allowed_in_trailer(name) \
    (!(rproxy_field_flags(name) & RPROXY_FIELD_NOT_IN_TRAILER))

/* ---- counters and the failure logger (rproxy_util.c): a leaf ---- */

typedef struct {
    volatile apr_uint64_t gets, puts, buffers_allocated, fallback_buffers;
    volatile apr_uint64_t backend_connects, backend_reuses;
    volatile apr_uint64_t requests, errors, client_aborts;
    volatile apr_uint64_t bytes_from_backend, bytes_to_backend;
    volatile apr_uint32_t active_connections;
} rproxy_counters;

extern rproxy_counters rproxy_stats;
#define RPROXY_COUNT(field) apr_atomic_inc64(&rproxy_stats.field)
#define RPROXY_ADD(field, n) apr_atomic_add64(&rproxy_stats.field, (n))

/* Logs one line naming target, phase and APR error; returns status. */
int rproxy_fail(rproxy_exchange *x, int status, apr_status_t rv,
                const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- buffer pools (rproxy_pool.c) ---- */

extern const rproxy_buffer_pool rproxy_apr_pool;
extern const rproxy_buffer_pool rproxy_none_pool;

apr_status_t rproxy_pool_child_init(apr_pool_t *pchild);
void rproxy_buf_get(rproxy_buf *b, request_rec *r, const rproxy_dir_conf *dc,
                    const rproxy_server_conf *sc);
void rproxy_buf_put(rproxy_buf *b);

/* ---- backend connections (rproxy_conn.c) ---- */

apr_status_t rproxy_conn_child_init(apr_pool_t *pchild, server_rec *s);
apr_status_t rproxy_conn_open(rproxy_conn **out, const rproxy_target *t,
                              apr_interval_time_t connect_timeout,
                              request_rec *r);
void rproxy_conn_release(rproxy_conn *c, int reusable);
int rproxy_conn_idle_count(void);
apr_status_t rproxy_send_all(apr_socket_t *s, const char *data, apr_size_t len);
apr_status_t rproxy_sendv_all(apr_socket_t *s, struct iovec *vec, int n);

/* ---- trailers (rproxy_trailers.c) ---- */

/* "0\r\n", the trailer fields that may cross, "\r\n". */
const char *rproxy_last_chunk(apr_pool_t *p, apr_table_t *trailers);
void rproxy_add_trailer_filter(request_rec *r);
void rproxy_register_trailer_filter(void);

/* ---- the request to the backend (rproxy_request.c) ---- */

int rproxy_build_path(request_rec *r, const rproxy_dir_conf *dc,
                      const char **uri_out);
const char *rproxy_join_path(apr_pool_t *p, const char *a, const char *b);
const char *rproxy_join_query(apr_pool_t *p, const char *a, const char *b);
/* Builds the request head once, before any connection is taken. */
int rproxy_prepare_request(rproxy_exchange *x, const char *uri);
/* Each returns OK, or an HTTP status it logged; a failed write to the
 * backend is OK with x->send_failed set: the response tells the rest. */
int rproxy_send_head(rproxy_exchange *x);
int rproxy_send_body(rproxy_exchange *x);

/* ---- the response from the backend (rproxy_response.c) ---- */

/* Points the read window at the exchange's buffer and connection. */
void rproxy_reader_start(rproxy_exchange *x);
/* RPROXY_STALE: a reused idle connection failed before
 * any response byte and nothing of the request body was consumed, so the
 * request can be sent again on a fresh connection. */
#define RPROXY_STALE (-100)
/* rproxy_await_continue(): the backend answered with a final status
 * before the request body went out; the body must not be sent. */
#define RPROXY_FINAL (-101)
int rproxy_await_continue(rproxy_exchange *x);
/* Reads up to the final head (1xx go to the client); a valid 101 sets
 * x->switched instead. */
int rproxy_read_response_head(rproxy_exchange *x);
int rproxy_relay_response(rproxy_exchange *x);

/* ---- upgraded connections (rproxy_tunnel.c) ---- */

/* Sends the 101 on and tunnels until either side ends. */
int rproxy_tunnel(rproxy_exchange *x);

/* ---- the status page (rproxy_status.c) ---- */

int rproxy_status_handler(request_rec *r);

#endif /* RPROXY_H */
