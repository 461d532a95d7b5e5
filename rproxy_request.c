/*
 * rproxy_request.c - the request that goes to the backend: its target URI,
 * its header block (hop-by-hop headers stripped first, ours added last, so a
 * client's Connection header cannot remove what the proxy adds), and the
 * client's body streamed through the exchange's pooled buffer.
 */
#include "rproxy.h"
#include "http_core.h"
#include "http_protocol.h"
#include "http_request.h"
#include "apr_lib.h"
#include "apr_strings.h"
#include "util_filter.h"

/* ---- target URI ---- */

/* Go's joinURLPath on escaped paths: exactly one slash between a and b. */
const char *rproxy_join_path(apr_pool_t *p, const char *a, const char *b)
{
    size_t alen = strlen(a);
    int aslash = alen > 0 && a[alen - 1] == '/';
    int bslash = b[0] == '/';

    if (aslash && bslash) {
        return apr_pstrcat(p, a, b + 1, NULL);
    }
    if (!aslash && !bslash) {
        return apr_pstrcat(p, a, "/", b, NULL);
    }
    return apr_pstrcat(p, a, b, NULL);
}

/* Go's director: target query, then '&', then the request's. */
const char *rproxy_join_query(apr_pool_t *p, const char *a, const char *b)
{
    a = a ? a : "";
    b = b ? b : "";
    if (!*a || !*b) {
        return apr_pstrcat(p, a, b, NULL);
    }
    return apr_pstrcat(p, a, "&", b, NULL);
}

static int hexval(int c)
{
    return apr_isdigit(c) ? c - '0' : apr_tolower(c) - 'a' + 10;
}

/* Decodes one character of an escaped path at *s, advancing *s. */
static int next_decoded(const char **s)
{
    const char *p = *s;
    if (p[0] == '%' && apr_isxdigit(p[1]) && apr_isxdigit(p[2])) {
        *s = p + 3;
        return (hexval(p[1]) << 4) | hexval(p[2]);
    }
    *s = p + 1;
    return (unsigned char)p[0];
}

/* The <Location> prefix is matched against the decoded URI, but we forward
 * the escaped path: find how much of the escaped path the prefix covers.
 * Returns NULL if the path does not start with the prefix. */
static const char *skip_prefix(const char *path, const char *prefix)
{
    while (*prefix) {
        if (!*path || next_decoded(&path) != (unsigned char)*prefix++) {
            return NULL;
        }
    }
    return path;
}

/* True if any segment of the escaped path decodes to "." or "..", counting
 * %2F as a separator and ';' as ending the segment ("..;" is ".." to
 * Tomcat and Jetty): such a path could climb out of the target path on a
 * backend that decodes before it resolves. */
static int has_dot_segment(const char *path)
{
    int seg_len = 0, dots = 0, in_params = 0;

    for (;;) {
        int end = !*path;
        int c = end ? '/' : next_decoded(&path);

        if (c == '/') {
            if (seg_len > 0 && seg_len == dots && dots <= 2) {
                return 1;
            }
            if (end) {
                return 0;
            }
            seg_len = dots = in_params = 0;
        }
        else if (c == ';') {
            in_params = 1;
        }
        else if (!in_params) {
            seg_len++;
            dots += c == '.';
        }
    }
}

static int is_request_target_safe(const char *s)
{
    for (; *s; s++) {
        unsigned char c = *s;
        if (c <= 0x20 || c == 0x7f) {
            return 0;
        }
    }
    return 1;
}

/* The request's path as the client escaped it (httpd decodes r->uri and
 * r->parsed_uri.path in place, so only r->unparsed_uri still has the
 * client's escapes), with its dot-segments resolved as httpd resolved them
 * in r->uri.  Slashes are not merged, whatever MergeSlashes says: that is
 * for matching <Location>s, and the backend gets the path as received (as
 * mod_proxy's nocanon, Go and HAProxy send it).  NULL if it is not an
 * absolute path. */
