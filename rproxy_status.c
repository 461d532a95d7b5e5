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
#include "http_main.h"
#include "apr_strings.h"
#include "util_script.h"

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

#define TREAD(field) apr_atomic_read64((volatile apr_uint64_t *)&ts->field)

static void read_figures(target_view *v, const rproxy_target_slot *ts)
{
    int b;

    v->slot = ts;
    v->requests = TREAD(requests);
    v->errors = TREAD(errors);
    v->client_aborts = TREAD(client_aborts);
    v->in_flight = apr_atomic_read32((volatile apr_uint32_t *)&ts->in_flight);
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

static apr_array_header_t *target_views(apr_pool_t *p)
{
    rproxy_target_slot **slots;
    unsigned int n = rproxy_stats_target_slots(&slots), i;
    apr_array_header_t *out = apr_array_make(p, 8, sizeof(target_view));

    for (i = 0; i < n; i++) {
        if (slots[i]->used) {
            read_figures(apr_array_push(out), slots[i]);
        }
    }
    return out;
}

/* ---- groups and their members, read once per page ---- */

typedef struct {
    target_view fig;            /* its figures, as a target's */
    const rproxy_member_slot *m;
    const char *url;            /* the member as written */
    const char *state;          /* up, slow-start, backup, draining,
                                 * ejected, down, gone */
    int usable;                 /* up, slow-start or backup */
    int weight;
    double effective_weight;
    apr_uint64_t failures, ejections, last_check;
} member_view;

typedef struct {
    const rproxy_group *g;
    const char *server;         /* ServerName:port of its virtual host */
    apr_uint64_t retries, retries_refused, no_member;
    member_view *members;
    int n_members;
} group_view;

/* The state the status page shows: rproxy_member_state_name()'s, but a
 * healthy backup member is "backup". */
static const char *member_state(const rproxy_member_slot *m, apr_time_t now,
                                int *usable)
{
    const char *st = rproxy_member_state_name(m, now);
    int ok = !strcmp(st, "up") || !strcmp(st, "slow-start");

    *usable = ok;
    return ok && m->backup ? "backup" : st;
}

static apr_array_header_t *group_views(apr_pool_t *p)
{
    apr_array_header_t *groups = rproxy_groups_all(p, ap_server_conf);
    apr_array_header_t *out = apr_array_make(p, groups->nelts + 1,
                                             sizeof(group_view));
    apr_time_t now = apr_time_now();
    int i, j;

    for (i = 0; i < groups->nelts; i++) {
        const rproxy_group *g = APR_ARRAY_IDX(groups, i, rproxy_group *);
        group_view *gv = apr_array_push(out);
        gv->g = g;
        gv->server = rproxy_stats_server_label(p, g->server);
        gv->retries = apr_atomic_read64(&g->shared->retries);
        gv->retries_refused = apr_atomic_read64(&g->shared->retries_refused);
        gv->no_member = apr_atomic_read64(&g->shared->no_member);
        gv->members = apr_pcalloc(p, sizeof(member_view) * (g->n_slots + 1));
        gv->n_members = 0;
        for (j = 0; j < g->n_slots; j++) {
            const rproxy_member_slot *m = g->slots[j];
            member_view *mv;
            const char *sp;
            if (!m->fig.used) {
                continue;
            }
            mv = &gv->members[gv->n_members++];
            read_figures(&mv->fig, &m->fig);
            mv->m = m;
            sp = strchr(m->fig.url, ' ');
            mv->url = sp ? apr_pstrmemdup(p, m->fig.url, sp - m->fig.url)
                         : m->fig.url;
            mv->state = member_state(m, now, &mv->usable);
            mv->weight = m->weight;
            mv->effective_weight = rproxy_member_effective_weight(m, now);
            mv->failures = apr_atomic_read64(
                (volatile apr_uint64_t *)&m->failures);
            mv->ejections = m->ejections;
            mv->last_check = m->last_check;
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
                        const apr_array_header_t *tv,
                        const apr_array_header_t *gv)
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
    for (i = 0; i < gv->nelts; i++) {
        const group_view *g = &APR_ARRAY_IDX(gv, i, group_view);
        int j;
        ap_rprintf(r, "group: server=%s group=%s members=%d retries=%"
                   APR_UINT64_T_FMT " retries_refused=%" APR_UINT64_T_FMT
                   " no_member=%" APR_UINT64_T_FMT "\n", g->server,
                   g->g->name, g->n_members, g->retries, g->retries_refused,
                   g->no_member);
        for (j = 0; j < g->n_members; j++) {
            const member_view *m = &g->members[j];
            ap_rprintf(r, "member: server=%s group=%s member=%s address=%s "
                       "state=%s backup=%d weight=%d effective_weight=%.2f "
                       "in_flight=%" APR_UINT64_T_FMT " requests=%"
                       APR_UINT64_T_FMT " errors=%" APR_UINT64_T_FMT
                       " failures=%" APR_UINT64_T_FMT " ejections=%"
                       APR_UINT64_T_FMT " last_check=%" APR_UINT64_T_FMT
                       " p50_ms=%.1f p90_ms=%.1f p99_ms=%.1f\n", g->server,
                       g->g->name, m->url, m->m->key, m->state, m->m->backup,
                       m->weight, m->effective_weight, m->fig.in_flight,
                       m->fig.requests, m->fig.errors, m->failures,
                       m->ejections, m->last_check,
                       quantile_ms(&m->fig, 0.5), quantile_ms(&m->fig, 0.9),
                       quantile_ms(&m->fig, 0.99));
        }
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

static const char *member_labels(apr_pool_t *p, const group_view *g,
                                 const member_view *m)
{
    return apr_psprintf(p, "server=\"%s\",group=\"%s\",member=\"%s\"",
                        label(p, g->server), label(p, g->g->name),
                        label(p, m->m->fig.url));
}

/* One histogram's series of buckets, sum and count. */
static void histogram(request_rec *r, const char *name, const char *labels,
                      const target_view *v)
{
    apr_uint64_t cumulative = 0;
    int b;

    for (b = 0; b < RPROXY_LATENCY_BUCKETS - 1; b++) {
        cumulative += v->latency[b];
        ap_rprintf(r, "%s_bucket{%s,le=\"%g\"} %" APR_UINT64_T_FMT "\n",
                   name, labels, rproxy_latency_bounds[b] / 1e6, cumulative);
    }
    ap_rprintf(r, "%s_bucket{%s,le=\"+Inf\"} %" APR_UINT64_T_FMT "\n"
               "%s_sum{%s} %.6f\n%s_count{%s} %" APR_UINT64_T_FMT "\n",
               name, labels, v->observed, name, labels, v->latency_us / 1e6,
               name, labels, v->observed);
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
    int i, m;

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
        histogram(r, "rproxy_target_response_seconds", labels[i],
                  &APR_ARRAY_IDX(tv, i, target_view));
    }
}

/* The states rproxy_member_state gives one series each, 1 for the
 * member's state and 0 for the others, so the series stay the same. */
static const char *const member_states[] = {
    "up", "slow-start", "backup", "draining", "ejected", "down", "gone"
};
#define N_MEMBER_STATES \
    (int)(sizeof(member_states) / sizeof(member_states[0]))

static void print_prometheus_groups(request_rec *r,
                                    const apr_array_header_t *gv)
{
    apr_pool_t *p = r->pool;
    int i, j, k;

#define EACH_GROUP(metric, help, type, field) \
    ap_rputs("# HELP " metric " " help "\n# TYPE " metric " " type "\n", r); \
    for (i = 0; i < gv->nelts; i++) { \
        const group_view *g = &APR_ARRAY_IDX(gv, i, group_view); \
        ap_rprintf(r, metric "{server=\"%s\",group=\"%s\"} %" \
                   APR_UINT64_T_FMT "\n", label(p, g->server), \
                   label(p, g->g->name), (apr_uint64_t)(field)); \
    }
    EACH_GROUP("rproxy_group_retries_total", "Requests tried again on "
               "another member.", "counter", g->retries)
    EACH_GROUP("rproxy_group_retries_refused_total", "Retries the retry "
               "budget refused.", "counter", g->retries_refused)
    EACH_GROUP("rproxy_group_no_member_total", "Requests answered 503 for "
               "want of a usable member.", "counter", g->no_member)
#undef EACH_GROUP

#define EACH_MEMBER(metric, help, type, fmt, field) \
    ap_rputs("# HELP " metric " " help "\n# TYPE " metric " " type "\n", r); \
    for (i = 0; i < gv->nelts; i++) { \
        const group_view *g = &APR_ARRAY_IDX(gv, i, group_view); \
        for (j = 0; j < g->n_members; j++) { \
            const member_view *m = &g->members[j]; \
            ap_rprintf(r, metric "{%s} " fmt "\n", \
                       member_labels(p, g, m), field); \
        } \
    }
    EACH_MEMBER("rproxy_member_up", "1 if the member takes requests (up, "
                "slow-start, or a healthy backup), else 0.", "gauge", "%d",
                m->usable)
    ap_rputs("# HELP rproxy_member_state The member's state: 1 for the "
             "state it is in, 0 for the others.\n"
             "# TYPE rproxy_member_state gauge\n", r);
    for (i = 0; i < gv->nelts; i++) {
        const group_view *g = &APR_ARRAY_IDX(gv, i, group_view);
        for (j = 0; j < g->n_members; j++) {
            const member_view *m = &g->members[j];
            const char *l = member_labels(p, g, m);
            int known = 0;
            for (k = 0; k < N_MEMBER_STATES; k++) {
                int on = !strcmp(m->state, member_states[k]);
                known |= on;
                ap_rprintf(r, "rproxy_member_state{%s,state=\"%s\"} %d\n",
                           l, member_states[k], on);
            }
            if (!known) {
                ap_rprintf(r, "rproxy_member_state{%s,state=\"%s\"} 1\n",
                           l, label(p, m->state));
            }
        }
    }
    EACH_MEMBER("rproxy_member_backup", "1 for a backup member.", "gauge",
                "%d", m->m->backup)
    EACH_MEMBER("rproxy_member_weight", "The member's configured weight.",
                "gauge", "%d", m->weight)
    EACH_MEMBER("rproxy_member_effective_weight", "The weight it is picked "
                "by now: lower during slow start.", "gauge", "%g",
                m->effective_weight)
    EACH_MEMBER("rproxy_member_in_flight", "Requests to the member in "
                "progress.", "gauge", "%" APR_UINT64_T_FMT, m->fig.in_flight)
    EACH_MEMBER("rproxy_member_requests_total", "Requests sent to the "
                "member (each try).", "counter", "%" APR_UINT64_T_FMT,
                m->fig.requests)
    EACH_MEMBER("rproxy_member_errors_total", "Tries to the member that "
                "failed (connect, reset, timeout, retried status).",
                "counter", "%" APR_UINT64_T_FMT, m->fig.errors)
    EACH_MEMBER("rproxy_member_failures_total", "Failures counted against "
                "the member's health.", "counter", "%" APR_UINT64_T_FMT,
                m->failures)
    EACH_MEMBER("rproxy_member_ejections_total", "Times the member was "
                "ejected.", "counter", "%" APR_UINT64_T_FMT, m->ejections)
    EACH_MEMBER("rproxy_member_last_check_status", "The status of the last "
                "active check; 0: none yet.", "gauge",
                "%" APR_UINT64_T_FMT, m->last_check)
#undef EACH_MEMBER
    ap_rputs("# HELP rproxy_member_response_seconds Time from sending to "
             "the member to the end of its response, per try.\n"
             "# TYPE rproxy_member_response_seconds histogram\n", r);
    for (i = 0; i < gv->nelts; i++) {
        const group_view *g = &APR_ARRAY_IDX(gv, i, group_view);
        for (j = 0; j < g->n_members; j++) {
            histogram(r, "rproxy_member_response_seconds",
                      member_labels(p, g, &g->members[j]),
                      &g->members[j].fig);
        }
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

static void json_latency(request_rec *r, const target_view *v)
{
    int b;

    ap_rputs(",\"latency\":[", r);
    for (b = 0; b < RPROXY_LATENCY_BUCKETS; b++) {
        ap_rprintf(r, "%s%" APR_UINT64_T_FMT, b ? "," : "", v->latency[b]);
    }
    ap_rputs("]", r);
}

static void print_json_groups(request_rec *r, const apr_array_header_t *gv)
{
    apr_pool_t *p = r->pool;
    int i, j;

    ap_rputs(",\"groups\":[", r);
    for (i = 0; i < gv->nelts; i++) {
        const group_view *g = &APR_ARRAY_IDX(gv, i, group_view);
        ap_rprintf(r, "%s{\"server\":%s,\"name\":%s,\"retries_total\":%"
                   APR_UINT64_T_FMT ",\"retries_refused_total\":%"
                   APR_UINT64_T_FMT ",\"no_member_total\":%" APR_UINT64_T_FMT
                   ",\"members\":[", i ? "," : "", json_string(p, g->server),
                   json_string(p, g->g->name), g->retries,
                   g->retries_refused, g->no_member);
        for (j = 0; j < g->n_members; j++) {
            const member_view *m = &g->members[j];
            ap_rprintf(r, "%s{\"member\":%s,\"url\":%s,\"key\":%s,"
                       "\"state\":%s,\"up\":%d,\"backup\":%d,\"weight\":%d,"
                       "\"effective_weight\":%.3f,\"in_flight\":%"
                       APR_UINT64_T_FMT ",\"requests_total\":%"
                       APR_UINT64_T_FMT ",\"errors_total\":%" APR_UINT64_T_FMT
                       ",\"failures_total\":%" APR_UINT64_T_FMT
                       ",\"ejections_total\":%" APR_UINT64_T_FMT
                       ",\"last_check\":%" APR_UINT64_T_FMT,
                       j ? "," : "", json_string(p, m->m->fig.url),
                       json_string(p, m->url), json_string(p, m->m->key),
                       json_string(p, m->state), m->usable, m->m->backup,
                       m->weight, m->effective_weight, m->fig.in_flight,
                       m->fig.requests, m->fig.errors, m->failures,
                       m->ejections, m->last_check);
            json_latency(r, &m->fig);
            ap_rputs("}", r);
        }
        ap_rputs("]}", r);
    }
    ap_rputs("]", r);
}

/* ---- run-time control: drain and enable, by POST ---- */

/* The nonce a POST must carry, the same in every child: made at each
 * post_config, kept in shared memory. */
typedef struct {
    char nonce[33];
} control_slot;

static control_slot *control;

apr_status_t rproxy_status_post_config(apr_pool_t *pconf, server_rec *s)
{
    unsigned char raw[16];
    void *slot;
    int i;
    apr_status_t rv = rproxy_stats_create("rproxy-control",
                                          sizeof(control_slot), 1, &slot,
                                          pconf, s);
    if (rv == APR_SUCCESS) {
        rv = apr_generate_random_bytes(raw, sizeof(raw));
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    control = slot;
    for (i = 0; i < (int)sizeof(raw); i++) {
        apr_snprintf(control->nonce + 2 * i, 3, "%02x", raw[i]);
    }
    return APR_SUCCESS;
}

static int control_on(request_rec *r)
{
    const rproxy_dir_conf *dc = ap_get_module_config(r->per_dir_config,
                                                     &rproxy_module);
    return dc->status_control == 1 && control;
}

/* Whether given is the nonce, in a time that does not tell how much of
 * it was right. */
static int nonce_ok(const char *given)
{
    apr_size_t n = strlen(control->nonce), i;
    unsigned char diff = 0;

    if (!given || strlen(given) != n) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        diff |= (unsigned char)(given[i] ^ control->nonce[i]);
    }
    return diff == 0;
}

static int control_post(request_rec *r)
{
    apr_array_header_t *pairs = NULL;
    const char *action = NULL, *group = NULL, *member = NULL, *nonce = NULL;
    const char *who = r->user ? apr_psprintf(r->pool, "%s (user %s)",
                                             r->useragent_ip, r->user)
                              : r->useragent_ip;
    const rproxy_server_conf *sc = ap_get_module_config(
        r->server->module_config, &rproxy_module);
    rproxy_group *g;
    rproxy_member_slot *m;
    const char *from;
    int rv, drain;

    if (!control_on(r)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "rproxy: status POST "
                      "from %s refused: RProxyStatusControl is not On for "
                      "%s", who, r->uri);
        ap_discard_request_body(r);
        return HTTP_FORBIDDEN;
    }
    rv = ap_parse_form_data(r, NULL, &pairs, 8, 4096);
    if (rv != OK) {
        return rv;
    }
    while (pairs && !apr_is_empty_array(pairs)) {
        ap_form_pair_t *pair = apr_array_pop(pairs);
        apr_off_t len;
        apr_size_t size;
        char *v;
        apr_brigade_length(pair->value, 1, &len);
        size = (apr_size_t)len;
        v = apr_palloc(r->pool, size + 1);
        apr_brigade_flatten(pair->value, v, &size);
        v[size] = '\0';
        if (!strcmp(pair->name, "action")) {
            action = v;
        }
        else if (!strcmp(pair->name, "group")) {
            group = v;
        }
        else if (!strcmp(pair->name, "member")) {
            member = v;
        }
        else if (!strcmp(pair->name, "nonce")) {
            nonce = v;
        }
    }
    if (!nonce_ok(nonce)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "rproxy: status POST "
                      "from %s refused: %s nonce (a cross-site request, or "
                      "a page from before a restart?)", who,
                      nonce ? "wrong" : "no");
        return HTTP_FORBIDDEN;
    }
    if (!action || (strcmp(action, "drain") && strcmp(action, "enable"))) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "rproxy: status POST "
                      "from %s: action '%s' is not drain or enable", who,
                      action ? action : "");
        return HTTP_BAD_REQUEST;
    }
    g = group && sc->groups ? apr_hash_get(sc->groups, group,
                                           APR_HASH_KEY_STRING) : NULL;
    m = g && g->slots && member ? rproxy_group_find_member(g, member) : NULL;
    if (!m) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "rproxy: status POST "
                      "from %s: no member '%s' in a group '%s' here", who,
                      member ? member : "", group ? group : "");
        return HTTP_NOT_FOUND;
    }
    drain = !strcmp(action, "drain");
    from = rproxy_member_state_name(m, apr_time_now());
    rproxy_member_set_drain(g, m, drain, who);
    ap_set_content_type(r, "text/plain; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_rprintf(r, "group %s member %s (%s): %s -> %s\n", g->name, m->fig.url,
               m->key, from, rproxy_member_state_name(m, apr_time_now()));
    return OK;
}

