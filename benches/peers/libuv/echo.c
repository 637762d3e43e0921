/* TCP echo peer on libuv: every connection reads into its own 64 KiB buffer and writes the
 * bytes back with uv_try_write; only what the socket does not take at once is copied into a
 * queued uv_write. Reading pauses while more than 1 MiB waits to be written. */
#include "common.h"

#include <stdlib.h>
#include <string.h>

#define BUF_SIZE (64 * 1024)
#define HIGH_WATER (1024 * 1024)

typedef struct {
    uv_tcp_t handle; /* first: the handle pointer is the conn pointer */
    int eof;
    char buf[BUF_SIZE];
} conn_t;

typedef struct {
    uv_write_t req;
    char data[];
} pending_t;

static void on_close(uv_handle_t *h) { free(h); }

static void on_shutdown(uv_shutdown_t *req, int status) {
    (void)status;
    uv_close((uv_handle_t *)req->handle, on_close);
    free(req);
}

static void finish(conn_t *c) {
    /* Half-closed by the peer: flush what is queued, then close. */
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->handle) == 0) {
        uv_close((uv_handle_t *)&c->handle, on_close);
        return;
    }
    uv_shutdown_t *req = malloc(sizeof *req);
    if (!req || uv_shutdown(req, (uv_stream_t *)&c->handle, on_shutdown)) {
        free(req);
        uv_close((uv_handle_t *)&c->handle, on_close);
    }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    (void)hint;
    conn_t *c = (conn_t *)h;
    *buf = uv_buf_init(c->buf, BUF_SIZE);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_write(uv_write_t *req, int status) {
    uv_stream_t *s = req->handle;
    free(req);
    if (status < 0 || uv_is_closing((uv_handle_t *)s)) return;
    conn_t *c = (conn_t *)s;
    if (!c->eof && uv_stream_get_write_queue_size(s) == 0 && !uv_is_active((uv_handle_t *)s))
        uv_read_start(s, on_alloc, on_read);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    conn_t *c = (conn_t *)s;
    if (nread < 0) {
        uv_read_stop(s);
        if (nread == UV_EOF) {
            c->eof = 1;
            finish(c);
        } else {
            uv_close((uv_handle_t *)s, on_close);
        }
        return;
    }
    if (nread == 0) return;
    size_t done = 0;
    if (uv_stream_get_write_queue_size(s) == 0) { /* keep the order: no try_write past a queue */
        uv_buf_t b = uv_buf_init(buf->base, (unsigned)nread);
        int r = uv_try_write(s, &b, 1);
        if (r < 0 && r != UV_EAGAIN) {
            uv_close((uv_handle_t *)s, on_close);
            return;
        }
        done = r > 0 ? (size_t)r : 0;
    }
    if (done == (size_t)nread) return;
    size_t rest = (size_t)nread - done;
    pending_t *p = malloc(sizeof *p + rest);
    if (!p) {
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    memcpy(p->data, buf->base + done, rest);
    uv_buf_t b = uv_buf_init(p->data, (unsigned)rest);
    if (uv_write(&p->req, s, &b, 1, on_write)) {
        free(p);
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    if (uv_stream_get_write_queue_size(s) > HIGH_WATER) uv_read_stop(s);
}

static void on_connection(uv_stream_t *server, int status) {
    if (status < 0) return;
    conn_t *c = malloc(sizeof *c);
    if (!c) return;
    c->eof = 0;
    uv_tcp_init(server->loop, &c->handle);
    if (uv_accept(server, (uv_stream_t *)&c->handle) != 0) {
        uv_close((uv_handle_t *)&c->handle, on_close);
        return;
    }
    uv_tcp_nodelay(&c->handle, 1);
    uv_read_start((uv_stream_t *)&c->handle, on_alloc, on_read);
}

int main(int argc, char **argv) { return peer_main(argc, argv, "libuv-echo", on_connection, NULL); }