static char *client_escaped_path(request_rec *r)
{
    const char *u = r->unparsed_uri, *scheme_end;
    unsigned int flags = AP_NORMALIZE_NOT_ABOVE_ROOT
                         | AP_NORMALIZE_DECODE_UNRESERVED;
    char *path;

    if (!u) {
        return NULL;
    }
    if (u[0] != '/' && (scheme_end = strstr(u, "://")) != NULL) {
        u = ap_strchr_c(scheme_end + 3, '/');   /* absolute-form */
        if (!u) {
            return NULL;
        }
    }
    if (u[0] != '/') {
        return NULL;
    }
    path = apr_pstrmemdup(r->pool, u, strcspn(u, "?#"));
    return ap_normalize_path(path, flags) ? path : NULL;
}

int rproxy_build_path(request_rec *r, const rproxy_dir_conf *dc,
                      const char **uri_out)
{
    const char *raw = client_escaped_path(r);
    const char *rest, *path, *query;

    if (!raw) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "rproxy: request target is not an absolute path; "
                      "refusing to forward it to %s", dc->target->url);
        return HTTP_BAD_REQUEST;
    }
    rest = raw;
    if (dc->strip_prefix) {
        rest = skip_prefix(raw, dc->strip_prefix);
        if (!rest) {
            /* r->uri was rewritten (mod_rewrite [PT], an alias...) after
             * the client's path: forward the new path, escaped. */
            raw = ap_os_escape_path(r->pool, r->uri, 1);
            rest = skip_prefix(raw, dc->strip_prefix);
        }
        if (!rest) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          "rproxy: path does not start with its <Location> "
                          "prefix '%s'", dc->strip_prefix);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    if (has_dot_segment(rest)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "rproxy: request path has an encoded dot-segment that "
                      "could escape the target path; refused");
        return HTTP_BAD_REQUEST;
    }
    path = rproxy_join_path(r->pool, dc->target->path, rest);
    query = rproxy_join_query(r->pool, dc->target->query, r->args);
    /* A client's empty query keeps its '?' (Go's URL.ForceQuery). */
    *uri_out = *query || r->args ? apr_pstrcat(r->pool, path, "?", query, NULL)
                                 : path;
    if (!is_request_target_safe(*uri_out)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "rproxy: request target holds spaces or control "
                      "bytes; refused");
        return HTTP_BAD_REQUEST;
    }
    return OK;
}

/* ---- header block ---- */

static int has_token(const char *value, const char *token)
{
    return value && ap_find_token(NULL, value, token);
}

static int valid_field(const char *name, const char *value)
{
    const char *end = ap_scan_http_token(name);
    if (end == name || *end) {
        return 0;
    }
    for (; *value; value++) {
        unsigned char c = *value;
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return 0;
        }
    }
    return 1;
}

typedef struct {
    apr_pool_t *p;
    struct iovec *vec;
    int n, cap;
} head_writer;

static void put_str(head_writer *w, const char *s)
{
    if (w->n == w->cap) {
        struct iovec *grown = apr_palloc(w->p, sizeof(*grown) * w->cap * 2);
        memcpy(grown, w->vec, sizeof(*grown) * w->n);
        w->vec = grown;
        w->cap *= 2;
    }
    w->vec[w->n].iov_base = (void *)s;
    w->vec[w->n].iov_len = strlen(s);
    w->n++;
}

static void put_header(head_writer *w, const char *name, const char *value)
{
    put_str(w, name);
    put_str(w, ": ");
    put_str(w, value);
    put_str(w, "\r\n");
}

