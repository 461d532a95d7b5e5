/*
 * rproxy_response.c - reads the backend's response and relays it.
 *
 * The head is read straight into the exchange's pooled buffer and parsed in
 * place; only the field names and values that go into r->headers_out are
 * copied.  Body bytes that arrived with the head go to the client from where
 * they lie.  Parsing is strict: anything that is not well-formed HTTP/1.1
 * answers 502 before the head went out, or aborts the client connection
 * after, so a client never takes a broken response for a complete one.
 */
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>

#include "rproxy.h"
#include "http_core.h"
#include "http_protocol.h"
#include "http_request.h"
#include "apr_lib.h"
#include "apr_portable.h"
#include "apr_strings.h"

#define MAX_INTERIM    10     /* 1xx responses before the final one */

typedef enum { FRAME_NONE, FRAME_LENGTH, FRAME_CHUNKED, FRAME_CLOSE } framing;

typedef struct rproxy_response {
    rproxy_exchange *x;
    apr_table_t *fields;          /* the response head's fields */
    int interim;                  /* 1xx responses seen so far */
    int head_done;                /* the final head is read and parsed */
    int status, minor;
    framing frame;
    apr_off_t length;             /* FRAME_LENGTH: body bytes announced */
    apr_size_t head_bytes;
    int field_count;
    apr_bucket_brigade *bb;
    int flush_every;              /* pass a FLUSH with every write */
    apr_time_t unflushed_since;   /* RProxyFlushInterval N: 0 = all flushed */
    int client_gone;
    apr_size_t gathered;          /* body bytes in bb, not yet passed */
    /* What the client's head was before this response's went into r, for
     * a response that fails before any byte reached the client and may be
     * asked of another member: NULL when it may not. */
    apr_table_t *out_before;
    const char *ctype_before;
    ap_filter_t *trailer_filter;
} response;

/* A window's worth this big is written by httpd's core whatever we say;
 * flushing it too makes the core finish the write instead of copying the
 * unwritten rest aside for a slow client (so a slow client costs our one
 * buffer, not that plus up to 64 KiB of copies). */
#define FLUSH_AT_LEAST 8192

#define CONTINUE_WAIT apr_time_from_sec(1)  /* for a backend's 100 */

/* ---- reading from the backend ---- */

static apr_status_t backend_recv(void *ctx, char *dst, apr_size_t *len)
{
    rproxy_exchange *x = ctx;
    apr_status_t rv = rproxy_conn_read(x->conn, dst, len, 1);
    if (*len > 0) {
        x->got_bytes = 1;
    }
    return rv;
}

void rproxy_reader_start(rproxy_exchange *x)
{
    rproxy_reader_init(&x->rd, x->buf.data, x->buf.len, x->r->pool,
                       backend_recv, x);
}

static apr_status_t fill(rproxy_exchange *x)
{
    return rproxy_reader_fill(&x->rd);
}

static apr_status_t read_line(response *rs, char **line, apr_size_t *len)
{
    return rproxy_read_line(&rs->x->rd, line, len);
}

/* Copies a well-formed field line into t. */
static const char *parse_field(response *rs, apr_table_t *t, char *l,
                               apr_size_t len)
{
    char *name, *value;
    const char *why = rproxy_parse_field(l, len, &name, &value);
    if (!why) {
        apr_pool_t *p = rs->x->r->pool;
        apr_table_addn(t, apr_pstrdup(p, name), apr_pstrdup(p, value));
    }
    return why;
}

/* Whether nothing of this response reached the client, nor went into r
 * but what rs->out_before can undo.  A head cut short went nowhere yet (a
 * 1xx before it did), so it may be asked of another member on the same
 * terms as a whole head that out_before was kept for. */
static int unseen_by_client(const response *rs)
{
    const rproxy_exchange *x = rs->x;

    if (!x->got_bytes) {
        return 1;
    }
    if (x->head_sent) {
        return 0;
    }
    /* A 1xx went on to the client: this member's answer has begun there. */
    if (rs->interim) {
        return 0;
    }
    if (rs->head_done) {
        return rs->out_before != NULL;
    }
    return x->replay_fresh && x->idempotent_method;
}

