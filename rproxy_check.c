/*
 * rproxy_check.c - active health checks and the re-resolution of member
 * names, once for the whole server.
 *
 * Both run in httpd's mod_watchdog, in one singleton instance ("_rproxy_"):
 * its thread runs in every child, but only the child holding the
 * instance's mutex calls us, so a member is checked once per interval by
 * the server, not once per child.  What they find goes to the members'
 * slots in shared memory (rproxy_group.c decides the state changes and logs
 * them), where every child reads it.
 *
 * A check is one request on a new connection, made by the same code as a
 * proxied request (rproxy_conn_open(), rproxy_send_all(), the response
 * parser): "METHOD PATH HTTP/1.1", Host as a request to the member would
 * have it, Connection: close.  It passes when the status line comes within
 * the check's timeout and its status is in the expected range.  An https
 * member is checked over TLS as its requests go (SNI and certificate name:
 * the member's name), with no request: its group's server's SSLProxy*
 * settings, verified unless all its locations say RProxyTLSVerify off
 * (mod_rproxy.c works that out at check_config).  A group's
 * members are checked one after another, so a member that times out
 * delays the next ones by up to the timeout.
 *
 * Re-resolution: every resolve interval, each member written as a name
 * (not an address) is looked up again, and rproxy_group_readdress() drains
 * the addresses gone and adds the new ones.
 */
#include "rproxy.h"
#include "apr_strings.h"
#include "apr_optional.h"
#include "mod_watchdog.h"

#include <arpa/inet.h>

#define WATCHDOG_NAME "_rproxy_"
#define TICK (AP_WD_TM_SLICE)   /* how often the callback looks */

/* The checks' connections, counted apart from the members' figures. */
static rproxy_target_slot check_figures;

typedef struct {
    rproxy_group *g;
    int checks;                 /* has active checks */
    int resolves;               /* has names to resolve again */
    apr_time_t next_check, next_resolve;
} watched;

static apr_array_header_t *watched_groups;     /* watched */

/* Whether a member host is an address literal: nothing to resolve. */
static int is_address(const char *host)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1
           || inet_pton(AF_INET6, host, buf) == 1;
}

static int has_names(const rproxy_group *g)
{
    int i;
    for (i = 0; i < g->members->nelts; i++) {
        if (!is_address(APR_ARRAY_IDX(g->members, i,
                                      rproxy_member_conf).host)) {
            return 1;
        }
    }
    return 0;
}

/* Every group of the server once (a virtual host sees the main server's
 * groups too). */
static apr_array_header_t *all_groups(apr_pool_t *p, server_rec *s)
{
    apr_array_header_t *out = apr_array_make(p, 4, sizeof(rproxy_group *));
    apr_hash_t *seen = apr_hash_make(p);

    for (; s; s = s->next) {
        const rproxy_server_conf *sc =
            ap_get_module_config(s->module_config, &rproxy_module);
        apr_hash_index_t *hi;
        if (!sc->groups) {
            continue;
        }
        for (hi = apr_hash_first(p, sc->groups); hi; hi = apr_hash_next(hi)) {
            rproxy_group *g = apr_hash_this_val(hi);
            if (!apr_hash_get(seen, &g, sizeof(g))) {
                apr_hash_set(seen, apr_pmemdup(p, &g, sizeof(g)), sizeof(g),
                             g);
                *(rproxy_group **)apr_array_push(out) = g;
            }
        }
    }
    return out;
}

int rproxy_checks_check_config(apr_pool_t *ptemp, server_rec *s)
{
    apr_array_header_t *groups;
    int i, ok = 1;

    if (APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_get_instance)) {
        return 1;
    }
    groups = all_groups(ptemp, s);
    for (i = 0; i < groups->nelts; i++) {
        rproxy_group *g = APR_ARRAY_IDX(groups, i, rproxy_group *);
        if (g->check_method) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, s,
                         "<RProxyGroup %s>: RProxyHealthCheck runs in "
                         "mod_watchdog, which is not loaded (LoadModule "
                         "watchdog_module; Debian builds it into httpd)",
                         g->name);
            ok = 0;
        }
        else if (g->resolve_interval_set && g->resolve_interval > 0
                 && has_names(g)) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, s,
                         "<RProxyGroup %s>: RProxyResolveInterval runs in "
                         "mod_watchdog, which is not loaded (LoadModule "
                         "watchdog_module; Debian builds it into httpd), "
                         "or use RProxyResolveInterval 0", g->name);
            ok = 0;
        }
    }
    return ok;
}