/* Flattens the iovecs into one string so the head goes out in one write. */
static char *flatten(head_writer *w, apr_size_t *len)
{
    apr_size_t total = 0;
    char *out, *p;
    int i;
    for (i = 0; i < w->n; i++) {
        total += w->vec[i].iov_len;
    }
    p = out = apr_palloc(w->p, total + 1);
    for (i = 0; i < w->n; i++) {
        memcpy(p, w->vec[i].iov_base, w->vec[i].iov_len);
        p += w->vec[i].iov_len;
    }
    *p = '\0';
    *len = total;
    return out;
}

typedef struct {
    head_writer *w;
    request_rec *r;
    const apr_array_header_t *tokens;
    int add_forwarded;
    int allow_underscores;
    apr_array_header_t *dropped; /* names with '_' not forwarded */
    const char *xff;           /* the client's X-Forwarded-For, folded */
    int bad;                   /* a field that must not be forwarded */
} copy_ctx;

static int copy_request_header(void *data, const char *name, const char *value)
{
    copy_ctx *ctx = data;
    unsigned int flags = rproxy_field_flags(name);

    if (!valid_field(name, value)) {
        ctx->bad = 1;
        return 0;
    }
    if ((flags & RPROXY_FIELD_NOT_IN_REQUEST)
        || rproxy_connection_names(ctx->tokens, name)) {
        return 1;
    }
    /* CGI and WSGI map '_' and '-' to one variable: X_Forwarded_For could
     * pose as X-Forwarded-For (nginx's underscores_in_headers off, httpd's
     * CGI drop them too). */
    if (!ctx->allow_underscores && ap_strchr_c(name, '_')) {
        *(const char **)apr_array_push(ctx->dropped) = name;
        return 1;
    }
    if (ctx->add_forwarded && (flags & RPROXY_FIELD_X_FORWARDED)) {
        if (!strcasecmp(name, "X-Forwarded-For")) {
            ctx->xff = ctx->xff ? apr_pstrcat(ctx->r->pool, ctx->xff, ", ",
                                              value, NULL)
                                : value;
        }
        return 1;
    }
    put_header(ctx->w, name, value);
    return 1;
}

/* The Host the backend gets: the client's under RProxyPreserveHost On,
 * else the target's; a group's member is known only per attempt, so its
 * Host goes in when the head is sent (*per_member). */
static const char *host_header(request_rec *r, const rproxy_dir_conf *dc,
                               int *bad, int *per_member)
{
    const char *host = apr_table_get(r->headers_in, "Host");
    *bad = 0;
    *per_member = 0;
    if (dc->preserve_host != 1 || !host) {
        *per_member = dc->target->group != NULL;
        return *per_member ? "" : dc->target->backend.authority;
    }
    for (const char *p = host; *p; p++) {
        unsigned char c = *p;
        if (c <= 0x20 || c == 0x7f || c == '/' || c == '\\' || c == '@') {
            *bad = 1;
        }
    }
    return host;
}


/* Whether a request's Transfer-Encoding is "chunked" alone.  httpd's core
 * only checks that chunked comes last, so "gzip, chunked" or "chunked,
 * chunked" reach the handler with one layer of chunking undone; forwarding
 * the rest as plain content would change the message (RFC 9112 6.1: the
 * codings are hop-by-hop, and chunked is applied once). */
static int chunked_only(const char *te)
{
    apr_size_t n;

    while (*te == ' ' || *te == '\t') {
        te++;
    }
    if (strncasecmp(te, "chunked", 7)) {
        return 0;
    }
    for (n = 7; te[n] == ' ' || te[n] == '\t'; n++)
        ;
    return te[n] == '\0';
}

/* How the body goes to the backend.  An input filter (SetInputFilter
 * DEFLATE, say) may change the body's length, so a filtered body goes
 * chunked whatever Content-Length the client announced. */
