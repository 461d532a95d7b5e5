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
#include "http_ssl.h"
#include "http_connection.h"
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
    dc->tls_verify = -1;
    dc->status_control = -1;
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
    dc->retry_statuses = MERGE(retry_statuses, NULL);
    dc->allow_underscores = MERGE(allow_underscores, -1);
    dc->tls_verify = MERGE(tls_verify, -1);
    dc->status_control = MERGE(status_control, -1);
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
    /* A virtual host's groups, and the main server's it does not hide. */
    sc->groups = add->groups && base->groups
                 ? apr_hash_overlay(p, add->groups, base->groups)
                 : add->groups ? add->groups : base->groups;
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

/* The first byte of s that cannot go on a request line as it is (a
 * control byte, space, DEL or non-ASCII: RFC 9112 3.2 allows only
 * visible ASCII in a request-target), or NULL.  Percent-encoded forms
 * are plain ASCII and pass. */
static const char *unsendable_byte(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c >= 0x7f) {
            return s;
        }
    }
    return NULL;
}

/* The https targets of this configuration, for check_config. */
static apr_array_header_t *https_targets;

/* Parses an http:// or https:// URL for directive `what`: into *u, its
 * port into *port, *tls whether https; an error message naming the
 * directive and the value, or NULL.  with_path: a path and query may
 * follow the authority. */
static const char *parse_http_url(cmd_parms *cmd, const char *what,
                                  const char *url, int with_path,
                                  apr_uri_t *u, apr_port_t *port, int *tls)
{
    const char *bad;
    apr_int64_t p = 80;
    apr_status_t rv = apr_uri_parse(cmd->pool, url, u);

    *tls = rv == APR_SUCCESS && u->scheme && !strcasecmp(u->scheme, "https");
    if (rv != APR_SUCCESS || !u->scheme
        || (strcasecmp(u->scheme, "http") && !*tls) || !u->hostname
        || !*u->hostname || u->user || u->password || u->fragment
        || (!with_path && ((u->path && strcmp(u->path, "/")) || u->query))) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a URL of the form "
                            "http[s]://host[:port]%s", what, url,
                            with_path ? "[/path][?query]" : "");
    }
    if (*tls) {
        p = 443;
    }
    /* Every byte of the target ends up in the request line or the Host
     * header: one they cannot carry would have every request refused by
     * the backend (or split on the wire), so refuse it here, once. */
    if ((bad = unsendable_byte(url)) != NULL) {
        return apr_psprintf(cmd->pool, "%s: '%s': byte 0x%02X at "
                            "offset %d cannot be sent in a request line; "
                            "percent-encode it (%%%02X)", what, url,
                            (unsigned char)*bad, (int)(bad - url),
                            (unsigned char)*bad);
    }
    /* apr_uri_parse() stores the port in an apr_port_t through strtol(),
     * so 99999 would silently become 34463 and -1 65535: check what was
     * written instead. */
    if (u->port_str) {
        char *end;

        errno = 0;
        p = apr_strtoi64(u->port_str, &end, 10);
        /* Digits only: strtol-style parsing would take "+80" or " 80". */
        if (!*u->port_str || u->port_str[strspn(u->port_str, "0123456789")]
            || errno || *end || p < 1 || p > 65535) {
            return apr_psprintf(cmd->pool, "%s: '%s': port '%s' "
                                "is not a number between 1 and 65535",
                                what, url, u->port_str);
        }
    }
    *port = (apr_port_t)p;
    return NULL;
}

/* host[:port] as written: the Host header a backend gets by default. */
static const char *authority_of(apr_pool_t *p, const apr_uri_t *u)
{
    int v6 = ap_strchr_c(u->hostname, ':') != NULL;
    return apr_psprintf(p, "%s%s%s%s%s", v6 ? "[" : "", u->hostname,
                        v6 ? "]" : "", u->port_str ? ":" : "",
                        u->port_str ? u->port_str : "");
}

#define GROUP_SCHEME "group://"

