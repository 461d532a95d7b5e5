/*
 * mod_rproxy_mallocpool - an example buffer pool for mod_rproxy.
 *
 * "RProxyBufferPool malloc" copies bodies through 16 KiB buffers from
 * malloc().  Up to MAX_IDLE returned buffers are kept for the next get(), so
 * steady traffic rarely calls malloc(); beyond that they are freed, so a
 * burst does not pin its peak memory for the life of the process.
 *
 * Build and install, once `make install` in mod_rproxy's tree has put
 * mod_rproxy.h next to httpd's headers:
 *     apxs -i -c mod_rproxy_mallocpool.c
 * and load it before any "RProxyBufferPool malloc" line:
 *     LoadModule rproxy_mallocpool_module /usr/lib/apache2/modules/mod_rproxy_mallocpool.so
 * (on Debian, put that line in mods-available/rproxy_mallocpool.load and
 * run a2enmod rproxy_mallocpool; see docs/buffer-pool.md)
 */
#include <stdlib.h>

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "ap_provider.h"
#include "apr_thread_mutex.h"

#include "mod_rproxy.h"

#define BUF_SIZE 16384
#define MAX_IDLE 64

/* Per process: each child has its own copy after fork(). */
static apr_thread_mutex_t *lock;
static char *idle[MAX_IDLE];
static int n_idle;

/* Called from many worker threads at once, hence the lock. */
static char *malloc_get(server_rec *s, apr_size_t *len)
{
    char *buf = NULL;

    (void)s;
    /* lock is NULL only if child_init could not create it: then every
     * buffer is simply malloc'ed and freed. */
    if (lock) {
        apr_thread_mutex_lock(lock);
        if (n_idle > 0) {
            buf = idle[--n_idle];
        }
        apr_thread_mutex_unlock(lock);
    }
    if (!buf) {
        buf = malloc(BUF_SIZE);
    }
    *len = BUF_SIZE;
    /* Out of memory returns NULL: mod_rproxy then takes a buffer from the
     * request pool for this request and never puts it back here. */
    return buf;
}

/* May run after the request that got buf has ended: touch nothing of it. */
static void malloc_put(server_rec *s, char *buf, apr_size_t len)
{
    /* mod_rproxy gives back our own length, so len is always BUF_SIZE. */
    (void)s;
    (void)len;
    if (lock) {
        apr_thread_mutex_lock(lock);
        if (n_idle < MAX_IDLE) {
            idle[n_idle++] = buf;
            buf = NULL;
        }
        apr_thread_mutex_unlock(lock);
    }
    free(buf);                  /* free(NULL) when it was kept */
}

static const rproxy_buffer_pool malloc_pool = { malloc_get, malloc_put };

/* Runs when the child exits, before the mutex (registered earlier) is
 * destroyed: leaves nothing behind for leak checkers. */
static apr_status_t free_idle(void *unused)
{
    (void)unused;
    while (n_idle > 0) {
        free(idle[--n_idle]);
    }
    lock = NULL;
    return APR_SUCCESS;
}

/* The lock is made per child, not in post_config, so no child ever inherits
 * a mutex that another thread held at fork() time. */
static void child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv = apr_thread_mutex_create(&lock, APR_THREAD_MUTEX_DEFAULT,
                                              pchild);
    if (rv != APR_SUCCESS) {
        lock = NULL;
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, "mallocpool: cannot "
                     "create a mutex; buffers will not be recycled");
        return;
    }
    apr_pool_cleanup_register(pchild, NULL, free_idle,
                              apr_pool_cleanup_null);
}

/* register_hooks runs when the LoadModule line is read, which is why that
 * line must come before the RProxyBufferPool that looks the provider up. */
static void register_hooks(apr_pool_t *p)
{
    ap_register_provider(p, RPROXY_BUFFER_POOL_GROUP, "malloc",
                         RPROXY_BUFFER_POOL_VERSION, &malloc_pool);
    ap_hook_child_init(child_init, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(rproxy_mallocpool) = {
    STANDARD20_MODULE_STUFF,
    NULL,                       /* per-directory config */
    NULL,
    NULL,                       /* per-server config */
    NULL,
    NULL,                       /* no directives of its own */
    register_hooks,
    AP_MODULE_FLAG_NONE
};