static rproxy_body_framing client_body_framing(request_rec *r, const char **cl)
{
    apr_off_t len;
    char *end;

    /* An error document's redirect is a GET that keeps the failed
     * request's Content-Length or Transfer-Encoding, but that body was
     * read (or thrown away) already: announcing it would leave the
     * backend waiting for bytes that never come, or take the start of
     * the next request on the connection for them (httpd drops them from
     * a subrequest's headers itself). */
    if (r->prev && ap_is_HTTP_ERROR(r->prev->status)) {
        *cl = NULL;
        return RPROXY_BODY_NONE;
    }
    *cl = apr_table_get(r->headers_in, "Content-Length");
    if (apr_table_get(r->headers_in, "Transfer-Encoding")) {
        return RPROXY_BODY_CHUNKED;   /* httpd accepts no other request coding */
    }
    if (!*cl) {
        return RPROXY_BODY_NONE;
    }
    if (!apr_isdigit(**cl) || apr_strtoff(&len, *cl, &end, 10) != APR_SUCCESS
        || *end || len < 0) {
        return RPROXY_BODY_INVALID;
    }
    if (r->input_filters != r->proto_input_filters) {
        return RPROXY_BODY_CHUNKED;
    }
    *cl = apr_off_t_toa(r->pool, len);     /* as a number: "005" is 5 */
    return RPROXY_BODY_LENGTH;
}

/* The protocol the client asks to upgrade to, if it may be forwarded:
 * "Connection: upgrade" plus one Upgrade protocol whose name (before any
 * "/version") RProxyAllowUpgrade allows.  h2c is never forwarded. */
static const char *requested_upgrade(request_rec *r, const rproxy_dir_conf *dc,
                                     const apr_array_header_t *conn_tokens)
{
    static const char *const websocket_only[] = { "websocket" };
    const char *proto = apr_table_get(r->headers_in, "Upgrade");
    const char *const *allowed = websocket_only;
    int i, n_allowed = 1;
    apr_size_t name_len;

    if (dc->upgrades) {
        allowed = (const char *const *)dc->upgrades->elts;
        n_allowed = dc->upgrades->nelts;
    }
    if (!proto || r->proto_num != HTTP_VERSION(1, 1)
        || !rproxy_connection_names(conn_tokens, "upgrade")
        || ap_strchr_c(proto, ',')) {
        return NULL;
    }
    name_len = strcspn(proto, "/ \t");
    for (i = 0; i < n_allowed; i++) {
        if (strlen(allowed[i]) == name_len
            && !strncasecmp(proto, allowed[i], name_len)
            && !(name_len == 3 && !strncasecmp(proto, "h2c", 3))) {
            return proto;
        }
    }
    return NULL;
}