static const char *set_target(cmd_parms *cmd, void *dcv, const char *url)
{
    rproxy_dir_conf *dc = dcv;
    rproxy_target *t = apr_pcalloc(cmd->pool, sizeof(*t));
    apr_uri_t u;
    const char *err;

    if (!strncasecmp(url, GROUP_SCHEME, sizeof(GROUP_SCHEME) - 1)) {
        /* group://NAME[/path][?query]: the group is looked up once the
         * whole configuration is read (check_config). */
        const char *name = url + sizeof(GROUP_SCHEME) - 1;
        apr_size_t len = strcspn(name, "/?");
        const char *rest = name + len, *q = ap_strchr_c(rest, '?');
        if (!len || *ap_scan_http_token(apr_pstrmemdup(cmd->pool, name, len))
            || unsendable_byte(rest)) {
            return apr_psprintf(cmd->pool, "RProxyTarget: '%s' is not of the "
                                "form group://NAME[/path][?query]", url);
        }
        t->group_name = apr_pstrmemdup(cmd->pool, name, len);
        t->path = q ? apr_pstrmemdup(cmd->pool, rest, q - rest) : rest;
        t->query = q ? q + 1 : NULL;
    }
    else {
        rproxy_backend *b = &t->backend;
        apr_ipsubnet_t *ip;

        err = parse_http_url(cmd, "RProxyTarget", url, 1, &u, &b->port,
                             &b->tls);
        if (err) {
            return err;
        }
        b->host = u.hostname;
        b->authority = authority_of(cmd->pool, &u);
        b->key = apr_psprintf(cmd->pool, "%s:%u", u.hostname, b->port);
        b->server = cmd->server;
        b->host_is_ip = apr_ipsubnet_create(&ip, u.hostname, NULL,
                                            cmd->temp_pool) == APR_SUCCESS;
        if (b->tls) {
            /* Its own idle connections: those of another virtual host had
             * other SSLProxy* settings, and one made without verification
             * must not serve a request that asks for it. */
            b->tls_keys[0] = apr_psprintf(cmd->pool, "https://%s/%pp/noverify",
                                          b->key, (void *)cmd->server);
            b->tls_keys[1] = apr_psprintf(cmd->pool, "https://%s/%pp",
                                          b->key, (void *)cmd->server);
            if (!https_targets) {
                https_targets = apr_array_make(cmd->pool, 4, sizeof(t));
            }
            APR_ARRAY_PUSH(https_targets, const rproxy_target *) = t;
        }
        t->path = u.path ? u.path : "";
        t->query = u.query;
    }
    t->url = url;
    t->server = cmd->server;
    t->location = cmd->path;
    t->tls_verify = &dc->tls_verify;
    rproxy_stats_register_target(t);
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

/* The idle connection set is one per process, sized and timed from the
 * main server's values at child_init (rproxy_conn.c): in a <VirtualHost>
 * these directives would be accepted and silently do nothing. */
static const char *whole_server_only(cmd_parms *cmd, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    if (err) {
        return apr_psprintf(cmd->pool, "%s (got '%s'): the idle backend "
                            "connections are shared by all virtual hosts, "
                            "so it applies to the whole server only",
                            err, arg);
    }
    return NULL;
}

static const char *set_idle_timeout(cmd_parms *cmd, void *dcv,
                                    const char *arg)
{
    rproxy_server_conf *sc =
        ap_get_module_config(cmd->server->module_config, &rproxy_module);
    const char *err = whole_server_only(cmd, arg);
    (void)dcv;
    return err ? err : parse_timeout(cmd, arg, &sc->idle_timeout);
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
        if ((err = whole_server_only(cmd, arg)) != NULL) {
            break;
        }
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

/* On/Off directives, taken as TAKE1 rather than FLAG: httpd's own FLAG
 * error ("must be On or Off") does not say what it got.  cmd->info is the
 * offset of the int to set, as for ap_set_flag_slot(). */
static const char *set_flag(cmd_parms *cmd, void *dcv, const char *arg)
{
    int on;

    if (!strcasecmp(arg, "on")) {
        on = 1;
    }
    else if (!strcasecmp(arg, "off")) {
        on = 0;
    }
    else {
        return apr_psprintf(cmd->pool, "%s: '%s' is not On or Off",
                            cmd->cmd->name, arg);
    }
    *(int *)((char *)dcv + (apr_size_t)cmd->info) = on;
    return NULL;
}

/* ---- <RProxyGroup> ---- */

/* The group whose section is being read, for the directives inside. */
static rproxy_group *reading_group;

static const char *group_section(cmd_parms *cmd, void *dcv, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_CONTEXT);
    rproxy_server_conf *sc =
        ap_get_module_config(cmd->server->module_config, &rproxy_module);
    char *name, *end = strrchr(arg, '>');
    rproxy_group *g;

    (void)dcv;
    if (err) {
        return err;
    }
    if (!end) {
        return "<RProxyGroup> section not closed with '>'";
    }
    name = apr_pstrmemdup(cmd->temp_pool, arg, end - arg);
    name = ap_getword_conf(cmd->pool, (const char **)&name);
    if (!*name || *ap_scan_http_token(name)) {
        return apr_psprintf(cmd->pool, "<RProxyGroup %s>: the name must be a "
                            "token (letters, digits, -._~ ...)", name);
    }
    if (!sc->groups) {
        sc->groups = apr_hash_make(cmd->pool);
    }
    if (apr_hash_get(sc->groups, name, APR_HASH_KEY_STRING)) {
        return apr_psprintf(cmd->pool, "<RProxyGroup %s>: a group of that "
                            "name is already defined here", name);
    }
    g = rproxy_group_make(cmd->pool, name, cmd->server);
    reading_group = g;
    err = ap_walk_config(cmd->directive->first_child, cmd, cmd->context);
    reading_group = NULL;
    if (err) {
        return err;
    }
    if (!g->members->nelts) {
        return apr_psprintf(cmd->pool, "<RProxyGroup %s> has no RProxyMember",
                            name);
    }
    apr_hash_set(sc->groups, name, APR_HASH_KEY_STRING, g);
    return NULL;
}

/* The group a directive inside <RProxyGroup> configures, or an error. */
static const char *in_group(cmd_parms *cmd, rproxy_group **g)
{
    *g = reading_group;
    return *g ? NULL : apr_psprintf(cmd->pool, "%s is only allowed inside "
                                    "<RProxyGroup>", cmd->cmd->name);
}

/* "key=value" in an argument list: the value if arg has that key. */
static const char *value_of(const char *arg, const char *key)
{
    apr_size_t n = strlen(key);
    return !strncasecmp(arg, key, n) && arg[n] == '=' ? arg + n + 1 : NULL;
}

/* RProxyMember http[s]://host[:port] [weight=N] [backup] [drain] */
static const char *set_member(cmd_parms *cmd, void *dcv, const char *args)
{
    rproxy_group *g;
    rproxy_member_conf *mc;
    const char *err = in_group(cmd, &g), *url, *word;
    apr_uri_t u;
    apr_ipsubnet_t *ip;
    (void)dcv;

    if (err) {
        return err;
    }
    url = ap_getword_conf(cmd->pool, &args);
    mc = apr_array_push(g->members);
    memset(mc, 0, sizeof(*mc));
    err = parse_http_url(cmd, "RProxyMember", url, 0, &u, &mc->port,
                         &mc->tls);
    if (err) {
        return err;
    }
    mc->url = url;
    if (mc->tls && strlen(u.hostname) > 253) {
        /* The name goes into the member's TLS keys (rproxy_member_slot):
         * no DNS name is longer. */
        return apr_psprintf(cmd->pool, "RProxyMember %s: the host name is "
                            "longer than 253 bytes", url);
    }
    mc->host = u.hostname;
    mc->host_is_ip = apr_ipsubnet_create(&ip, u.hostname, NULL,
                                         cmd->temp_pool) == APR_SUCCESS;
    mc->authority = authority_of(cmd->pool, &u);
    mc->weight = 1;
    while (*(word = ap_getword_conf(cmd->temp_pool, &args))) {
        const char *v;
        if ((v = value_of(word, "weight")) != NULL) {
            apr_int64_t w;
            err = parse_int(cmd, v, 1, 1000, "a weight", &w);
            if (err) {
                return err;
            }
            mc->weight = (int)w;
        }
        else if (!strcasecmp(word, "backup")) {
            mc->backup = 1;
        }
        else if (!strcasecmp(word, "drain")) {
            mc->drain = 1;
        }
        else {
            return apr_psprintf(cmd->pool, "RProxyMember %s: unknown option "
                                "'%s' (weight=N, backup, drain)", url, word);
        }
    }
    return NULL;
}

/* RProxyBalance p2c | round-robin | hash client-ip | hash header NAME |
 * hash cookie NAME */
static const char *set_balance(cmd_parms *cmd, void *dcv, const char *args)
{
    rproxy_group *g;
    const char *err = in_group(cmd, &g), *how, *what, *name;
    (void)dcv;

    if (err) {
        return err;
    }
    how = ap_getword_conf(cmd->pool, &args);
    what = ap_getword_conf(cmd->pool, &args);
    name = ap_getword_conf(cmd->pool, &args);
    if (!strcasecmp(how, "p2c") && !*what) {
        g->balance = RPROXY_BALANCE_P2C;
    }
    else if (!strcasecmp(how, "round-robin") && !*what) {
        g->balance = RPROXY_BALANCE_ROUND_ROBIN;
    }
    else if (!strcasecmp(how, "hash") && !strcasecmp(what, "client-ip")
             && !*name) {
        g->balance = RPROXY_BALANCE_HASH;
        g->hash_source = RPROXY_HASH_CLIENT_IP;
    }
    else if (!strcasecmp(how, "hash") && *name && !*args
             && (!strcasecmp(what, "header") || !strcasecmp(what, "cookie"))) {
        g->balance = RPROXY_BALANCE_HASH;
        g->hash_source = strcasecmp(what, "header") ? RPROXY_HASH_COOKIE
                                                    : RPROXY_HASH_HEADER;
        g->hash_name = name;
    }
    else {
        return apr_psprintf(cmd->pool, "RProxyBalance: '%s %s %s' is not one "
                            "of p2c, round-robin, hash client-ip, hash header "
                            "NAME, hash cookie NAME", how, what, name);
    }
    return NULL;
}

/* RProxyEject failures=N time=T max=T max-share=PCT */
static const char *set_eject(cmd_parms *cmd, void *dcv, const char *args)
{
    rproxy_group *g;
    const char *err = in_group(cmd, &g), *word;
    (void)dcv;

    if (err) {
        return err;
    }
    while (!err && *(word = ap_getword_conf(cmd->temp_pool, &args))) {
        const char *v;
        apr_int64_t n;
        if ((v = value_of(word, "failures")) != NULL) {
            err = parse_int(cmd, v, 1, 1000, "a failure count", &n);
            g->eject_after = (int)n;
        }
        else if ((v = value_of(word, "time")) != NULL) {
            err = parse_timeout(cmd, v, &g->eject_time);
        }
        else if ((v = value_of(word, "max")) != NULL) {
            err = parse_timeout(cmd, v, &g->eject_max);
        }
        else if ((v = value_of(word, "statuses")) != NULL) {
            /* Opt-in: 5xx answers that count as failures. */
            char *list = apr_pstrdup(cmd->temp_pool, v), *tok, *last;
            g->eject_statuses = apr_array_make(cmd->pool, 4, sizeof(int));
            for (tok = apr_strtok(list, ",", &last); tok && !err;
                 tok = apr_strtok(NULL, ",", &last)) {
                err = parse_int(cmd, tok, 500, 599, "a 5xx status", &n);
                *(int *)apr_array_push(g->eject_statuses) = (int)n;
            }
        }
        else if ((v = value_of(word, "max-share")) != NULL) {
            char *pct = apr_pstrdup(cmd->temp_pool, v);
            apr_size_t len = strlen(pct);
            if (len && pct[len - 1] == '%') {
                pct[len - 1] = '\0';
            }
            err = parse_int(cmd, pct, 0, 100, "a percentage", &n);
            g->max_ejected_pct = (int)n;
        }
        else {
            err = apr_psprintf(cmd->pool, "RProxyEject: unknown option '%s' "
                               "(failures=N, time=T, max=T, max-share=P%%, "
                               "statuses=5xx,...)",
                               word);
        }
    }
    return err;
}

static const char *set_slow_start(cmd_parms *cmd, void *dcv, const char *arg)
{
    rproxy_group *g;
    const char *err = in_group(cmd, &g);
    (void)dcv;
    if (err) {
        return err;
    }
    if (!strcmp(arg, "0")) {
        g->slow_start = 0;
        return NULL;
    }
    return parse_timeout(cmd, arg, &g->slow_start);
}

static const char *set_max_tries(cmd_parms *cmd, void *dcv, const char *arg)
{
    rproxy_group *g;
    apr_int64_t n;
    const char *err = in_group(cmd, &g);
    (void)dcv;
    if (!err) {
        err = parse_int(cmd, arg, 1, 100, "a number of tries", &n);
    }
    if (!err) {
        g->max_tries = (int)n;
    }
    return err;
}

/* RProxyHealthCheck METHOD PATH [interval=T] [timeout=T] [rise=N] [fall=N]
 * [status=LO-HI] */
static const char *set_health_check(cmd_parms *cmd, void *dcv,
                                    const char *args)
{
    rproxy_group *g;
    const char *err = in_group(cmd, &g), *method, *path, *word, *bad;
    (void)dcv;

    if (err) {
        return err;
    }
    method = ap_getword_conf(cmd->pool, &args);
    path = ap_getword_conf(cmd->pool, &args);
    if (!*method || *ap_scan_http_token(method)) {
        return apr_psprintf(cmd->pool, "RProxyHealthCheck: '%s' is not a "
                            "method (GET, HEAD, OPTIONS ...)", method);
    }
    if (*path != '/' || (bad = unsendable_byte(path)) != NULL) {
        return apr_psprintf(cmd->pool, "RProxyHealthCheck %s: '%s' is not a "
                            "path starting with / (with ?query if wanted) "
                            "that a request line can carry", method, path);
    }
    g->check_method = method;
    g->check_path = path;
    g->check_interval = apr_time_from_sec(5);
    g->check_timeout = apr_time_from_sec(2);
    g->check_rise = 2;
    g->check_fall = 3;
    g->check_status_lo = 200;
    g->check_status_hi = 399;
    while (!err && *(word = ap_getword_conf(cmd->temp_pool, &args))) {
        const char *v;
        apr_int64_t n;
        if ((v = value_of(word, "interval")) != NULL) {
            err = parse_timeout(cmd, v, &g->check_interval);
        }
        else if ((v = value_of(word, "timeout")) != NULL) {
            err = parse_timeout(cmd, v, &g->check_timeout);
        }
        else if ((v = value_of(word, "rise")) != NULL) {
            err = parse_int(cmd, v, 1, 1000, "a count of passes", &n);
            g->check_rise = (int)n;
        }
        else if ((v = value_of(word, "fall")) != NULL) {
            err = parse_int(cmd, v, 1, 1000, "a count of failures", &n);
            g->check_fall = (int)n;
        }
        else if ((v = value_of(word, "status")) != NULL) {
            char *lo = apr_pstrdup(cmd->temp_pool, v), *hi = strchr(lo, '-');
            apr_int64_t l, h;
            if (hi) {
                *hi++ = '\0';
            }
            err = parse_int(cmd, lo, 100, 599, "a status", &l);
            h = l;
            if (!err && hi) {
                err = parse_int(cmd, hi, 100, 599, "a status", &h);
            }
            if (!err && h < l) {
                err = apr_psprintf(cmd->pool, "RProxyHealthCheck: status=%s: "
                                   "the range is empty", v);
            }
            g->check_status_lo = (int)l;
            g->check_status_hi = (int)h;
        }
        else {
            err = apr_psprintf(cmd->pool, "RProxyHealthCheck: unknown option "
                               "'%s' (interval=T, timeout=T, rise=N, fall=N, "
                               "status=LO-HI)", word);
        }
    }
    return err;
}

/* RProxyResolveInterval T | 0 */
static const char *set_resolve_interval(cmd_parms *cmd, void *dcv,
                                        const char *arg)
{
    rproxy_group *g;
    const char *err = in_group(cmd, &g);
    (void)dcv;
    if (err) {
        return err;
    }
    g->resolve_interval_set = 1;
    if (!strcmp(arg, "0") || !strcasecmp(arg, "off")) {
        g->resolve_interval = 0;
        return NULL;
    }
    return parse_timeout(cmd, arg, &g->resolve_interval);
}

/* RProxyRetryOnStatus 502 503 504 | none */
static const char *set_retry_statuses(cmd_parms *cmd, void *dcv,
                                      const char *args)
{
    rproxy_dir_conf *dc = dcv;
    const char *word;

    dc->retry_statuses = apr_array_make(cmd->pool, 3, sizeof(int));
    while (*(word = ap_getword_conf(cmd->temp_pool, &args))) {
        apr_int64_t n;
        const char *err;
        if (!strcasecmp(word, "none")) {
            continue;
        }
        err = parse_int(cmd, word, 500, 599, "a 5xx status", &n);
        if (err) {
            return err;
        }
        *(int *)apr_array_push(dc->retry_statuses) = (int)n;
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

/* RProxyStatusControl On: POSTs to this rproxy-status location may drain
 * and enable group members.  check_config insists on a Require in the
 * same section. */
static const command_rec rproxy_cmds[] = {
    AP_INIT_TAKE1("RProxyTarget", set_target, NULL, RSRC_CONF | ACCESS_CONF,
                  "Backend base URL: http[s]://host[:port][/path][?query]"),
    AP_INIT_TAKE1("RProxyTLSVerify", set_flag,
                  (void *)APR_OFFSETOF(rproxy_dir_conf, tls_verify),
                  RSRC_CONF | ACCESS_CONF,
                  "Off: do not check an https backend's certificate "
                  "(dangerous; default: On)"),
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
    AP_INIT_TAKE1("RProxyPreserveHost", set_flag,
                  (void *)APR_OFFSETOF(rproxy_dir_conf, preserve_host),
                  RSRC_CONF | ACCESS_CONF,
                  "On: send the client's Host header (default: Off)"),
    AP_INIT_TAKE1("RProxyAddForwarded", set_flag,
                  (void *)APR_OFFSETOF(rproxy_dir_conf, add_forwarded),
                  RSRC_CONF | ACCESS_CONF,
                  "Off: no X-Forwarded-* headers (default: On)"),
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
    AP_INIT_TAKE1("RProxyStatusControl", set_flag,
                  (void *)APR_OFFSETOF(rproxy_dir_conf, status_control),
                  ACCESS_CONF, "On: POSTs here may drain and enable group "
                  "members (needs a Require in the same section)"),
    AP_INIT_RAW_ARGS("<RProxyGroup", group_section, NULL, RSRC_CONF,
                     "A named group of backends: <RProxyGroup name>"),
    AP_INIT_RAW_ARGS("RProxyMember", set_member, NULL, RSRC_CONF,
                     "A group member: http[s]://host[:port] [weight=N] "
                     "[backup] [drain]"),
    AP_INIT_RAW_ARGS("RProxyBalance", set_balance, NULL, RSRC_CONF,
                     "How a group picks: p2c, round-robin, hash client-ip, "
                     "hash header NAME, hash cookie NAME"),
    AP_INIT_RAW_ARGS("RProxyEject", set_eject, NULL, RSRC_CONF,
                     "Passive health: failures=N time=T max=T max-share=P% "
                     "statuses=5xx,..."),
    AP_INIT_TAKE1("RProxySlowStart", set_slow_start, NULL, RSRC_CONF,
                  "How long a returning member takes to reach its weight"),
    AP_INIT_TAKE1("RProxyMaxTries", set_max_tries, NULL, RSRC_CONF,
                  "Members one request may try (default: 3)"),
    AP_INIT_RAW_ARGS("RProxyHealthCheck", set_health_check, NULL, RSRC_CONF,
                     "Active checks: METHOD PATH [interval=T] [timeout=T] "
                     "[rise=N] [fall=N] [status=LO-HI]"),
    AP_INIT_TAKE1("RProxyResolveInterval", set_resolve_interval, NULL,
                  RSRC_CONF, "How often member names are resolved again "
                  "(default: 30s; 0: at start only)"),
    AP_INIT_RAW_ARGS("RProxyRetryOnStatus", set_retry_statuses, NULL,
                     RSRC_CONF | ACCESS_CONF,
                     "5xx statuses on which an idempotent request is tried "
                     "on another member (default: none)"),
    { NULL, { NULL }, NULL, 0, 0, NULL }
};

/* ---- the handler ---- */

/* The methods RFC 9110 9.2.2 says are idempotent (HEAD is a GET with
 * header_only). */
static int idempotent_method(const request_rec *r)
{
    switch (r->method_number) {
    case M_GET: case M_PUT: case M_DELETE: case M_OPTIONS: case M_TRACE:
        return 1;
    default:
        return r->header_only;
    }
}

/* A request that may be sent twice (RFC 9110 9.2.2): a reused connection
 * that dies before answering gets it again on a fresh one. */
static int is_idempotent(request_rec *r)
{
    return idempotent_method(r)
           || apr_table_get(r->headers_in, "Idempotency-Key") != NULL;
}

/* Phase one: a connection to the backend, kept alive or new. */
static int connect_backend(rproxy_exchange *x)
{
    const char *why;
    apr_status_t rv;

    x->phase = "connecting";
    x->started = apr_time_now();
    x->connect_failed = 0;
    x->connect_error = NULL;
    x->backend_status = 0;
    rv = rproxy_conn_open(&x->conn, x->backend,
                          x->dc->connect_timeout > 0 ? x->dc->connect_timeout
                                                     : DEFAULT_CONNECT_TIMEOUT,
                          x->timeout, x->dc->tls_verify != 0, x->r,
                          x->r->pool, &why);
    if (rv != APR_SUCCESS) {
        x->conn = NULL;
        x->connect_failed = 1;
        if (rv == RPROXY_TLS_TIMEUP) {
            x->connect_error = "TLS handshake timed out";
            return rproxy_fail(x, HTTP_GATEWAY_TIME_OUT, APR_TIMEUP,
                               "TLS handshake with %s timed out after %"
                               APR_TIME_T_FMT " s", x->backend->key,
                               apr_time_sec(x->timeout));
        }
        if (rv == RPROXY_TLS_FAILED) {
            x->connect_error = apr_pstrcat(x->r->pool, "TLS handshake "
                                           "refused: ", why, NULL);
            return rproxy_fail(x, HTTP_BAD_GATEWAY, 0, "TLS handshake with "
                               "%s refused: %s", x->backend->key, why);
        }
        return rproxy_fail(x, HTTP_BAD_GATEWAY, rv, "cannot connect to %s",
                           x->backend->key);
    }
    rproxy_conn_timeout_set(x->conn, x->timeout);
    apr_table_setn(x->r->notes, "rproxy-reused", x->conn->reused ? "1" : "0");
    x->conn_reused = x->conn->reused;
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

    /* A member's final answer kept the body with the client, then died
     * before any of it reached the client: the client still waits for
     * its 100 Continue, which this member's must be free to give. */
    if (x->continue_owed) {
        x->r->expecting_100 = 1;
        x->continue_owed = 0;
    }

    /* Phase two: the request head, built once before the first attempt. */
    status = rproxy_send_head(x);

    /* Phase three: under Expect: 100-continue, the backend's word on the
     * body.  A final status instead means the body never leaves the
     * client, so neither connection can carry another request. */
    if (status == OK && body && x->expect_continue && !x->send_failed) {
        status = rproxy_await_continue(x);
        if (status == RPROXY_FINAL) {
            x->continue_owed = x->r->expecting_100;
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

/* RProxyRetryOnStatus applies to a request whose method is idempotent
 * (a POST or PATCH never: a member answered, and an Idempotency-Key
 * vouches for replays of what may not have arrived, not for this) and
 * whose body, if it has one, is held whole: the client's bytes can be
 * read only once. */
static int may_retry_on_status(const rproxy_exchange *x)
{
    return x->dc->retry_statuses && x->dc->retry_statuses->nelts
           && idempotent_method(x->r)
           && (x->framing == RPROXY_BODY_NONE || x->held_whole);
}

/* Whether to read a body ahead so that another member can get it too.
 * Not under Expect: 100-continue: the client waits for a backend's word
 * before sending it. */
static int may_hold_body(const rproxy_exchange *x)
{
    return x->dc->retry_statuses && x->dc->retry_statuses->nelts
           && idempotent_method(x->r) && x->framing != RPROXY_BODY_NONE
           && !x->expect_continue;
}

/* Seconds until the first ejected member comes back, for Retry-After. */
static int seconds_to_return(const rproxy_group *g)
{
    apr_time_t now = apr_time_now(), first = 0;
    int i;

    for (i = 0; i < g->n_slots; i++) {
        const rproxy_member_slot *m = g->slots[i];
        if (m->fig.used && m->health == RPROXY_MEMBER_EJECTED
            && (!first || (apr_time_t)m->ejected_until < first)) {
            first = (apr_time_t)m->ejected_until;
        }
    }
    return first > now ? (int)apr_time_sec(first - now) + 1 : 5;
}

/* A group's request: members picked one after another until one answers,
 * within the group's tries and the retry budget, following RFC 9110
 * 9.2.2: a member that could not be connected to got nothing, so any
 * request moves on; one whose reused connection died before any response
 * byte is tried again only for an idempotent request (rproxy_response.c
 * says so with RPROXY_STALE); a request whose bytes a member may have
 * acted on is never sent again, but for RProxyRetryOnStatus. */
static int try_members(rproxy_exchange *x, rproxy_group *g)
{
    request_rec *r = x->r;
    unsigned char *tried = apr_pcalloc(r->pool, g->n_slots + 1);
    apr_uint32_t rnd = (apr_uint32_t)(apr_time_now() ^ (apr_uintptr_t)r);
    int tries = 0, retrying = 0, status = HTTP_SERVICE_UNAVAILABLE;
    const char *failed_key = NULL, *why = NULL;
    rproxy_backend backend;

    rproxy_group_count_request(g);
    for (;;) {
        rproxy_member_slot *m = rproxy_group_pick(g, r, tried, &rnd);
        apr_time_t started;
        int again;

        if (!m) {
            if (!tries) {
                apr_atomic_inc64(&g->shared->no_member);
                apr_table_setn(r->err_headers_out, "Retry-After",
                               apr_itoa(r->pool, seconds_to_return(g)));
                ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                              "rproxy: %s: group %s has no usable member "
                              "(all down, ejected or draining)",
                              x->dc->target->url, g->name);
            }
            break;
        }
        if (failed_key) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                          "rproxy: %s: group %s: member %s failed (%s); "
                          "trying %s", x->dc->target->url, g->name,
                          failed_key, why, m->key);
        }
        tried[rproxy_group_slot_index(g, m)] = 1;
        memset(&backend, 0, sizeof(backend));
        backend.server = g->server;
        backend.host = m->host;
        backend.port = m->port;
        backend.authority = m->authority;
        backend.key = m->key;
        backend.stats = &m->fig;
        if (m->tls) {
            const rproxy_member_conf *mc = &APR_ARRAY_IDX(
                g->members, m->conf_index, rproxy_member_conf);
            backend.tls = 1;
            /* The connection goes to one address of the name; SNI and the
             * certificate check are for the name, as the admin wrote it. */
            backend.tls_name = mc->host;
            backend.host_is_ip = mc->host_is_ip;
            backend.tls_keys[0] = m->tls_keys[0];
            backend.tls_keys[1] = m->tls_keys[1];
        }
        x->backend = &backend;
        /* A new connection that dies before any response byte: its member
         * is likely down, and an idempotent request may go to another. */
        x->replay_fresh = tries + 1 < g->max_tries;
        /* A status is retried only if another member is left to try and
         * the budget allows: else the last member's answer goes to the
         * client as it is. */
        x->retry_statuses = tries + 1 < g->max_tries
                            && may_retry_on_status(x)
                            && rproxy_group_retry_possible(g)
                            && rproxy_group_untried(g, tried, r->pool)
                            ? x->dc->retry_statuses : NULL;
        apr_atomic_inc64(&m->fig.requests);
        apr_atomic_inc32(&m->fig.in_flight);
        started = apr_time_now();
        status = attempt(x);
        rproxy_stats_latency(&m->fig, apr_time_now() - started);
        apr_atomic_dec32(&m->fig.in_flight);
        tries++;

        /* The member's health: failing to connect, a connection dying
         * before any response byte, a timeout count against it. */
        if (x->connect_failed || status == HTTP_GATEWAY_TIME_OUT
            || (status == HTTP_BAD_GATEWAY && !x->got_bytes)
            || (status == RPROXY_STALE && (!x->conn_reused || x->got_bytes))
            || rproxy_group_ejects_on(g, x->backend_status)) {
            apr_atomic_inc64(&m->fig.errors);
            /* A certificate that does not verify counts as a connect
             * failure: the handshake comes before any byte of the request,
             * so the request may go on to another member, and a member
             * that keeps presenting it is ejected like an unreachable one. */
            rproxy_member_failed(g, m, x->connect_error ? x->connect_error
                                 : x->connect_failed ? "connect failed"
                                 : x->backend_status >= 500
                                 ? apr_psprintf(r->pool, "answered %d",
                                                x->backend_status)
                                 : x->phase);
        }
        else if (status == OK && !x->failed) {
            rproxy_member_succeeded(g, m);
        }
        again = x->connect_failed || status == RPROXY_STALE
                || status == RPROXY_RETRY_STATUS;
        if (retrying) {
            rproxy_group_retry_done(g);
            retrying = 0;
        }
        if (!again) {
            break;
        }
        /* A connect failure sent nothing and cost the member nothing, so
         * it moves on within the tries alone; any other retry sends the
         * request again and draws on the group's retry budget (a retried
         * status took its retry already, and only with a try left). */
        if (status != RPROXY_RETRY_STATUS
            && (tries >= g->max_tries
                || (!x->connect_failed && !rproxy_group_take_retry(g)))) {
            break;
        }
        retrying = !x->connect_failed;
        apr_atomic_inc64(&g->shared->retries);
        failed_key = m->key;
        why = x->connect_error ? x->connect_error
              : x->connect_failed ? "connect" : status == RPROXY_STALE
              ? (x->got_bytes ? "closed in the middle of its answer"
                              : "closed before answering")
              : "retried status";
    }
    if (retrying) {
        rproxy_group_retry_done(g);
    }
    if (status == RPROXY_STALE || status == RPROXY_RETRY_STATUS) {
        /* The members ran out before one answered. */
        status = rproxy_fail(x, HTTP_BAD_GATEWAY, 0, "group %s: no member "
                             "left to try after %d", g->name, tries);
    }
    return status;
}

/* Proxies one request to its target: the phases before the first attempt,
 * the attempt, and the one retry a stale kept-alive connection allows.
 * *failed: the backend failed after the response head went out, so the
 * request counts as an error whatever its status. */
static int proxy_request(request_rec *r, const rproxy_dir_conf *dc,
                         int *failed)
{
    rproxy_exchange x;
    const char *uri;
    int status;

    if (r->method_number == M_CONNECT) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "rproxy: CONNECT is never proxied");
        return HTTP_METHOD_NOT_ALLOWED;
    }
    status = rproxy_build_path(r, dc, &uri);
    if (status != OK) {
        return status;
    }

    memset(&x, 0, sizeof(x));
    x.r = r;
    x.dc = dc;
    x.sc = ap_get_module_config(r->server->module_config, &rproxy_module);
    x.timeout = dc->timeout > 0 ? dc->timeout : r->server->timeout;
    x.idempotent = is_idempotent(r);
    x.idempotent_method = idempotent_method(r);
    status = rproxy_prepare_request(&x, uri);
    if (status != OK) {
        return status;
    }

    rproxy_buf_get(&x.buf, r, dc, x.sc);
    if (dc->target->group) {
        /* A body that fits one more buffer of the location's pool is kept
         * there, for a retry on status; a longer one streams as usual. */
        if (may_hold_body(&x)) {
            rproxy_buf_get(&x.held, r, dc, x.sc);
            status = rproxy_hold_body(&x);
        }
        if (status == OK) {
            status = try_members(&x, dc->target->group);
        }
    }
    else {
        x.backend = &dc->target->backend;
        status = attempt(&x);
        if (status == RPROXY_STALE) {
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                          "rproxy: %s: reused connection failed before any "
                          "response; retrying on a new one", dc->target->url);
            status = attempt(&x);
            if (status == RPROXY_STALE) {
                status = rproxy_fail(&x, HTTP_BAD_GATEWAY, 0,
                                     "backend closed two connections in a "
                                     "row without answering");
            }
        }
    }
    /* The held body's buffer first, as the tunnel's second one goes. */
    rproxy_buf_put(&x.held);
    rproxy_buf_put(&x.buf);
    *failed = x.failed;
    return status;
}

