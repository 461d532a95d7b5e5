/*
 * fuzz_response.c - libFuzzer target for the backend response parser in
 * rproxy_parse.c: status line, header fields, 1xx interim heads, framing
 * (Content-Length / Transfer-Encoding), the chunked decoder and trailers.
 *
 * The driver below walks the byte stream the way rproxy_response.c does
 * (read_head, read_fields, decide_framing, relay_length, relay_chunked)
 * with the module's default limits; every syntax decision is made by
 * rproxy_parse.c.  What the harness adds is checking: the reader's window
 * invariants, an exact oracle for where each line starts and ends in the
 * stream, body bytes compared with the stream when taken from the window
 * and again when the reader's before_fill hook hands them on (the module
 * queues them as buckets pointing into the window), and the values the
 * parse functions hand back.  Any violation abort()s.
 *
 * Input: two selector bytes, then the bytes the "backend" sends.
 *   data[0]          reader buffer capacity: 16 * (data[0] + 1), 16..4096
 *   data[1] & 0x3f   0: each recv fills all the room the reader offers;
 *                    1..63: each recv hands out 1..that many bytes (varied
 *                    by a PRNG seeded from the input, so reproducible)
 *   data[1] & 0x40   the overflow area for long lines comes from the pool,
 *                    as in the module; else the harness malloc()s it at
 *                    exactly RPROXY_MAX_LINE + 2 bytes so ASan sees its end
 *   data[1] & 0x80   the request was HEAD (the response has no body)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "apr_general.h"
#include "apr_lib.h"
#include "apr_pools.h"
#include "apr_strings.h"
#include "apr_tables.h"
#include "rproxy_parse.h"

#define MAX_HEAD_SIZE  65536   /* DEFAULT_MAX_HEAD_SIZE in mod_rproxy.c */
#define MAX_HEADERS    100     /* DEFAULT_MAX_HEADERS */
#define MAX_INTERIM    10      /* rproxy_response.c */

/* The last input's outcome, for replay.c: NULL when the whole response was
 * read as well-formed, else why it was refused. */
const char *rproxy_fuzz_verdict;

#define CHECK(cond) do { if (!(cond)) check_failed(#cond, __LINE__); } while (0)

static void check_failed(const char *what, int line)
{
    fprintf(stderr, "fuzz_response.c:%d: check failed: %s\n", line, what);
    abort();
}

typedef struct {
    const unsigned char *data;     /* the backend's bytes */
    apr_size_t size, off;          /* off: bytes handed to the reader */
    apr_size_t max;                /* 0: no limit per recv */
    uint32_t rng;
} stream;

typedef enum { FRAME_NONE, FRAME_LENGTH, FRAME_CHUNKED, FRAME_CLOSE } framing;

/* Body bytes taken from the window and not yet handed on. */
typedef struct {
    const char *p;
    apr_size_t len, at;            /* at: their offset in the stream */
} span;

typedef struct {
    rproxy_reader rd;
    stream *st;
    char *buf;                     /* the reader's buffer, malloc()ed */
    apr_size_t cap;                /* its size */
    char *own_overflow;            /* NULL: the reader takes it from the pool */
    apr_size_t consumed;           /* stream offset of rd.pos */
    apr_array_header_t *gathered;  /* spans, as the module's brigade */
    apr_pool_t *pool;
} harness;

static apr_status_t fuzz_recv(void *ctx, char *dst, apr_size_t *len)
{
    stream *st = ctx;
    apr_size_t n = *len;

    CHECK(n > 0);                  /* rproxy_reader_fill never asks for 0 */
    if (st->off == st->size) {
        /* apr_socket_recv() says APR_EOF; a bare 0 bytes must mean the
         * same to the reader (odd-sized inputs take that path). */
        *len = 0;
        return st->size & 1 ? APR_SUCCESS : APR_EOF;
    }
    if (st->max) {
        apr_size_t lim;
        st->rng ^= st->rng << 13;
        st->rng ^= st->rng >> 17;
        st->rng ^= st->rng << 5;
        lim = 1 + st->rng % st->max;
        if (n > lim) {
            n = lim;
        }
    }
    if (n > st->size - st->off) {
        n = st->size - st->off;
    }
    memcpy(dst, st->data + st->off, n);
    st->off += n;
    *len = n;
    return APR_SUCCESS;
}

/* The read window's invariants. */
static void check_reader(harness *h)
{
    const rproxy_reader *rd = &h->rd;

    CHECK(rd->buf == h->buf && rd->cap == h->cap);
    CHECK(rd->pos <= rd->end);
    CHECK(rd->end <= rd->cap);
    CHECK(rd->overflow_len <= RPROXY_MAX_LINE + 1);
    CHECK(rd->end - rd->pos <= h->st->off);
    CHECK(!h->own_overflow || rd->overflow == h->own_overflow);
}