static int build_head(rproxy_exchange *x, const char *uri, rproxy_body_framing bf,
                      const char *cl, char **head, apr_size_t *len)
{
    request_rec *r = x->r;
    head_writer w = { r->pool, NULL, 0, 32 };
    copy_ctx ctx = { &w, r, NULL, x->dc->add_forwarded,
                     x->dc->allow_underscores == 1, NULL, NULL, 0 };
    const char *host;
    int bad_host, per_member, host_vec;

    if (!*r->method || *ap_scan_http_token(r->method)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "rproxy: request method is not a token; refused");
        return HTTP_BAD_REQUEST;
    }
    w.vec = apr_palloc(r->pool, sizeof(*w.vec) * w.cap);
    ctx.tokens = rproxy_connection_tokens(r->pool, r->headers_in);

    put_str(&w, r->method);
    put_str(&w, " ");
    put_str(&w, uri);
    put_str(&w, " HTTP/1.1\r\n");
    host = host_header(r, x->dc, &bad_host, &per_member);
    if (bad_host) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "rproxy: client Host header is not a valid host; "
                      "not forwarding it (RProxyPreserveHost On)");
        return HTTP_BAD_REQUEST;
    }
    host_vec = w.n + 2;         /* "Host", ": ", then the value */
    put_header(&w, "Host", host);
    ctx.dropped = apr_array_make(r->pool, 2, sizeof(const char *));
    apr_table_do(copy_request_header, &ctx, r->headers_in, NULL);
    if (ctx.bad) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "rproxy: request header with an invalid name or value; "
                      "refused");
        return HTTP_BAD_REQUEST;
    }
    if (ctx.dropped->nelts) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "rproxy: request headers with '_' in their name not "
                      "forwarded (RProxyAllowUnderscoresInHeaders Off): %s",
                      apr_array_pstrcat(r->pool, ctx.dropped, ' '));
    }
    x->upgrade = requested_upgrade(r, x->dc, ctx.tokens);
    if (x->upgrade) {
        put_header(&w, "Connection", "Upgrade");
        put_header(&w, "Upgrade", x->upgrade);
    }
    /* A client sending TE must also name it in Connection (RFC 9110
     * 10.1.4), so that naming does not hide "trailers". */
    if (has_token(apr_table_get(r->headers_in, "TE"), "trailers")) {
        put_header(&w, "TE", "trailers");
        put_header(&w, "Connection", "TE");     /* RFC 9110 10.1.4: a MUST */
    }
    /* Only for content (RFC 9110 10.1.1): "Content-Length: 0" has none,
     * and a backend waiting for it would cost the one-second wait. */
    x->expect_continue = bf != RPROXY_BODY_NONE && r->expecting_100
                         && !(bf == RPROXY_BODY_LENGTH && !strcmp(cl, "0"));
    if (x->expect_continue) {
        put_header(&w, "Expect", "100-continue");
    }
    if (bf == RPROXY_BODY_LENGTH) {
        put_header(&w, "Content-Length", cl);
    }
    else if (bf == RPROXY_BODY_CHUNKED) {
        put_header(&w, "Transfer-Encoding", "chunked");
    }
    if (ctx.add_forwarded) {
        const char *client = r->useragent_ip;
        const char *xhost = apr_table_get(r->headers_in, "Host");
        put_header(&w, "X-Forwarded-For",
                   ctx.xff ? apr_pstrcat(r->pool, ctx.xff, ", ", client, NULL)
                           : client);
        if (xhost) {
            put_header(&w, "X-Forwarded-Host", xhost);
        }
        put_header(&w, "X-Forwarded-Proto", ap_http_scheme(r));
    }
    put_str(&w, "\r\n");
    if (per_member) {
        int k;
        x->host_at = 0;
        for (k = 0; k < host_vec; k++) {
            x->host_at += w.vec[k].iov_len;
        }
    }
    *head = flatten(&w, len);
    return OK;
}

/* ---- body ---- */

/* Reads the next piece of the client body, up to cap bytes, into dst. */
static apr_status_t read_client_body(rproxy_exchange *x, apr_bucket_brigade *bb,
                                     char *dst, apr_size_t cap,
                                     apr_size_t *len, int *eos)
{
    apr_status_t rv;
    apr_off_t avail;

    rv = ap_get_brigade(x->r->input_filters, bb, AP_MODE_READBYTES,
                        APR_BLOCK_READ, cap);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *eos = !APR_BRIGADE_EMPTY(bb)
           && APR_BUCKET_IS_EOS(APR_BRIGADE_LAST(bb));
    rv = apr_brigade_length(bb, 1, &avail);
    if (rv == APR_SUCCESS && avail > (apr_off_t)cap) {
        rv = APR_ENOSPC;        /* the input filters broke their promise */
    }
    if (rv == APR_SUCCESS) {
        *len = cap;
        rv = apr_brigade_flatten(bb, dst, len);
    }
    apr_brigade_cleanup(bb);
    return rv;
}

/* A client body that could not be read: its status, logged. */
static int client_body_failed(rproxy_exchange *x, apr_status_t rv)
{
    x->r->connection->keepalive = AP_CONN_CLOSE;
    x->reusable = 0;
    /* AP_FILTER_ERROR: an input filter answered and logged already */
    ap_log_rerror(APLOG_MARK, APLOG_ERR, rv == AP_FILTER_ERROR ? 0 : rv,
                  x->r, "rproxy: %s: %s: the client's request body could "
                  "not be read", x->dc->target->url, x->phase);
    return ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
}

