/* HTTP/1.1 "Hello, World!" peer on libuv, with a minimal request-head scanner.
 *
 * Every read appends to the connection's 16 KiB input buffer; each complete head in it
 * (up to CRLFCRLF) gets one response, in order, and all the responses of one read go out in
 * one write (uv_try_write, the rest queued). A Content-Length body is skipped, also across
 * reads. Keep-alive: HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with
 * `Connection: keep-alive`. A connection that is not kept alive, or a head that does not
 * parse (answered 400), is shut down after its responses are written. */
#define _GNU_SOURCE /* memmem */
#include "common.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define IN_SIZE (16 * 1024)

/* The response, with a Date header (RFC 9110 §6.6.1) as ringwork, nginx, hyper and Go send
 * it: rebuilt by a one-second timer of each loop thread. Every response has this length. */
#define RESPONSE_FMT \
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: %.29s\r\nContent-Length: 13\r\n\r\nHello, World!"
#define RESPONSE_LEN (sizeof "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: \r\nContent-Length: 13\r\n\r\nHello, World!" - 1 + 29)
static __thread char RESPONSE[RESPONSE_LEN + 1];
static __thread uv_timer_t date_timer;

static void update_date(uv_timer_t *t) {
    (void)t;
    char date[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm); /* 29 bytes */
    snprintf(RESPONSE, sizeof RESPONSE, RESPONSE_FMT, date);
}

static void on_loop_init(uv_loop_t *loop) {
    update_date(NULL);
    uv_timer_init(loop, &date_timer);
    uv_timer_start(&date_timer, update_date, 1000, 1000);
    uv_unref((uv_handle_t *)&date_timer);
}
static const char BAD_REQUEST[] =
    "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
#define BAD_REQUEST_LEN (sizeof BAD_REQUEST - 1)

typedef struct {
    uv_tcp_t handle;  /* first: the handle pointer is the conn pointer */
    size_t len;       /* bytes of `in` not consumed yet */
    uint64_t skip;    /* body bytes still to discard */
    int closing;      /* no more requests: shut down once the writes are done */
    char in[IN_SIZE];
} conn_t;

typedef struct {
    uv_write_t req;
    char data[];
} pending_t;

typedef struct {
    size_t head_len;     /* bytes up to and including CRLFCRLF */
    uint64_t body_len;   /* Content-Length, 0 if none */
    int keep_alive;
} head_t;

/* True if v[0..vlen] contains tok (lowercase) in any case. */
static int has_token(const char *v, size_t vlen, const char *tok, size_t tlen) {
    for (size_t i = 0; i + tlen <= vlen; i++)
        if (strncasecmp(v + i, tok, tlen) == 0) return 1;
    return 0;
}

/* Scans one request head at p[0..len]. Returns 1 (complete, *h filled), 0 (need more
 * bytes), -1 (malformed: unknown version, bad Content-Length, Transfer-Encoding). */
static int scan_head(const char *p, size_t len, head_t *h) {
    const char *end = memmem(p, len, "\r\n\r\n", 4);
    if (!end) return 0;
    h->head_len = (size_t)(end - p) + 4;
    h->body_len = 0;
    const char *eol = memchr(p, '\r', h->head_len);
    /* request line: METHOD SP TARGET SP HTTP/1.x */
    if (eol - p < 14 || memcmp(eol - 8, "HTTP/1.", 7) != 0 || eol[-9] != ' ') return -1;
    if (eol[-1] == '1') h->keep_alive = 1;
    else if (eol[-1] == '0') h->keep_alive = 0;
    else return -1;
    const char *line = eol + 2;
    while (line < end) {
        const char *le = memchr(line, '\r', (size_t)(end + 2 - line));
        const char *colon = memchr(line, ':', (size_t)(le - line));
        if (!colon) return -1;
        size_t nlen = (size_t)(colon - line);
        const char *v = colon + 1;
        while (v < le && (*v == ' ' || *v == '\t')) v++;
        size_t vlen = (size_t)(le - v);
        if (nlen == 10 && strncasecmp(line, "connection", 10) == 0) {
            if (has_token(v, vlen, "close", 5)) h->keep_alive = 0;
            else if (has_token(v, vlen, "keep-alive", 10)) h->keep_alive = 1;
        } else if (nlen == 14 && strncasecmp(line, "content-length", 14) == 0) {
            uint64_t n = 0;
            const char *d = v;
            for (; d < le && *d >= '0' && *d <= '9'; d++) {
                if (n > (UINT64_MAX - 9) / 10) return -1;
                n = n * 10 + (uint64_t)(*d - '0');
            }
            if (d == v) return -1;
            h->body_len = n;
        } else if (nlen == 17 && strncasecmp(line, "transfer-encoding", 17) == 0) {
            return -1; /* chunked bodies are out of scope: 400 and close */
        }
        line = le + 2;
    }
    return 1;
}

