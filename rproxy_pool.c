/*
 * rproxy_pool.c - the built-in buffer pools and the one place that calls a
 * pool's get/put, so the counters and the exactly-once rule live together.
 *
 * "apr": buffers carved from a process-lifetime APR pool and recycled through
 * a free list per buffer size (RProxyBufferSize is per virtual host).  The
 * free list links through the first bytes of each idle buffer, so recycling
 * itself allocates nothing.  Memory is bounded by the peak number of buffers
 * in use at once, which the MPM's thread count bounds.
 *
 * "none": get() always answers NULL, so every body gets a fresh buffer from
 * the request pool and nothing is recycled: the behaviour before pools.
 */
#include "rproxy.h"
#include "apr_thread_mutex.h"

typedef struct free_list {
    apr_size_t size;
    char *head;                 /* idle buffers, linked through their bytes */
    struct free_list *next;
} free_list;

static apr_pool_t *buffers_home;
static apr_thread_mutex_t *buffers_lock;
static free_list *free_lists;

apr_status_t rproxy_pool_child_init(apr_pool_t *pchild)
{
    apr_status_t rv = apr_pool_create(&buffers_home, pchild);
    if (rv == APR_SUCCESS) {
        apr_pool_tag(buffers_home, "rproxy_buffers");
        rv = apr_thread_mutex_create(&buffers_lock, APR_THREAD_MUTEX_DEFAULT,
                                     pchild);
    }
    return rv;
}

/* Called with buffers_lock held. */
static free_list *free_list_for(apr_size_t size)
{
    free_list *fl;
    for (fl = free_lists; fl; fl = fl->next) {
        if (fl->size == size) {
            return fl;
        }
    }
    fl = apr_pcalloc(buffers_home, sizeof(*fl));
    fl->size = size;
    fl->next = free_lists;
    free_lists = fl;
    return fl;
}

static char *apr_buffers_get(server_rec *s, apr_size_t *len)
{
    const rproxy_server_conf *sc =
        ap_get_module_config(s->module_config, &rproxy_module);
    free_list *fl;
    char *buf;

    if (!buffers_home) {
        return NULL;            /* not in a child yet: the caller falls back */
    }
    apr_thread_mutex_lock(buffers_lock);
    fl = free_list_for(sc->buffer_size);
    buf = fl->head;
    if (buf) {
        memcpy(&fl->head, buf, sizeof(char *));
    }
    else {
        buf = apr_palloc(buffers_home, sc->buffer_size);
        RPROXY_COUNT(buffers_allocated);
    }
    apr_thread_mutex_unlock(buffers_lock);
    *len = sc->buffer_size;
    return buf;
}

static void apr_buffers_put(server_rec *s, char *buf, apr_size_t len)
{
    free_list *fl;

    apr_thread_mutex_lock(buffers_lock);
    fl = free_list_for(len);
    memcpy(buf, &fl->head, sizeof(char *));
    fl->head = buf;
    apr_thread_mutex_unlock(buffers_lock);
    (void)s;
}

static char *none_pool_get(server_rec *s, apr_size_t *len)
{
    (void)s;
    *len = 0;
    return NULL;
}

static void none_pool_put(server_rec *s, char *buf, apr_size_t len)
{
    /* Never called: none_pool_get hands out nothing. */
    ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, "rproxy: 'none' buffer pool was handed a buffer "
                 "(%pp, %" APR_SIZE_T_FMT " bytes)", (void *)buf, len);
}

const rproxy_buffer_pool rproxy_apr_pool = { apr_buffers_get, apr_buffers_put };
const rproxy_buffer_pool rproxy_none_pool = { none_pool_get, none_pool_put };

/* Takes the request's buffer from the location's pool (apr by default). */
void rproxy_buf_get(rproxy_buf *b, request_rec *r, const rproxy_dir_conf *dc,
                    const rproxy_server_conf *sc)
{
    const rproxy_buffer_pool *pool = dc->pool ? dc->pool : &rproxy_apr_pool;

    b->s = r->server;
    b->len = 0;
    b->data = pool->get(r->server, &b->len);
    if (b->data && b->len > 0) {
        b->pool = pool;
        RPROXY_COUNT(gets);
        return;
    }
    if (b->data) {
        /* A zero-length buffer is useless, but it was handed out: give it
         * back so the pool's books balance. */
        RPROXY_COUNT(gets);
        pool->put(r->server, b->data, b->len);
        RPROXY_COUNT(puts);
    }
    b->pool = NULL;
    b->len = sc->buffer_size;
    b->data = apr_palloc(r->pool, b->len);
    RPROXY_COUNT(fallback_buffers);
}

void rproxy_buf_put(rproxy_buf *b)
{
    if (b->data && b->pool) {
        b->pool->put(b->s, b->data, b->len);
        RPROXY_COUNT(puts);
    }
    b->data = NULL;
    b->pool = NULL;
}
