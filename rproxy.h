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
#include "util_filter.h"
#include "apr_network_io.h"
#include "apr_atomic.h"
#include "apr_hash.h"

#include "mod_rproxy.h"
#include "rproxy_parse.h"

extern module AP_MODULE_DECLARE_DATA rproxy_module;

/* mod_rproxy.c gets this from AP_DECLARE_MODULE. */
#if defined(APLOG_USE_MODULE) && !defined(RPROXY_MODULE_FILE)
APLOG_USE_MODULE(rproxy);
#endif

/* ---- configuration (mod_rproxy.c) ---- */

/* Where one connection goes: a plain target, or one member of a group. */
typedef struct {
    const char *host;         /* for connect(): a name, or an address */
    apr_port_t port;
    const char *authority;    /* host[:port] as written: the default Host */
    const char *key;          /* "host:port": idle connections are shared by key */
    struct rproxy_target_slot *stats; /* its shared counters (and health) */
    server_rec *server;       /* whose TLS settings (SSLProxy*) apply */
    int tls;                  /* https:// */
    const char *tls_name;     /* https: the name SNI and the certificate
                               * check use, when host is one of its
                               * addresses (a group member); NULL: host */
    int host_is_ip;           /* that name is an IPv4 or IPv6 literal */
    const char *tls_keys[2];  /* https: the idle-set keys with verification
                               * off [0] and on [1]: TLS connections are kept
                               * apart per virtual host (its SSLProxy*
                               * settings) and per verification policy */
} rproxy_backend;

struct rproxy_group;

typedef struct {
    const char *url;          /* as written, for log lines */
    rproxy_backend backend;   /* a plain http[s]:// target's one backend */
    const char *group_name;   /* group://NAME/...: the group, by name */
    struct rproxy_group *group; /* ... found at check_config */
    const char *path;         /* raw path, "" when the URL has none */
    const char *query;        /* raw query, NULL when none */
    server_rec *server;       /* where it was configured, for its name */
    const char *location;     /* the section it is in, for its name */
    struct rproxy_target_slot *stats; /* its shared counters */
    const int *tls_verify;    /* its section's RProxyTLSVerify (-1 unset),
                               * read at check_config for group checks */
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
    apr_array_header_t *retry_statuses;/* RProxyRetryOnStatus; NULL unset */
    int allow_underscores;             /* RProxyAllowUnderscoresInHeaders;
                                        * -1 unset */
    int tls_verify;                    /* RProxyTLSVerify; -1 unset (On) */
    int status_control;                /* RProxyStatusControl; -1 unset */
} rproxy_dir_conf;