/* ---- one check ---- */

static apr_status_t conn_recv(void *ctx, char *dst, apr_size_t *len)
{
    return rproxy_conn_read(ctx, dst, len, 1);
}

/* Checks one member: NULL when it passed, else why not; *status gets the
 * status it answered, 0 for none. */
static const char *check_member(rproxy_group *g, rproxy_member_slot *m,
                                int *status, apr_pool_t *p)
{
    rproxy_backend b;
    rproxy_conn *c;
    rproxy_reader rd;
    const char *req, *why = NULL;
    char *line;
    apr_size_t len;
    apr_status_t rv;
    int minor, cap = 2048;

    *status = 0;
    memset(&b, 0, sizeof(b));
    b.host = apr_pstrdup(p, m->host);
    b.port = m->port;
    b.authority = apr_pstrdup(p, m->authority);
    /* Its own key: never one of the requests' idle connections.  An https
     * member's also names the virtual host and the verification policy,
     * as the requests' do: the TLS session a check keeps is resumed only
     * under the same settings. */
    b.key = apr_pstrcat(p, "check ",
                        m->tls ? m->tls_keys[!!g->check_tls_verify] : m->key,
                        NULL);
    b.stats = &check_figures;
    b.server = g->server;
    if (m->tls) {
        const rproxy_member_conf *mc =
            &APR_ARRAY_IDX(g->members, m->conf_index, rproxy_member_conf);
        /* As a request to the member: SNI and the certificate check for
         * the name, with the group's SSLProxy* settings (no location: its
         * server's), verified as its locations verify. */
        b.tls = 1;
        b.tls_name = mc->host;
        b.host_is_ip = mc->host_is_ip;
    }
    rv = rproxy_conn_open(&c, &b, g->check_timeout, g->check_timeout,
                          g->check_tls_verify, NULL, p, &why);
    if (rv == RPROXY_TLS_FAILED) {
        return apr_psprintf(p, "TLS handshake refused: %s", why);
    }
    if (rv == RPROXY_TLS_TIMEUP) {
        return "TLS handshake timed out";
    }
    if (rv != APR_SUCCESS) {
        char err[120];
        return apr_psprintf(p, "connect: %s",
                            apr_strerror(rv, err, sizeof(err)));
    }
    why = NULL;
    rproxy_conn_timeout_set(c, g->check_timeout);
    req = apr_psprintf(p, "%s %s HTTP/1.1\r\nHost: %s\r\n"
                       "User-Agent: mod_rproxy health check\r\n"
                       "Connection: close\r\n\r\n",
                       g->check_method, g->check_path, b.authority);
    rv = rproxy_conn_write(c, req, strlen(req));
    if (rv != APR_SUCCESS) {
        why = "send failed";
    }
    rproxy_reader_init(&rd, apr_palloc(p, cap), cap, p, conn_recv, c);
    /* The status line of the final response (1xx heads are skipped). */
    while (!why) {
        rv = rproxy_read_line(&rd, &line, &len);
        if (rv != APR_SUCCESS) {
            why = APR_STATUS_IS_TIMEUP(rv) ? "timed out"
                  : rv == APR_EOF ? "closed before a status line"
                  : "read failed";
            break;
        }
        if ((why = rproxy_parse_status_line(line, len, status, &minor))) {
            *status = 0;
            why = apr_pstrcat(p, "bad status line: ", why, NULL);
            break;
        }
        if (*status >= 200) {
            break;
        }
        do {            /* the interim head's fields */
            rv = rproxy_read_line(&rd, &line, &len);
        } while (rv == APR_SUCCESS && len > 0);
        if (rv != APR_SUCCESS) {
            why = "read failed";
        }
    }
    rproxy_conn_release(c, 0);
    if (!why && (*status < g->check_status_lo
                 || *status > g->check_status_hi)) {
        why = apr_psprintf(p, "status %d, not %d-%d", *status,
                           g->check_status_lo, g->check_status_hi);
    }
    return why;
}

static void check_group(rproxy_group *g, apr_pool_t *p)
{
    int i;
    for (i = 0; i < g->n_slots; i++) {
        rproxy_member_slot *m = g->slots[i];
        int status;
        const char *why;
        if (!m->fig.used || m->health == RPROXY_MEMBER_GONE) {
            continue;
        }
        why = check_member(g, m, &status, p);
        rproxy_member_checked(g, m, status, why);
    }
}

