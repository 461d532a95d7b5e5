/*
 * mod_rproxy.h - the public face of mod_rproxy: its buffer-pool interface.
 *
 * mod_rproxy copies every request and response body through buffers taken
 * from a buffer pool and given back to it, like Go's ReverseProxy.BufferPool.
 * Another module can supply the pool: fill in an rproxy_buffer_pool and
 * register it from its register_hooks function:
 *
 *     ap_register_provider(p, RPROXY_BUFFER_POOL_GROUP, "mypool",
 *                          RPROXY_BUFFER_POOL_VERSION, &my_pool);
 *
 * then select it with "RProxyBufferPool mypool".  The LoadModule line of the
 * providing module must come before the first RProxyBufferPool naming it.
 *
 * The contract mod_rproxy keeps with a pool:
 *   - it uses whatever length get() stores in *len (any size >= 1);
 *   - every buffer it gets it puts back exactly once, with the same length,
 *     and never touches it afterwards, whatever happened to the request;
 *   - a body that fits in one buffer costs exactly one get() and one put();
 *   - if get() returns NULL, mod_rproxy allocates a buffer for that request
 *     from the request pool and does not call put() for it;
 *   - a non-NULL buffer with *len 0 is useless but was handed out: it is put
 *     back at once, exactly once with length 0, and the request then uses a
 *     request-pool buffer as for NULL.
 *
 * Both functions may be called from many threads at once.  put() may run
 * after the request that got the buffer has ended, so it receives only the
 * server_rec (which lives as long as the configuration).
 */
#ifndef MOD_RPROXY_H
#define MOD_RPROXY_H

#include "httpd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The ap_register_provider() group and version of buffer pools. */
#define RPROXY_BUFFER_POOL_GROUP   "rproxy_buffer_pool"
#define RPROXY_BUFFER_POOL_VERSION "1"

typedef struct rproxy_buffer_pool {
    /* Hands out a buffer and stores its length in *len, or returns NULL.
     * s is the (virtual) server handling the request. */
    char *(*get)(server_rec *s, apr_size_t *len);

    /* Takes back a buffer that get() handed out, with its length. */
    void (*put)(server_rec *s, char *buf, apr_size_t len);
} rproxy_buffer_pool;

#ifdef __cplusplus
}
#endif

#endif /* MOD_RPROXY_H */
