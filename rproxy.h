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
    int tls;                  /* https:// */
    int host_is_ip;           /* host is an IPv4 or IPv6 literal */
    const char *tls_keys[2];  /* https: the idle-set keys with verification
                               * off [0] and on [1]: TLS connections are kept
                               * apart per virtual host (its SSLProxy*
                               * settings) and per verification policy */
    server_rec *server;       /* where it was configured, for its name */
    const char *location;     /* the section it is in, for its name */
    struct rproxy_target_slot *stats; /* its shared counters */
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
    int tls_verify;                    /* RProxyTLSVerify; -1 unset (On) */
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
    conn_rec *c;                       /* https: the backend conn_rec whose
                                        * filters (httpd's TLS module) carry
                                        * the bytes; NULL: the raw socket */
    apr_bucket_brigade *bb;            /* https: for those filters */
    struct rproxy_tls *tls;            /* https: rproxy_tls.c's state */
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

/* ---- server-wide counters in shared memory (rproxy_stats.c): a leaf ---- */

typedef struct {
    volatile apr_uint64_t gets, puts, buffers_allocated, fallback_buffers;
    volatile apr_uint64_t backend_connects, backend_reuses;
    volatile apr_uint64_t requests, errors, client_aborts;
    volatile apr_uint64_t bytes_from_backend, bytes_to_backend;
    volatile apr_uint32_t active_connections, idle_connections;
} rproxy_counters;

/* Response-time buckets: RPROXY_LATENCY_BUCKETS - 1 upper bounds in
 * rproxy_latency_bounds (microseconds), then one for the rest. */
#define RPROXY_LATENCY_BUCKETS 12
extern const apr_interval_time_t
    rproxy_latency_bounds[RPROXY_LATENCY_BUCKETS - 1];

/* One target's counters and the name that finds them again after a
 * restart. */
typedef struct rproxy_target_slot {
    char server[96];            /* ServerName:port of its virtual host */
    char location[160];         /* its <Location> (or section) path */
    char url[224];              /* the RProxyTarget URL */
    int used;
    volatile apr_uint32_t in_flight;
    volatile apr_uint64_t requests, errors, client_aborts;
    volatile apr_uint64_t backend_connects, backend_reuses;
    volatile apr_uint64_t bytes_from_backend, bytes_to_backend;
    volatile apr_uint64_t latency[RPROXY_LATENCY_BUCKETS];
    volatile apr_uint64_t latency_us;   /* their sum */
} rproxy_target_slot;

/* The server's counters, in shared memory from post_config on. */
extern rproxy_counters *rproxy_stats;
#define RPROXY_COUNT(field) apr_atomic_inc64(&rproxy_stats->field)
#define RPROXY_ADD(field, n) apr_atomic_add64(&rproxy_stats->field, (n))
/* The same for the server and for one target. */
#define RPROXY_COUNT_FOR(t, field) \
    (RPROXY_COUNT(field), apr_atomic_inc64(&(t)->stats->field))
#define RPROXY_ADD_FOR(t, field, n) \
    (RPROXY_ADD(field, n), apr_atomic_add64(&(t)->stats->field, (n)))

/* Whether httpd has a slotmem provider to keep them in. */
const struct ap_slotmem_provider_t *rproxy_stats_provider(void);
void rproxy_stats_pre_config(apr_pool_t *pconf);
/* Each RProxyTarget as it is read; it gets its slot at post_config. */
void rproxy_stats_register_target(rproxy_target *t);
apr_status_t rproxy_stats_post_config(apr_pool_t *pconf, apr_pool_t *ptemp,
                                      server_rec *s);
/* All target slots, used or not; returns their count. */
unsigned int rproxy_stats_target_slots(rproxy_target_slot ***slots);
void rproxy_stats_latency(rproxy_target_slot *ts, apr_interval_time_t us);

/* ---- the failure logger (rproxy_util.c): a leaf ---- */

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

/* ---- TLS to backends through httpd's TLS module (rproxy_tls.c) ---- */

/* With mod_ssl: the handshake's checks (certificate chain and name, even
 * under SSLProxyVerify none) and TLS session resumption, through mod_ssl's
 * pre_handshake and proxy_post_handshake hooks, for mod_rproxy's own
 * backend connections only. */
typedef struct rproxy_tls rproxy_tls;
void rproxy_tls_register_hooks(void);
apr_status_t rproxy_tls_child_init(apr_pool_t *pchild);
/* Marks the backend conn_rec bc as ours before its handshake: host is
 * checked against the certificate unless verify is 0; session_key names
 * the sessions a new connection may resume. */
rproxy_tls *rproxy_tls_attach(conn_rec *bc, const char *host,
                              const char *session_key, int verify);
/* Why the handshake failed (the verification error), or NULL. */
const char *rproxy_tls_error(const rproxy_tls *t);
/* Whether the handshake resumed a session. */
int rproxy_tls_resumed(const rproxy_tls *t);
/* Keeps the connection's session for the next new connection (call only
 * on a healthy connection). */
void rproxy_tls_keep_session(rproxy_tls *t);

/* ---- backend connections (rproxy_conn.c) ---- */

/* A TLS handshake with the backend failed (rproxy_conn_open; the reason
 * is in *why).  A handshake that ran out of time is APR_TIMEUP. */
#define RPROXY_TLS_FAILED (APR_OS_START_USERERR + 140)

apr_status_t rproxy_conn_child_init(apr_pool_t *pchild, server_rec *s);
/* An idle connection to t or a new one (https: handshake done, within
 * timeout, checked unless tls_verify is 0); on failure *why may say why. */
apr_status_t rproxy_conn_open(rproxy_conn **out, const rproxy_target *t,
                              apr_interval_time_t connect_timeout,
                              apr_interval_time_t timeout, int tls_verify,
                              request_rec *r, const char **why);
void rproxy_conn_release(rproxy_conn *c, int reusable);

/* The one I/O layer every reader and writer of a backend connection uses:
 * plain connections on the raw socket, https ones through their conn_rec's
 * filters.  Reads return what is there (up to *len), APR_EOF at the end;
 * non-blocking ones APR_EAGAIN when nothing is.  Writes send everything. */
apr_status_t rproxy_conn_read(rproxy_conn *c, char *dst, apr_size_t *len,
                              int block);
apr_status_t rproxy_conn_write(rproxy_conn *c, const char *data,
                               apr_size_t len);
apr_status_t rproxy_conn_writev(rproxy_conn *c, struct iovec *vec, int n);
/* Sends what the connection takes without waiting (*len: how much); TLS
 * connections take it all, waiting up to the timeout. */
apr_status_t rproxy_conn_write_some(rproxy_conn *c, const char *data,
                                    apr_size_t *len);
/* Half-close: APR_ENOTIMPL over TLS (httpd's TLS modules cannot). */
apr_status_t rproxy_conn_shutdown_write(rproxy_conn *c);
void rproxy_conn_timeout_set(rproxy_conn *c, apr_interval_time_t t);

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

/* ---- the live view's page (rproxy_status_html.c): data ---- */

extern const char rproxy_status_html[];

/* ---- the status page (rproxy_status.c) ---- */

int rproxy_status_handler(request_rec *r);
/* Adds the section of mod_status's /server-status. */
void rproxy_status_register_hooks(void);

#endif /* RPROXY_H */