/* ---- re-resolution ---- */

static void resolve_group(rproxy_group *g, apr_pool_t *p)
{
    int i;
    for (i = 0; i < g->members->nelts; i++) {
        const rproxy_member_conf *mc =
            &APR_ARRAY_IDX(g->members, i, rproxy_member_conf);
        apr_array_header_t *ips;
        apr_sockaddr_t *sa;
        apr_status_t rv;
        if (is_address(mc->host)) {
            continue;
        }
        rv = apr_sockaddr_info_get(&sa, mc->host, APR_UNSPEC, mc->port, 0, p);
        if (rv != APR_SUCCESS) {
            /* A failed lookup changes nothing: the addresses stay. */
            ap_log_error(APLOG_MARK, APLOG_INFO, rv, g->server,
                         "rproxy: group %s: member %s: cannot resolve %s "
                         "again; keeping its addresses", g->name, mc->url,
                         mc->host);
            continue;
        }
        ips = apr_array_make(p, 4, sizeof(char *));
        for (; sa; sa = sa->next) {
            char *ip;
            int j, dup = 0;
            apr_sockaddr_ip_get(&ip, sa);
            for (j = 0; j < ips->nelts; j++) {
                dup |= !strcmp(APR_ARRAY_IDX(ips, j, char *), ip);
            }
            if (!dup) {
                *(char **)apr_array_push(ips) = ip;
            }
        }
        rproxy_group_readdress(g, i, ips, p);
    }
}

/* ---- the watchdog ---- */

static apr_status_t watchdog_tick(int state, void *data, apr_pool_t *p)
{
    apr_time_t now = apr_time_now();
    int i;

    (void)data;
    if (state == AP_WATCHDOG_STATE_STOPPING) {
        return APR_SUCCESS;
    }
    for (i = 0; i < watched_groups->nelts; i++) {
        watched *w = &APR_ARRAY_IDX(watched_groups, i, watched);
        if (w->resolves && now >= w->next_resolve) {
            w->next_resolve = now + w->g->resolve_interval;
            resolve_group(w->g, p);
        }
        if (w->checks && now >= w->next_check) {
            w->next_check = now + w->g->check_interval;
            check_group(w->g, p);
        }
        apr_pool_clear(p);
    }
    return APR_SUCCESS;
}

apr_status_t rproxy_checks_post_config(apr_pool_t *pconf, server_rec *s)
{
    APR_OPTIONAL_FN_TYPE(ap_watchdog_get_instance) *get_instance =
        APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_get_instance);
    APR_OPTIONAL_FN_TYPE(ap_watchdog_register_callback) *register_cb =
        APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_register_callback);
    apr_array_header_t *groups = all_groups(pconf, s);
    ap_watchdog_t *wd;
    apr_status_t rv;
    int i;

    watched_groups = apr_array_make(pconf, groups->nelts, sizeof(watched));
    for (i = 0; i < groups->nelts; i++) {
        rproxy_group *g = APR_ARRAY_IDX(groups, i, rproxy_group *);
        watched w;
        memset(&w, 0, sizeof(w));
        w.g = g;
        w.checks = g->check_method != NULL;
        w.resolves = g->resolve_interval > 0 && has_names(g);
        /* The names were resolved at start: the first look is one
         * interval on; the first check comes at once. */
        w.next_resolve = apr_time_now() + g->resolve_interval;
        if (w.resolves && (!get_instance || !register_cb)) {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                         "rproxy: group %s: its member names are resolved "
                         "at start only (mod_watchdog is not loaded)",
                         g->name);
            w.resolves = 0;
        }
        if (w.checks || w.resolves) {
            *(watched *)apr_array_push(watched_groups) = w;
        }
    }
    if (!watched_groups->nelts) {
        return APR_SUCCESS;
    }
    if (!get_instance || !register_cb) {
        return APR_EGENERAL;    /* configtest said so already */
    }
    rv = get_instance(&wd, WATCHDOG_NAME, 0 /* in a child */,
                      1 /* singleton */, pconf);
    if (rv == APR_SUCCESS) {
        rv = register_cb(wd, TICK, NULL, watchdog_tick);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "rproxy: cannot run health checks and re-resolution in "
                     "mod_watchdog (instance " WATCHDOG_NAME ")");
    }
    return rv;
}