static void print_json(request_rec *r, const stat_line *s,
                       const apr_array_header_t *tv,
                       const apr_array_header_t *gv)
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
        json_latency(r, v);
        ap_rputs("}", r);
    }
    ap_rputs("]", r);
    print_json_groups(r, gv);
    /* The drain and enable buttons' nonce, where POSTs are allowed. */
    if (control_on(r)) {
        ap_rprintf(r, ",\"control\":{\"enabled\":true,\"nonce\":\"%s\"}",
                   control->nonce);
    }
    else {
        ap_rputs(",\"control\":{\"enabled\":false}", r);
    }
    ap_rputs("}\n", r);
}

int rproxy_status_handler(request_rec *r)
{
    stat_line lines[N_SERVER_LINES];
    apr_array_header_t *tv, *gv;
    const char *format = r->args ? r->args : "";

    if (!r->handler || strcmp(r->handler, "rproxy-status")) {
        return DECLINED;
    }
    if (r->method_number == M_POST) {
        return control_post(r);
    }
    if (r->method_number != M_GET) {
        r->allowed = (AP_METHOD_BIT << M_GET) | (AP_METHOD_BIT << M_POST);
        return HTTP_METHOD_NOT_ALLOWED;
    }
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (!strcmp(format, "format=html")) {
        ap_set_content_type(r, "text/html; charset=utf-8");
        /* The page runs only its own inline script and fetches only its
         * own JSON (and POSTs its buttons there).  No other page may frame
         * it (default-src does not cover that): one click on a button
         * drains a member, and a framed page reads its nonce itself. */
        apr_table_setn(r->headers_out, "Content-Security-Policy",
                       "default-src 'none'; script-src 'unsafe-inline'; "
                       "style-src 'unsafe-inline'; connect-src 'self'; "
                       "frame-ancestors 'none'");
        apr_table_setn(r->headers_out, "X-Frame-Options", "DENY");
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
    gv = group_views(r->pool);
    if (!strcmp(format, "format=prometheus")) {
        print_prometheus(r, lines, tv);
        print_prometheus_groups(r, gv);
    }
    else if (!strcmp(format, "format=json")) {
        print_json(r, lines, tv, gv);
    }
    else {
        print_plain(r, lines, tv, gv);
    }
    return OK;
}

/* ---- a section of mod_status's /server-status ---- */

static int status_section(request_rec *r, int flags)
{
    stat_line lines[N_SERVER_LINES];
    apr_array_header_t *tv, *gv;
    int i, j, k;

    server_lines(lines);
    tv = target_views(r->pool);
    gv = group_views(r->pool);
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
        for (i = 0, k = 0; i < gv->nelts; i++) {
            const group_view *g = &APR_ARRAY_IDX(gv, i, group_view);
            ap_rprintf(r, "RProxyGroup%d: %s %s\n"
                       "RProxyGroup%dRetries: %" APR_UINT64_T_FMT "\n"
                       "RProxyGroup%dRetriesRefused: %" APR_UINT64_T_FMT "\n"
                       "RProxyGroup%dNoMember: %" APR_UINT64_T_FMT "\n",
                       i, g->server, g->g->name, i, g->retries, i,
                       g->retries_refused, i, g->no_member);
            for (j = 0; j < g->n_members; j++, k++) {
                const member_view *m = &g->members[j];
                ap_rprintf(r, "RProxyMember%d: %s %s %s %s\n"
                           "RProxyMember%dState: %s\n"
                           "RProxyMember%dBackup: %d\n"
                           "RProxyMember%dWeight: %d\n"
                           "RProxyMember%dEffectiveWeight: %.2f\n"
                           "RProxyMember%dInFlight: %" APR_UINT64_T_FMT "\n"
                           "RProxyMember%dRequests: %" APR_UINT64_T_FMT "\n"
                           "RProxyMember%dErrors: %" APR_UINT64_T_FMT "\n"
                           "RProxyMember%dFailures: %" APR_UINT64_T_FMT "\n"
                           "RProxyMember%dEjections: %" APR_UINT64_T_FMT "\n"
                           "RProxyMember%dLastCheck: %" APR_UINT64_T_FMT "\n"
                           "RProxyMember%dP50ms: %.1f\n"
                           "RProxyMember%dP99ms: %.1f\n",
                           k, g->server, g->g->name, m->url, m->m->key,
                           k, m->state, k, m->m->backup, k, m->weight,
                           k, m->effective_weight, k, m->fig.in_flight,
                           k, m->fig.requests, k, m->fig.errors,
                           k, m->failures, k, m->ejections, k, m->last_check,
                           k, quantile_ms(&m->fig, 0.5),
                           k, quantile_ms(&m->fig, 0.99));
            }
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
    for (i = 0; i < gv->nelts; i++) {
        const group_view *g = &APR_ARRAY_IDX(gv, i, group_view);
        ap_rprintf(r, "<h3>Group %s (%s)</h3>\n<p>retries %" APR_UINT64_T_FMT
                   ", refused by the budget %" APR_UINT64_T_FMT ", no member "
                   "(503) %" APR_UINT64_T_FMT "</p>\n<table border=\"0\"><tr>"
                   "<th>Member</th><th>Address</th><th>State</th>"
                   "<th>Weight</th><th>Effective</th><th>In flight</th>"
                   "<th>Requests</th><th>Errors</th><th>Failures</th>"
                   "<th>Ejections</th><th>Last check</th><th>p50 ms</th>"
                   "<th>p99 ms</th></tr>\n",
                   ap_escape_html(r->pool, g->g->name),
                   ap_escape_html(r->pool, g->server), g->retries,
                   g->retries_refused, g->no_member);
        for (j = 0; j < g->n_members; j++) {
            const member_view *m = &g->members[j];
            ap_rprintf(r, "<tr><td>%s</td><td>%s</td><td>%s</td><td>%d</td>"
                       "<td>%.2f</td><td>%" APR_UINT64_T_FMT "</td><td>%"
                       APR_UINT64_T_FMT "</td><td>%" APR_UINT64_T_FMT
                       "</td><td>%" APR_UINT64_T_FMT "</td><td>%"
                       APR_UINT64_T_FMT "</td><td>%" APR_UINT64_T_FMT
                       "</td><td>%.1f</td><td>%.1f</td></tr>\n",
                       ap_escape_html(r->pool, m->url),
                       ap_escape_html(r->pool, m->m->key), m->state,
                       m->weight, m->effective_weight, m->fig.in_flight,
                       m->fig.requests, m->fig.errors, m->failures,
                       m->ejections, m->last_check,
                       quantile_ms(&m->fig, 0.5), quantile_ms(&m->fig, 0.99));
        }
        ap_rputs("</table>\n", r);
    }
    return OK;
}

void rproxy_status_register_hooks(void)
{
    APR_OPTIONAL_HOOK(ap, status_hook, status_section, NULL, NULL,
                      APR_HOOK_MIDDLE);
}
