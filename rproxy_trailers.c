/*
 * rproxy_trailers.c - trailer fields across the proxy, both ways.
 *
 * httpd 2.4's CHUNK filter ends every chunked response with a bare
 * "0\r\n\r\n" and never writes r->trailers_out, so HTTP/1.1 clients would
 * lose the backend's trailers.  RPROXY_TRAILERS sits just below CHUNK and
 * rewrites that last chunk to carry them.  (mod_http2 sends r->trailers_out
 * to HTTP/2 clients by itself.)
 */
#include "rproxy.h"
#include "http_protocol.h"
#include "apr_strings.h"
#include "util_filter.h"

#define LAST_CHUNK "0\r\n\r\n"

static ap_filter_rec_t *trailer_filter_handle;

typedef struct {
    apr_size_t len;
    char *out;                  /* NULL while measuring */
} field_text;

static int add_field_text(void *data, const char *name, const char *value)
{
    field_text *ft = data;
    apr_size_t n = strlen(name), v = strlen(value);

    if (rproxy_field_allowed_in_trailer(name)) {
        if (ft->out) {
            memcpy(ft->out + ft->len, name, n);
            memcpy(ft->out + ft->len + n, ": ", 2);
            memcpy(ft->out + ft->len + n + 2, value, v);
            memcpy(ft->out + ft->len + n + 2 + v, "\r\n", 2);
        }
        ft->len += n + v + 4;
    }
    return 1;
}

/* "0\r\n", the allowed trailer fields, "\r\n": measured, then written
 * once, so many fields cost linear time and memory. */
const char *rproxy_last_chunk(apr_pool_t *p, apr_table_t *trailers)
{
    field_text ft = { 3, NULL };

    if (trailers) {
        apr_table_do(add_field_text, &ft, trailers, NULL);
    }
    ft.out = apr_palloc(p, ft.len + 3);
    memcpy(ft.out, "0\r\n", 3);
    ft.len = 3;
    if (trailers) {
        apr_table_do(add_field_text, &ft, trailers, NULL);
    }
    memcpy(ft.out + ft.len, "\r\n", 3);
    return ft.out;
}

static int is_plain_last_chunk(apr_bucket *b)
{
    const char *data;
    apr_size_t len;

    return b->length == sizeof(LAST_CHUNK) - 1
           && apr_bucket_read(b, &data, &len, APR_BLOCK_READ) == APR_SUCCESS
           && len == sizeof(LAST_CHUNK) - 1
           && !memcmp(data, LAST_CHUNK, len);
}

static apr_status_t trailer_filter(ap_filter_t *f, apr_bucket_brigade *bb)
{
    request_rec *r = f->r;
    apr_bucket *b;

    for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb);
         b = APR_BUCKET_NEXT(b)) {
        apr_bucket *last;
        const char *chunk;

        if (!APR_BUCKET_IS_EOS(b)) {
            continue;
        }
        ap_remove_output_filter(f);
        last = APR_BUCKET_PREV(b);
        if (!r->chunked || apr_is_empty_table(r->trailers_out)
            || last == APR_BRIGADE_SENTINEL(bb) || !is_plain_last_chunk(last)) {
            break;
        }
        chunk = rproxy_last_chunk(r->pool, r->trailers_out);
        APR_BUCKET_INSERT_BEFORE(last, apr_bucket_pool_create(chunk,
                                 strlen(chunk), r->pool,
                                 r->connection->bucket_alloc));
        apr_bucket_delete(last);
        break;
    }
    return ap_pass_brigade(f->next, bb);
}

ap_filter_t *rproxy_add_trailer_filter(request_rec *r)
{
    return ap_add_output_filter_handle(trailer_filter_handle, NULL, r,
                                       r->connection);
}

void rproxy_register_trailer_filter(void)
{
    /* Below CHUNK (AP_FTYPE_TRANSCODE), above the connection filters. */
    trailer_filter_handle = ap_register_output_filter("RPROXY_TRAILERS",
                                trailer_filter, NULL,
                                (ap_filter_type)(AP_FTYPE_TRANSCODE + 5));
}
