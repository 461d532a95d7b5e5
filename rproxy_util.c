/*
 * rproxy_util.c - the one failure logger every layer of an exchange
 * reports through, kept low so that the request, response and tunnel code
 * can report without calling up into the handler (httpd keeps the like in
 * proxy_util.c).
 */
#include "rproxy.h"
#include "apr_strings.h"

int rproxy_fail(rproxy_exchange *x, int status, apr_status_t rv,
                const char *fmt, ...)
{
    va_list ap;
    const char *msg;

    va_start(ap, fmt);
    msg = apr_pvsprintf(x->r->pool, fmt, ap);
    va_end(ap);
    ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, x->r,
                  "rproxy: %s%s%s: %s: %s%s", x->dc->target->url,
                  x->dc->target->group && x->backend ? " member " : "",
                  x->dc->target->group && x->backend ? x->backend->key : "",
                  x->phase, msg,
                  x->head_sent ? " (after the response head was sent; "
                                 "aborting the client connection)" : "");
    return status;
}
