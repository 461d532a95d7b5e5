/*
 * mod_rproxy.c - a reverse-proxy handler for httpd 2.4 that copies bodies
 * through a swappable buffer pool (Go's ReverseProxy.BufferPool).
 *
 * This file holds the module's configuration, its hooks and the handler
 * that runs one exchange with the backend.  The request builder, response
 * parser, buffer pools, backend connections and status page live in the
 * rproxy_*.c files beside it.
 */
#define RPROXY_MODULE_FILE
#include "rproxy.h"
#include "http_core.h"
#include "http_protocol.h"
#include "http_request.h"
#include "ap_provider.h"
#include "ap_expr.h"
#include "apr_strings.h"
#include "apr_uri.h"
#include "apr_fnmatch.h"

#include <errno.h>

#define DEFAULT_BUFFER_SIZE     32768
#define MIN_BUFFER_SIZE         256
#define MAX_BUFFER_SIZE         (64 * 1024 * 1024)
#define DEFAULT_CONNECT_TIMEOUT apr_time_from_sec(5)
#define DEFAULT_IDLE_TIMEOUT    apr_time_from_sec(30)
#define DEFAULT_MAX_HEAD_SIZE   65536
#define DEFAULT_MAX_HEADERS     100

/* ---- configuration ---- */

static void *create_dir_conf(apr_pool_t *p, char *dir)
{
    rproxy_dir_conf *dc = apr_pcalloc(p, sizeof(*dc));
    (void)dir;
    dc->timeout = -1;
    dc->connect_timeout = -1;
    dc->preserve_host = -1;
    dc->add_forwarded = -1;
    dc->allow_underscores = -1;
    return dc;
}

#define MERGE(field, unset) (add->field != (unset) ? add->field : base->field)

static void *merge_dir_conf(apr_pool_t *p, void *basev, void *addv)
{
    rproxy_dir_conf *base = basev, *add = addv;
    rproxy_dir_conf *dc = apr_pcalloc(p, sizeof(*dc));

    if (add->target) {
        dc->target = add->target;
        dc->strip_prefix = add->strip_prefix;
    }
    else {
        dc->target = base->target;
        dc->strip_prefix = base->strip_prefix;
    }
    dc->pool = MERGE(pool, NULL);
    dc->timeout = MERGE(timeout, -1);
    dc->connect_timeout = MERGE(connect_timeout, -1);
    dc->flush_interval_set = add->flush_interval_set
                             || base->flush_interval_set;
    dc->flush_interval = add->flush_interval_set ? add->flush_interval
                                                 : base->flush_interval;
    dc->preserve_host = MERGE(preserve_host, -1);
    dc->add_forwarded = MERGE(add_forwarded, -1);
    dc->upgrades = MERGE(upgrades, NULL);
    dc->allow_underscores = MERGE(allow_underscores, -1);
    return dc;
}

static void *create_server_conf(apr_pool_t *p, server_rec *s)
{
    rproxy_server_conf *sc = apr_pcalloc(p, sizeof(*sc));
    (void)s;
    sc->buffer_size = DEFAULT_BUFFER_SIZE;
    sc->idle_max = -1;
    sc->idle_timeout = -1;
    return sc;
}

static void *merge_server_conf(apr_pool_t *p, void *basev, void *addv)
{
    rproxy_server_conf *base = basev, *add = addv;
    rproxy_server_conf *sc = apr_pmemdup(p, add, sizeof(*sc));

    if (!add->buffer_size_set) {
        sc->buffer_size = base->buffer_size;
        sc->buffer_size_set = base->buffer_size_set;
    }
    sc->idle_max = MERGE(idle_max, -1);
    sc->idle_timeout = MERGE(idle_timeout, -1);
    sc->max_head_size = MERGE(max_head_size, 0);
    sc->max_headers = MERGE(max_headers, 0);
    return sc;
}

/* The path of the literal <Location> this directive sits in (through any
 * <If>, <Else>, <IfModule>... wrappers), or NULL: a regex or wildcard
 * <Location>, <LocationMatch>, <Directory> or server level has no prefix
 * to replace by the target path. */