/* The stream offset of the next unread byte. */
static apr_size_t stream_pos(harness *h)
{
    return h->st->off - (h->rd.end - h->rd.pos);
}

/* What rproxy_read_line must return for the line at stream offset at:
 * APR_SUCCESS with the line's bytes up to LF, less one CR before it, if
 * that is at most RPROXY_MAX_LINE; RPROXY_LINE_TOO_LONG if longer, or if
 * more than RPROXY_MAX_LINE + 1 bytes come without an LF; else APR_EOF. */
static apr_status_t expected_line(const stream *st, apr_size_t at,
                                  apr_size_t *len, apr_size_t *next)
{
    const unsigned char *p = st->data + at;
    apr_size_t rest = st->size - at;
    const unsigned char *nl = memchr(p, '\n', rest);

    if (!nl) {
        return rest > RPROXY_MAX_LINE + 1 ? RPROXY_LINE_TOO_LONG : APR_EOF;
    }
    *len = nl - p;
    *next = at + *len + 1;
    if (*len > 0 && nl[-1] == '\r') {
        (*len)--;
    }
    return *len > RPROXY_MAX_LINE ? RPROXY_LINE_TOO_LONG : APR_SUCCESS;
}

static apr_status_t read_line(harness *h, char **line, apr_size_t *len)
{
    apr_size_t at = h->consumed, want_len = 0, want_next = 0;
    apr_status_t want = expected_line(h->st, at, &want_len, &want_next);
    apr_status_t rv;

    CHECK(stream_pos(h) == at);
    rv = rproxy_read_line(&h->rd, line, len);
    check_reader(h);
    if (rv == APR_EOF) {
        CHECK(h->st->off == h->st->size);
    }
    CHECK(rv == want);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    /* The line is exactly the stream's bytes, NUL-terminated, in the
     * buffer or in the overflow area, and the reader stands after its LF. */
    CHECK(*len == want_len);
    CHECK(h->rd.bare_lf == (want_next == at + want_len + 1));
    CHECK(memcmp(*line, h->st->data + at, *len) == 0);
    CHECK((*line)[*len] == '\0');
    CHECK(!memchr(*line, '\n', *len));
    CHECK((*line >= h->buf && *line + *len < h->buf + h->rd.cap)
          || (h->rd.overflow && *line == h->rd.overflow
              && *len <= RPROXY_MAX_LINE));
    h->consumed = stream_pos(h);
    CHECK(h->consumed == want_next);
    return rv;
}

/* True when the line has no control bytes but HT (NUL, CR, LF, DEL...):
 * whatever rproxy_parse.c accepts must be clean. */
static int clean(const char *l, apr_size_t len)
{
    apr_size_t i;
    for (i = 0; i < len; i++) {
        unsigned char c = l[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return 0;
        }
    }
    return 1;
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t';
}

/* rproxy_response.c read_fields(): fields up to the empty line. */
static const char *read_fields(harness *h, apr_table_t *t,
                               apr_size_t *head_bytes)
{
    int count = 0;

    for (;;) {
        char *line, *name, *value;
        apr_size_t len;
        const char *why;
        int was_clean;
        apr_status_t rv = read_line(h, &line, &len);

        if (rv != APR_SUCCESS) {
            return rv == RPROXY_LINE_TOO_LONG
                   ? "line too long" : "backend closed in a field section";
        }
        if (len == 0) {
            return NULL;
        }
        *head_bytes += len + 2;
        if (*head_bytes > MAX_HEAD_SIZE) {
            return "head too large";
        }
        if (++count > MAX_HEADERS) {
            return "too many fields";
        }
        was_clean = clean(line, len);
        why = rproxy_parse_field(line, len, &name, &value);
        if (why) {
            return why;
        }
        CHECK(was_clean);
        CHECK(name == line && *name && !is_ws(*name));
        CHECK(strlen(name) < len);
        CHECK(value > name + strlen(name) && value <= line + len);
        CHECK(value + strlen(value) <= line + len);
        CHECK(!is_ws(value[0]));
        CHECK(!*value || !is_ws(value[strlen(value) - 1]));
        apr_table_addn(t, apr_pstrdup(h->pool, name),
                       apr_pstrdup(h->pool, value));
    }
}