static int rproxy_handler(request_rec *r)
{
    const rproxy_dir_conf *dc;
    rproxy_target_slot *ts;
    apr_time_t started;
    int status, failed = 0;

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
    ts = dc->target->stats;
    apr_atomic_inc64(&ts->requests);
    apr_atomic_inc32(&ts->in_flight);
    started = apr_time_now();

    status = proxy_request(r, dc, &failed);

    rproxy_stats_latency(ts, apr_time_now() - started);
    apr_atomic_dec32(&ts->in_flight);
    if (status != OK || failed) {
        RPROXY_COUNT_FOR(dc->target, errors);   /* client aborts apart */
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

static int rproxy_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                             apr_pool_t *ptemp)
{
    (void)plog; (void)ptemp;
    https_targets = NULL;       /* in the last generation's pconf */
    rproxy_stats_pre_config(pconf);
    return OK;
}

/* The first RProxyStatusControl On under d (and its siblings) whose
 * section has no Require, RequireAll or RequireAny of its own, or NULL:
 * the controls change the server, so whoever may use them must be said
 * explicitly, not inherited by accident. */
static const ap_directive_t *control_without_require(const ap_directive_t *d)
{
    for (; d; d = d->next) {
        if (!strcasecmp(d->directive, "RProxyStatusControl")
            && d->args && !strncasecmp(d->args + (*d->args == '"'), "on", 2)) {
            const ap_directive_t *sib = d->parent ? d->parent->first_child
                                                  : NULL;
            int found = 0;
            for (; sib && !found; sib = sib->next) {
                found = !strcasecmp(sib->directive, "Require")
                        || !strcasecmp(sib->directive, "<RequireAll")
                        || !strcasecmp(sib->directive, "<RequireAny");
            }
            if (!found) {
                return d;
            }
        }
        if (d->first_child) {
            const ap_directive_t *bad = control_without_require(d->first_child);
            if (bad) {
                return bad;
            }
        }
    }
    return NULL;
}

/* Runs for apachectl configtest too: a missing shared-memory provider
 * fails there, not at the first start. */
/* Whether httpd's TLS module would take an https connection for server s
 * (mod_ssl: SSLProxyEngine on): asked as a real connection would be, on a
 * connection record that never carries a byte. */
static int outgoing_tls_enabled(server_rec *s, apr_pool_t *ptemp)
{
    conn_rec *c = apr_pcalloc(ptemp, sizeof(*c));

    c->pool = ptemp;
    c->base_server = s;
    c->conn_config = ap_create_conn_config(ptemp);
    c->notes = apr_table_make(ptemp, 1);
    c->outgoing = 1;
    return ap_ssl_bind_outgoing(c, NULL, 1) == OK;
}

/* The last SSLProxyEngine written among d and its siblings (through
 * <IfModule> and the like, not into other sections): 1 on, 0 off, -1 none. */
static int proxy_engine_in(const ap_directive_t *d)
{
    int found = -1;

    for (; d; d = d->next) {
        if (!strcasecmp(d->directive, "SSLProxyEngine")) {
            found = !strcasecmp(d->args, "on");
        }
        else if (d->first_child && !strncasecmp(d->directive, "<If", 3)
                 && strncasecmp(d->directive, "<If ", 4)
                 && strcasecmp(d->directive, "<If")) {
            int inner = proxy_engine_in(d->first_child);
            found = inner >= 0 ? inner : found;
        }
    }
    return found;
}

/* Whether SSLProxyEngine on is written for server s: in its <VirtualHost>,
 * else at server level.  mod_ssl decides an unset SSLProxyEngine only in
 * its post_config, which apachectl configtest never runs, so there the
 * configuration text is what can be read. */
static int proxy_engine_written(server_rec *s)
{
    const ap_directive_t *d;

    for (d = ap_conftree; d && s->is_virtual; d = d->next) {
        if (!strcasecmp(d->directive, "<VirtualHost")
            && (unsigned)d->line_num == s->defn_line_number
            && d->filename && s->defn_name
            && !strcmp(d->filename, s->defn_name)) {
            int in_host = proxy_engine_in(d->first_child);
            if (in_host >= 0) {
                return in_host;
            }
        }
    }
    return proxy_engine_in(ap_conftree) == 1;
}

/* What server s lacks for https backends, or NULL. */
static const char *tls_missing(server_rec *s, apr_pool_t *ptemp, int by_text)
{
    if (!ap_ssl_has_outgoing_handlers()) {
        return "no TLS module is loaded (LoadModule ssl_module; on Debian "
               "a2enmod ssl)";
    }
    if (!outgoing_tls_enabled(s, ptemp)
        || (by_text && !proxy_engine_written(s))) {
        return "proxy TLS is not enabled in its server or virtual host "
               "(SSLProxyEngine on)";
    }
    return NULL;
}

/* An https RProxyTarget or RProxyMember needs httpd's TLS module with
 * proxy TLS on in its virtual host (a member: its group's, whose SSLProxy*
 * settings its connections take): checked here so that apachectl
 * configtest says so. */
static int check_https_targets(apr_pool_t *ptemp, server_rec *s,
                               int by_text)
{
    apr_array_header_t *groups = rproxy_groups_all(ptemp, s);
    int i, j, ok = 1;

    for (i = 0; https_targets && i < https_targets->nelts; i++) {
        const rproxy_target *t =
            APR_ARRAY_IDX(https_targets, i, const rproxy_target *);
        const char *missing = tls_missing(t->server, ptemp, by_text);

        if (missing) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, s,
                         "RProxyTarget %s in <Location %s> of %s:%u: %s",
                         t->url, t->location ? t->location : "/",
                         t->server->server_hostname
                         ? t->server->server_hostname : "the main server",
                         t->server->port, missing);
            ok = 0;
        }
    }
    for (i = 0; i < groups->nelts; i++) {
        const rproxy_group *g = APR_ARRAY_IDX(groups, i, rproxy_group *);
        for (j = 0; j < g->members->nelts; j++) {
            const rproxy_member_conf *mc =
                &APR_ARRAY_IDX(g->members, j, rproxy_member_conf);
            const char *missing = mc->tls ? tls_missing(g->server, ptemp,
                                                        by_text) : NULL;
            if (missing) {
                ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, s,
                             "RProxyMember %s in <RProxyGroup %s> of %s:%u: "
                             "%s", mc->url, g->name,
                             g->server->server_hostname
                             ? g->server->server_hostname
                             : "the main server", g->server->port, missing);
                ok = 0;
            }
        }
    }
    return ok;
}

