/*
 * rproxy_conn.c - backend connections: connect with a timeout, and a small
 * per-process set of idle keep-alive connections to reuse.
 *
 * Each connection owns a pool that lives exactly as long as its socket, so
 * closing a connection is destroying its pool.  Those pools hang off one
 * process-level pool whose allocator has a mutex, which makes creating and
 * destroying them safe from any worker thread.
 *
 * The idle set is a LIFO array: the most recently used connection is the
 * likeliest to be alive and warm; the oldest is evicted when the set is full.
 *
 * This is also the one I/O layer of backend connections (rproxy_conn_read,
 * rproxy_conn_write...): a plain connection is its raw socket; an https
 * one has a backend conn_rec, made as mod_proxy makes its own, bound to
 * httpd's TLS module with ap_ssl_bind_outgoing(), and its bytes go through
 * that conn_rec's filters.  Plain connections stay on the raw socket
 * behind the same functions (bench/RESULTS.md has what the filters would
 * cost them).
 *
 * A plain connection's socket is blocking, with its timeout in
 * SO_RCVTIMEO and SO_SNDTIMEO: waiting for the backend's answer is then
 * one recv() that sleeps, where APR's timed sockets take a poll() and a
 * read() (or a read() that fails with EAGAIN first).  The few reads and
 * writes that must not block pass MSG_DONTWAIT instead.  Nothing may call
 * apr_socket_timeout_set() on such a socket after rproxy_conn_open(): APR
 * would make it non-blocking again behind these functions' back.
 */
#include <sys/socket.h>
#include <sys/uio.h>
#include <errno.h>

#include "rproxy.h"
#include "http_connection.h"
#include "http_ssl.h"
#include "util_filter.h"
#include "apr_portable.h"
#include "apr_strings.h"
#include "apr_thread_mutex.h"
#include "ap_mpm.h"

static apr_pool_t *conns_home;
static apr_thread_mutex_t *idle_lock;
static rproxy_conn **idle;
static int idle_count, idle_cap;
static apr_interval_time_t idle_timeout;

/* The server-wide gauge counts this process's idle connections until it
 * exits, when they close with conns_home. */
static apr_status_t uncount_idle(void *unused)
{
    (void)unused;
    while (idle_count > 0) {
        idle_count--;
        apr_atomic_dec32(&rproxy_stats->idle_connections);
    }
    return APR_SUCCESS;
}

apr_status_t rproxy_conn_child_init(apr_pool_t *pchild, server_rec *s)
{
    const rproxy_server_conf *sc =
        ap_get_module_config(s->module_config, &rproxy_module);
    apr_allocator_t *allocator;
    apr_thread_mutex_t *alloc_lock;
    apr_status_t rv;

    rv = apr_allocator_create(&allocator);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = apr_pool_create_ex(&conns_home, pchild, NULL, allocator);
    if (rv != APR_SUCCESS) {
        apr_allocator_destroy(allocator);
        return rv;
    }
    apr_allocator_owner_set(allocator, conns_home);
    apr_pool_tag(conns_home, "rproxy_conns");
    rv = apr_thread_mutex_create(&alloc_lock, APR_THREAD_MUTEX_DEFAULT,
                                 conns_home);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    apr_allocator_mutex_set(allocator, alloc_lock);
    idle_cap = sc->idle_max;
    if (idle_cap < 0) {
        /* One idle connection per worker thread: as many as can be in use
         * at once, so steady traffic never closes one to open another. */
        int threads = 0;
        ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads);
        idle_cap = threads > 0 ? threads : 1;
    }
    idle_timeout = sc->idle_timeout;
    idle = apr_pcalloc(conns_home, sizeof(*idle) * (idle_cap + 1));
    apr_pool_cleanup_register(conns_home, NULL, uncount_idle,
                              apr_pool_cleanup_null);
    return apr_thread_mutex_create(&idle_lock, APR_THREAD_MUTEX_DEFAULT,
                                   conns_home);
}

static void conn_close(rproxy_conn *c)
{
    apr_pool_destroy(c->pool);
}

static apr_status_t filters_read(rproxy_conn *c, char *dst, apr_size_t *len,
                                 apr_size_t want, int block);

/* An idle connection is usable if reading it would block: no EOF from the
 * backend, and no stray bytes that would be taken for the next response. */
