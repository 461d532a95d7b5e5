/*
 * rproxy_status.c - the server-wide counters, shown.
 *
 * The rproxy-status handler prints them as "key: value" lines, in the
 * Prometheus text format (?format=prometheus), as JSON (?format=json) and
 * as a live HTML view (?format=html) that polls the JSON.  The same figures
 * appear as a section of mod_status's /server-status through its
 * status_hook, and in its ?auto form.  Every form reads the shared memory
 * (rproxy_stats.c), so every child answers alike.
 */
#include "rproxy.h"
#include "http_protocol.h"
#include "mod_status.h"
#include "apr_strings.h"

#define READ(field) apr_atomic_read64(&rproxy_stats->field)

typedef struct {
    const char *key;            /* the plain page's and JSON's name */
    const char *metric;         /* Prometheus name (counters end _total) */
    const char *help;
    int gauge;
    apr_uint64_t value;
} stat_line;

/* The server's lines, in the order every form prints them. */
enum {
    L_GETS, L_PUTS, L_OUTSTANDING, L_ALLOCATED, L_FALLBACK, L_CONNECTS,
    L_REUSES, L_IDLE, L_ACTIVE, L_REQUESTS, L_ERRORS, L_ABORTS, L_FROM, L_TO,
    N_SERVER_LINES
};

/* A snapshot of the server's counters.  puts before gets: a get/put pair
 * racing with us then never shows as negative outstanding. */
static void server_lines(stat_line *l)
{
    apr_uint64_t puts = READ(puts), gets = READ(gets);
    const stat_line lines[N_SERVER_LINES] = {
        { "gets", "rproxy_buffer_gets_total",
          "Buffers taken from a buffer pool.", 0, gets },
        { "puts", "rproxy_buffer_puts_total",
          "Buffers given back to their pool.", 0, puts },
        { "outstanding", "rproxy_buffers_outstanding",
          "Buffers taken and not yet given back.", 1, gets - puts },
        { "buffers_allocated", "rproxy_apr_pool_buffers_allocated_total",
          "Buffers the apr pool ever created.", 0, READ(buffers_allocated) },
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
          apr_atomic_read32(&rproxy_stats->idle_connections) },
        { "active_connections", "rproxy_backend_active_connections",
          "Backend connections in use.", 1,
          apr_atomic_read32(&rproxy_stats->active_connections) },
        { "requests", "rproxy_requests_total",
          "Requests handled by SetHandler rproxy.", 0, READ(requests) },
        { "errors", "rproxy_errors_total",
          "Requests that ended in an error or an aborted connection.", 0,
          READ(errors) },
        { "client_aborts", "rproxy_client_aborts_total",
          "Clients that left during the response.", 0, READ(client_aborts) },
        { "bytes_from_backend", "rproxy_backend_received_bytes_total",
          "Body and tunnel bytes received from backends.", 0,
          READ(bytes_from_backend) },
        { "bytes_to_backend", "rproxy_backend_sent_bytes_total",
          "Body and tunnel bytes sent to backends.", 0,
          READ(bytes_to_backend) },
    };
    memcpy(l, lines, sizeof(lines));
}

/* One target's figures, read once so that every form of a page agrees. */
typedef struct {
    const rproxy_target_slot *slot;
    apr_uint64_t requests, errors, client_aborts, in_flight;
    apr_uint64_t backend_connects, backend_reuses;
    apr_uint64_t bytes_from_backend, bytes_to_backend;
    apr_uint64_t latency[RPROXY_LATENCY_BUCKETS], latency_us, observed;
} target_view;

#define TREAD(field) apr_atomic_read64(&ts->field)

