/*
 * rproxy_tunnel.c - protocol upgrades (RFC 9110 7.8), WebSocket above all.
 *
 * The handler comes here once the request code offered the client's
 * upgrade (only for protocols RProxyAllowUpgrade names) and the response
 * code accepted the backend's 101 (only for the protocol asked for,
 * CVE-2019-17567).  The tunnel copies bytes both ways through buffers
 * from the request's buffer pool, passes a half-close on in each
 * direction, and ends both sides when either fails or nothing moved for
 * RProxyTimeout.
 *
 * The client side goes through the connection's filters, so the tunnel
 * works over TLS too (where a backend's half-close ends the tunnel: mod_ssl
 * has no half-close); the backend side goes through rproxy_conn.c's I/O
 * layer, its raw socket or, to an https backend, its filters (where the
 * client's half-close ends the tunnel, for the same reason).
 */
#include "rproxy.h"
#include "http_connection.h"
#include "http_core.h"
#include "http_protocol.h"
#include "http_request.h"
#include "ap_mmn.h"
#if AP_MODULE_MAGIC_AT_LEAST(20120211, 104)    /* http_ssl.h, 2.4.47 */
#include "http_ssl.h"
#define conn_is_tls(c) ap_ssl_conn_is_ssl(c)
#else
#define conn_is_tls(c) 0     /* older httpd: a raw half-close under TLS */
#endif
#include "apr_poll.h"
#include "apr_strings.h"
#include "util_filter.h"

typedef struct {
    rproxy_exchange *x;
    conn_rec *c;
    apr_socket_t *client, *backend;
    apr_bucket_brigade *bb;
    rproxy_buf up;              /* client -> backend */
    const char *pending;        /* client bytes the backend has not taken */
    apr_size_t pending_len;
    int client_open, backend_open; /* their read sides */
    int shut_backend;           /* client half-closed: pass it on once
                                 * pending is sent */
    int more_up;                /* pump_up stopped with bytes maybe still
                                 * in httpd's input filters */
    int end_tls;                /* the backend finished a TLS tunnel */
    int more_down;              /* pump_down stopped with bytes maybe still
                                 * in the backend's TLS filters */
    apr_off_t bytes_up, bytes_down;
} tunnel;

static apr_status_t to_client(tunnel *t, const char *data, apr_size_t len)
{
    apr_bucket_alloc_t *ba = t->c->bucket_alloc;
    apr_status_t rv;

    APR_BRIGADE_INSERT_TAIL(t->bb, apr_bucket_transient_create(data, len, ba));
    APR_BRIGADE_INSERT_TAIL(t->bb, apr_bucket_flush_create(ba));
    rv = ap_pass_brigade(t->c->output_filters, t->bb);
    apr_brigade_cleanup(t->bb);
    t->bytes_down += len;
    RPROXY_ADD_FOR(t->x->dc->target, bytes_from_backend, len);
    return rv;
}

/* Sends what is pending without blocking: a backend busy writing to us
 * must not leave us blocked writing to it (each would wait for the
 * other).  What it will not take now stays pending until it is writable. */
static apr_status_t send_pending(tunnel *t)
{
    apr_status_t rv = APR_SUCCESS;

    while (t->pending_len > 0) {
        apr_size_t n = t->pending_len;
        rv = rproxy_conn_write_some(t->x->conn, t->pending, &n);
        t->pending += n;
        t->pending_len -= n;
        if (rv != APR_SUCCESS) {
            break;
        }
    }
    if (APR_STATUS_IS_EAGAIN(rv)) {
        return APR_SUCCESS;
    }
    if (rv == APR_SUCCESS && t->shut_backend && !t->pending_len) {
        t->shut_backend = 0;
        if (rproxy_conn_shutdown_write(t->x->conn) == APR_ENOTIMPL) {
            /* A TLS backend cannot be half-closed: the tunnel ends. */
            t->backend_open = 0;
        }
    }
    return rv;
}

/* Takes up to one buffer's worth of what the client sent and hands it to
 * the backend; *moved tells whether bytes went and more may be waiting. */
static apr_status_t pump_up_once(tunnel *t, int *moved)
{
    apr_size_t len = t->up.len;
    apr_status_t rv = ap_get_brigade(t->c->input_filters, t->bb,
                                     AP_MODE_READBYTES, APR_NONBLOCK_READ,
                                     t->up.len);

    *moved = 0;
    if (APR_STATUS_IS_EAGAIN(rv)) {
        apr_brigade_cleanup(t->bb);
        return APR_SUCCESS;
    }
    if (rv == APR_SUCCESS && !APR_BRIGADE_EMPTY(t->bb)
        && APR_BUCKET_IS_EOS(APR_BRIGADE_FIRST(t->bb))) {
        rv = APR_EOF;
    }
    if (rv == APR_SUCCESS) {
        rv = apr_brigade_flatten(t->bb, t->up.data, &len);
    }
    apr_brigade_cleanup(t->bb);
    if (rv == APR_SUCCESS) {
        t->bytes_up += len;
        RPROXY_ADD_FOR(t->x->dc->target, bytes_to_backend, len);
        t->pending = t->up.data;
        t->pending_len = len;
        rv = send_pending(t);
        *moved = len > 0 && !t->pending_len;
        return rv;
    }
    if (APR_STATUS_IS_EOF(rv)) {
        /* The client is done sending: so is the backend's peer. */
        t->client_open = 0;
        t->shut_backend = 1;
        return send_pending(t);
    }
    return rv;
}