static int idle_conn_alive(rproxy_conn *c)
{
    apr_os_sock_t fd;
    char probe;
    ssize_t n;

    if (c->c) {
        /* Through the filters: stray bytes may lie there, off the socket
         * (the core and mod_ssl read whole records, and more), where no
         * look at the socket sees them.  Then at the socket too: to a
         * non-blocking read httpd's core reports a close (a FIN without
         * close_notify) as nothing to read, which mod_ssl passes on as
         * EAGAIN. */
        apr_size_t len;
        if (!APR_STATUS_IS_EAGAIN(filters_read(c, &probe, &len, 1, 0))) {
            return 0;
        }
    }
    if (apr_os_sock_get(&fd, c->sock) != APR_SUCCESS) {
        return 0;
    }
    n = recv(fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* Removes and returns the newest idle connection for key, closing any stale
 * ones met on the way.  NULL when there is none. */
static rproxy_conn *idle_take(const char *key)
{
    rproxy_conn *found = NULL, *expired[64];
    int i, n_expired = 0;
    apr_time_t oldest_ok = apr_time_now() - idle_timeout;

    apr_thread_mutex_lock(idle_lock);
    for (i = idle_count - 1; i >= 0 && !found; i--) {
        rproxy_conn *c = idle[i];
        int stale = c->idle_since < oldest_ok;
        if (!stale && strcmp(c->key, key) != 0) {
            continue;
        }
        if (stale && n_expired == (int)(sizeof(expired) / sizeof(*expired))) {
            continue;
        }
        memmove(idle + i, idle + i + 1, sizeof(*idle) * (idle_count - i - 1));
        idle_count--;
        apr_atomic_dec32(&rproxy_stats->idle_connections);
        if (stale) {
            expired[n_expired++] = c;
        }
        else {
            found = c;
        }
    }
    apr_thread_mutex_unlock(idle_lock);

    for (i = 0; i < n_expired; i++) {
        conn_close(expired[i]);
    }
    return found;
}

static apr_status_t conn_connect(rproxy_conn **out, const rproxy_backend *t,
                                 const char *key,
                                 apr_interval_time_t connect_timeout)
{
    apr_pool_t *p;
    apr_sockaddr_t *sa;
    apr_socket_t *sock = NULL;
    apr_status_t rv;
    rproxy_conn *c;

    rv = apr_pool_create(&p, conns_home);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    /* Every address the name has, in order, until one answers
     * ("localhost" may give ::1 first to an IPv4-only backend). */
    rv = apr_sockaddr_info_get(&sa, t->host, APR_UNSPEC, t->port, 0, p);
    for (sa = rv == APR_SUCCESS ? sa : NULL; sa; sa = sa->next) {
        rv = apr_socket_create(&sock, sa->family, SOCK_STREAM,
                               APR_PROTO_TCP, p);
        if (rv != APR_SUCCESS) {
            continue;
        }
        apr_socket_opt_set(sock, APR_TCP_NODELAY, 1);
        apr_socket_timeout_set(sock, connect_timeout);
        rv = apr_socket_connect(sock, sa);
        if (rv == APR_SUCCESS) {
            break;
        }
        apr_socket_close(sock);
    }
    if (rv != APR_SUCCESS) {
        apr_pool_destroy(p);
        return rv;
    }
    c = apr_pcalloc(p, sizeof(*c));
    c->pool = p;
    c->sock = sock;
    c->key = apr_pstrdup(p, key);
    c->fd = -1;
    c->timeout = -1;
    *out = c;
    return APR_SUCCESS;
}

/* A plain connection's socket from now on: blocking, its timeouts in the
 * kernel (see the top of this file). */
static apr_status_t raw_blocking(rproxy_conn *c)
{
    apr_os_sock_t fd;
    apr_status_t rv = apr_os_sock_get(&fd, c->sock);

    if (rv == APR_SUCCESS) {
        c->fd = fd;
        rv = apr_socket_timeout_set(c->sock, -1);
    }
    return rv;
}

/* Makes c an https connection: a backend conn_rec on its socket, bound to
 * httpd's TLS module with its server's configuration, then the handshake,
 * within timeout.  APR_SUCCESS, RPROXY_TLS_TIMEUP,
 * or RPROXY_TLS_FAILED with *why. */
static apr_status_t tls_start(rproxy_conn *c, const rproxy_backend *t,
                              apr_interval_time_t timeout, int verify,
                              const char **why)
{
    apr_bucket_alloc_t *ba = apr_bucket_alloc_create(c->pool);
    const char *name = t->tls_name ? t->tls_name : t->host;
    apr_time_t began;
    apr_status_t rv;
    conn_rec *bc;
    int rc;

    bc = ap_run_create_connection(c->pool, t->server, c->sock, 0, NULL, ba);
    if (!bc) {
        *why = "httpd could not make a connection record for it";
        return RPROXY_TLS_FAILED;
    }
    c->c = bc;
    c->bb = apr_brigade_create(c->pool, ba);
    c->tls = rproxy_tls_attach(bc, name, c->key, verify);
    /* Bound with no configuration, mod_ssl takes the SSLProxy* settings of
     * the connection's base server: the server the target or group is
     * written in, the one its idle set's key and configtest go by (a
     * request's own configuration could be another virtual host's, for a
     * group or <Location> inherited from the main server).  That pointer
     * lives as long as the connection: nothing to re-bind per request, as
     * mod_proxy must with its request-scoped one. */
    if (ap_ssl_bind_outgoing(bc, NULL, 1) != OK) {
        *why = "httpd's TLS module refused the connection (is SSLProxyEngine "
               "on in this virtual host?)";
        return RPROXY_TLS_FAILED;
    }
    /* mod_ssl sends the SNI and checks the name against the certificate
     * (SSLProxyCheckPeerName) from this note.  Not for an IP literal: no
     * SNI then (RFC 6066), and mod_ssl's check knows no IP addresses
     * (rproxy_tls.c checks those). */
    if (!t->host_is_ip) {
        apr_table_setn(bc->notes, "proxy-request-hostname", name);
    }
    apr_table_setn(bc->notes, "proxy-request-alpn-protos", "http/1.1");
    rc = ap_run_pre_connection(bc, c->sock);
    if (rc != OK && rc != DONE) {
        *why = "httpd's pre_connection hooks refused the connection";
        return RPROXY_TLS_FAILED;
    }
    /* core_pre_connection set the server's Timeout. */
    apr_socket_timeout_set(c->sock, timeout);
    began = apr_time_now();
    rv = ap_get_brigade(bc->input_filters, c->bb, AP_MODE_INIT,
                        APR_BLOCK_READ, 0);
    apr_brigade_cleanup(c->bb);
    if (rv == APR_SUCCESS && !bc->aborted) {
        return APR_SUCCESS;
    }
    *why = rproxy_tls_error(c->tls);
    if (!*why && (APR_STATUS_IS_TIMEUP(rv)
                  || apr_time_now() - began >= timeout)) {
        /* mod_ssl reports every failed handshake alike. */
        return RPROXY_TLS_TIMEUP;
    }
    if (!*why && !verify) {
        /* Our checks were off, so the refusal is mod_ssl's own, most often
         * the certificate's name or dates, which it checks whatever
         * RProxyTLSVerify says. */
        *why = "the TLS handshake failed; with RProxyTLSVerify off, mod_ssl "
               "still checks the certificate's name and dates "
               "(SSLProxyCheckPeerName, SSLProxyCheckPeerExpire): its lines "
               "at LogLevel info say which";
    }
    if (!*why) {
        *why = "the TLS handshake failed (the TLS module's lines at "
               "LogLevel info say why)";
    }
    return RPROXY_TLS_FAILED;
}

apr_status_t rproxy_conn_open(rproxy_conn **out, const rproxy_backend *t,
                              apr_interval_time_t connect_timeout,
                              apr_interval_time_t timeout, int tls_verify,
                              request_rec *r, apr_pool_t *why_pool,
                              const char **why)
{
    const char *key = t->tls && t->tls_keys[!!tls_verify]
                      ? t->tls_keys[!!tls_verify] : t->key;
    rproxy_conn *c;
    apr_status_t rv;

    *why = NULL;
    while ((c = idle_take(key)) != NULL) {
        if (idle_conn_alive(c)) {
            c->reused = 1;
            RPROXY_COUNT_FOR(t, backend_reuses);
            apr_atomic_inc32(&rproxy_stats->active_connections);
            *out = c;
            return APR_SUCCESS;
        }
        if (r) {    /* health checks (r NULL) never keep one idle */
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                          "rproxy: idle connection to %s was closed by the "
                          "backend; discarding it", t->key);
        }
        conn_close(c);
    }
    rv = conn_connect(&c, t, key, connect_timeout);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    RPROXY_COUNT_FOR(t, backend_connects);
    rv = t->tls ? tls_start(c, t, timeout, tls_verify, why)
                : raw_blocking(c);
    if (rv != APR_SUCCESS) {
        if (*why) {
            *why = apr_pstrdup(why_pool, *why);
        }
        conn_close(c);
        return rv;
    }
    apr_atomic_inc32(&rproxy_stats->active_connections);
    *out = c;
    return APR_SUCCESS;
}

void rproxy_conn_release(rproxy_conn *c, int reusable)
{
    rproxy_conn *evicted = NULL;

    apr_atomic_dec32(&rproxy_stats->active_connections);
    if (!reusable || idle_cap <= 0 || c->pending != APR_SUCCESS) {
        conn_close(c);
        return;
    }
    c->reused = 0;
    c->idle_since = apr_time_now();
    if (c->c) {
        rproxy_tls_keep_session(c->tls);
    }
    apr_thread_mutex_lock(idle_lock);
    if (idle_count == idle_cap) {
        evicted = idle[0];
        memmove(idle, idle + 1, sizeof(*idle) * (idle_count - 1));
        idle_count--;
        apr_atomic_dec32(&rproxy_stats->idle_connections);
    }
    idle[idle_count++] = c;
    apr_atomic_inc32(&rproxy_stats->idle_connections);
    apr_thread_mutex_unlock(idle_lock);
    if (evicted) {
        conn_close(evicted);
    }
}

/* ---- the I/O layer ---- */

void rproxy_conn_timeout_set(rproxy_conn *c, apr_interval_time_t t)
{
    struct timeval tv;

    if (c->c) {
        apr_socket_timeout_set(c->sock, t);
        return;
    }
    if (t == c->timeout) {
        return;         /* the usual case: the same Timeout every request */
    }
    /* A zero timeval would mean no timeout at all. */
    t = t > 0 ? t : 1;
    tv.tv_sec = (time_t)apr_time_sec(t);
    tv.tv_usec = (suseconds_t)apr_time_usec(t);
    if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0
        && setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == 0) {
        c->timeout = t;
    }
}