/* Whether the health checks of group g verify its https members: unless
 * every location proxying to it turns verification off (in its own
 * section, or for its whole server), as its requests do.  A location
 * that inherits Off from an enclosing <Location> is taken as On: the
 * checks are then stricter than its requests, never laxer. */
static void set_check_verify(const apr_array_header_t *targets)
{
    int i, pass;

    for (pass = 0; pass < 2; pass++) {
        for (i = 0; i < targets->nelts; i++) {
            const rproxy_target *t =
                APR_ARRAY_IDX(targets, i, const rproxy_target *);
            const rproxy_dir_conf *sdc;
            int verify;
            if (!t->group) {
                continue;
            }
            if (pass == 0) {
                t->group->check_tls_verify = 0;
                continue;
            }
            sdc = ap_get_module_config(t->server->lookup_defaults,
                                       &rproxy_module);
            verify = *t->tls_verify != -1 ? *t->tls_verify : sdc->tls_verify;
            if (verify != 0) {
                t->group->check_tls_verify = 1;
            }
        }
    }
}

static int rproxy_check_config(apr_pool_t *pconf, apr_pool_t *plog,
                               apr_pool_t *ptemp, server_rec *s)
{
    const apr_array_header_t *targets = rproxy_stats_targets();
    int i;

    (void)pconf; (void)plog;
    if (!check_https_targets(ptemp, s, 1)) {
        return !OK;
    }
    /* group:// targets find their group: the virtual host's, or the main
     * server's. */
    for (i = 0; i < targets->nelts; i++) {
        rproxy_target *t = APR_ARRAY_IDX(targets, i, rproxy_target *);
        const rproxy_server_conf *sc;
        if (!t->group_name) {
            continue;
        }
        sc = ap_get_module_config(t->server->module_config, &rproxy_module);
        t->group = sc->groups ? apr_hash_get(sc->groups, t->group_name,
                                             APR_HASH_KEY_STRING) : NULL;
        if (!t->group) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, s,
                         "RProxyTarget %s: no <RProxyGroup %s> in this "
                         "server or virtual host", t->url, t->group_name);
            return !OK;
        }
    }
    set_check_verify(targets);
    {
        const ap_directive_t *bad = control_without_require(ap_conftree);
        if (bad) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, s,
                         "RProxyStatusControl On (%s:%d): the %s%s%s section "
                         "it is in has no Require, <RequireAll> or "
                         "<RequireAny> of its own; the drain and enable "
                         "controls need an explicit access rule there",
                         bad->filename, bad->line_num,
                         bad->parent ? bad->parent->directive : "server",
                         bad->parent ? " " : "",
                         bad->parent ? bad->parent->args : "");
            return !OK;
        }
    }
    if (!rproxy_checks_check_config(ptemp, s)) {
        return !OK;
    }
    if (!rproxy_stats_provider()) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, s,
                     "mod_rproxy keeps its counters in shared memory and "
                     "needs mod_slotmem_shm loaded too "
                     "(LoadModule slotmem_shm_module; on Debian a2enmod "
                     "slotmem_shm)");
        return !OK;
    }
    return OK;
}