/* Maps a failed backend read to the client's status, logging why. */
static int read_failed(response *rs, apr_status_t rv, const char *what)
{
    rproxy_exchange *x = rs->x;

    x->reusable = 0;
    if (rs->client_gone) {
        return OK;      /* the client left while we handed bytes on */
    }
    if (rv == RPROXY_LINE_TOO_LONG) {
        return rproxy_fail(x, HTTP_BAD_GATEWAY, 0, "%s: line longer than "
                           "%d bytes", what, RPROXY_MAX_LINE);
    }
    if (APR_STATUS_IS_TIMEUP(rv)) {
        return rproxy_fail(x, HTTP_GATEWAY_TIME_OUT, rv, "%s: timed out "
                           "after %" APR_TIME_T_FMT " s", what,
                           apr_time_sec(x->timeout));
    }
    if (unseen_by_client(rs)
        && (x->conn->reused || x->replay_fresh)
        && x->idempotent && !x->body_started
        && (rv == APR_EOF || APR_STATUS_IS_ECONNRESET(rv)
            || APR_STATUS_IS_EPIPE(rv))) {
        /* An idle connection died under us, or (in a group) a new one to a
         * member that was just killed, or one killed in the middle of a
         * response none of which reached the client yet: the request may
         * go again. */
        return RPROXY_STALE;
    }
    if (x->send_failed) {
        return rproxy_fail(x, HTTP_BAD_GATEWAY, x->send_failed,
                           "%s: backend stopped reading the request and "
                           "sent no response", what);
    }
    if (rv == APR_EOF) {
        return rproxy_fail(x, HTTP_BAD_GATEWAY, 0, "%s: backend closed the "
                           "connection", what);
    }
    return rproxy_fail(x, HTTP_BAD_GATEWAY, rv, "%s", what);
}

static int bad_response(response *rs, const char *why)
{
    rs->x->reusable = 0;
    return rproxy_fail(rs->x, HTTP_BAD_GATEWAY, 0, "malformed response: %s",
                       why);
}

/* Reads fields up to the empty line into t, within the head limits. */
static int read_fields(response *rs, apr_table_t *t, const char *what)
{
    const rproxy_server_conf *sc = rs->x->sc;

    for (;;) {
        char *line;
        apr_size_t len;
        const char *why;
        apr_status_t rv = read_line(rs, &line, &len);

        if (rv != APR_SUCCESS) {
            return read_failed(rs, rv, what);
        }
        if (len == 0) {
            return OK;
        }
        rs->head_bytes += len + 2;
        if (rs->head_bytes > sc->max_head_size) {
            return bad_response(rs, apr_psprintf(rs->x->r->pool, "head larger "
                            "than %" APR_SIZE_T_FMT " bytes "
                            "(RProxyMaxResponseHeadSize)", sc->max_head_size));
        }
        if (++rs->field_count > sc->max_headers) {
            return bad_response(rs, apr_psprintf(rs->x->r->pool, "more than %d "
                            "header fields (RProxyMaxResponseHeaders)",
                            sc->max_headers));
        }
        why = parse_field(rs, t, line, len);
        if (why) {
            return bad_response(rs, why);
        }
    }
}

static void relay_interim(response *rs);

/* NULL if the backend's 101 switches to the protocol asked for: a tunnel
 * starts on nothing less (CVE-2019-17567). */
static const char *check_switch(rproxy_exchange *x, apr_table_t *fields)
{
    const char *proto = apr_table_get(fields, "Upgrade");
    apr_array_header_t *tokens;

    if (!x->upgrade) {
        return "101 Switching Protocols to a request that asked for no "
               "upgrade";
    }
    tokens = rproxy_connection_tokens(x->r->pool, fields);
    if (!proto || strcasecmp(proto, x->upgrade)
        || !rproxy_connection_names(tokens, "upgrade")) {
        return apr_psprintf(x->r->pool, "101 Switching Protocols to '%s', "
                            "not the requested '%s'", proto ? proto : "",
                            x->upgrade);
    }
    return NULL;
}

