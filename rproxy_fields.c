/*
 * rproxy_fields.c - which header fields may cross the proxy, in one table.
 *
 * Every rule about a field name lives in field_rules below, with a flag per
 * place the field can appear: the client's request, the backend's
 * response, a trailer section.  The other rule is per message: the names a
 * message's own Connection header lists are hop-by-hop for that message
 * only (RFC 9110 7.6.1), so they are collected per message and checked
 * apart.  A leaf: this file calls no other file of the module.
 */
#include "rproxy.h"
#include "apr_strings.h"

typedef struct {
    const char *name;
    apr_size_t len;
    unsigned int flags;
} field_rule;

#define RULE(name, flags) { name, sizeof(name) - 1, flags }

/* Hop-by-hop in both directions (RFC 9110 7.6.1), and framing the proxy
 * writes itself. */
#define HOP (RPROXY_FIELD_NOT_IN_REQUEST | RPROXY_FIELD_NOT_IN_RESPONSE \
             | RPROXY_FIELD_NOT_IN_TRAILER)

static const field_rule field_rules[] = {
    RULE("Connection",          HOP),
    RULE("Keep-Alive",          HOP),
    RULE("Proxy-Connection",    HOP),
    RULE("Proxy-Authenticate",  HOP),
    RULE("Proxy-Authorization", HOP),
    RULE("TE",                  HOP),
    RULE("Trailer",             HOP),
    RULE("Transfer-Encoding",   HOP),
    RULE("Upgrade",             HOP),
    RULE("Content-Length",      HOP),
    /* The proxy writes these in the request it sends. */
    RULE("Host",   RPROXY_FIELD_NOT_IN_REQUEST | RPROXY_FIELD_NOT_IN_TRAILER),
    RULE("Expect", RPROXY_FIELD_NOT_IN_REQUEST | RPROXY_FIELD_NOT_IN_TRAILER),
    /* Replaced by the proxy's own when RProxyAddForwarded is on. */
    RULE("X-Forwarded-For",     RPROXY_FIELD_X_FORWARDED),
    RULE("X-Forwarded-Host",    RPROXY_FIELD_X_FORWARDED),
    RULE("X-Forwarded-Proto",   RPROXY_FIELD_X_FORWARDED),
    /* They describe the message as a whole, or route, authenticate or
     * control it, which a trailer must not (RFC 9110 6.5.1). */
    RULE("Content-Type",        RPROXY_FIELD_NOT_IN_TRAILER),
    RULE("Content-Encoding",    RPROXY_FIELD_NOT_IN_TRAILER),
    RULE("Content-Range",       RPROXY_FIELD_NOT_IN_TRAILER),
    RULE("Cache-Control",       RPROXY_FIELD_NOT_IN_TRAILER),
    RULE("Authorization",       RPROXY_FIELD_NOT_IN_TRAILER),
    RULE("Set-Cookie",          RPROXY_FIELD_NOT_IN_TRAILER),
};

unsigned int rproxy_field_flags(const char *name)
{
    apr_size_t len = strlen(name), i;

    /* The length test first: most fields a request carries match no rule,
     * and this spares them nearly every string comparison. */
    for (i = 0; i < sizeof(field_rules) / sizeof(field_rules[0]); i++) {
        if (field_rules[i].len == len
            && !strcasecmp(name, field_rules[i].name)) {
            return field_rules[i].flags;
        }
    }
    return 0;
}

/* Collects the tokens of every Connection line, lower-cased. */
static int add_connection_tokens(void *tokens, const char *key,
                                 const char *value)
{
    apr_array_header_t *arr = tokens;
    char *copy = apr_pstrdup(arr->pool, value), *last, *tok;

    (void)key;
    for (tok = apr_strtok(copy, ", \t", &last); tok;
         tok = apr_strtok(NULL, ", \t", &last)) {
        ap_str_tolower(tok);
        *(const char **)apr_array_push(arr) = tok;
    }
    return 1;
}

apr_array_header_t *rproxy_connection_tokens(apr_pool_t *p, apr_table_t *h)
{
    apr_array_header_t *tokens = apr_array_make(p, 4, sizeof(const char *));
    apr_table_do(add_connection_tokens, tokens, h, "Connection", NULL);
    return tokens;
}

int rproxy_connection_names(const apr_array_header_t *tokens,
                            const char *name)
{
    int i;
    for (i = 0; i < tokens->nelts; i++) {
        if (!strcasecmp(name, APR_ARRAY_IDX(tokens, i, const char *))) {
            return 1;
        }
    }
    return 0;
}

int rproxy_field_is_hop_by_hop(const char *name, unsigned int direction,
                               const apr_array_header_t *tokens)
{
    return (rproxy_field_flags(name) & direction)
           || rproxy_connection_names(tokens, name);
}
