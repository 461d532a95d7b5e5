/*
 * rproxy_parse.h - HTTP/1.1 response syntax with no httpd in it, so the
 * module and the fuzz target (fuzz/) run exactly the same parser.
 */
#ifndef RPROXY_PARSE_H
#define RPROXY_PARSE_H

#include "apr.h"
#include "apr_errno.h"
#include "apr_pools.h"

#define RPROXY_MAX_LINE       8192   /* status, field or chunk-size line */
#define RPROXY_LINE_TOO_LONG  (APR_OS_START_USERERR + 1)

/* Reads up to *len bytes into dst, setting *len to what it read. */
typedef apr_status_t (*rproxy_recv_fn)(void *ctx, char *dst, apr_size_t *len);

/* A read window over one buffer: unread bytes are buf[pos, end).  Lines
 * normally stay in the buffer and are parsed in place; a line longer than
 * the buffer is gathered in an overflow area from the pool. */
typedef struct {
    char *buf;
    apr_size_t cap, pos, end;
    char *overflow;
    apr_size_t overflow_len;
    int bare_lf;                 /* the last line read ended in LF alone */
    apr_pool_t *pool;
    rproxy_recv_fn recv;
    void *recv_ctx;
    /* Called before the window moves or refills (NULL: nothing to do): the
     * module hands on body bytes that still point into it. */
    apr_status_t (*before_fill)(void *ctx);
    void *before_fill_ctx;
} rproxy_reader;

void rproxy_reader_init(rproxy_reader *rd, char *buf, apr_size_t cap,
                        apr_pool_t *pool, rproxy_recv_fn recv, void *ctx);

/* Reads more bytes into the window; APR_EOF when the peer closed. */
apr_status_t rproxy_reader_fill(rproxy_reader *rd);

/* The next line without its CRLF (or bare LF, which sets rd->bare_lf),
 * NUL-terminated, writable until the next read; RPROXY_LINE_TOO_LONG past
 * RPROXY_MAX_LINE. */
apr_status_t rproxy_read_line(rproxy_reader *rd, char **line,
                              apr_size_t *len);

/* Each returns NULL when well-formed, else why not. */
const char *rproxy_parse_status_line(const char *l, apr_size_t len,
                                     int *status, int *minor);
/* Splits "name: value" in place (NUL-terminating both, value trimmed). */
const char *rproxy_parse_field(char *l, apr_size_t len, char **name,
                               char **value);
/* Folds one Content-Length field value into *length; *count counts the
 * elements seen so far, which must all agree. */
const char *rproxy_parse_length(const char *value, apr_off_t *length,
                                int *count);
const char *rproxy_parse_chunk_size(const char *l, apr_size_t len,
                                    apr_off_t *size);

int rproxy_valid_value(const char *v, apr_size_t len);

#endif /* RPROXY_PARSE_H */