/* Reads response heads until a final one; each 1xx goes to the client.
 * With stop_at_interim, it returns after the first 1xx too. */
static int read_head(response *rs, int stop_at_interim)
{
    rproxy_exchange *x = rs->x;

    x->phase = "reading response head";
    for (;;) {
        char *line;
        apr_size_t len;
        const char *why;
        int status;
        apr_status_t rv = read_line(rs, &line, &len);

        if (rv != APR_SUCCESS) {
            return read_failed(rs, rv, "reading status line");
        }
        why = rproxy_parse_status_line(line, len, &rs->status, &rs->minor);
        if (why) {
            return bad_response(rs, why);
        }
        rs->head_bytes = len + 2;
        rs->field_count = 0;
        apr_table_clear(rs->fields);
        status = read_fields(rs, rs->fields, "reading response head");
        if (status != OK) {
            return status;
        }
        if (rs->status >= 200) {
            rs->head_done = 1;
            return OK;
        }
        if (rs->status == HTTP_SWITCHING_PROTOCOLS) {
            why = check_switch(x, rs->fields);
            if (why) {
                return bad_response(rs, why);
            }
            rs->head_done = 1;
            return OK;
        }
        if (++rs->interim > MAX_INTERIM) {
            return bad_response(rs, "too many 1xx interim responses");
        }
        relay_interim(rs);
        if (stop_at_interim) {
            return OK;
        }
    }
}

/* ---- framing ---- */

typedef struct {
    apr_off_t value;
    int count;
    const char *bad;
} length_scan;

static int scan_length(void *data, const char *key, const char *value)
{
    length_scan *ls = data;
    (void)key;
    ls->bad = rproxy_parse_length(value, &ls->value, &ls->count);
    return ls->bad == NULL;
}

static int count_field(void *data, const char *key, const char *value)
{
    (void)key;
    (void)value;
    (*(int *)data)++;
    return 1;
}

static int decide_framing(response *rs)
{
    request_rec *r = rs->x->r;
    const char *te = apr_table_get(rs->fields, "Transfer-Encoding");
    length_scan ls = { 0, 0, NULL };
    int te_lines = 0;

    apr_table_do(scan_length, &ls, rs->fields, "Content-Length", NULL);
    apr_table_do(count_field, &te_lines, rs->fields, "Transfer-Encoding",
                 NULL);
    if (ls.bad) {
        return bad_response(rs, ls.bad);
    }
    if (te && ls.count) {
        return bad_response(rs, "both Content-Length and Transfer-Encoding");
    }
    if (te && (te_lines > 1 || strcasecmp(te, "chunked"))) {
        return bad_response(rs, "transfer coding other than chunked");
    }
    rs->length = ls.value;
    if (r->header_only || rs->status == HTTP_NO_CONTENT
        || rs->status == HTTP_NOT_MODIFIED) {
        rs->frame = FRAME_NONE;
    }
    else if (te) {
        rs->frame = FRAME_CHUNKED;
    }
    else if (ls.count) {
        rs->frame = FRAME_LENGTH;
    }
    else {
        rs->frame = FRAME_CLOSE;
    }
    return OK;
}

/* ---- the head to the client ---- */

typedef struct {
    request_rec *r;
    const apr_array_header_t *tokens;
    int final;                  /* a final response, not a 1xx */
} field_copy;

static int copy_response_field(void *data, const char *name, const char *value)
{
    field_copy *ctx = data;

    if (rproxy_field_is_hop_by_hop(name, RPROXY_FIELD_NOT_IN_RESPONSE,
                                   ctx->tokens)) {
        return 1;
    }
    if (!strcasecmp(name, "Content-Type") && ctx->final) {
        ap_set_content_type(ctx->r, value);
        return 1;
    }
    apr_table_addn(ctx->r->headers_out, name, value);
    return 1;
}