static const char *literal_location(cmd_parms *cmd)
{
    const ap_directive_t *d = cmd->directive->parent;
    char *args, *end;
    const char *path;

    while (d && (!strncasecmp(d->directive, "<If", 3)
                 || !strncasecmp(d->directive, "<Else", 5))) {
        d = d->parent;
    }
    if (!d || strcasecmp(d->directive, "<Location")) {
        return NULL;
    }
    /* A section's args run up to its closing '>'. */
    args = apr_pstrdup(cmd->pool, d->args);
    end = strrchr(args, '>');
    if (end) {
        *end = '\0';
    }
    path = ap_getword_conf(cmd->pool, (const char **)&args);
    if (!*path || !strcmp(path, "~") || apr_fnmatch_test(path)) {
        return NULL;
    }
    return path;
}

static const char *set_target(cmd_parms *cmd, void *dcv, const char *url)
{
    rproxy_dir_conf *dc = dcv;
    rproxy_target *t = apr_pcalloc(cmd->pool, sizeof(*t));
    apr_uri_t u;

    if (apr_uri_parse(cmd->pool, url, &u) != APR_SUCCESS || !u.scheme
        || strcasecmp(u.scheme, "http") || !u.hostname || !*u.hostname
        || u.user || u.password || u.fragment
        || (u.port_str && (!*u.port_str || u.port == 0))) {
        return apr_psprintf(cmd->pool, "RProxyTarget: '%s' is not a URL of "
                            "the form http://host[:port][/path][?query]", url);
    }
    t->url = url;
    t->host = u.hostname;
    t->port = u.port ? u.port : 80;
    t->authority = apr_psprintf(cmd->pool, "%s%s%s%s%s",
                                ap_strchr_c(u.hostname, ':') ? "[" : "",
                                u.hostname,
                                ap_strchr_c(u.hostname, ':') ? "]" : "",
                                u.port_str ? ":" : "",
                                u.port_str ? u.port_str : "");
    t->path = u.path ? u.path : "";
    t->query = u.query;
    t->key = apr_psprintf(cmd->pool, "%s:%u", u.hostname, t->port);
    dc->target = t;

    dc->strip_prefix = literal_location(cmd);
    return NULL;
}

static const char *set_pool(cmd_parms *cmd, void *dcv, const char *name)
{
    rproxy_dir_conf *dc = dcv;
    const rproxy_buffer_pool *pool =
        ap_lookup_provider(RPROXY_BUFFER_POOL_GROUP, name,
                           RPROXY_BUFFER_POOL_VERSION);
    if (!pool) {
        return apr_psprintf(cmd->pool, "RProxyBufferPool: unknown buffer "
                            "pool '%s' (no module registered it under '%s' "
                            "version %s; its LoadModule must come first)",
                            name, RPROXY_BUFFER_POOL_GROUP,
                            RPROXY_BUFFER_POOL_VERSION);
    }
    dc->pool = pool;
    return NULL;
}

/* Parses a decimal integer within [min, max] or explains why not. */
static const char *parse_int(cmd_parms *cmd, const char *arg,
                             apr_int64_t min, apr_int64_t max,
                             const char *unit, apr_int64_t *out)
{
    char *end;
    apr_int64_t v;

    errno = 0;
    v = apr_strtoi64(arg, &end, 10);
    if (errno || end == arg || *end || v < min || v > max) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not %s between %"
                            APR_INT64_T_FMT " and %" APR_INT64_T_FMT,
                            cmd->cmd->name, arg, unit, min, max);
    }
    *out = v;
    return NULL;
}

static const char *set_buffer_size(cmd_parms *cmd, void *dcv, const char *arg)
{
    rproxy_server_conf *sc =
        ap_get_module_config(cmd->server->module_config, &rproxy_module);
    apr_int64_t v;
    const char *err = parse_int(cmd, arg, MIN_BUFFER_SIZE, MAX_BUFFER_SIZE,
                                "a byte count", &v);
    (void)dcv;
    if (err) {
        return err;
    }
    sc->buffer_size = (apr_size_t)v;
    sc->buffer_size_set = 1;
    return NULL;
}