static apr_status_t send_body_piece(rproxy_exchange *x, const char *data,
                                    apr_size_t len, int chunked)
{
    char size_line[32];
    struct iovec vec[3];

    RPROXY_ADD_FOR(x->dc->target, bytes_to_backend, len);
    if (!chunked) {
        return rproxy_conn_write(x->conn, data, len);
    }
    if (len == 0) {
        return APR_SUCCESS;
    }
    vec[0].iov_base = size_line;
    vec[0].iov_len = apr_snprintf(size_line, sizeof(size_line),
                                  "%" APR_UINT64_T_HEX_FMT "\r\n",
                                  (apr_uint64_t)len);
    vec[1].iov_base = (void *)data;
    vec[1].iov_len = len;
    vec[2].iov_base = "\r\n";
    vec[2].iov_len = 2;
    return rproxy_conn_writev(x->conn, vec, 3);
}

int rproxy_hold_body(rproxy_exchange *x)
{
    request_rec *r = x->r;
    apr_bucket_brigade *bb = apr_brigade_create(r->pool,
                                                r->connection->bucket_alloc);
    int eos = 0;

    x->phase = "reading request body ahead";
    while (!eos && x->held_len < x->held.len) {
        apr_size_t len;
        apr_status_t rv = read_client_body(x, bb, x->held.data + x->held_len,
                                           x->held.len - x->held_len, &len,
                                           &eos);
        if (rv != APR_SUCCESS) {
            return client_body_failed(x, rv);
        }
        x->held_len += len;
    }
    x->held_whole = eos;
    return OK;
}

typedef struct {
    const rproxy_exchange *x;
    const apr_array_header_t *tokens;
    apr_table_t *out;
} trailer_ctx;

static int copy_request_trailer(void *data, const char *name,
                                const char *value)
{
    trailer_ctx *ctx = data;
    const rproxy_dir_conf *dc = ctx->x->dc;

    if (rproxy_connection_names(ctx->tokens, name)
        || (dc->allow_underscores != 1 && ap_strchr_c(name, '_'))
        || (dc->add_forwarded
            && (rproxy_field_flags(name) & RPROXY_FIELD_X_FORWARDED))) {
        return 1;
    }
    apr_table_addn(ctx->out, name, value);
    return 1;
}

/* The client's trailers that may go on: a backend that merges trailers
 * into the header section (httpd's MergeTrailers On) must not get in them
 * what copy_request_header keeps out of the head, an X-Forwarded-For the
 * proxy replaces or an X_Forwarded_For it drops.  rproxy_last_chunk drops
 * the names no trailer may carry. */
static apr_table_t *request_trailers(const rproxy_exchange *x)
{
    request_rec *r = x->r;
    trailer_ctx ctx;

    if (!r->trailers_in || apr_is_empty_table(r->trailers_in)) {
        return r->trailers_in;
    }
    ctx.x = x;
    ctx.tokens = rproxy_connection_tokens(r->pool, r->headers_in);
    ctx.out = apr_table_make(r->pool, 4);
    apr_table_do(copy_request_trailer, &ctx, r->trailers_in, NULL);
    return ctx.out;
}

/* Sends what rproxy_hold_body kept, then streams the rest of the client
 * body; on a client-side failure answers its status. */