/* What a failed call on a plain connection's socket means: EAGAIN is the
 * kernel's timeout for a blocking call, and "nothing now" for one with
 * MSG_DONTWAIT. */
static apr_status_t raw_error(int dontwait)
{
    int e = errno;

    if (e == EAGAIN || e == EWOULDBLOCK) {
        return dontwait ? APR_EAGAIN : APR_TIMEUP;
    }
    return APR_FROM_OS_ERROR(e);
}

/* One read through an https connection's filters into dst: *len bytes,
 * APR_EOF at the end, APR_EAGAIN when a non-blocking read finds none. */
static apr_status_t filters_read(rproxy_conn *c, char *dst, apr_size_t *len,
                                 apr_size_t want, int block)
{
    apr_status_t rv;

    *len = 0;
    rv = ap_get_brigade(c->c->input_filters, c->bb, AP_MODE_READBYTES,
                        block ? APR_BLOCK_READ : APR_NONBLOCK_READ, want);
    if (rv == APR_SUCCESS) {
        if (!APR_BRIGADE_EMPTY(c->bb)
            && APR_BUCKET_IS_EOS(APR_BRIGADE_FIRST(c->bb))) {
            rv = APR_EOF;
        }
        else {
            *len = want;
            rv = apr_brigade_flatten(c->bb, dst, len);
            if (rv == APR_SUCCESS && *len == 0) {
                rv = block ? APR_EOF : APR_EAGAIN;
            }
        }
    }
    apr_brigade_cleanup(c->bb);
    if (rv == APR_SUCCESS && c->c->aborted) {
        rv = APR_ECONNABORTED;
    }
    return rv;
}