static const char *set_flush_interval(cmd_parms *cmd, void *dcv,
                                      const char *arg)
{
    rproxy_dir_conf *dc = dcv;
    apr_int64_t v;
    const char *err = parse_int(cmd, arg, -1, 86400000,
                                "a number of milliseconds", &v);
    if (err) {
        return err;
    }
    dc->flush_interval = v < 0 ? -1 : apr_time_from_msec(v);
    dc->flush_interval_set = 1;
    return NULL;
}

static const char *parse_timeout(cmd_parms *cmd, const char *arg,
                                 apr_interval_time_t *out)
{
    if (ap_timeout_parameter_parse(arg, out, "s") != APR_SUCCESS
        || *out <= 0) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a positive timeout "
                            "(seconds, or a number with an ms/s/mi/h suffix)",
                            cmd->cmd->name, arg);
    }
    return NULL;
}

static const char *set_timeout(cmd_parms *cmd, void *dcv, const char *arg)
{
    return parse_timeout(cmd, arg, &((rproxy_dir_conf *)dcv)->timeout);
}

static const char *set_connect_timeout(cmd_parms *cmd, void *dcv,
                                       const char *arg)
{
    return parse_timeout(cmd, arg,
                         &((rproxy_dir_conf *)dcv)->connect_timeout);
}

static const char *set_idle_timeout(cmd_parms *cmd, void *dcv,
                                    const char *arg)
{
    rproxy_server_conf *sc =
        ap_get_module_config(cmd->server->module_config, &rproxy_module);
    (void)dcv;
    return parse_timeout(cmd, arg, &sc->idle_timeout);
}

/* The server-level integer directives, told apart by cmd->info. */
enum { SET_IDLE_MAX, SET_MAX_HEAD_SIZE, SET_MAX_HEADERS };

static const char *set_server_int(cmd_parms *cmd, void *dcv, const char *arg)
{
    rproxy_server_conf *sc =
        ap_get_module_config(cmd->server->module_config, &rproxy_module);
    apr_int64_t v;
    const char *err;

    (void)dcv;
    switch ((int)(apr_uintptr_t)cmd->info) {
    case SET_IDLE_MAX:
        err = parse_int(cmd, arg, 0, 65536, "a connection count", &v);
        sc->idle_max = (int)v;
        break;
    case SET_MAX_HEAD_SIZE:
        err = parse_int(cmd, arg, 1024, 16 * 1024 * 1024, "a byte count", &v);
        sc->max_head_size = (apr_size_t)v;
        break;
    default:
        err = parse_int(cmd, arg, 1, 10000, "a header count", &v);
        sc->max_headers = (int)v;
        break;
    }
    return err;
}

/* RProxyAllowUpgrade proto... | none: replaces what an outer scope allowed. */
static const char *set_upgrades(cmd_parms *cmd, void *dcv, const char *args)
{
    rproxy_dir_conf *dc = dcv;
    const char *proto;

    dc->upgrades = apr_array_make(cmd->pool, 2, sizeof(const char *));
    if (!*args) {
        return "RProxyAllowUpgrade takes protocol names, or none";
    }
    while (*(proto = ap_getword_conf(cmd->temp_pool, &args))) {
        if (!strcasecmp(proto, "h2c")) {
            return "RProxyAllowUpgrade: h2c is never forwarded (its upgrade "
                   "would let a client smuggle requests past the proxy)";
        }
        if (*ap_scan_http_token(proto)) {
            return apr_psprintf(cmd->pool, "RProxyAllowUpgrade: '%s' is not "
                                "a protocol name", proto);
        }
        if (strcasecmp(proto, "none")) {
            *(const char **)apr_array_push(dc->upgrades) =
                apr_pstrdup(cmd->pool, proto);
        }
        else if (*args || dc->upgrades->nelts) {
            return "RProxyAllowUpgrade: none cannot be combined with "
                   "protocol names";
        }
    }
    return NULL;
}