static int rproxy_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                              apr_pool_t *ptemp, server_rec *s)
{
    rproxy_server_conf *main_sc =
        ap_get_module_config(s->module_config, &rproxy_module);
    server_rec *main_s = s;
    (void)plog;

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
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;      /* the memory is made for the run that serves */
    }
    return rproxy_stats_post_config(pconf, ptemp, main_s) == APR_SUCCESS
           && rproxy_groups_post_config(pconf, ptemp, main_s) == APR_SUCCESS
           && rproxy_status_post_config(pconf, main_s) == APR_SUCCESS
           && rproxy_checks_post_config(pconf, main_s) == APR_SUCCESS
           ? OK : HTTP_INTERNAL_SERVER_ERROR;
}

/* Again after mod_ssl's post_config, which settles an SSLProxyEngine left
 * unset to off: in configtest (-t, no post_config) only an explicit
 * SSLProxyEngine off or a missing TLS module can be seen. */
static int rproxy_post_config_tls(apr_pool_t *pconf, apr_pool_t *plog,
                                  apr_pool_t *ptemp, server_rec *s)
{
    (void)pconf; (void)plog;
    return check_https_targets(ptemp, s, 0) ? OK : HTTP_INTERNAL_SERVER_ERROR;
}

static void rproxy_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv = rproxy_pool_child_init(pchild);
    if (rv == APR_SUCCESS) {
        rv = rproxy_tls_child_init(pchild);
    }
    if (rv == APR_SUCCESS) {
        rv = rproxy_conn_child_init(pchild, s);
    }
    if (rv == APR_SUCCESS) {
        rv = rproxy_groups_child_init(pchild, s);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "rproxy: cannot set up buffer pool or connection set");
    }
}