static const char *status_line(apr_pool_t *p, int status)
{
    const char *known = ap_get_status_line(status);
    if (atoi(known) == status) {
        return known;
    }
    return apr_psprintf(p, "%d ", status);  /* an empty reason is valid */
}

/* The response's fields less hop-by-hop ones, for a 1xx of ours. */
static apr_table_t *end_to_end_fields(response *rs)
{
    request_rec *r = rs->x->r;
    apr_table_t *saved = r->headers_out, *out;
    field_copy ctx;

    ctx.r = r;
    ctx.tokens = rproxy_connection_tokens(r->pool, rs->fields);
    ctx.final = 0;
    out = r->headers_out = apr_table_make(r->pool, 4);
    apr_table_do(copy_response_field, &ctx, rs->fields, NULL);
    r->headers_out = saved;
    return out;
}

/* Sends a 1xx on to the client, hop-by-hop fields removed.  httpd's
 * ap_send_interim_response() skips HTTP/1.0 clients, and a 100 the client
 * did not ask for (or already got). */
static void relay_interim(response *rs)
{
    request_rec *r = rs->x->r;
    apr_table_t *saved = r->headers_out;

    r->headers_out = end_to_end_fields(rs);
    r->status = rs->status;
    r->status_line = status_line(r->pool, rs->status);
    ap_send_interim_response(r, 1);
    r->headers_out = saved;
    r->status = HTTP_OK;
    r->status_line = NULL;
}

/* Re-announces the backend's Trailer names that may cross the proxy. */
static void announce_trailers(response *rs)
{
    request_rec *r = rs->x->r;
    const char *announced = apr_table_get(rs->fields, "Trailer");
    apr_array_header_t *names;
    char *copy, *tok, *last;

    if (!announced) {
        return;
    }
    names = apr_array_make(r->pool, 4, sizeof(char *));
    copy = apr_pstrdup(r->pool, announced);
    for (tok = apr_strtok(copy, ", \t", &last); tok;
         tok = apr_strtok(NULL, ", \t", &last)) {
        if (rproxy_field_allowed_in_trailer(tok)) {
            *(char **)apr_array_push(names) = tok;
        }
    }
    if (names->nelts) {
        apr_table_setn(r->headers_out, "Trailer",
                       apr_array_pstrcat(r->pool, names, ','));
    }
}

static void set_client_head(response *rs)
{
    rproxy_exchange *x = rs->x;
    request_rec *r = x->r;
    field_copy ctx;
    const char *ctype;

    ctx.r = r;
    ctx.tokens = rproxy_connection_tokens(r->pool, rs->fields);
    ctx.final = 1;
    if (rs->minor == 0 || rproxy_connection_names(ctx.tokens, "close")) {
        x->reusable = 0;
    }
    apr_table_do(copy_response_field, &ctx, rs->fields, NULL);
    r->status = rs->status;
    r->status_line = status_line(r->pool, rs->status);
    /* httpd then keeps the backend's Date and Server headers. */
    r->proxyreq = PROXYREQ_REVERSE;
    if (rs->frame == FRAME_LENGTH) {
        ap_set_content_length(r, rs->length);
    }
    else if (r->header_only && apr_table_get(rs->fields, "Content-Length")) {
        apr_table_setn(r->headers_out, "Content-Length",
                       apr_off_t_toa(r->pool, rs->length));
    }
    if (rs->frame == FRAME_CHUNKED) {
        announce_trailers(rs);
        rs->trailer_filter = rproxy_add_trailer_filter(r);
    }
    ctype = r->content_type ? r->content_type : "";
    rs->flush_every = x->dc->flush_interval < 0
                      || rs->frame == FRAME_CHUNKED
                      || rs->frame == FRAME_CLOSE
                      || !strncasecmp(ctype, "text/event-stream", 17);
}

/* ---- relaying the body ---- */

/* Hands what rs->bb holds (body bytes still in the read window, EOS) to
 * the client, with a FLUSH when asked. */