apr_status_t rproxy_conn_read(rproxy_conn *c, char *dst, apr_size_t *len,
                              int block)
{
    apr_size_t want = *len;
    apr_status_t rv;

    if (!c->c) {
        ssize_t n;

        do {
            n = recv(c->fd, dst, want, block ? 0 : MSG_DONTWAIT);
        } while (n < 0 && errno == EINTR);
        *len = n > 0 ? (apr_size_t)n : 0;
        return n > 0 ? APR_SUCCESS : n == 0 ? APR_EOF : raw_error(!block);
    }
    *len = 0;
    if (c->pending != APR_SUCCESS) {
        rv = c->pending;
        c->pending = APR_SUCCESS;
        return rv;
    }
    rv = filters_read(c, dst, len, want, block);
    if (rv != APR_SUCCESS && *len > 0) {
        c->pending = rv;        /* the bytes first */
        rv = APR_SUCCESS;
    }
    /* mod_ssl hands over at most 8 KiB a call: what more is decrypted
     * already, or waiting on the socket, fills the rest of dst now, so a
     * body goes to the client in buffer-sized writes, not 8 KiB ones. */
    while (rv == APR_SUCCESS && *len < want) {
        apr_size_t more = 0;
        apr_status_t more_rv = filters_read(c, dst + *len, &more,
                                            want - *len, 0);
        *len += more;
        if (more_rv != APR_SUCCESS) {
            /* Nothing now; or an end or error, which the bytes before it
             * go out ahead of and the next read returns. */
            if (!APR_STATUS_IS_EAGAIN(more_rv)) {
                c->pending = more_rv;
            }
            break;
        }
    }
    return rv;
}