static void rproxy_register_hooks(apr_pool_t *p)
{
    static const char *const before_watchdog[] = { "mod_watchdog.c", NULL };

    ap_register_provider(p, RPROXY_BUFFER_POOL_GROUP, "apr",
                         RPROXY_BUFFER_POOL_VERSION, &rproxy_apr_pool);
    ap_register_provider(p, RPROXY_BUFFER_POOL_GROUP, "none",
                         RPROXY_BUFFER_POOL_VERSION, &rproxy_none_pool);
    rproxy_register_trailer_filter();
    rproxy_tls_register_hooks();
    ap_hook_pre_config(rproxy_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(rproxy_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    /* The health checks' watchdog callback is registered before
     * mod_watchdog's post_config starts its instances, and runs in a child
     * only once our child_init made the connection set it uses. */
    ap_hook_post_config(rproxy_post_config, NULL, before_watchdog,
                        APR_HOOK_MIDDLE);
    ap_hook_post_config(rproxy_post_config_tls, NULL, NULL,
                        APR_HOOK_REALLY_LAST);
    ap_hook_child_init(rproxy_child_init, NULL, before_watchdog,
                       APR_HOOK_MIDDLE);
    ap_hook_map_to_storage(rproxy_map_to_storage, NULL, NULL,
                           APR_HOOK_FIRST);
    ap_hook_handler(rproxy_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(rproxy_status_handler, NULL, NULL, APR_HOOK_MIDDLE);
    rproxy_status_register_hooks();
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