static apr_status_t pass(response *rs, int flush)
{
    request_rec *r = rs->x->r;
    conn_rec *c = r->connection;
    apr_status_t rv;

    if (APR_BRIGADE_EMPTY(rs->bb) && !flush) {
        return APR_SUCCESS;
    }
    if (flush) {
        APR_BRIGADE_INSERT_TAIL(rs->bb,
                                apr_bucket_flush_create(c->bucket_alloc));
        rs->unflushed_since = 0;
    }
    else if (rs->x->dc->flush_interval > 0 && !rs->unflushed_since) {
        rs->unflushed_since = apr_time_now();
    }
    rv = ap_pass_brigade(r->output_filters, rs->bb);
    apr_brigade_cleanup(rs->bb);
    rs->gathered = 0;
    rs->x->head_sent = 1;
    if (rv != APR_SUCCESS || c->aborted) {
        rs->client_gone = 1;
        return rv != APR_SUCCESS ? rv : APR_ECONNABORTED;
    }
    return APR_SUCCESS;
}

/* The read window's before_fill: everything gathered from this window goes
 * out in one pass, so many small chunks make one write, not one each. */
static apr_status_t pass_gathered(void *ctx)
{
    response *rs = ctx;
    return pass(rs, rs->flush_every || rs->gathered >= FLUSH_AT_LEAST);
}

/* Queues body bytes from the read window; they go out before it refills. */
static void pass_bytes(response *rs, const char *data, apr_size_t n)
{
    RPROXY_ADD_FOR(rs->x->dc->target, bytes_from_backend, n);
    rs->gathered += n;
    APR_BRIGADE_INSERT_TAIL(rs->bb, apr_bucket_transient_create(data, n,
                                    rs->x->r->connection->bucket_alloc));
}

/* fill() for body bytes, honouring RProxyFlushInterval N: while data waits
 * unflushed, block on the backend no longer than until it is due. */
static apr_status_t body_fill(response *rs)
{
    rproxy_exchange *x = rs->x;
    apr_interval_time_t wait;
    apr_status_t rv = pass_gathered(rs);

    if (rv != APR_SUCCESS || !rs->unflushed_since) {
        return rv == APR_SUCCESS ? fill(x) : rv;
    }
    wait = rs->unflushed_since + x->dc->flush_interval - apr_time_now();
    if (wait > 0 && wait < x->timeout) {
        rproxy_conn_timeout_set(x->conn, wait);
        rv = fill(x);
        rproxy_conn_timeout_set(x->conn, x->timeout);
        if (!APR_STATUS_IS_TIMEUP(rv)) {
            return rv;
        }
    }
    rv = pass(rs, 1);
    return rv == APR_SUCCESS ? fill(x) : rv;
}

/* Relays exactly n bytes of body. */
static apr_status_t relay_length(response *rs, apr_off_t n)
{
    rproxy_exchange *x = rs->x;

    while (n > 0) {
        apr_size_t avail;
        apr_status_t rv;

        if (x->rd.pos == x->rd.end) {
            rv = body_fill(rs);
            if (rv != APR_SUCCESS) {
                return rv;
            }
        }
        avail = x->rd.end - x->rd.pos;
        if ((apr_off_t)avail > n) {
            avail = (apr_size_t)n;
        }
        pass_bytes(rs, x->rd.buf + x->rd.pos, avail);
        x->rd.pos += avail;
        n -= avail;
    }
    return APR_SUCCESS;
}

static apr_status_t relay_until_close(response *rs)
{
    rproxy_exchange *x = rs->x;

    x->reusable = 0;
    for (;;) {
        apr_status_t rv;
        if (x->rd.pos == x->rd.end) {
            rv = body_fill(rs);
            if (rv == APR_EOF) {
                return rproxy_conn_closed_cleanly(x->conn) ? APR_SUCCESS
                                                           : APR_INCOMPLETE;
            }
            if (rv != APR_SUCCESS) {
                return rv;
            }
        }
        pass_bytes(rs, x->rd.buf + x->rd.pos, x->rd.end - x->rd.pos);
        x->rd.pos = x->rd.end;
    }
}

