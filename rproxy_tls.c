/*
 * rproxy_tls.c - what mod_rproxy adds to the TLS that httpd's TLS module
 * (mod_ssl) does for its https backends: the certificate checked by
 * default, and TLS session resumption.
 *
 * mod_ssl's default is SSLProxyVerify none: a backend's certificate chain
 * is not checked, and that is a setting of mod_ssl's that no other module
 * can read or change.  But OpenSSL checks the chain whatever the mode and
 * keeps the result, and mod_ssl runs two optional hooks around every proxy
 * handshake, so for mod_rproxy's own connections (and no others):
 *
 *   - pre_handshake asks OpenSSL to check the target's host name as part of
 *     the chain (X509_VERIFY_PARAM_set1_host, or _ip_asc for an address),
 *     records the first verification error as it happens (wrapping
 *     mod_ssl's own verify callback, which still decides under
 *     SSLProxyVerify optional/require), and offers the last session kept
 *     for the same target;
 *   - proxy_post_handshake refuses the connection (mod_ssl answers the
 *     handshake with an error: 502) unless the chain and the name verified.
 *
 * With RProxyTLSVerify off none of this checking is done (mod_ssl's own
 * SSLProxy* checks still are).  The sessions are kept per process, one per
 * target and verification policy.
 */
#include "rproxy.h"
#include "mod_ssl.h"          /* SSL_DECLARE, for the hooks below */
#include "apr_optional_hooks.h"
#include "apr_strings.h"
#include "apr_thread_mutex.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* mod_ssl's optional hooks (mod_ssl_openssl.h, which Debian does not
 * install): the same declarations. */
APR_DECLARE_EXTERNAL_HOOK(ssl, SSL, int, pre_handshake,
                          (conn_rec *c, SSL *ssl, int is_proxy))
APR_DECLARE_EXTERNAL_HOOK(ssl, SSL, int, proxy_post_handshake,
                          (conn_rec *c, SSL *ssl))

struct rproxy_tls {
    apr_pool_t *pool;           /* the connection's */
    const char *host;
    const char *session_key;
    int verify;
    SSL *ssl;                   /* from pre_handshake on */
    int verify_error;           /* the first one OpenSSL reported, or 0 */
    int verify_depth;
    const char *error;          /* why we refused the handshake */
};

/* The kept sessions: a few targets per process, found by key. */
#define MAX_SESSIONS 64
static struct {
    char *key;
    SSL_SESSION *session;
} sessions[MAX_SESSIONS];
static int n_sessions;
static apr_thread_mutex_t *sessions_lock;
static apr_pool_t *sessions_pool;

static apr_status_t free_sessions(void *unused)
{
    int i;
    (void)unused;
    for (i = 0; i < n_sessions; i++) {
        SSL_SESSION_free(sessions[i].session);
    }
    n_sessions = 0;
    return APR_SUCCESS;
}

apr_status_t rproxy_tls_child_init(apr_pool_t *pchild)
{
    sessions_pool = pchild;
    apr_pool_cleanup_register(pchild, NULL, free_sessions,
                              apr_pool_cleanup_null);
    return apr_thread_mutex_create(&sessions_lock, APR_THREAD_MUTEX_DEFAULT,
                                   pchild);
}

/* Our state on conn_rec c, or NULL: not one of our connections. */
static rproxy_tls *ours(conn_rec *c)
{
    return c && c->conn_config
           ? ap_get_module_config(c->conn_config, &rproxy_module) : NULL;
}

rproxy_tls *rproxy_tls_attach(conn_rec *bc, const char *host,
                              const char *session_key, int verify)
{
    rproxy_tls *t = apr_pcalloc(bc->pool, sizeof(*t));
    t->pool = bc->pool;
    t->host = host;
    t->session_key = session_key;
    t->verify = verify;
    ap_set_module_config(bc->conn_config, &rproxy_module, t);
    return t;
}

const char *rproxy_tls_error(const rproxy_tls *t)
{
    if (!t) {
        return NULL;
    }
    if (!t->error && t->verify_error) {
        /* mod_ssl refused first (SSLProxyVerify require, or its own
         * SSLProxyCheckPeer* checks): the reason OpenSSL gave. */
        return apr_psprintf(t->pool, "certificate verification failed "
                            "(depth %d): %s", t->verify_depth,
                            X509_verify_cert_error_string(t->verify_error));
    }
    return t->error;
}

int rproxy_tls_resumed(const rproxy_tls *t)
{
    return t && t->ssl && SSL_session_reused(t->ssl);
}

int rproxy_tls_close_notified(const rproxy_tls *t)
{
    return t && t->ssl
           && (SSL_get_shutdown(t->ssl) & SSL_RECEIVED_SHUTDOWN);
}

