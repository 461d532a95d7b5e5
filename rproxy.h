/*
 * rproxy.h - what the parts of mod_rproxy share with each other.
 * Not installed: the public interface is mod_rproxy.h.
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
} rproxy_dir_conf;

typedef struct {
    apr_size_t buffer_size;
    int buffer_size_set;
    int idle_max;                      /* idle backend connections per process */
    apr_interval_time_t idle_timeout;
    apr_size_t max_head_size;          /* backend response head, in bytes */
    int max_headers;                   /* backend response header lines */
} rproxy_server_conf;

/* ---- counters (rproxy_status.c) ---- */

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

int rproxy_status_handler(request_rec *r);

/* ---- buffer pools (rproxy_pool.c) ---- */

extern const rproxy_buffer_pool rproxy_apr_pool;
extern const rproxy_buffer_pool rproxy_none_pool;

/* The one buffer a request copies its bodies through. */
typedef struct {
    char *data;
    apr_size_t len;
    const rproxy_buffer_pool *pool;    /* NULL: request-pool fallback */
    server_rec *s;
} rproxy_buf;

apr_status_t rproxy_pool_child_init(apr_pool_t *pchild);
void rproxy_buf_get(rproxy_buf *b, request_rec *r, const rproxy_dir_conf *dc,
                    const rproxy_server_conf *sc);
void rproxy_buf_put(rproxy_buf *b);

/* ---- backend connections (rproxy_conn.c) ---- */

typedef struct rproxy_conn {
    apr_pool_t *pool;                  /* lives exactly as long as the socket */
    apr_socket_t *sock;
    const char *key;
    apr_time_t idle_since;
    int reused;                        /* came from the idle set */
} rproxy_conn;

apr_status_t rproxy_conn_child_init(apr_pool_t *pchild, server_rec *s);
apr_status_t rproxy_conn_open(rproxy_conn **out, const rproxy_target *t,
                              apr_interval_time_t connect_timeout,
                              request_rec *r);
void rproxy_conn_release(rproxy_conn *c, int reusable);
int rproxy_conn_idle_count(void);
apr_status_t rproxy_send_all(apr_socket_t *s, const char *data, apr_size_t len);
apr_status_t rproxy_sendv_all(apr_socket_t *s, struct iovec *vec, int n);

/* ---- one proxied exchange ---- */

typedef enum { BODY_NONE, BODY_LENGTH, BODY_CHUNKED, BODY_INVALID }
    body_framing;

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
    apr_time_t started;         /* this attempt began (for the log note) */
    char *head;                 /* the request head, built once */
    apr_size_t head_len;
    body_framing framing;       /* of the request body to the backend */
} rproxy_exchange;

/* rproxy_request.c */
int rproxy_build_path(request_rec *r, const rproxy_dir_conf *dc,
                      const char **uri_out);
const char *rproxy_join_path(apr_pool_t *p, const char *a, const char *b);
const char *rproxy_join_query(apr_pool_t *p, const char *a, const char *b);
int rproxy_prepare_request(rproxy_exchange *x, const char *uri);
int rproxy_send_request(rproxy_exchange *x);
apr_array_header_t *rproxy_connection_tokens(apr_pool_t *p, apr_table_t *h);
int rproxy_in_list(const char *name, const char *const *list);
int rproxy_is_hop_by_hop(const char *name, const apr_array_header_t *tokens);

/* rproxy_trailers.c */
int rproxy_trailer_allowed(const char *name);
const char *rproxy_last_chunk(apr_pool_t *p, apr_table_t *trailers);
void rproxy_add_trailer_filter(request_rec *r);
void rproxy_register_trailer_filter(void);

/* rproxy_response.c; rproxy_reader_start() points the read window at the
 * exchange's buffer and backend connection. */
void rproxy_reader_start(rproxy_exchange *x);
/* RPROXY_STALE: a reused idle connection failed before
 * any response byte and nothing of the request body was consumed, so the
 * request can be sent again on a fresh connection. */
#define RPROXY_STALE (-100)
/* rproxy_await_continue(): the backend answered with a final status
 * before the request body went out; the body must not be sent. */
#define RPROXY_FINAL (-101)
int rproxy_await_continue(rproxy_exchange *x);
int rproxy_relay_response(rproxy_exchange *x);

/* rproxy_tunnel.c */
const char *rproxy_requested_upgrade(request_rec *r,
                                     const rproxy_dir_conf *dc,
                                     const apr_array_header_t *conn_tokens);
const char *rproxy_check_switch(rproxy_exchange *x, apr_table_t *fields);
int rproxy_tunnel(rproxy_exchange *x, apr_table_t *headers_101);

/* Logs one line naming target, phase and APR error; returns status. */
int rproxy_fail(rproxy_exchange *x, int status, apr_status_t rv,
                const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif /* RPROXY_H */