static int keep_trailer(void *data, const char *name, const char *value)
{
    request_rec *r = data;
    if (rproxy_field_allowed_in_trailer(name)) {
        apr_table_addn(r->trailers_out, name, value);
    }
    return 1;
}

/* Decodes a chunked body; returns an HTTP status for framing errors. */
static int relay_chunked(response *rs, apr_status_t *rv)
{
    rproxy_exchange *x = rs->x;
    apr_table_t *trailers;
    int status;

    for (;;) {
        char *line;
        apr_size_t len;
        apr_off_t size;
        const char *why;

        *rv = read_line(rs, &line, &len);
        if (*rv != APR_SUCCESS) {
            return read_failed(rs, *rv, "reading chunk size");
        }
        /* Only the head's lines may end in a bare LF (RFC 9112 2.2); a
         * chunk line is CRLF-terminated (7.1), as Go insists since
         * CVE-2025-22871. */
        why = x->rd.bare_lf ? "chunk size line ended by a bare LF"
                            : rproxy_parse_chunk_size(line, len, &size);
        if (why) {
            return bad_response(rs, why);
        }
        if (size == 0) {
            break;
        }
        *rv = relay_length(rs, size);
        if (*rv != APR_SUCCESS) {
            return rs->client_gone ? OK : read_failed(rs, *rv, "reading chunk");
        }
        *rv = read_line(rs, &line, &len);
        if (*rv != APR_SUCCESS) {
            return read_failed(rs, *rv, "reading chunk end");
        }
        if (len != 0) {
            return bad_response(rs, "chunk data longer than its size");
        }
        if (x->rd.bare_lf) {
            return bad_response(rs, "chunk data followed by a bare LF");
        }
    }
    trailers = apr_table_make(x->r->pool, 2);
    rs->head_bytes = 0;
    rs->field_count = 0;
    status = read_fields(rs, trailers, "reading trailers");
    if (status == OK) {
        apr_table_do(keep_trailer, x->r, trailers, NULL);
    }
    return status;
}

/* Relays the body; returns OK, or an HTTP status for a backend failure. */
static int relay_body(response *rs)
{
    rproxy_exchange *x = rs->x;
    apr_status_t rv = APR_SUCCESS;
    int status = OK;

    x->phase = "reading response body";
    switch (rs->frame) {
    case FRAME_NONE:
        break;
    case FRAME_LENGTH:
        rv = relay_length(rs, rs->length);
        if (rv != APR_SUCCESS && !rs->client_gone) {
            status = read_failed(rs, rv, apr_psprintf(x->r->pool,
                        "reading %" APR_OFF_T_FMT "-byte body", rs->length));
        }
        break;
    case FRAME_CHUNKED:
        status = relay_chunked(rs, &rv);
        break;
    case FRAME_CLOSE:
        rv = relay_until_close(rs);
        if (rv != APR_SUCCESS && !rs->client_gone) {
            status = read_failed(rs, rv, rv == APR_INCOMPLETE
                                 ? "reading close-delimited body: the TLS "
                                   "connection closed without close_notify"
                                 : "reading close-delimited body");
        }
        break;
    }
    if (x->rd.pos != x->rd.end) {
        x->reusable = 0;      /* stray bytes after the response: never reuse */
    }
    return status;
}

/* Whether the client reads the response's end from its framing: a
 * Content-Length or chunked coding of ours.  A close-delimited one (to an
 * HTTP/1.0 client, or one that asked to close) ends at the FIN. */
static int client_sees_framing(request_rec *r)
{
    return r->chunked
           || apr_table_get(r->headers_out, "Content-Length") != NULL;
}

/* Waits, within limit, for the socket's send queue to empty: the data
 * reached the client's side, and a reset can no longer discard it. */
static void drain_send_queue(apr_os_sock_t fd, apr_interval_time_t limit)
{
    apr_time_t until = apr_time_now() + limit;
    int queued = 0;

    while (ioctl(fd, SIOCOUTQ, &queued) == 0 && queued > 0
           && apr_time_now() < until) {
        apr_sleep(apr_time_from_msec(10));
    }
}