/* rproxy_response.c read_head(): heads until a final (non-1xx) one. */
static const char *read_head(harness *h, apr_table_t *fields, int *status)
{
    int interim = 0;

    for (;;) {
        char *line;
        apr_size_t len, head_bytes;
        const char *why;
        int minor = -1, was_clean;
        apr_status_t rv = read_line(h, &line, &len);

        if (rv != APR_SUCCESS) {
            return rv == RPROXY_LINE_TOO_LONG ? "line too long"
                                              : "backend closed before a head";
        }
        was_clean = clean(line, len);
        why = rproxy_parse_status_line(line, len, status, &minor);
        if (why) {
            return why;
        }
        CHECK(was_clean && len >= 12);
        CHECK(*status >= 100 && *status <= 599);
        CHECK(minor >= 0 && minor <= 9);
        head_bytes = len + 2;
        apr_table_clear(fields);
        why = read_fields(h, fields, &head_bytes);
        if (why) {
            return why;
        }
        if (*status >= 200) {
            return NULL;
        }
        if (*status == 101) {
            return "101 without an upgrade";
        }
        if (++interim > MAX_INTERIM) {
            return "too many interim responses";
        }
    }
}

typedef struct {
    apr_off_t value;
    int count;
    const char *bad;
} length_scan;

static int scan_length(void *data, const char *key, const char *value)
{
    length_scan *ls = data;
    int before = ls->count;

    (void)key;
    ls->bad = rproxy_parse_length(value, &ls->value, &ls->count);
    if (!ls->bad) {
        CHECK(ls->count > before && ls->value >= 0);
        CHECK(clean(value, strlen(value)));
    }
    return ls->bad == NULL;
}

static int count_field(void *data, const char *key, const char *value)
{
    (void)key;
    (void)value;
    (*(int *)data)++;
    return 1;
}

/* rproxy_response.c pass_gathered(), the reader's before_fill while the
 * body is read: what was taken from the window must still be there. */
static apr_status_t pass_gathered(void *ctx)
{
    harness *h = ctx;
    int i;

    for (i = 0; i < h->gathered->nelts; i++) {
        const span *s = &APR_ARRAY_IDX(h->gathered, i, span);
        CHECK(s->p >= h->buf && s->p + s->len <= h->buf + h->rd.cap);
        CHECK(memcmp(s->p, h->st->data + s->at, s->len) == 0);
    }
    apr_array_clear(h->gathered);
    return APR_SUCCESS;
}

/* rproxy_response.c relay_length(): n body bytes out of the window. */
static const char *take_body(harness *h, apr_off_t n)
{
    while (n > 0) {
        apr_size_t avail;

        if (h->rd.pos == h->rd.end) {
            apr_status_t rv = rproxy_reader_fill(&h->rd);
            check_reader(h);
            if (rv != APR_SUCCESS) {
                CHECK(rv == APR_EOF && h->st->off == h->st->size);
                return "backend closed in a body";
            }
            CHECK(h->rd.pos < h->rd.end);
        }
        avail = h->rd.end - h->rd.pos;
        if ((apr_off_t)avail > n) {
            avail = (apr_size_t)n;
        }
        CHECK(stream_pos(h) == h->consumed);
        CHECK(memcmp(h->rd.buf + h->rd.pos, h->st->data + h->consumed,
                     avail) == 0);
        if (h->rd.before_fill) {
            span *s = apr_array_push(h->gathered);
            s->p = h->rd.buf + h->rd.pos;
            s->len = avail;
            s->at = h->consumed;
        }
        h->rd.pos += avail;
        h->consumed += avail;
        n -= avail;
    }
    return NULL;
}

/* rproxy_response.c relay_chunked(): chunks, the last chunk, trailers. */
static const char *take_chunked(harness *h, apr_table_t *trailers)
{
    apr_size_t trailer_bytes = 0;

    for (;;) {
        char *line;
        apr_size_t len;
        apr_off_t size = -1;
        const char *why;
        int was_clean;
        apr_status_t rv = read_line(h, &line, &len);

        if (rv != APR_SUCCESS) {
            return rv == RPROXY_LINE_TOO_LONG ? "line too long"
                                              : "backend closed at a chunk";
        }
        was_clean = clean(line, len);
        why = h->rd.bare_lf ? "chunk size line ended by a bare LF"
                            : rproxy_parse_chunk_size(line, len, &size);
        if (why) {
            return why;
        }
        CHECK(was_clean);
        CHECK(size >= 0 && apr_isxdigit(line[0]));
        if (size == 0) {
            break;
        }
        why = take_body(h, size);
        if (why) {
            return why;
        }
        rv = read_line(h, &line, &len);
        if (rv != APR_SUCCESS) {
            return rv == RPROXY_LINE_TOO_LONG ? "line too long"
                                              : "backend closed at a chunk end";
        }
        if (len != 0) {
            return "chunk data longer than its size";
        }
        if (h->rd.bare_lf) {
            return "chunk data followed by a bare LF";
        }
    }
    return read_fields(h, trailers, &trailer_bytes);
}