/* Moves what the client sent to the backend until httpd's input filters
 * have nothing more: they may hold bytes no poll of the socket announces
 * (read ahead by the core, or TLS records mod_ssl already took off the
 * socket), so a short read is no sign that the rest is still unread.  At
 * most UP_BURST reads at a time, so a client that never pauses cannot keep
 * the backend's bytes from moving the other way; t->more_up then asks the
 * loop to come back without waiting. */
#define UP_BURST 8

static apr_status_t pump_up(tunnel *t)
{
    apr_status_t rv = APR_SUCCESS;
    int moved = 1, reads = 0;

    while (rv == APR_SUCCESS && moved && t->client_open && !t->pending_len
           && reads++ < UP_BURST) {
        rv = pump_up_once(t, &moved);
    }
    t->more_up = rv == APR_SUCCESS && moved && t->client_open
                 && !t->pending_len;
    return rv;
}

/* Moves what the backend sent to the client: over TLS until its filters
 * have nothing more (decrypted bytes no poll of the socket announces), at
 * most DOWN_BURST reads at a time; t->more_down asks to come back. */
#define DOWN_BURST 8

static apr_status_t pump_down(tunnel *t)
{
    rproxy_exchange *x = t->x;
    apr_size_t len;
    apr_status_t rv;
    int reads = 0;

    t->more_down = 0;
    for (;;) {
        len = x->buf.len;
        rv = rproxy_conn_read(x->conn, x->buf.data, &len, 0);
        if (len == 0) {
            break;
        }
        rv = to_client(t, x->buf.data, len);
        if (rv != APR_SUCCESS || !x->conn->c) {
            return rv;
        }
        if (++reads >= DOWN_BURST) {
            t->more_down = 1;
            return APR_SUCCESS;
        }
    }
    if (APR_STATUS_IS_EAGAIN(rv)) {
        return APR_SUCCESS;
    }
    if (rv == APR_EOF || rv == APR_SUCCESS) {
        /* The backend is done sending; to_client flushed all it sent.  No
         * ap_flush_conn() here: its EOC bucket makes mod_ssl free the TLS
         * state that reading the client still uses.  A TLS connection
         * cannot be half-closed under mod_ssl, so there the tunnel ends
         * (end_tls_client); a plain one passes the half-close on. */
        t->backend_open = 0;
        if (conn_is_tls(t->c)) {
            t->client_open = 0;
            t->end_tls = 1;
        }
        else {
            apr_socket_shutdown(t->client, APR_SHUTDOWN_WRITE);
        }
        return APR_SUCCESS;
    }
    return rv;
}

/* Polls each side for what it can do now: the client for reading while
 * the backend has taken everything; the backend for reading while it
 * sends, and for writing while something is pending. */
static void arm(apr_pollset_t *ps, apr_pollfd_t *pfd, apr_int16_t want)
{
    if (pfd->reqevents == want) {
        return;
    }
    if (pfd->reqevents) {
        apr_pollset_remove(ps, pfd);
    }
    pfd->reqevents = want;
    if (want) {
        apr_pollset_add(ps, pfd);
    }
}

static apr_status_t run_tunnel(tunnel *t)
{
    rproxy_exchange *x = t->x;
    apr_pollset_t *ps;
    apr_pollfd_t cfd, bfd;
    apr_status_t rv;

    rv = apr_pollset_create(&ps, 2, x->r->pool, 0);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    memset(&cfd, 0, sizeof(cfd));
    cfd.desc_type = APR_POLL_SOCKET;
    cfd.desc.s = t->client;
    cfd.client_data = &cfd;
    bfd = cfd;
    bfd.desc.s = t->backend;
    bfd.client_data = &bfd;

    /* Bytes that came with the 101, or after the client's request head;
     * over TLS, more may wait decrypted in the backend's filters. */
    if (x->rd.pos < x->rd.end) {
        rv = to_client(t, x->rd.buf + x->rd.pos, x->rd.end - x->rd.pos);
        x->rd.pos = x->rd.end;
    }
    if (rv == APR_SUCCESS) {
        rv = pump_up(t);
    }
    if (rv == APR_SUCCESS && x->conn->c) {
        rv = pump_down(t);
    }
    while (rv == APR_SUCCESS
           && (t->client_open || t->backend_open || t->pending_len)) {
        const apr_pollfd_t *ready;
        apr_int32_t n, i;
        int up_done;

        arm(ps, &cfd, t->client_open && !t->pending_len ? APR_POLLIN : 0);
        arm(ps, &bfd, (t->backend_open ? APR_POLLIN : 0)
                      | (t->pending_len ? APR_POLLOUT : 0));
        rv = apr_pollset_poll(ps, t->more_up || t->more_down ? 0 : x->timeout,
                              &n, &ready);
        if (APR_STATUS_IS_EINTR(rv)) {
            rv = APR_SUCCESS;
            continue;
        }
        if (t->more_down) {
            if (APR_STATUS_IS_TIMEUP(rv)) {
                rv = APR_SUCCESS;
                n = 0;
            }
            if (rv == APR_SUCCESS && t->backend_open) {
                rv = pump_down(t);
            }
        }
        up_done = t->more_up;
        if (up_done) {
            /* Only a look at the backend: the client's read goes on. */
            if (APR_STATUS_IS_TIMEUP(rv)) {
                rv = APR_SUCCESS;
                n = 0;
            }
            if (rv == APR_SUCCESS) {
                rv = pump_up(t);
            }
        }
        for (i = 0; rv == APR_SUCCESS && i < n; i++) {
            apr_int16_t ev = ready[i].rtnevents;
            if (ready[i].client_data == &cfd) {
                if (!up_done) {
                    rv = pump_up(t);
                }
                continue;
            }
            if (t->pending_len && (ev & (APR_POLLOUT | APR_POLLERR))) {
                rv = send_pending(t);
                if (rv == APR_SUCCESS && !t->pending_len) {
                    rv = pump_up(t);
                }
            }
            if (rv == APR_SUCCESS && t->backend_open
                && (ev & (APR_POLLIN | APR_POLLHUP | APR_POLLERR))) {
                rv = pump_down(t);
            }
        }
    }
    return rv;
}