void rproxy_tls_keep_session(rproxy_tls *t)
{
    SSL_SESSION *s, *old = NULL;
    int i;

    if (!t || !t->ssl || !sessions_lock
        || !(s = SSL_get1_session(t->ssl))) {
        return;
    }
    if (!SSL_SESSION_is_resumable(s)) {
        ap_log_error(APLOG_MARK, APLOG_TRACE1, 0, NULL, "rproxy: TLS session "
                     "for %s not resumable", t->session_key);
        SSL_SESSION_free(s);
        return;
    }
    apr_thread_mutex_lock(sessions_lock);
    for (i = 0; i < n_sessions && strcmp(sessions[i].key, t->session_key);
         i++) {
    }
    if (i < n_sessions) {
        old = sessions[i].session;
        sessions[i].session = s;
    }
    else if (n_sessions < MAX_SESSIONS) {
        sessions[i].key = apr_pstrdup(sessions_pool, t->session_key);
        sessions[i].session = s;
        n_sessions++;
    }
    else {
        old = s;
    }
    apr_thread_mutex_unlock(sessions_lock);
    ap_log_error(APLOG_MARK, APLOG_TRACE1, 0, NULL, "rproxy: kept a TLS "
                 "session for %s", t->session_key);
    if (old) {
        SSL_SESSION_free(old);
    }
}

/* A session to resume for key (a new reference), or NULL. */
static SSL_SESSION *session_for(const char *key)
{
    SSL_SESSION *s = NULL;
    int i;

    if (!sessions_lock) {
        return NULL;
    }
    apr_thread_mutex_lock(sessions_lock);
    for (i = 0; i < n_sessions; i++) {
        if (!strcmp(sessions[i].key, key)) {
            s = sessions[i].session;
            SSL_SESSION_up_ref(s);
            break;
        }
    }
    apr_thread_mutex_unlock(sessions_lock);
    return s;
}

/* Records the first verification error, then lets mod_ssl's callback
 * decide as it would have. */
static int verify_cb(int ok, X509_STORE_CTX *ctx)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(
        ctx, SSL_get_ex_data_X509_STORE_CTX_idx());
    rproxy_tls *t = ours(ssl ? SSL_get_app_data(ssl) : NULL);
    SSL_verify_cb next = ssl ? SSL_CTX_get_verify_callback(
                                   SSL_get_SSL_CTX(ssl)) : NULL;

    if (!ok && t && !t->verify_error) {
        t->verify_error = X509_STORE_CTX_get_error(ctx);
        t->verify_depth = X509_STORE_CTX_get_error_depth(ctx);
    }
    return next ? next(ok, ctx) : ok;
}

static int is_ip_literal(const char *host)
{
    return strspn(host, "0123456789.") == strlen(host)
           || ap_strchr_c(host, ':') != NULL;
}

static int pre_handshake(conn_rec *c, SSL *ssl, int is_proxy)
{
    rproxy_tls *t = ours(c);
    SSL_SESSION *s;

    if (!t || !is_proxy) {
        return DECLINED;
    }
    t->ssl = ssl;
    if (t->verify) {
        X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
        if (is_ip_literal(t->host)) {
            X509_VERIFY_PARAM_set1_ip_asc(param, t->host);
        }
        else {
            X509_VERIFY_PARAM_set_hostflags(
                param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            X509_VERIFY_PARAM_set1_host(param, t->host, 0);
        }
        SSL_set_verify(ssl, SSL_get_verify_mode(ssl), verify_cb);
    }
    if ((s = session_for(t->session_key)) != NULL) {
        SSL_set_session(ssl, s);
        SSL_SESSION_free(s);
    }
    return OK;
}

static int post_handshake(conn_rec *c, SSL *ssl)
{
    rproxy_tls *t = ours(c);
    long result;
    X509 *peer;

    if (!t) {
        return DECLINED;
    }
    if (!t->verify) {
        rproxy_tls_keep_session(t);
        return OK;
    }
    result = SSL_get_verify_result(ssl);
    peer = SSL_get1_peer_certificate(ssl);
    if (!peer) {
        t->error = "the backend sent no certificate";
        return HTTP_BAD_GATEWAY;
    }
    X509_free(peer);
    if (result != X509_V_OK) {
        if (!t->verify_error) {
            t->verify_error = (int)result;
        }
        t->error = rproxy_tls_error(t);
        return HTTP_BAD_GATEWAY;
    }
    rproxy_tls_keep_session(t);
    return OK;
}

void rproxy_tls_register_hooks(void)
{
    APR_OPTIONAL_HOOK(ssl, pre_handshake, pre_handshake, NULL, NULL,
                      APR_HOOK_MIDDLE);
    APR_OPTIONAL_HOOK(ssl, proxy_post_handshake, post_handshake, NULL, NULL,
                      APR_HOOK_MIDDLE);
}
