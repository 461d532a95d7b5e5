/*
 * rproxy_status.c - this process's counters, and the rproxy-status page
 * that prints them as "key: value" lines.
 */
#include "rproxy.h"
#include "http_protocol.h"

rproxy_counters rproxy_stats;

#define READ(field) apr_atomic_read64(&rproxy_stats.field)

int rproxy_status_handler(request_rec *r)
{
    apr_uint64_t gets, puts;

    if (!r->handler || strcmp(r->handler, "rproxy-status")) {
        return DECLINED;
    }
    if (r->method_number != M_GET) {
        r->allowed = AP_METHOD_BIT << M_GET;
        return HTTP_METHOD_NOT_ALLOWED;
    }
    ap_set_content_type(r, "text/plain; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (r->header_only) {
        return OK;
    }
    /* Read puts first: a get/put pair racing with us then never shows as
     * negative outstanding. */
    puts = READ(puts);
    gets = READ(gets);
    ap_rprintf(r, "pid: %" APR_PID_T_FMT "\n", getpid());
    ap_rprintf(r, "gets: %" APR_UINT64_T_FMT "\n", gets);
    ap_rprintf(r, "puts: %" APR_UINT64_T_FMT "\n", puts);
    ap_rprintf(r, "outstanding: %" APR_UINT64_T_FMT "\n", gets - puts);
    ap_rprintf(r, "buffers_allocated: %" APR_UINT64_T_FMT "\n",
               READ(buffers_allocated));
    ap_rprintf(r, "fallback_buffers: %" APR_UINT64_T_FMT "\n",
               READ(fallback_buffers));
    ap_rprintf(r, "backend_connects: %" APR_UINT64_T_FMT "\n",
               READ(backend_connects));
    ap_rprintf(r, "backend_reuses: %" APR_UINT64_T_FMT "\n",
               READ(backend_reuses));
    ap_rprintf(r, "idle_connections: %d\n", rproxy_conn_idle_count());
    ap_rprintf(r, "requests: %" APR_UINT64_T_FMT "\n", READ(requests));
    ap_rprintf(r, "errors: %" APR_UINT64_T_FMT "\n", READ(errors));
    ap_rprintf(r, "client_aborts: %" APR_UINT64_T_FMT "\n",
               READ(client_aborts));
    return OK;
}