/* The backend failed after the client got our head: make sure the client
 * cannot take what it received for a complete response, yet gets all of
 * it.  What httpd still holds is flushed first (an abort would discard
 * it, leaving the client a reset without a status line).  Then a body
 * whose framing the client reads (Content-Length, chunked without its
 * last chunk) simply ends with the connection; a close-delimited one would
 * look complete at a FIN, so its connection is reset once the bytes left. */
static void abort_client(rproxy_exchange *x)
{
    request_rec *r = x->r;
    conn_rec *c = r->connection;
    apr_bucket_brigade *bb = apr_brigade_create(r->pool, c->bucket_alloc);
    apr_socket_t *csd = ap_get_conn_socket(c);
    apr_os_sock_t fd;

    /* First out with what the filters hold (an output filter such as
     * DEFLATE may not even have let the head through yet)... */
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_flush_create(c->bucket_alloc));
    ap_pass_brigade(r->output_filters, bb);
    apr_brigade_cleanup(bb);
    /* ...then the error bucket, which stops the chunk filter from ending
     * the body. */
    APR_BRIGADE_INSERT_TAIL(bb, ap_bucket_error_create(HTTP_BAD_GATEWAY, NULL,
                                                       r->pool,
                                                       c->bucket_alloc));
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(c->bucket_alloc));
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_flush_create(c->bucket_alloc));
    ap_pass_brigade(r->output_filters, bb);
    x->failed = 1;
    if (c->master) {
        return;     /* an HTTP/2 stream: mod_http2 resets just the stream */
    }
    c->keepalive = AP_CONN_CLOSE;
    if (client_sees_framing(r) || c->aborted) {
        return;     /* a FIN after the short body shows it is cut */
    }
    if (csd && apr_os_sock_get(&fd, csd) == APR_SUCCESS) {
        struct linger lg = { 1, 0 };
        drain_send_queue(fd, x->timeout);
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    c->aborted = 1;     /* no lingering close: its FIN would come first */
}

static int finish(response *rs)
{
    conn_rec *c = rs->x->r->connection;
    apr_status_t rv = APR_SUCCESS;

    /* A streamed response's last bytes go out flushed like the others, and
     * before the EOS: seeing both at once, httpd would frame the response
     * with a Content-Length and lose its trailers. */
    if (rs->flush_every) {
        rv = pass_gathered(rs);
    }
    if (rv == APR_SUCCESS) {
        APR_BRIGADE_INSERT_TAIL(rs->bb,
                                apr_bucket_eos_create(c->bucket_alloc));
        rv = pass(rs, 0);
    }
    if (rv != APR_SUCCESS) {
        /* The client left as the last bytes went.  The backend's response
         * was read to its end, so its connection is as good as ever. */
        RPROXY_COUNT_FOR(rs->x->dc->target, client_aborts);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, rs->x->r,
                      "rproxy: %s: client went away at the end of the "
                      "response", rs->x->dc->target->url);
    }
    return OK;
}

/* The exchange's response state, made on first use in each attempt. */
static response *response_of(rproxy_exchange *x)
{
    request_rec *r = x->r;

    if (!x->resp) {
        x->resp = apr_pcalloc(r->pool, sizeof(response));
        x->resp->x = x;
        x->resp->fields = apr_table_make(r->pool, 16);
        x->resp->bb = apr_brigade_create(r->pool,
                                         r->connection->bucket_alloc);
    }
    return x->resp;
}

/* Reads what the backend says before the body may go: 1xx responses are
 * relayed; a 100, or a second of silence, means send it; a final head
 * means never.  The body reuses the read window's buffer, so this returns
 * OK only once the window holds nothing unread. */