static apr_array_header_t *target_views(apr_pool_t *p)
{
    rproxy_target_slot **slots;
    unsigned int n = rproxy_stats_target_slots(&slots), i;
    apr_array_header_t *out = apr_array_make(p, 8, sizeof(target_view));

    for (i = 0; i < n; i++) {
        rproxy_target_slot *ts = slots[i];
        target_view *v;
        int b;

        if (!ts->used) {
            continue;
        }
        v = apr_array_push(out);
        v->slot = ts;
        v->requests = TREAD(requests);
        v->errors = TREAD(errors);
        v->client_aborts = TREAD(client_aborts);
        v->in_flight = apr_atomic_read32(&ts->in_flight);
        v->backend_connects = TREAD(backend_connects);
        v->backend_reuses = TREAD(backend_reuses);
        v->bytes_from_backend = TREAD(bytes_from_backend);
        v->bytes_to_backend = TREAD(bytes_to_backend);
        v->latency_us = TREAD(latency_us);
        v->observed = 0;
        for (b = 0; b < RPROXY_LATENCY_BUCKETS; b++) {
            v->latency[b] = TREAD(latency[b]);
            v->observed += v->latency[b];
        }
    }
    return out;
}

/* The response time under which a share q of the requests finished, in
 * milliseconds, interpolated inside its bucket; -1 with no requests. */
static double quantile_ms(const target_view *v, double q)
{
    double rank = q * (double)v->observed, below = 0;
    int b;

    if (!v->observed) {
        return -1;
    }
    for (b = 0; b < RPROXY_LATENCY_BUCKETS; b++) {
        double n = (double)v->latency[b];
        if (below + n >= rank && n > 0) {
            double lo = b ? rproxy_latency_bounds[b - 1] : 0;
            double hi = b < RPROXY_LATENCY_BUCKETS - 1
                        ? rproxy_latency_bounds[b] : lo * 2;
            return (lo + (hi - lo) * (rank - below) / n) / 1000.0;
        }
        below += n;
    }
    return rproxy_latency_bounds[RPROXY_LATENCY_BUCKETS - 2] / 1000.0;
}

/* ---- plain text ---- */

static void print_plain(request_rec *r, const stat_line *s,
                        const apr_array_header_t *tv)
{
    int i;

    for (i = 0; i < N_SERVER_LINES; i++) {
        ap_rprintf(r, "%s: %" APR_UINT64_T_FMT "\n", s[i].key, s[i].value);
    }
    for (i = 0; i < tv->nelts; i++) {
        const target_view *v = &APR_ARRAY_IDX(tv, i, target_view);
        ap_rprintf(r, "target: server=%s location=%s url=%s requests=%"
                   APR_UINT64_T_FMT " errors=%" APR_UINT64_T_FMT
                   " client_aborts=%" APR_UINT64_T_FMT " in_flight=%"
                   APR_UINT64_T_FMT " backend_connects=%" APR_UINT64_T_FMT
                   " backend_reuses=%" APR_UINT64_T_FMT " bytes_from_backend=%"
                   APR_UINT64_T_FMT " bytes_to_backend=%" APR_UINT64_T_FMT
                   " p50_ms=%.1f p90_ms=%.1f p99_ms=%.1f\n",
                   v->slot->server, v->slot->location, v->slot->url,
                   v->requests, v->errors, v->client_aborts, v->in_flight,
                   v->backend_connects, v->backend_reuses,
                   v->bytes_from_backend, v->bytes_to_backend,
                   quantile_ms(v, 0.5), quantile_ms(v, 0.9),
                   quantile_ms(v, 0.99));
    }
}

/* ---- Prometheus ---- */

/* A label value with \, " and newlines escaped, as the format asks. */
static const char *label(apr_pool_t *p, const char *s)
{
    apr_size_t extra = 0;
    const char *c;
    char *out, *o;

    for (c = s; *c; c++) {
        extra += *c == '\\' || *c == '"' || *c == '\n';
    }
    if (!extra) {
        return s;
    }
    o = out = apr_palloc(p, strlen(s) + extra + 1);
    for (c = s; *c; c++) {
        if (*c == '\\' || *c == '"' || *c == '\n') {
            *o++ = '\\';
        }
        *o++ = *c == '\n' ? 'n' : *c;
    }
    *o = '\0';
    return out;
}

static const char *target_labels(apr_pool_t *p, const target_view *v)
{
    return apr_psprintf(p, "server=\"%s\",location=\"%s\",target=\"%s\"",
                        label(p, v->slot->server), label(p, v->slot->location),
                        label(p, v->slot->url));
}

typedef struct {
    const char *metric, *help;
    int gauge;
    apr_size_t offset;          /* of the figure in target_view */
} target_metric;