int rproxy_send_body(rproxy_exchange *x)
{
    request_rec *r = x->r;
    apr_bucket_brigade *bb = apr_brigade_create(r->pool,
                                                r->connection->bucket_alloc);
    int chunked = x->framing == RPROXY_BODY_CHUNKED;
    int eos = 0, held = x->held.data != NULL;

    x->phase = "sending request body";
    /* Past what is held, the client's bytes go out once: no resending. */
    x->body_started = !x->held_whole;
    while (!eos) {
        apr_size_t len;
        const char *data = x->buf.data;
        apr_status_t rv;
        if (held) {
            data = x->held.data;
            len = x->held_len;
            eos = x->held_whole;
            held = 0;
        }
        else {
            rv = read_client_body(x, bb, x->buf.data, x->buf.len, &len,
                                  &eos);
            if (rv != APR_SUCCESS) {
                return client_body_failed(x, rv);
            }
        }
        rv = send_body_piece(x, data, len, chunked);
        if (APR_STATUS_IS_TIMEUP(rv)) {
            r->connection->keepalive = AP_CONN_CLOSE;
            x->reusable = 0;
            return rproxy_fail(x, HTTP_GATEWAY_TIME_OUT, rv, "backend read "
                               "nothing for %" APR_TIME_T_FMT " s",
                               apr_time_sec(x->timeout));
        }
        if (rv != APR_SUCCESS) {
            /* The backend may have answered early (413, say) and closed:
             * its response is still worth reading. */
            r->connection->keepalive = AP_CONN_CLOSE;
            x->reusable = 0;
            x->send_failed = rv;
            return OK;
        }
    }
    if (chunked) {
        const char *last = rproxy_last_chunk(r->pool, request_trailers(x));
        apr_status_t rv = rproxy_conn_write(x->conn, last, strlen(last));
        if (rv != APR_SUCCESS) {
            x->reusable = 0;
            x->send_failed = rv;
        }
    }
    return OK;
}

/* Builds the request head once, before any backend connection is taken:
 * a request we refuse costs the backend nothing, and a retry resends the
 * same bytes. */
int rproxy_prepare_request(rproxy_exchange *x, const char *uri)
{
    const char *cl;

    const char *te = apr_table_get(x->r->headers_in, "Transfer-Encoding");

    /* RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty
     * framing (a 1.0 hop may not have understood it), and the connection
     * must close after the answer: what follows the body could be read as
     * another request.  httpd's core lets it through. */
    if (te && x->r->proto_num < HTTP_VERSION(1, 1)) {
        x->r->connection->keepalive = AP_CONN_CLOSE;
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, x->r,
                      "rproxy: %s: HTTP/1.0 request with Transfer-Encoding: "
                      "faulty framing; refused, closing the connection",
                      x->dc->target->url);
        return HTTP_BAD_REQUEST;
    }
    if (te && !chunked_only(te)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, x->r,
                      "rproxy: %s: request Transfer-Encoding '%s' is not "
                      "chunked alone; refused", x->dc->target->url, te);
        x->r->connection->keepalive = AP_CONN_CLOSE;
        return HTTP_NOT_IMPLEMENTED;
    }
    x->framing = client_body_framing(x->r, &cl);
    if (x->framing == RPROXY_BODY_INVALID) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, x->r,
                      "rproxy: %s: invalid request Content-Length '%s'",
                      x->dc->target->url, cl);
        return HTTP_BAD_REQUEST;
    }
    return build_head(x, uri, x->framing, cl, &x->head, &x->head_len);
}

int rproxy_send_head(rproxy_exchange *x)
{
    apr_status_t rv;

    x->phase = "sending request head";
    if (x->host_at) {
        struct iovec vec[3];
        vec[0].iov_base = x->head;
        vec[0].iov_len = x->host_at;
        vec[1].iov_base = (void *)x->backend->authority;
        vec[1].iov_len = strlen(x->backend->authority);
        vec[2].iov_base = x->head + x->host_at;
        vec[2].iov_len = x->head_len - x->host_at;
        rv = rproxy_conn_writev(x->conn, vec, 3);
    }
    else {
        rv = rproxy_conn_write(x->conn, x->head, x->head_len);
    }
    if (rv != APR_SUCCESS) {
        x->send_failed = rv;
        x->reusable = 0;
    }
    return OK;
}