int rproxy_await_continue(rproxy_exchange *x)
{
    response *rs = response_of(x);
    int continued = 0;

    x->phase = "waiting for 100 Continue";
    for (;;) {
        int status;

        if (x->rd.pos == x->rd.end) {
            apr_status_t rv;
            if (continued) {
                return OK;
            }
            rproxy_conn_timeout_set(x->conn, CONTINUE_WAIT < x->timeout
                                                  ? CONTINUE_WAIT
                                                  : x->timeout);
            rv = fill(x);
            rproxy_conn_timeout_set(x->conn, x->timeout);
            if (APR_STATUS_IS_TIMEUP(rv)) {
                return OK;      /* a quiet backend gets the body anyway */
            }
            if (rv != APR_SUCCESS) {
                return read_failed(rs, rv, "waiting for 100 Continue");
            }
        }
        status = read_head(rs, 1);
        if (status != OK) {
            return status;
        }
        if (rs->head_done) {
            return RPROXY_FINAL;
        }
        continued |= rs->status == HTTP_CONTINUE;
    }
}

int rproxy_read_response_head(rproxy_exchange *x)
{
    request_rec *r = x->r;
    response *rs = response_of(x);
    int status = rs->head_done ? OK : read_head(rs, 0);

    if (status != OK) {
        return status;
    }
    /* For LogFormat's %{rproxy-backend-time}n: microseconds from
     * connecting to the backend's response head. */
    apr_table_setn(r->notes, "rproxy-backend-time",
                   apr_psprintf(r->pool, "%" APR_TIME_T_FMT,
                                apr_time_now() - x->started));
    x->backend_status = rs->status;
    if (rs->status == HTTP_SWITCHING_PROTOCOLS) {
        x->switched = end_to_end_fields(rs);
    }
    if (x->retry_statuses) {
        int i;
        for (i = 0; i < x->retry_statuses->nelts; i++) {
            if (APR_ARRAY_IDX(x->retry_statuses, i, int) == rs->status) {
                /* The retry is taken now, while this answer can still go
                 * to the client: refused (another request took the last
                 * one since the caller looked), it does, not a 502. */
                if (!rproxy_group_take_retry(x->dc->target->group)) {
                    break;
                }
                x->reusable = 0;
                return RPROXY_RETRY_STATUS;
            }
        }
    }
    return OK;
}

int rproxy_relay_response(rproxy_exchange *x)
{
    request_rec *r = x->r;
    response *rs = response_of(x);
    int status = decide_framing(rs);

    if (status != OK) {
        return status;
    }
    if (x->replay_fresh && x->idempotent_method && !x->body_started) {
        /* In a group with a member left to try: what the head was, should
         * this response die before reaching the client. */
        rs->out_before = apr_table_copy(r->pool, r->headers_out);
        rs->ctype_before = r->content_type;
    }
    set_client_head(rs);
    /* A streamed response whose first bytes are not here yet: let the
     * client see the head now rather than when the backend speaks again. */
    if (rs->flush_every && rs->frame != FRAME_NONE && x->rd.pos == x->rd.end
        && pass(rs, 1) != APR_SUCCESS) {
        rs->client_gone = 1;
    }
    if (!rs->client_gone) {
        x->rd.before_fill = pass_gathered;
        x->rd.before_fill_ctx = rs;
        status = relay_body(rs);
        x->rd.before_fill = NULL;
        if (status != OK) {
            apr_brigade_cleanup(rs->bb);  /* what a failed body gathered */
        }
    }
    if (rs->client_gone) {
        x->reusable = 0;
        RPROXY_COUNT_FOR(x->dc->target, client_aborts);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "rproxy: %s: client went away during the response; "
                      "closing the backend connection", x->dc->target->url);
        return OK;
    }
    if (status != OK) {
        if (!x->head_sent) {
            /* Nothing reached the client yet: a clean error page, or
             * (RPROXY_STALE) another member's answer, from the head the
             * request had before this one's. */
            r->proxyreq = PROXYREQ_NONE;
            r->status_line = NULL;
            if (status == RPROXY_STALE) {
                r->headers_out = rs->out_before;
                ap_set_content_type(r, rs->ctype_before);
                r->status = HTTP_OK;
                if (rs->trailer_filter) {
                    ap_remove_output_filter(rs->trailer_filter);
                }
            }
            return status;
        }
        abort_client(x);
        return OK;
    }
    return finish(rs);
}