#define TM(metric, help, gauge, field) \
    { metric, help, gauge, APR_OFFSETOF(target_view, field) }

static const target_metric target_metrics[] = {
    TM("rproxy_target_requests_total", "Requests proxied to the target.",
       0, requests),
    TM("rproxy_target_errors_total", "Requests to the target that ended in "
       "an error or an aborted connection.", 0, errors),
    TM("rproxy_target_client_aborts_total", "Clients that left during the "
       "target's response.", 0, client_aborts),
    TM("rproxy_target_in_flight", "Requests to the target in progress.",
       1, in_flight),
    TM("rproxy_target_backend_connects_total", "New connections to the "
       "target.", 0, backend_connects),
    TM("rproxy_target_backend_reuses_total", "Requests sent to the target "
       "on a kept-alive connection.", 0, backend_reuses),
    TM("rproxy_target_received_bytes_total", "Body and tunnel bytes "
       "received from the target.", 0, bytes_from_backend),
    TM("rproxy_target_sent_bytes_total", "Body and tunnel bytes sent to the "
       "target.", 0, bytes_to_backend),
};

#define N_TARGET_METRICS \
    (int)(sizeof(target_metrics) / sizeof(target_metrics[0]))

static void print_prometheus(request_rec *r, const stat_line *s,
                             const apr_array_header_t *tv)
{
    const char **labels = apr_palloc(r->pool, sizeof(*labels)
                                              * (tv->nelts + 1));
    int i, m, b;

    for (i = 0; i < N_SERVER_LINES; i++) {
        ap_rprintf(r, "# HELP %s %s\n# TYPE %s %s\n%s %" APR_UINT64_T_FMT
                   "\n", s[i].metric, s[i].help, s[i].metric,
                   s[i].gauge ? "gauge" : "counter", s[i].metric,
                   s[i].value);
    }
    for (i = 0; i < tv->nelts; i++) {
        labels[i] = target_labels(r->pool,
                                  &APR_ARRAY_IDX(tv, i, target_view));
    }
    for (m = 0; m < N_TARGET_METRICS; m++) {
        const target_metric *tm = &target_metrics[m];
        ap_rprintf(r, "# HELP %s %s\n# TYPE %s %s\n", tm->metric, tm->help,
                   tm->metric, tm->gauge ? "gauge" : "counter");
        for (i = 0; i < tv->nelts; i++) {
            const char *v = (const char *)&APR_ARRAY_IDX(tv, i, target_view);
            ap_rprintf(r, "%s{%s} %" APR_UINT64_T_FMT "\n", tm->metric,
                       labels[i], *(const apr_uint64_t *)(v + tm->offset));
        }
    }
    ap_rputs("# HELP rproxy_target_response_seconds Time from the request "
             "reaching the handler to the end of its response.\n"
             "# TYPE rproxy_target_response_seconds histogram\n", r);
    for (i = 0; i < tv->nelts; i++) {
        const target_view *v = &APR_ARRAY_IDX(tv, i, target_view);
        apr_uint64_t cumulative = 0;
        for (b = 0; b < RPROXY_LATENCY_BUCKETS - 1; b++) {
            cumulative += v->latency[b];
            ap_rprintf(r, "rproxy_target_response_seconds_bucket{%s,le=\"%g\"}"
                       " %" APR_UINT64_T_FMT "\n", labels[i],
                       rproxy_latency_bounds[b] / 1e6, cumulative);
        }
        ap_rprintf(r, "rproxy_target_response_seconds_bucket{%s,le=\"+Inf\"} %"
                   APR_UINT64_T_FMT "\nrproxy_target_response_seconds_sum{%s} "
                   "%.6f\nrproxy_target_response_seconds_count{%s} %"
                   APR_UINT64_T_FMT "\n", labels[i], v->observed, labels[i],
                   v->latency_us / 1e6, labels[i], v->observed);
    }
}

/* ---- JSON, for the live view ---- */