static void on_close(uv_handle_t *h) { free(h); }

static void on_shutdown(uv_shutdown_t *req, int status) {
    (void)status;
    uv_close((uv_handle_t *)req->handle, on_close);
    free(req);
}

/* Closes once the queued writes are flushed (uv_shutdown waits for them). */
static void finish(conn_t *c) {
    uv_read_stop((uv_stream_t *)&c->handle);
    uv_shutdown_t *req = malloc(sizeof *req);
    if (!req || uv_shutdown(req, (uv_stream_t *)&c->handle, on_shutdown)) {
        free(req);
        uv_close((uv_handle_t *)&c->handle, on_close);
    }
}

static void on_write(uv_write_t *req, int status) {
    (void)status;
    free(req);
}

/* Writes out[0..n]: directly when nothing is queued, the rest through a uv_write. */
static int send_all(uv_stream_t *s, const char *out, size_t n) {
    size_t done = 0;
    if (uv_stream_get_write_queue_size(s) == 0) {
        uv_buf_t b = uv_buf_init((char *)out, (unsigned)n);
        int r = uv_try_write(s, &b, 1);
        if (r < 0 && r != UV_EAGAIN) return r;
        done = r > 0 ? (size_t)r : 0;
    }
    if (done == n) return 0;
    pending_t *p = malloc(sizeof *p + (n - done));
    if (!p) return UV_ENOMEM;
    memcpy(p->data, out + done, n - done);
    uv_buf_t b = uv_buf_init(p->data, (unsigned)(n - done));
    int r = uv_write(&p->req, s, &b, 1, on_write);
    if (r) free(p);
    return r;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    (void)hint;
    conn_t *c = (conn_t *)h;
    /* A head that fills the buffer gets 0 bytes: libuv reports UV_ENOBUFS, and we close. */
    *buf = uv_buf_init(c->in + c->len, (unsigned)(IN_SIZE - c->len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    (void)buf;
    conn_t *c = (conn_t *)s;
    if (nread < 0) {
        if (nread == UV_EOF) finish(c);
        else uv_close((uv_handle_t *)s, on_close);
        return;
    }
    if (nread == 0 || c->closing) return;
    c->len += (size_t)nread;

    /* One response per complete request; at most IN_SIZE / 16 heads fit in the buffer. */
    char out[(IN_SIZE / 16 + 1) * RESPONSE_LEN];
    size_t out_len = 0, pos = 0;
    while (pos < c->len) {
        if (c->skip) {
            size_t n = c->len - pos < c->skip ? c->len - pos : (size_t)c->skip;
            pos += n;
            c->skip -= n;
            continue;
        }
        head_t h;
        int r = scan_head(c->in + pos, c->len - pos, &h);
        if (r == 0) break;
        if (r < 0) {
            memcpy(out + out_len, BAD_REQUEST, BAD_REQUEST_LEN);
            out_len += BAD_REQUEST_LEN;
            c->closing = 1;
            break;
        }
        memcpy(out + out_len, RESPONSE, RESPONSE_LEN);
        out_len += RESPONSE_LEN;
        pos += h.head_len;
        c->skip = h.body_len;
        if (!h.keep_alive) {
            c->closing = 1;
            break;
        }
    }
    if (out_len && send_all(s, out, out_len)) {
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    if (c->closing) {
        finish(c);
        return;
    }
    memmove(c->in, c->in + pos, c->len - pos);
    c->len -= pos;
}

static void on_connection(uv_stream_t *server, int status) {
    if (status < 0) return;
    conn_t *c = malloc(sizeof *c);
    if (!c) return;
    c->len = 0;
    c->skip = 0;
    c->closing = 0;
    uv_tcp_init(server->loop, &c->handle);
    if (uv_accept(server, (uv_stream_t *)&c->handle) != 0) {
        uv_close((uv_handle_t *)&c->handle, on_close);
        return;
    }
    uv_tcp_nodelay(&c->handle, 1);
    uv_read_start((uv_stream_t *)&c->handle, on_alloc, on_read);
}

int main(int argc, char **argv) { return peer_main(argc, argv, "libuv-http", on_connection, on_loop_init); }
