/*
 * rproxy_status.c - the rproxy-status page, which prints this process's
 * counters as "key: value" lines, or in the Prometheus text
 * format with ?format=prometheus.
 */
#include <unistd.h>

#include "rproxy.h"
#include "http_protocol.h"

typedef struct {
    const char *key;            /* the plain page's name */
    const char *metric;         /* Prometheus name (counters end _total) */
    const char *help;
    int gauge;
    apr_uint64_t value;
} stat_line;

#define READ(field) apr_atomic_read64(&rproxy_stats.field)

static void print_plain(request_rec *r, const stat_line *s, int n)
{
    int i;
    ap_rprintf(r, "pid: %" APR_PID_T_FMT "\n", getpid());
    for (i = 0; i < n; i++) {
        ap_rprintf(r, "%s: %" APR_UINT64_T_FMT "\n", s[i].key, s[i].value);
    }
}

static void print_prometheus(request_rec *r, const stat_line *s, int n)
{
    pid_t pid = getpid();
    int i;
    for (i = 0; i < n; i++) {
        ap_rprintf(r, "# HELP %s %s\n# TYPE %s %s\n%s{pid=\"%" APR_PID_T_FMT
                   "\"} %" APR_UINT64_T_FMT "\n", s[i].metric, s[i].help,
                   s[i].metric, s[i].gauge ? "gauge" : "counter",
                   s[i].metric, pid, s[i].value);
    }
}

int rproxy_status_handler(request_rec *r)
{
    apr_uint64_t puts, gets;
    int prometheus;

    if (!r->handler || strcmp(r->handler, "rproxy-status")) {
        return DECLINED;
    }
    if (r->method_number != M_GET) {
        r->allowed = AP_METHOD_BIT << M_GET;
        return HTTP_METHOD_NOT_ALLOWED;
    }
    prometheus = r->args && !strcmp(r->args, "format=prometheus");
    ap_set_content_type(r, prometheus ? "text/plain; version=0.0.4"
                                      : "text/plain; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (r->header_only) {
        return OK;
    }
    /* puts before gets: a get/put pair racing with us then never shows as
     * negative outstanding. */
    puts = READ(puts);
    gets = READ(gets);
    {
        const stat_line lines[] = {
            { "gets", "rproxy_buffer_gets_total",
              "Buffers taken from a buffer pool.", 0, gets },
            { "puts", "rproxy_buffer_puts_total",
              "Buffers given back to their pool.", 0, puts },
            { "outstanding", "rproxy_buffers_outstanding",
              "Buffers taken and not yet given back.", 1, gets - puts },
            { "buffers_allocated", "rproxy_apr_pool_buffers_allocated_total",
              "Buffers the apr pool ever created.", 0,
              READ(buffers_allocated) },
            { "fallback_buffers", "rproxy_fallback_buffers_total",
              "Request-pool buffers used when a pool gave none.", 0,
              READ(fallback_buffers) },
            { "backend_connects", "rproxy_backend_connects_total",
              "New backend connections.", 0, READ(backend_connects) },
            { "backend_reuses", "rproxy_backend_reuses_total",
              "Requests sent on an idle kept-alive connection.", 0,
              READ(backend_reuses) },
            { "idle_connections", "rproxy_backend_idle_connections",
              "Backend connections kept idle.", 1,
              (apr_uint64_t)rproxy_conn_idle_count() },
            { "active_connections", "rproxy_backend_active_connections",
              "Backend connections in use.", 1,
              apr_atomic_read32(&rproxy_stats.active_connections) },
            { "requests", "rproxy_requests_total",
              "Requests handled by SetHandler rproxy.", 0, READ(requests) },
            { "errors", "rproxy_errors_total",
              "Requests that ended in an error or an aborted connection.",
              0, READ(errors) },
            { "client_aborts", "rproxy_client_aborts_total",
              "Clients that left during the response.", 0,
              READ(client_aborts) },
            { "bytes_from_backend", "rproxy_backend_received_bytes_total",
              "Body and tunnel bytes received from backends.", 0,
              READ(bytes_from_backend) },
            { "bytes_to_backend", "rproxy_backend_sent_bytes_total",
              "Body and tunnel bytes sent to backends.", 0,
              READ(bytes_to_backend) },
        };
        int n = (int)(sizeof(lines) / sizeof(lines[0]));
        if (prometheus) {
            print_prometheus(r, lines, n);
        }
        else {
            print_plain(r, lines, n);
        }
    }
    return OK;
}