static const char *json_string(apr_pool_t *p, const char *s)
{
    apr_size_t len = strlen(s);
    char *out = apr_palloc(p, len * 6 + 3), *o = out;

    *o++ = '"';
    for (; *s; s++) {
        unsigned char c = *s;
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = c;
        }
        else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
            o += apr_snprintf(o, 7, "\\u%04x", c);
        }
        else {
            *o++ = c;
        }
    }
    *o++ = '"';
    *o = '\0';
    return out;
}

static void print_json(request_rec *r, const stat_line *s,
                       const apr_array_header_t *tv)
{
    int i, m, b;

    ap_rprintf(r, "{\"time\":%" APR_TIME_T_FMT ",\"server\":{",
               apr_time_as_msec(apr_time_now()));
    for (i = 0; i < N_SERVER_LINES; i++) {
        ap_rprintf(r, "%s\"%s\":%" APR_UINT64_T_FMT, i ? "," : "", s[i].key,
                   s[i].value);
    }
    ap_rputs("},\"latency_bounds_ms\":[", r);
    for (b = 0; b < RPROXY_LATENCY_BUCKETS - 1; b++) {
        ap_rprintf(r, "%s%g", b ? "," : "", rproxy_latency_bounds[b] / 1e3);
    }
    ap_rputs("],\"targets\":[", r);
    for (i = 0; i < tv->nelts; i++) {
        const target_view *v = &APR_ARRAY_IDX(tv, i, target_view);
        ap_rprintf(r, "%s{\"server\":%s,\"location\":%s,\"url\":%s",
                   i ? "," : "", json_string(r->pool, v->slot->server),
                   json_string(r->pool, v->slot->location),
                   json_string(r->pool, v->slot->url));
        for (m = 0; m < N_TARGET_METRICS; m++) {
            const char *key = target_metrics[m].metric + strlen("rproxy_target_");
            ap_rprintf(r, ",\"%s\":%" APR_UINT64_T_FMT, key,
                       *(const apr_uint64_t *)((const char *)v
                                               + target_metrics[m].offset));
        }
        ap_rputs(",\"latency\":[", r);
        for (b = 0; b < RPROXY_LATENCY_BUCKETS; b++) {
            ap_rprintf(r, "%s%" APR_UINT64_T_FMT, b ? "," : "", v->latency[b]);
        }
        ap_rputs("]}", r);
    }
    ap_rputs("]}\n", r);
}

int rproxy_status_handler(request_rec *r)
{
    stat_line lines[N_SERVER_LINES];
    apr_array_header_t *tv;
    const char *format = r->args ? r->args : "";

    if (!r->handler || strcmp(r->handler, "rproxy-status")) {
        return DECLINED;
    }
    if (r->method_number != M_GET) {
        r->allowed = AP_METHOD_BIT << M_GET;
        return HTTP_METHOD_NOT_ALLOWED;
    }
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (!strcmp(format, "format=html")) {
        ap_set_content_type(r, "text/html; charset=utf-8");
        /* The page runs only its own inline script and fetches only its
         * own JSON. */
        apr_table_setn(r->headers_out, "Content-Security-Policy",
                       "default-src 'none'; script-src 'unsafe-inline'; "
                       "style-src 'unsafe-inline'; connect-src 'self'");
        if (!r->header_only) {
            ap_rputs(rproxy_status_html, r);
        }
        return OK;
    }
    if (!strcmp(format, "format=prometheus")) {
        ap_set_content_type(r, "text/plain; version=0.0.4");
    }
    else if (!strcmp(format, "format=json")) {
        ap_set_content_type(r, "application/json");
    }
    else {
        ap_set_content_type(r, "text/plain; charset=utf-8");
    }
    if (r->header_only) {
        return OK;
    }
    server_lines(lines);
    tv = target_views(r->pool);
    if (!strcmp(format, "format=prometheus")) {
        print_prometheus(r, lines, tv);
    }
    else if (!strcmp(format, "format=json")) {
        print_json(r, lines, tv);
    }
    else {
        print_plain(r, lines, tv);
    }
    return OK;
}

/* ---- a section of mod_status's /server-status ---- */