typedef struct {
    apr_size_t buffer_size;
    int buffer_size_set;
    int idle_max;                      /* idle backend connections per process */
    apr_interval_time_t idle_timeout;
    apr_size_t max_head_size;          /* backend response head, in bytes */
    int max_headers;                   /* backend response header lines */
    apr_hash_t *groups;                /* <RProxyGroup>s by name */
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
    apr_status_t pending;              /* https: what a top-up read met
                                        * (an end, an error), for the next
                                        * read to return */
    int fd;                            /* plain: the blocking socket that
                                        * rproxy_conn.c reads and writes */
    apr_interval_time_t timeout;       /* plain: its SO_RCVTIMEO and
                                        * SO_SNDTIMEO; -1 none set yet */
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
    const rproxy_backend *backend; /* this attempt's: the target's or a member's */
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
    int idempotent_method;      /* by its method alone, not by an
                                 * Idempotency-Key: a member that answered
                                 * may have acted on it otherwise */
    int body_started;           /* client body reading began: no retry */
    int expect_continue;        /* the backend is asked for a 100 */
    int continue_owed;          /* a final answer before the body cleared
                                 * r->expecting_100; a retry restores it */
    int connect_failed;         /* this attempt got no connection */
    const char *connect_error;  /* ... and why, for the member's health */
    int conn_reused;            /* its connection was a kept-alive one */
    int replay_fresh;           /* RPROXY_STALE for a new connection too:
                                 * a group has other members to try */
    int backend_status;         /* the final status it answered, or 0 */
    const apr_array_header_t *retry_statuses; /* final statuses that give
                                 * RPROXY_RETRY_STATUS, or NULL */
    apr_status_t send_failed;   /* writing to the backend failed */
    const char *phase;          /* for log lines */
    struct rproxy_response *resp; /* rproxy_response.c's state */
    const char *upgrade;        /* protocol offered to the backend */
    apr_table_t *switched;      /* the backend's 101 fields: tunnel now */
    apr_time_t started;         /* this attempt began (for the log note) */
    char *head;                 /* the request head, built once */
    apr_size_t head_len;
    apr_size_t host_at;         /* where the member's Host goes in it, or 0 */
    rproxy_body_framing framing; /* of the request body to the backend */
    rproxy_buf held;            /* the request body read ahead, for sending
                                 * again (RProxyRetryOnStatus); data NULL:
                                 * none */
    apr_size_t held_len;        /* how much of the body it holds */
    int held_whole;             /* all of it: another member may get it */
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
/* Every RProxyTarget read (rproxy_target *). */
const apr_array_header_t *rproxy_stats_targets(void);
apr_status_t rproxy_stats_post_config(apr_pool_t *pconf, apr_pool_t *ptemp,
                                      server_rec *s);
/* ServerName:port of s, as slots name their virtual host. */
const char *rproxy_stats_server_label(apr_pool_t *p, server_rec *s);
/* count slots of size bytes in shared memory named name, restored after a
 * restart when the layout is the same; slots[] gets where each lies. */
apr_status_t rproxy_stats_create(const char *name, apr_size_t size,
                                 unsigned int count, void **slots,
                                 apr_pool_t *pconf, server_rec *s);
/* The slots the last generation had under name, as a graceful restart
 * copied them when it ended, and their count: NULL at the first start,
 * after a stop, or when the slot size changed.  Call it before
 * rproxy_stats_create() for that name. */
const void *rproxy_stats_previous(server_rec *s, const char *name,
                                  apr_size_t size, unsigned int *count);
/* All target slots, used or not; returns their count. */
unsigned int rproxy_stats_target_slots(rproxy_target_slot ***slots);
void rproxy_stats_latency(rproxy_target_slot *ts, apr_interval_time_t us);

/* ---- the failure logger (rproxy_util.c): a leaf ---- */

/* Logs one line naming target, phase and APR error; returns status. */
int rproxy_fail(rproxy_exchange *x, int status, apr_status_t rv,
                const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- backend groups (rproxy_group.c) ---- */

enum { RPROXY_MEMBER_UP, RPROXY_MEMBER_EJECTED, RPROXY_MEMBER_DOWN,
       RPROXY_MEMBER_DRAINING, RPROXY_MEMBER_GONE, RPROXY_MEMBER_STATES };
enum { RPROXY_BALANCE_P2C, RPROXY_BALANCE_ROUND_ROBIN, RPROXY_BALANCE_HASH };
enum { RPROXY_HASH_CLIENT_IP, RPROXY_HASH_HEADER, RPROXY_HASH_COOKIE };

/* One member address, in shared memory. */
typedef struct rproxy_member_slot {
    rproxy_target_slot fig;     /* figures; location: the group's name, url:
                                 * the member as written and its address */
    char host[64];              /* the address connected to */
    char authority[128];        /* the default Host: host[:port] as written */
    char key[80];               /* address:port, for the idle connections;
                                 * https://address:port for an https one,
                                 * so the two never share a name */
    char tls_keys[2][352];      /* https: the idle-set keys, verification
                                 * off [0] and on [1], as rproxy_backend's;
                                 * they hold the name (up to 253 bytes) */
    apr_port_t port;
    int tls;                    /* https:// */
    int weight, backup, conf_index;
    apr_interval_time_t group_slow_start;
    volatile apr_uint32_t health;       /* RPROXY_MEMBER_* */
    volatile apr_uint32_t admin_drain;  /* drained: 0, or RPROXY_DRAIN_* */
    volatile apr_uint32_t fails;        /* failures in a row */
    volatile apr_uint32_t ejections;
    volatile apr_uint32_t check_run;    /* active checks: passes or fails
                                         * in a row (sign: which) */
    volatile apr_uint32_t last_check;   /* its status, 0: none yet,
                                         * 1: no answer (rproxy_check.c) */
    volatile apr_uint64_t ejected_until, back_since;   /* apr_time_t */
    volatile apr_uint64_t failures;
} rproxy_member_slot;

/* Who drained a member: the admin at run time (kept by a restart of the
 * running server), or its RProxyMember "drain" (applied at each). */
#define RPROXY_DRAIN_ADMIN 1
#define RPROXY_DRAIN_CONF 2

/* A group's own shared state. */
typedef struct {
    volatile apr_uint32_t members_gen;      /* bumped when members change */
    volatile apr_uint32_t budget;           /* tenths of a retry */
    volatile apr_uint32_t retries_in_flight;
    volatile apr_uint32_t free_second, free_taken; /* retries past the budget */
    volatile apr_uint64_t retries, retries_refused, no_member;
} rproxy_group_slot;

typedef struct {
    const char *url;            /* as written */
    const char *host;           /* its name */
    apr_port_t port;
    const char *authority;
    int tls;                    /* https://: SNI and the certificate check
                                 * use host, whichever address is used */
    int host_is_ip;             /* host is an address literal */
    int weight, backup, drain;
    apr_array_header_t *addrs;  /* its addresses, at post_config */
} rproxy_member_conf;

typedef struct rproxy_group {
    const char *name;
    server_rec *server;
    apr_array_header_t *members;        /* rproxy_member_conf */
    int balance, hash_source;
    const char *hash_name;              /* header or cookie */
    int eject_after, max_ejected_pct, max_tries;
    apr_array_header_t *eject_statuses; /* 5xx answers that count as
                                         * failures (RProxyEject statuses=) */
    apr_interval_time_t eject_time, eject_max, slow_start;
    apr_interval_time_t resolve_interval;   /* 0: at start only */
    int resolve_interval_set;           /* RProxyResolveInterval given */
    /* active checks; check_method NULL: none */
    const char *check_method, *check_path;
    apr_interval_time_t check_interval, check_timeout;
    int check_rise, check_fall, check_status_lo, check_status_hi;
    int check_tls_verify;               /* https members' checks verify
                                         * (set at check_config) */
    /* shared */
    rproxy_member_slot **slots;
    int n_slots;
    rproxy_group_slot *shared;
    /* per process */
    apr_thread_mutex_t *lock;
    int *rr_current;
    apr_pool_t *ring_pool;
    void *ring;
    int ring_len;
    apr_uint32_t ring_gen;
} rproxy_group;

rproxy_group *rproxy_group_make(apr_pool_t *p, const char *name,
                                server_rec *s);
/* Each member's addresses, at post_config. */
apr_status_t rproxy_group_resolve(rproxy_group *g, apr_pool_t *ptemp);
int rproxy_group_slots_needed(const rproxy_group *g);
/* Gives the group its slots in shared memory; a member address found by
 * its names among old[] (the slots before this generation, wherever they
 * were) keeps its state and figures. */
void rproxy_group_attach(rproxy_group *g, rproxy_member_slot **slots, int n,
                         const rproxy_member_slot *old, int n_old,
                         rproxy_group_slot *shared, apr_pool_t *pconf,
                         apr_pool_t *ptemp);
apr_status_t rproxy_group_child_init(rproxy_group *g, apr_pool_t *pchild);
/* A usable member not yet tried (tried: one flag per slot), or NULL. */
rproxy_member_slot *rproxy_group_pick(rproxy_group *g, request_rec *r,
                                      const unsigned char *tried,
                                      apr_uint32_t *rnd);
/* How many usable members are left untried. */
int rproxy_group_untried(rproxy_group *g, const unsigned char *tried,
                         apr_pool_t *p);
int rproxy_group_slot_index(const rproxy_group *g,
                            const rproxy_member_slot *m);
void rproxy_member_succeeded(rproxy_group *g, rproxy_member_slot *m);
void rproxy_member_failed(rproxy_group *g, rproxy_member_slot *m,
                          const char *why);
const char *rproxy_member_state_name(const rproxy_member_slot *m,
                                     apr_time_t now);
/* Every group of every virtual host: resolved and given its shared memory
 * (post_config), and its per-process state (child_init). */
apr_status_t rproxy_groups_post_config(apr_pool_t *pconf, apr_pool_t *ptemp,
                                       server_rec *s);
apr_status_t rproxy_groups_child_init(apr_pool_t *pchild, server_rec *s);
/* Whether a member answering status counts as a failure. */
int rproxy_group_ejects_on(const rproxy_group *g, int status);
/* Active checks and re-resolution (rproxy_check.c runs them, once for the
 * whole server): one check's result, counted into the member's run of
 * passes or failures; fall failures in a row take an up member down, rise
 * passes bring a down one back (ramping up).  why: the failure, or NULL. */
void rproxy_member_checked(rproxy_group *g, rproxy_member_slot *m,
                           int status, const char *why);
/* The addresses (char *) member conf_index's name has now: slots of
 * addresses gone are drained (gone), new ones take a spare slot. */
void rproxy_group_readdress(rproxy_group *g, int conf_index,
                            const apr_array_header_t *ips, apr_pool_t *p);
/* The retry budget: each request adds to it, each retry takes from it. */
void rproxy_group_count_request(rproxy_group *g);
int rproxy_group_take_retry(rproxy_group *g);
/* Whether a retry would be allowed now (taking nothing). */
int rproxy_group_retry_possible(rproxy_group *g);
void rproxy_group_retry_done(rproxy_group *g);
/* For the status page: the weight a member is picked by now (below its
 * weight during slow start); every group of every virtual host, once
 * (rproxy_group *); a member by its key or its name (fig.url); the
 * admin's drain (1) or enable (0), logged with who; 1 if it changed. */
double rproxy_member_effective_weight(const rproxy_member_slot *m,
                                      apr_time_t now);
apr_array_header_t *rproxy_groups_all(apr_pool_t *p, server_rec *s);
rproxy_member_slot *rproxy_group_find_member(rproxy_group *g,
                                             const char *key);
int rproxy_member_set_drain(rproxy_group *g, rproxy_member_slot *m,
                            int drain, const char *who);

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
/* Whether the backend sent its close_notify. */
int rproxy_tls_close_notified(const rproxy_tls *t);
/* Keeps the connection's session for the next new connection (call only
 * on a healthy connection). */
void rproxy_tls_keep_session(rproxy_tls *t);

/* ---- backend connections (rproxy_conn.c) ---- */

/* A TLS handshake with the backend failed (rproxy_conn_open; the reason
 * is in *why), or ran out of time: not APR_TIMEUP, which is the TCP
 * connect's (a 502, as for a plain backend). */
#define RPROXY_TLS_FAILED (APR_OS_START_USERERR + 140)
#define RPROXY_TLS_TIMEUP (APR_OS_START_USERERR + 141)

apr_status_t rproxy_conn_child_init(apr_pool_t *pchild, server_rec *s);
/* An idle connection to b or a new one (https: handshake done, within
 * timeout, checked unless tls_verify is 0); on failure *why may say why,
 * allocated from why_pool (the failed connection's own pool is gone by
 * then).  r NULL (a health check): the server's TLS settings, not a
 * location's. */
apr_status_t rproxy_conn_open(rproxy_conn **out, const rproxy_backend *b,
                              apr_interval_time_t connect_timeout,
                              apr_interval_time_t timeout, int tls_verify,
                              request_rec *r, apr_pool_t *why_pool,
                              const char **why);
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
/* After a read's APR_EOF: whether the backend closed as a body that ends
 * with the connection needs: always on a plain connection; over TLS only
 * with a close_notify, without which the body may have been cut (RFC 9112
 * 9.8). */
int rproxy_conn_closed_cleanly(const rproxy_conn *c);
/* Half-close: APR_ENOTIMPL over TLS (httpd's TLS modules cannot). */
apr_status_t rproxy_conn_shutdown_write(rproxy_conn *c);
void rproxy_conn_timeout_set(rproxy_conn *c, apr_interval_time_t t);

/* ---- trailers (rproxy_trailers.c) ---- */

/* "0\r\n", the trailer fields that may cross, "\r\n". */
const char *rproxy_last_chunk(apr_pool_t *p, apr_table_t *trailers);
ap_filter_t *rproxy_add_trailer_filter(request_rec *r);
void rproxy_register_trailer_filter(void);

/* ---- the request to the backend (rproxy_request.c) ---- */

int rproxy_build_path(request_rec *r, const rproxy_dir_conf *dc,
                      const char **uri_out);
const char *rproxy_join_path(apr_pool_t *p, const char *a, const char *b);
const char *rproxy_join_query(apr_pool_t *p, const char *a, const char *b);
/* Builds the request head once, before any connection is taken. */
int rproxy_prepare_request(rproxy_exchange *x, const char *uri);
/* Reads the client body ahead into x->held, which the caller got, up to
 * its length: x->held_whole says whether that was all of it.  rproxy_send_body
 * then sends what it holds first (each attempt anew), then streams the
 * rest.  OK, or the status of a client body that could not be read. */
int rproxy_hold_body(rproxy_exchange *x);
/* Each returns OK, or an HTTP status it logged; a failed write to the
 * backend is OK with x->send_failed set: the response tells the rest. */
int rproxy_send_head(rproxy_exchange *x);
int rproxy_send_body(rproxy_exchange *x);

/* ---- the response from the backend (rproxy_response.c) ---- */

/* Points the read window at the exchange's buffer and connection. */
void rproxy_reader_start(rproxy_exchange *x);
/* RPROXY_STALE: a reused idle connection (or, with x->replay_fresh, any
 * connection) failed before any response byte, the request is idempotent
 * and nothing of its body was consumed, so it can be sent again. */
#define RPROXY_STALE (-100)
/* rproxy_await_continue(): the backend answered with a final status
 * before the request body went out; the body must not be sent. */
#define RPROXY_FINAL (-101)
/* rproxy_read_response_head(): the final status is one of
 * x->retry_statuses and the group's retry budget gave the retry (the
 * caller ends it with rproxy_group_retry_done()); nothing was relayed, the
 * connection is not reused. */
#define RPROXY_RETRY_STATUS (-102)
int rproxy_await_continue(rproxy_exchange *x);
/* Reads up to the final head (1xx go to the client); a valid 101 sets
 * x->switched instead. */
int rproxy_read_response_head(rproxy_exchange *x);
int rproxy_relay_response(rproxy_exchange *x);

/* ---- upgraded connections (rproxy_tunnel.c) ---- */

/* Sends the 101 on and tunnels until either side ends. */
int rproxy_tunnel(rproxy_exchange *x);

/* ---- active checks and re-resolution (rproxy_check.c) ---- */

/* configtest: whether what the groups ask for can run (mod_watchdog). */
int rproxy_checks_check_config(apr_pool_t *ptemp, server_rec *s);
/* Registers the one watchdog callback that checks and re-resolves every
 * group's members, in one child at a time. */
apr_status_t rproxy_checks_post_config(apr_pool_t *pconf, server_rec *s);

/* ---- the live view's page (rproxy_status_html.c): data ---- */

extern const char rproxy_status_html[];

/* ---- the status page (rproxy_status.c) ---- */

/* The nonce run-time control POSTs must carry, made anew (post_config). */
apr_status_t rproxy_status_post_config(apr_pool_t *pconf, server_rec *s);
/* GET: the page; POST: drain or enable a member (RProxyStatusControl). */
int rproxy_status_handler(request_rec *r);
/* Adds the section of mod_status's /server-status. */
void rproxy_status_register_hooks(void);

#endif /* RPROXY_H */