/* The backend finished a TLS tunnel.  All it sent is written (to_client
 * flushes), but may still wait in the socket's send queue for a slow
 * client; closing the socket while the client's bytes lie unread would
 * reset the connection and destroy that tail.  So, as httpd's lingering
 * close does: close_notify (the EOC bucket: mod_ssl's TLS state is done
 * with after it), FIN, then read and drop what the client still sends
 * until it closes, SECONDS_TO_LINGER per read, MAX_SECS_TO_LINGER in all.
 * (Its bytes cannot reach the backend any more: mod_ssl cannot half-close.) */
#define SECONDS_TO_LINGER   2
#define MAX_SECS_TO_LINGER  30

static void end_tls_client(tunnel *t)
{
    apr_time_t give_up = apr_time_now() + apr_time_from_sec(MAX_SECS_TO_LINGER);
    apr_status_t rv;

    ap_flush_conn(t->c);
    if (apr_socket_shutdown(t->client, APR_SHUTDOWN_WRITE) != APR_SUCCESS) {
        return;
    }
    apr_socket_timeout_set(t->client, apr_time_from_sec(SECONDS_TO_LINGER));
    do {
        apr_size_t len = t->up.len;
        rv = apr_socket_recv(t->client, t->up.data, &len);
    } while (rv == APR_SUCCESS && apr_time_now() < give_up);
}

/* Sends the 101 on and tunnels until either side ends; OK or a logged
 * failure (the client connection is closed either way). */
int rproxy_tunnel(rproxy_exchange *x)
{
    request_rec *r = x->r;
    conn_rec *c = r->connection;
    tunnel t;
    apr_status_t rv;
    apr_table_t *saved = r->headers_out;

    memset(&t, 0, sizeof(t));
    t.x = x;
    t.c = c;
    t.client = ap_get_conn_socket(c);
    t.backend = x->conn->sock;
    t.bb = apr_brigade_create(r->pool, c->bucket_alloc);
    t.client_open = t.backend_open = 1;
    x->reusable = 0;
    x->phase = "tunnelling";

    r->headers_out = x->switched;
    apr_table_setn(r->headers_out, "Connection", "Upgrade");
    apr_table_setn(r->headers_out, "Upgrade", x->upgrade);
    r->status = HTTP_SWITCHING_PROTOCOLS;
    r->status_line = NULL;
    ap_send_interim_response(r, 1);
    r->headers_out = saved;
    x->head_sent = 1;

    /* From here on the connection carries the upgraded protocol: no
     * request-line timeouts, and httpd must not write another response. */
    ap_remove_input_filter_byhandle(c->input_filters, "reqtimeout");
    rproxy_buf_get(&t.up, r, x->dc, x->sc);
    rv = run_tunnel(&t);
    if (t.end_tls) {
        end_tls_client(&t);     /* even if pending bytes failed after */
    }
    rproxy_buf_put(&t.up);

    c->keepalive = AP_CONN_CLOSE;
    c->aborted = 1;
    if (APR_STATUS_IS_TIMEUP(rv)) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "rproxy: %s: tunnel idle for %" APR_TIME_T_FMT " s; "
                      "closing both sides", x->dc->target->url,
                      apr_time_sec(x->timeout));
        return OK;
    }
    if (rv != APR_SUCCESS) {
        x->failed = 1;
        rproxy_fail(x, OK, rv, "tunnel broke after %" APR_OFF_T_FMT
                    " bytes up, %" APR_OFF_T_FMT " down", t.bytes_up,
                    t.bytes_down);
    }
    return OK;
}
