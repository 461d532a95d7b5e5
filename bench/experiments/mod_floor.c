/* mod_floor.c - bench/experiments: the cheapest handlers httpd can run, to
 * measure what any proxy inside httpd's handler model must cost at least
 * (issues 14 and 15).  Not part of mod_rproxy and never installed: bench/run.sh
 * builds it with apxs when BENCH_VARIANTS names floor_mem or floor_proxy.
 *
 *   SetHandler floor-memory   answers GET /p/1k.bin and /p/64k.bin with that
 *                             many bytes from static memory: no file, no
 *                             backend.  What httpd's request cycle costs alone.
 *   SetHandler floor-proxy    FloorBackend PORT: sends "GET /NAME" to
 *                             127.0.0.1:PORT over one blocking socket kept per
 *                             client connection, reads the whole response (it
 *                             must carry Content-Length and fit 72 KiB), and
 *                             passes the body on as one transient bucket.  No
 *                             connection pool, no header handling, no
 *                             streaming, no timeouts, no error recovery: the
 *                             bare backend round trip a proxy cannot avoid.
 *
 * Either one is wrong as a proxy in every way that does not cost CPU; that is
 * the point.  The figures it gave are in bench/RESULTS.md ("The floor").
 */
#include "httpd.h"
#include "http_config.h"
#include "http_protocol.h"
#include "http_request.h"
#include "http_log.h"
#include "util_filter.h"
#include "apr_strings.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <strings.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

module AP_MODULE_DECLARE_DATA floor_module;

#define FLOOR_BUF (72 * 1024)

typedef struct {
    int port;
} floor_dir;

/* One backend socket and one buffer per client connection. */
typedef struct {
    int fd;
    char *buf;
} floor_conn;

static char floor_bytes[64 * 1024];

static void *floor_dir_create(apr_pool_t *p, char *dir)
{
    (void)dir;
    return apr_pcalloc(p, sizeof(floor_dir));
}

static const char *set_backend(cmd_parms *cmd, void *cfg, const char *arg)
{
    floor_dir *d = cfg;
    (void)cmd;
    d->port = atoi(arg);
    return d->port > 0 && d->port < 65536 ? NULL : "FloorBackend: a port";
}

static apr_status_t floor_close(void *data)
{
    floor_conn *fc = data;
    if (fc->fd >= 0)
        close(fc->fd);
    fc->fd = -1;
    return APR_SUCCESS;
}

static floor_conn *floor_connection(conn_rec *c, int port)
{
    floor_conn *fc = ap_get_module_config(c->conn_config, &floor_module);
    if (!fc) {
        fc = apr_palloc(c->pool, sizeof(*fc));
        fc->fd = -1;
        fc->buf = apr_palloc(c->pool, FLOOR_BUF);
        ap_set_module_config(c->conn_config, &floor_module, fc);
        apr_pool_cleanup_register(c->pool, fc, floor_close,
                                  apr_pool_cleanup_null);
    }
    if (fc->fd < 0) {
        struct sockaddr_in sa;
        int one = 1;
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_port = htons((unsigned short)port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fc->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fc->fd < 0)
            return NULL;
        setsockopt(fc->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fc->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            floor_close(fc);
            return NULL;
        }
    }
    return fc;
}

static int floor_send_body(request_rec *r, const char *body, apr_size_t len)
{
    apr_bucket_brigade *bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    ap_set_content_type(r, "application/octet-stream");
    ap_set_content_length(r, len);
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_transient_create(body, len, bb->bucket_alloc));
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(bb->bucket_alloc));
    return ap_pass_brigade(r->output_filters, bb) == APR_SUCCESS ? OK : AP_FILTER_ERROR;
}

static int floor_memory(request_rec *r)
{
    apr_size_t len;
    const char *name = strrchr(r->uri, '/');
    if (!name)
        return HTTP_NOT_FOUND;
    if (strcmp(name, "/1k.bin") == 0)
        len = 1024;
    else if (strcmp(name, "/64k.bin") == 0)
        len = sizeof(floor_bytes);
    else
        return HTTP_NOT_FOUND;
    return floor_send_body(r, floor_bytes, len);
}

static int floor_proxy(request_rec *r)
{
    floor_dir *d = ap_get_module_config(r->per_dir_config, &floor_module);
    const char *name = strrchr(r->uri, '/');
    floor_conn *fc;
    char *req, *end, *cl;
    apr_size_t have = 0, head, total;
    ssize_t n;
    size_t off = 0, reqlen;

    if (!name || !(fc = floor_connection(r->connection, d->port)))
        return HTTP_BAD_GATEWAY;
    req = apr_pstrcat(r->pool, "GET ", name, " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", NULL);
    reqlen = strlen(req);
    while (off < reqlen) {
        n = send(fc->fd, req + off, reqlen - off, MSG_NOSIGNAL);
        if (n <= 0) {
            floor_close(fc);
            return HTTP_BAD_GATEWAY;
        }
        off += (size_t)n;
    }
    for (;;) {
        n = recv(fc->fd, fc->buf + have, FLOOR_BUF - 1 - have, 0);
        if (n <= 0) {
            floor_close(fc);
            return HTTP_BAD_GATEWAY;
        }
        have += (apr_size_t)n;
        fc->buf[have] = '\0';
        if ((end = strstr(fc->buf, "\r\n\r\n")))
            break;
    }
    head = (apr_size_t)(end + 4 - fc->buf);
    *end = '\0';
    if (!(cl = strcasestr(fc->buf, "\r\nContent-Length:"))) {
        floor_close(fc);
        return HTTP_BAD_GATEWAY;
    }
    total = head + (apr_size_t)strtoul(cl + 17, NULL, 10);
    if (total >= FLOOR_BUF) {
        floor_close(fc);
        return HTTP_BAD_GATEWAY;
    }
    while (have < total) {
        n = recv(fc->fd, fc->buf + have, total - have, 0);
        if (n <= 0) {
            floor_close(fc);
            return HTTP_BAD_GATEWAY;
        }
        have += (apr_size_t)n;
    }
    return floor_send_body(r, fc->buf + head, total - head);
}

static int floor_handler(request_rec *r)
{
    if (!r->handler)
        return DECLINED;
    if (strcmp(r->handler, "floor-memory") == 0)
        return floor_memory(r);
    if (strcmp(r->handler, "floor-proxy") == 0)
        return floor_proxy(r);
    return DECLINED;
}

static const command_rec floor_cmds[] = {
    AP_INIT_TAKE1("FloorBackend", set_backend, NULL, OR_ALL,
                  "the backend's port on 127.0.0.1"),
    {NULL}
};

static void floor_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_handler(floor_handler, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(floor) = {
    STANDARD20_MODULE_STUFF,
    floor_dir_create, NULL, NULL, NULL,
    floor_cmds,
    floor_hooks,
    AP_MODULE_FLAG_NONE
};