static int status_section(request_rec *r, int flags)
{
    stat_line lines[N_SERVER_LINES];
    apr_array_header_t *tv;
    int i;

    server_lines(lines);
    tv = target_views(r->pool);
    if (flags & AP_STATUS_SHORT) {
        /* ?auto: "Key: value" lines, as mod_status's own. */
        ap_rprintf(r, "RProxyRequests: %" APR_UINT64_T_FMT "\n"
                   "RProxyErrors: %" APR_UINT64_T_FMT "\n"
                   "RProxyClientAborts: %" APR_UINT64_T_FMT "\n"
                   "RProxyActiveConnections: %" APR_UINT64_T_FMT "\n"
                   "RProxyIdleConnections: %" APR_UINT64_T_FMT "\n"
                   "RProxyBuffersOutstanding: %" APR_UINT64_T_FMT "\n",
                   lines[L_REQUESTS].value, lines[L_ERRORS].value,
                   lines[L_ABORTS].value, lines[L_ACTIVE].value,
                   lines[L_IDLE].value, lines[L_OUTSTANDING].value);
        for (i = 0; i < tv->nelts; i++) {
            const target_view *v = &APR_ARRAY_IDX(tv, i, target_view);
            ap_rprintf(r, "RProxyTarget%d: %s %s %s\n"
                       "RProxyTarget%dRequests: %" APR_UINT64_T_FMT "\n"
                       "RProxyTarget%dErrors: %" APR_UINT64_T_FMT "\n"
                       "RProxyTarget%dInFlight: %" APR_UINT64_T_FMT "\n",
                       i, v->slot->server, v->slot->location, v->slot->url,
                       i, v->requests, i, v->errors, i, v->in_flight);
        }
        return OK;
    }
    ap_rputs("<hr />\n<h2>mod_rproxy</h2>\n", r);
    if (flags & AP_STATUS_NOTABLE) {
        for (i = 0; i < N_SERVER_LINES; i++) {
            ap_rprintf(r, "%s: %" APR_UINT64_T_FMT "<br />\n", lines[i].key,
                       lines[i].value);
        }
        return OK;
    }
    ap_rputs("<table border=\"0\"><tr>", r);
    for (i = 0; i < N_SERVER_LINES; i++) {
        ap_rprintf(r, "<th>%s</th>", lines[i].key);
    }
    ap_rputs("</tr><tr>", r);
    for (i = 0; i < N_SERVER_LINES; i++) {
        ap_rprintf(r, "<td>%" APR_UINT64_T_FMT "</td>", lines[i].value);
    }
    ap_rputs("</tr></table>\n<table border=\"0\"><tr><th>Server</th>"
             "<th>Location</th><th>Target</th><th>Requests</th>"
             "<th>Errors</th><th>In flight</th><th>Connects</th>"
             "<th>Reuses</th><th>From backend</th><th>To backend</th>"
             "<th>p50 ms</th><th>p99 ms</th></tr>\n", r);
    for (i = 0; i < tv->nelts; i++) {
        const target_view *v = &APR_ARRAY_IDX(tv, i, target_view);
        ap_rprintf(r, "<tr><td>%s</td><td>%s</td><td>%s</td><td>%"
                   APR_UINT64_T_FMT "</td><td>%" APR_UINT64_T_FMT "</td><td>%"
                   APR_UINT64_T_FMT "</td><td>%" APR_UINT64_T_FMT "</td><td>%"
                   APR_UINT64_T_FMT "</td><td>%" APR_UINT64_T_FMT "</td><td>%"
                   APR_UINT64_T_FMT "</td><td>%.1f</td><td>%.1f</td></tr>\n",
                   ap_escape_html(r->pool, v->slot->server),
                   ap_escape_html(r->pool, v->slot->location),
                   ap_escape_html(r->pool, v->slot->url), v->requests,
                   v->errors, v->in_flight, v->backend_connects,
                   v->backend_reuses, v->bytes_from_backend,
                   v->bytes_to_backend, quantile_ms(v, 0.5),
                   quantile_ms(v, 0.99));
    }
    ap_rputs("</table>\n", r);
    return OK;
}

void rproxy_status_register_hooks(void)
{
    APR_OPTIONAL_HOOK(ap, status_hook, status_section, NULL, NULL,
                      APR_HOOK_MIDDLE);
}