/* rproxy_response.c relay_body() */
static const char *take_body_framed(harness *h, framing frame,
                                    apr_off_t length)
{
    const char *why;

    switch (frame) {
    case FRAME_NONE:
        return NULL;
    case FRAME_LENGTH:
        return take_body(h, length);
    case FRAME_CHUNKED:
        return take_chunked(h, apr_table_make(h->pool, 2));
    case FRAME_CLOSE:
        why = take_body(h, (apr_off_t)(h->st->size - h->consumed));
        CHECK(!why);
        CHECK(rproxy_reader_fill(&h->rd) == APR_EOF);
        check_reader(h);
        return NULL;
    }
    abort();
}

/* rproxy_relay_response(): read_head(), decide_framing(), then the body
 * with before_fill set, and finish() hands on what is left gathered. */
static const char *take_response(harness *h, int header_only)
{
    apr_table_t *fields = apr_table_make(h->pool, 16);
    length_scan ls = { 0, 0, NULL };
    const char *te, *why;
    int status = 0, te_lines = 0;
    framing frame;

    why = read_head(h, fields, &status);
    if (why) {
        return why;
    }
    te = apr_table_get(fields, "Transfer-Encoding");
    apr_table_do(scan_length, &ls, fields, "Content-Length", NULL);
    apr_table_do(count_field, &te_lines, fields, "Transfer-Encoding", NULL);
    if (ls.bad) {
        return ls.bad;
    }
    if (te && ls.count) {
        return "both Content-Length and Transfer-Encoding";
    }
    if (te && (te_lines > 1 || strcasecmp(te, "chunked"))) {
        return "transfer coding other than chunked";
    }
    if (header_only || status == 204 || status == 304) {
        frame = FRAME_NONE;
    }
    else if (te) {
        frame = FRAME_CHUNKED;
    }
    else if (ls.count) {
        frame = FRAME_LENGTH;
    }
    else {
        frame = FRAME_CLOSE;
    }

    h->gathered = apr_array_make(h->pool, 8, sizeof(span));
    h->rd.before_fill = pass_gathered;
    h->rd.before_fill_ctx = h;
    why = take_body_framed(h, frame, ls.value);
    h->rd.before_fill = NULL;
    if (!why) {
        pass_gathered(h);
    }
    return why;
}

static void terminate(void)
{
    apr_terminate();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int initialized;
    apr_allocator_t *alloc;
    stream st;
    harness h;

    rproxy_fuzz_verdict = "no selector bytes";
    if (size < 2) {
        return 0;
    }
    if (!initialized) {
        if (apr_initialize() != APR_SUCCESS) {
            abort();
        }
        atexit(terminate);
        initialized = 1;
    }
    /* A pool with its own allocator, both gone at the end: the memory goes
     * back to malloc, so ASan and LeakSanitizer see each input alone. */
    if (apr_allocator_create(&alloc) != APR_SUCCESS) {
        abort();
    }
    memset(&h, 0, sizeof(h));
    if (apr_pool_create_ex(&h.pool, NULL, NULL, alloc) != APR_SUCCESS) {
        abort();
    }
    apr_allocator_owner_set(alloc, h.pool);

    memset(&st, 0, sizeof(st));
    st.data = data + 2;
    st.size = size - 2;
    st.max = data[1] & 0x3f;
    st.rng = 0x9e3779b9u ^ (uint32_t)size ^ ((uint32_t)data[0] << 8) ^ data[1];
    h.st = &st;
    h.cap = 16 * ((apr_size_t)data[0] + 1);
    h.buf = malloc(h.cap);
    if (!h.buf) {
        abort();
    }
    rproxy_reader_init(&h.rd, h.buf, h.cap, h.pool, fuzz_recv, &st);
    if (!(data[1] & 0x40)) {
        h.own_overflow = malloc(RPROXY_MAX_LINE + 2);
        if (!h.own_overflow) {
            abort();
        }
        h.rd.overflow = h.own_overflow;
    }
    check_reader(&h);

    rproxy_fuzz_verdict = take_response(&h, data[1] & 0x80);

    check_reader(&h);
    if (!rproxy_fuzz_verdict) {
        CHECK(stream_pos(&h) == h.consumed);
    }
    apr_pool_destroy(h.pool);
    free(h.own_overflow);
    free(h.buf);
    return 0;
}
