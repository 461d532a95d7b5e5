/*
 * mod_rproxy_testpool - buffer pools for the test suite, registered through
 * mod_rproxy.h exactly as a third-party module would.
 *
 * "testpool": get() hands out 1234-byte buffers and logs "getBuf"; put()
 * logs "putBuf-<len>" and frees the buffer.
 * "nullpool": get() always answers NULL; put() must never be called and
 * logs loudly if it is.
 * "zeropool": get() hands out a buffer of length 0, which must come back
 * exactly once ("zeroPut-0").
 */
#include <stdlib.h>

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "ap_provider.h"

#include "../../../mod_rproxy.h"

#define TEST_BUFFER_LEN 1234

static char *testpool_get(server_rec *s, apr_size_t *len)
{
    ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, "rproxy_testpool: getBuf");
    *len = TEST_BUFFER_LEN;
    return malloc(TEST_BUFFER_LEN);
}

static void testpool_put(server_rec *s, char *buf, apr_size_t len)
{
    ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                 "rproxy_testpool: putBuf-%" APR_SIZE_T_FMT, len);
    free(buf);
}

static char *nullpool_get(server_rec *s, apr_size_t *len)
{
    ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, "rproxy_testpool: nullGet");
    *len = 0;
    return NULL;
}

static void nullpool_put(server_rec *s, char *buf, apr_size_t len)
{
    (void)buf;
    ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                 "rproxy_testpool: nullPut-%" APR_SIZE_T_FMT, len);
}

/* "zeropool": get() hands out a real buffer but says its length is 0;
 * put() logs "zeroPut-<len>" and frees it. */
static char *zeropool_get(server_rec *s, apr_size_t *len)
{
    ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, "rproxy_testpool: zeroGet");
    *len = 0;
    return malloc(16);
}

static void zeropool_put(server_rec *s, char *buf, apr_size_t len)
{
    ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                 "rproxy_testpool: zeroPut-%" APR_SIZE_T_FMT, len);
    free(buf);
}

static const rproxy_buffer_pool testpool = { testpool_get, testpool_put };
static const rproxy_buffer_pool zeropool = { zeropool_get, zeropool_put };
static const rproxy_buffer_pool nullpool = { nullpool_get, nullpool_put };

static void register_hooks(apr_pool_t *p)
{
    ap_register_provider(p, RPROXY_BUFFER_POOL_GROUP, "testpool",
                         RPROXY_BUFFER_POOL_VERSION, &testpool);
    ap_register_provider(p, RPROXY_BUFFER_POOL_GROUP, "nullpool",
                         RPROXY_BUFFER_POOL_VERSION, &nullpool);
    ap_register_provider(p, RPROXY_BUFFER_POOL_GROUP, "zeropool",
                         RPROXY_BUFFER_POOL_VERSION, &zeropool);
}

AP_DECLARE_MODULE(rproxy_testpool) = {
    STANDARD20_MODULE_STUFF,
    NULL, NULL, NULL, NULL, NULL,
    register_hooks,
    AP_MODULE_FLAG_NONE
};