static const char *set_flag(cmd_parms *cmd, void *dcv, int on)
{
    rproxy_dir_conf *dc = dcv;
    if (cmd->info == (void *)"preserve_host") {
        dc->preserve_host = on;
    }
    else {
        dc->add_forwarded = on;
    }
    return NULL;
}

/* RProxyAllowUnderscoresInHeaders On|Off: a TAKE1, so that a bad value
 * is named in the error. */
static const char *set_allow_underscores(cmd_parms *cmd, void *dcv,
                                         const char *arg)
{
    rproxy_dir_conf *dc = dcv;

    if (!strcasecmp(arg, "on")) {
        dc->allow_underscores = 1;
    }
    else if (!strcasecmp(arg, "off")) {
        dc->allow_underscores = 0;
    }
    else {
        return apr_psprintf(cmd->pool, "RProxyAllowUnderscoresInHeaders must "
                            "be On or Off, not '%s'", arg);
    }
    return NULL;
}

static const command_rec rproxy_cmds[] = {
    AP_INIT_TAKE1("RProxyTarget", set_target, NULL, RSRC_CONF | ACCESS_CONF,
                  "Backend base URL: http://host[:port][/path][?query]"),
    AP_INIT_TAKE1("RProxyBufferPool", set_pool, NULL, RSRC_CONF | ACCESS_CONF,
                  "Buffer pool provider that copies bodies (default: apr)"),
    AP_INIT_TAKE1("RProxyBufferSize", set_buffer_size, NULL, RSRC_CONF,
                  "Size in bytes of each buffer of the apr pool"),
    AP_INIT_TAKE1("RProxyFlushInterval", set_flush_interval, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "Milliseconds between flushes: 0 at end, -1 every write"),
    AP_INIT_TAKE1("RProxyTimeout", set_timeout, NULL, RSRC_CONF | ACCESS_CONF,
                  "Backend read/write timeout (default: Timeout)"),
    AP_INIT_TAKE1("RProxyConnectTimeout", set_connect_timeout, NULL,
                  RSRC_CONF | ACCESS_CONF, "Backend connect timeout"),
    AP_INIT_FLAG("RProxyPreserveHost", set_flag, "preserve_host",
                 RSRC_CONF | ACCESS_CONF, "Send the client's Host header"),
    AP_INIT_FLAG("RProxyAddForwarded", set_flag, "add_forwarded",
                 RSRC_CONF | ACCESS_CONF, "Add X-Forwarded-* headers"),
    AP_INIT_RAW_ARGS("RProxyAllowUpgrade", set_upgrades, NULL,
                     RSRC_CONF | ACCESS_CONF,
                     "Protocols a client may upgrade to (default: websocket; "
                     "none for no upgrades)"),
    AP_INIT_TAKE1("RProxyAllowUnderscoresInHeaders", set_allow_underscores,
                  NULL, RSRC_CONF | ACCESS_CONF,
                  "Forward request headers whose names hold '_' (default: "
                  "Off, they are dropped)"),
    AP_INIT_TAKE1("RProxyIdleConnections", set_server_int,
                  (void *)SET_IDLE_MAX, RSRC_CONF,
                  "Idle backend connections kept per process (0: none)"),
    AP_INIT_TAKE1("RProxyIdleTimeout", set_idle_timeout, NULL, RSRC_CONF,
                  "How long an idle backend connection is kept"),
    AP_INIT_TAKE1("RProxyMaxResponseHeadSize", set_server_int,
                  (void *)SET_MAX_HEAD_SIZE, RSRC_CONF,
                  "Largest backend response head, in bytes"),
    AP_INIT_TAKE1("RProxyMaxResponseHeaders", set_server_int,
                  (void *)SET_MAX_HEADERS, RSRC_CONF,
                  "Most header fields in a backend response head"),
    { NULL, { NULL }, NULL, 0, 0, NULL }
};

/* ---- the handler ---- */

/* A request that may be sent twice (RFC 9110 9.2.2): a reused connection
 * that dies before answering gets it again on a fresh one. */