/* Passes the brigade and a flush down the backend conn_rec's filters. */
static apr_status_t filters_write(rproxy_conn *c)
{
    apr_status_t rv;

    APR_BRIGADE_INSERT_TAIL(c->bb,
                            apr_bucket_flush_create(c->c->bucket_alloc));
    rv = ap_pass_brigade(c->c->output_filters, c->bb);
    apr_brigade_cleanup(c->bb);
    if (rv == APR_SUCCESS && c->c->aborted) {
        rv = APR_ECONNABORTED;
    }
    if (rv != APR_SUCCESS) {
        /* httpd's core marks the connection aborted when a write fails,
         * and mod_ssl then reads nothing more; but what the backend sent
         * before it stopped reading (an early 413, say) is still to be
         * read, as on a plain connection. */
        c->c->aborted = 0;
    }
    return rv;
}

apr_status_t rproxy_conn_write(rproxy_conn *c, const char *data,
                               apr_size_t len)
{
    struct iovec vec;

    vec.iov_base = (void *)data;
    vec.iov_len = len;
    return rproxy_conn_writev(c, &vec, 1);
}

apr_status_t rproxy_conn_writev(rproxy_conn *c, struct iovec *vec, int n)
{
    if (c->c) {
        int i;
        for (i = 0; i < n; i++) {
            APR_BRIGADE_INSERT_TAIL(c->bb, apr_bucket_transient_create(
                                               vec[i].iov_base, vec[i].iov_len,
                                               c->c->bucket_alloc));
        }
        return filters_write(c);
    }
    while (n > 0 && !vec->iov_len) {
        vec++;
        n--;
    }
    while (n > 0) {
        struct msghdr msg;
        ssize_t sent;

        memset(&msg, 0, sizeof(msg));
        msg.msg_iov = vec;
        msg.msg_iovlen = n;
        /* MSG_NOSIGNAL: a backend gone is an error here, never SIGPIPE. */
        sent = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno == EINTR) {
                continue;
            }
            return raw_error(0);
        }
        while (n > 0 && (apr_size_t)sent >= vec->iov_len) {
            sent -= vec->iov_len;
            vec++;
            n--;
        }
        if (n > 0) {
            vec->iov_base = (char *)vec->iov_base + sent;
            vec->iov_len -= sent;
        }
    }
    return APR_SUCCESS;
}

apr_status_t rproxy_conn_write_some(rproxy_conn *c, const char *data,
                                    apr_size_t *len)
{
    ssize_t n;

    if (c->c) {
        return rproxy_conn_write(c, data, *len);
    }
    do {
        n = send(c->fd, data, *len, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    *len = n > 0 ? (apr_size_t)n : 0;
    return n >= 0 ? APR_SUCCESS : raw_error(1);
}

int rproxy_conn_closed_cleanly(const rproxy_conn *c)
{
    return !c->c || rproxy_tls_close_notified(c->tls);
}

apr_status_t rproxy_conn_shutdown_write(rproxy_conn *c)
{
    if (c->c) {
        return APR_ENOTIMPL;
    }
    return apr_socket_shutdown(c->sock, APR_SHUTDOWN_WRITE);
}
