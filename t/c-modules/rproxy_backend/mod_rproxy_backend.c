/*
 * mod_rproxy_backend - the well-behaved backend of the test suite, served
 * by the same test httpd on its own virtual host (SetHandler
 * rproxy-test-backend).  What it answers depends on the query string:
 *
 *   (none of the below)  echo: "<request line>\n", then each request header
 *                        as "Name: value\n" in the order received, "\n",
 *                        then the request body, with a Content-Length
 *   say=TEXT             the body TEXT, with a Content-Length
 *   gen=N                N bytes, byte i being (i % 251); chunked=1 sends
 *                        it without Content-Length (so chunked)
 *   cut=K                with gen: send K bytes, then drop the connection
 *   status=NNN           that status and no body (204, 304 ...)
 *   sleep=MS             wait that long before answering
 *   hdr=Name:Value       add that response header (repeatable)
 */
#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_protocol.h"
#include "http_request.h"
#include "util_script.h"
#include "apr_strings.h"

static apr_status_t write_pattern(request_rec *r, apr_off_t n, int flush)
{
    char block[8192];
    apr_off_t sent = 0;

    while (sent < n) {
        apr_size_t len = sizeof(block), i;
        if ((apr_off_t)len > n - sent) {
            len = (apr_size_t)(n - sent);
        }
        for (i = 0; i < len; i++) {
            block[i] = (char)((sent + i) % 251);
        }
        if (ap_rwrite(block, (int)len, r) < 0) {
            return APR_EGENERAL;
        }
        if (flush) {
            ap_rflush(r);
        }
        sent += len;
    }
    return APR_SUCCESS;
}

static void drop_connection(request_rec *r)
{
    apr_socket_t *s = ap_get_conn_socket(r->connection);
    ap_rflush(r);
    apr_socket_shutdown(s, APR_SHUTDOWN_READWRITE);
    r->connection->aborted = 1;
    r->connection->keepalive = AP_CONN_CLOSE;
}

static int add_header(void *data, const char *key, const char *value)
{
    request_rec *r = data;
    const char *colon = ap_strchr_c(value, ':');
    (void)key;
    if (colon) {
        apr_table_add(r->headers_out, apr_pstrmemdup(r->pool, value,
                                                     colon - value),
                      colon + 1);
    }
    return 1;
}

static int echo(request_rec *r)
{
    const apr_array_header_t *h = apr_table_elts(r->headers_in);
    const apr_table_entry_t *e = (const apr_table_entry_t *)h->elts;
    apr_bucket_brigade *bb = apr_brigade_create(r->pool,
                                                r->connection->bucket_alloc);
    char *body = "";
    apr_off_t body_len = 0;
    apr_size_t flat;
    int i, rc;

    rc = ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK);
    if (rc != OK) {
        return rc;
    }
    if (ap_should_client_block(r)) {
        apr_size_t cap = 65536;
        long n;
        body = apr_palloc(r->pool, cap);
        while ((n = ap_get_client_block(r, body + body_len,
                                        cap - body_len)) > 0) {
            body_len += n;
            if ((apr_size_t)body_len == cap) {
                char *grown = apr_palloc(r->pool, cap * 2);
                memcpy(grown, body, cap);
                body = grown;
                cap *= 2;
            }
        }
        if (n < 0) {
            return HTTP_BAD_REQUEST;
        }
    }
    apr_brigade_printf(bb, NULL, NULL, "%s\n", r->the_request);
    for (i = 0; i < h->nelts; i++) {
        apr_brigade_printf(bb, NULL, NULL, "%s: %s\n", e[i].key, e[i].val);
    }
    apr_brigade_puts(bb, NULL, NULL, "\n");
    apr_brigade_write(bb, NULL, NULL, body, (apr_size_t)body_len);
    apr_brigade_length(bb, 1, &body_len);
    ap_set_content_type(r, "text/plain");
    ap_set_content_length(r, body_len);
    flat = (apr_size_t)body_len;
    body = apr_palloc(r->pool, flat);
    apr_brigade_flatten(bb, body, &flat);
    ap_rwrite(body, (int)flat, r);
    return OK;
}

static int backend_handler(request_rec *r)
{
    apr_table_t *q;
    const char *v;

    if (!r->handler || strcmp(r->handler, "rproxy-test-backend")) {
        return DECLINED;
    }
    ap_args_to_table(r, &q);
    apr_table_do(add_header, r, q, "hdr", NULL);
    if ((v = apr_table_get(q, "sleep"))) {
        apr_sleep(apr_time_from_msec(atoi(v)));
    }
    if ((v = apr_table_get(q, "status"))) {
        r->status = atoi(v);
        return OK;
    }
    if ((v = apr_table_get(q, "say"))) {
        ap_set_content_type(r, "text/plain");
        ap_set_content_length(r, strlen(v));
        ap_rputs(v, r);
        return OK;
    }
    if ((v = apr_table_get(q, "gen"))) {
        apr_off_t n = apr_atoi64(v);
        const char *cut = apr_table_get(q, "cut");
        int chunked = apr_table_get(q, "chunked") != NULL;
        ap_set_content_type(r, "application/octet-stream");
        if (!chunked) {
            ap_set_content_length(r, n);
        }
        if (cut) {
            write_pattern(r, apr_atoi64(cut), 1);
            drop_connection(r);
            return OK;
        }
        write_pattern(r, n, chunked);
        return OK;
    }
    return echo(r);
}

static void register_hooks(apr_pool_t *p)
{
    ap_hook_handler(backend_handler, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(rproxy_backend) = {
    STANDARD20_MODULE_STUFF,
    NULL, NULL, NULL, NULL, NULL,
    register_hooks,
    AP_MODULE_FLAG_NONE
};