static int is_idempotent(request_rec *r)
{
    switch (r->method_number) {
    case M_GET: case M_PUT: case M_DELETE: case M_OPTIONS: case M_TRACE:
        return 1;
    default:
        return r->header_only
               || apr_table_get(r->headers_in, "Idempotency-Key") != NULL;
    }
}

/* Phase one: a connection to the backend, kept alive or new. */
static int connect_backend(rproxy_exchange *x)
{
    apr_status_t rv;

    x->phase = "connecting";
    x->started = apr_time_now();
    rv = rproxy_conn_open(&x->conn, x->dc->target,
                          x->dc->connect_timeout > 0 ? x->dc->connect_timeout
                                                     : DEFAULT_CONNECT_TIMEOUT,
                          x->r);
    if (rv != APR_SUCCESS) {
        x->conn = NULL;
        return rproxy_fail(x, HTTP_BAD_GATEWAY, rv, "cannot connect to %s",
                           x->dc->target->key);
    }
    apr_socket_timeout_set(x->conn->sock, x->timeout);
    apr_table_setn(x->r->notes, "rproxy-reused", x->conn->reused ? "1" : "0");
    x->reusable = 1;
    x->got_bytes = 0;
    x->send_failed = APR_SUCCESS;
    x->resp = NULL;
    x->switched = NULL;
    rproxy_reader_start(x);
    return OK;
}

/* One attempt, phase by phase, as mod_proxy_http's handler reads.  A write
 * to the backend that fails skips ahead to reading the response: the
 * backend may have answered early (a 413, say) and closed. */
static int attempt(rproxy_exchange *x)
{
    int status, body = x->framing != RPROXY_BODY_NONE;

    /* Phase one: connect. */
    status = connect_backend(x);
    if (status != OK) {
        return status;
    }

    /* Phase two: the request head, built once before the first attempt. */
    status = rproxy_send_head(x);

    /* Phase three: under Expect: 100-continue, the backend's word on the
     * body.  A final status instead means the body never leaves the
     * client, so neither connection can carry another request. */
    if (status == OK && body && x->expect_continue && !x->send_failed) {
        status = rproxy_await_continue(x);
        if (status == RPROXY_FINAL) {
            x->r->expecting_100 = 0;
            x->r->connection->keepalive = AP_CONN_CLOSE;
            x->reusable = 0;
            body = 0;
            status = OK;
        }
    }

    /* Phase four: the request body, streamed through the pooled buffer. */
    if (status == OK && body && !x->send_failed) {
        status = rproxy_send_body(x);
    }

    /* Phase five: the response head; 1xx responses go on to the client. */
    if (status == OK) {
        status = rproxy_read_response_head(x);
    }

    /* Phase six: the response, or after a 101 the tunnel. */
    if (status == OK) {
        status = x->switched ? rproxy_tunnel(x) : rproxy_relay_response(x);
    }

    rproxy_conn_release(x->conn, x->reusable && status == OK);
    x->conn = NULL;
    return status;
}

static int rproxy_handler(request_rec *r)
{
    const rproxy_dir_conf *dc;
    rproxy_exchange x;
    const char *uri;
    int status;

    if (!r->handler || strcmp(r->handler, "rproxy")) {
        return DECLINED;
    }
    dc = ap_get_module_config(r->per_dir_config, &rproxy_module);
    RPROXY_COUNT(requests);
    if (!dc->target) {
        RPROXY_COUNT(errors);
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "rproxy: SetHandler rproxy without RProxyTarget for %s",
                      r->uri);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (r->method_number == M_CONNECT) {
        RPROXY_COUNT(errors);
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "rproxy: CONNECT is never proxied");
        return HTTP_METHOD_NOT_ALLOWED;
    }
    status = rproxy_build_path(r, dc, &uri);
    if (status != OK) {
        RPROXY_COUNT(errors);
        return status;
    }

    memset(&x, 0, sizeof(x));
    x.r = r;
    x.dc = dc;
    x.sc = ap_get_module_config(r->server->module_config, &rproxy_module);
    x.timeout = dc->timeout > 0 ? dc->timeout : r->server->timeout;
    x.idempotent = is_idempotent(r);
    status = rproxy_prepare_request(&x, uri);
    if (status != OK) {
        RPROXY_COUNT(errors);
        return status;
    }

    rproxy_buf_get(&x.buf, r, dc, x.sc);
    status = attempt(&x);
    if (status == RPROXY_STALE) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "rproxy: %s: reused connection failed before any "
                      "response; retrying on a new one", dc->target->url);
        status = attempt(&x);
        if (status == RPROXY_STALE) {
            status = rproxy_fail(&x, HTTP_BAD_GATEWAY, 0,
                                 "backend closed two connections in a row "
                                 "without answering");
        }
    }
    rproxy_buf_put(&x.buf);
    if (status != OK || x.failed) {
        RPROXY_COUNT(errors);       /* client aborts count apart */
    }
    return status;
}

