/*
 * rproxy_parse.c - HTTP/1.1 response syntax (RFC 9112), strictly: what is
 * not well-formed is refused, never guessed at.  No httpd here, only APR.
 */
#include <string.h>

#include "apr_lib.h"
#include "rproxy_parse.h"

void rproxy_reader_init(rproxy_reader *rd, char *buf, apr_size_t cap,
                        apr_pool_t *pool, rproxy_recv_fn recv, void *ctx)
{
    memset(rd, 0, sizeof(*rd));
    rd->buf = buf;
    rd->cap = cap;
    rd->pool = pool;
    rd->recv = recv;
    rd->recv_ctx = ctx;
}

apr_status_t rproxy_reader_fill(rproxy_reader *rd)
{
    apr_size_t n;
    apr_status_t rv;

    if (rd->before_fill) {
        rv = rd->before_fill(rd->before_fill_ctx);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    if (rd->pos == rd->end) {
        rd->pos = rd->end = 0;
    }
    else if (rd->end == rd->cap) {
        memmove(rd->buf, rd->buf + rd->pos, rd->end - rd->pos);
        rd->end -= rd->pos;
        rd->pos = 0;
    }
    n = rd->cap - rd->end;
    rv = rd->recv(rd->recv_ctx, rd->buf + rd->end, &n);
    rd->end += n;
    if (n > 0) {
        return APR_SUCCESS;
    }
    return rv == APR_SUCCESS ? APR_EOF : rv;
}

apr_status_t rproxy_read_line(rproxy_reader *rd, char **line,
                              apr_size_t *len)
{
    for (;;) {
        char *start = rd->buf + rd->pos;
        apr_size_t avail = rd->end - rd->pos;
        char *nl = memchr(start, '\n', avail);
        apr_status_t rv;

        if (rd->overflow_len + (nl ? (apr_size_t)(nl - start) : avail)
            > RPROXY_MAX_LINE + 1) {           /* +1: the CR */
            return RPROXY_LINE_TOO_LONG;
        }
        if (nl) {
            apr_size_t seg = nl - start;
            if (rd->overflow_len) {
                memcpy(rd->overflow + rd->overflow_len, start, seg);
                start = rd->overflow;
                seg += rd->overflow_len;
                rd->overflow_len = 0;
            }
            rd->pos = nl + 1 - rd->buf;
            rd->bare_lf = !(seg > 0 && start[seg - 1] == '\r');
            if (!rd->bare_lf) {
                seg--;
            }
            start[seg] = '\0';
            *line = start;
            *len = seg;
            return seg > RPROXY_MAX_LINE ? RPROXY_LINE_TOO_LONG
                                         : APR_SUCCESS;
        }
        if (rd->pos == 0 && rd->end == rd->cap) {
            /* One line fills the whole buffer: gather it aside. */
            if (!rd->overflow) {
                rd->overflow = apr_palloc(rd->pool, RPROXY_MAX_LINE + 2);
            }
            memcpy(rd->overflow + rd->overflow_len, start, avail);
            rd->overflow_len += avail;
            rd->pos = rd->end = 0;
        }
        rv = rproxy_reader_fill(rd);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
}

static int is_tchar(int c)
{
    return apr_isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

int rproxy_valid_value(const char *v, apr_size_t len)
{
    apr_size_t i;
    for (i = 0; i < len; i++) {
        unsigned char c = v[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return 0;
        }
    }
    return 1;
}

/* "HTTP/1.x NNN[ reason]"; the reason is checked and then ignored. */
const char *rproxy_parse_status_line(const char *l, apr_size_t len,
                                     int *status, int *minor)
{
    if (len < 12 || memcmp(l, "HTTP/1.", 7) || !apr_isdigit(l[7])
        || l[8] != ' ' || !apr_isdigit(l[9]) || !apr_isdigit(l[10])
        || !apr_isdigit(l[11]) || (len > 12 && l[12] != ' ')) {
        return "malformed status line";
    }
    *minor = l[7] - '0';
    *status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
    if (*status < 100 || *status > 599) {
        return "status code out of range 100-599";
    }
    if (len > 12 && !rproxy_valid_value(l + 13, len - 13)) {
        return "control bytes in reason phrase";
    }
    return NULL;
}

const char *rproxy_parse_field(char *l, apr_size_t len, char **name,
                               char **value)
{
    char *colon = memchr(l, ':', len), *v, *end = l + len, *c;

    if (l[0] == ' ' || l[0] == '\t') {
        return "obsolete line folding";
    }
    if (!colon || colon == l) {
        return "header line without a field name";
    }
    for (c = l; c < colon; c++) {
        if (!is_tchar((unsigned char)*c)) {
            return "field name is not a token";
        }
    }
    for (v = colon + 1; v < end && (*v == ' ' || *v == '\t'); v++)
        ;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }
    if (!rproxy_valid_value(v, end - v) || memchr(l, '\0', len)) {
        return "control bytes in a field value";
    }
    *colon = '\0';
    *end = '\0';
    *name = l;
    *value = v;
    return NULL;
}

const char *rproxy_parse_length(const char *p, apr_off_t *length, int *count)
{
    for (;;) {
        apr_off_t v = 0;
        int digits = 0;

        while (apr_isdigit(*p) && digits < 18) {
            v = v * 10 + (*p++ - '0');
            digits++;
        }
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (!digits || (*p && *p != ',')) {
            return "Content-Length is not a plain decimal number";
        }
        if (*count && v != *length) {
            return "conflicting Content-Length values";
        }
        *length = v;
        (*count)++;
        if (!*p) {
            return NULL;
        }
        for (p++; *p == ' ' || *p == '\t'; p++)
            ;
    }
}

/* chunk-size [ BWS ";" chunk-ext ], over exactly len bytes: a NUL from
 * the backend must not end the line early. */
const char *rproxy_parse_chunk_size(const char *l, apr_size_t len,
                                    apr_off_t *size)
{
    apr_off_t v = 0;
    int digits = 0;

    if (memchr(l, '\0', len)) {
        return "NUL in a chunk size line";
    }

    for (; apr_isxdigit(*l); l++, digits++) {
        if (v > (APR_INT64_MAX >> 4)) {
            return "chunk size overflows";
        }
        v = (v << 4) | (apr_isdigit(*l) ? *l - '0'
                                        : apr_tolower(*l) - 'a' + 10);
    }
    while (*l == ' ' || *l == '\t') {
        l++;
    }
    if (!digits || (*l && *l != ';')) {
        return "bad chunk size line";
    }
    if (*l && !rproxy_valid_value(l, strlen(l))) {
        return "control bytes in a chunk extension";
    }
    *size = v;
    return NULL;
}