/* ---- hooks ---- */

/* A request the rproxy handler will answer has no file behind it: skip
 * the core's <Directory>/<Files> walk and its stat() calls under
 * DocumentRoot, as mod_proxy does for its requests.  The <Location>s are
 * walked here only to look (httpd has not walked them yet at this point);
 * the base config is put back so httpd's own walk merges them as usual. */
static int rproxy_map_to_storage(request_rec *r)
{
    struct ap_conf_vector_t *base = r->per_dir_config;
    const rproxy_dir_conf *dc;
    core_dir_config *cd;
    const char *handler = NULL, *err = NULL;

    if (ap_location_walk(r) != OK) {
        r->per_dir_config = base;
        return DECLINED;
    }
    dc = ap_get_module_config(r->per_dir_config, &rproxy_module);
    cd = ap_get_core_module_config(r->per_dir_config);
    if (dc->target && cd->expr_handler) {
        handler = ap_expr_str_exec(r, cd->expr_handler, &err);
    }
    r->per_dir_config = base;
    return !err && handler && !strcmp(handler, "rproxy") ? OK : DECLINED;
}

static int rproxy_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                              apr_pool_t *ptemp, server_rec *s)
{
    rproxy_server_conf *main_sc =
        ap_get_module_config(s->module_config, &rproxy_module);
    (void)pconf; (void)plog; (void)ptemp;

    /* Resolve the defaults once so the hot path never checks for unset. */
    for (; s; s = s->next) {
        rproxy_server_conf *sc =
            ap_get_module_config(s->module_config, &rproxy_module);
        if (sc->max_head_size == 0) {
            sc->max_head_size = DEFAULT_MAX_HEAD_SIZE;
        }
        if (sc->max_headers == 0) {
            sc->max_headers = DEFAULT_MAX_HEADERS;
        }
    }
    if (main_sc->idle_timeout < 0) {
        main_sc->idle_timeout = DEFAULT_IDLE_TIMEOUT;
    }
    return OK;
}

static void rproxy_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv = rproxy_pool_child_init(pchild);
    if (rv == APR_SUCCESS) {
        rv = rproxy_conn_child_init(pchild, s);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "rproxy: cannot set up buffer pool or connection set");
    }
}

static void rproxy_register_hooks(apr_pool_t *p)
{
    ap_register_provider(p, RPROXY_BUFFER_POOL_GROUP, "apr",
                         RPROXY_BUFFER_POOL_VERSION, &rproxy_apr_pool);
    ap_register_provider(p, RPROXY_BUFFER_POOL_GROUP, "none",
                         RPROXY_BUFFER_POOL_VERSION, &rproxy_none_pool);
    rproxy_register_trailer_filter();
    ap_hook_post_config(rproxy_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(rproxy_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_map_to_storage(rproxy_map_to_storage, NULL, NULL,
                           APR_HOOK_FIRST);
    ap_hook_handler(rproxy_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(rproxy_status_handler, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(rproxy) = {
    STANDARD20_MODULE_STUFF,
    create_dir_conf,
    merge_dir_conf,
    create_server_conf,
    merge_server_conf,
    rproxy_cmds,
    rproxy_register_hooks,
    AP_MODULE_FLAG_NONE
};
