#define _GNU_SOURCE
#include "common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *g_addr = "127.0.0.1";
static int g_port = 8080;
static uv_connection_cb g_on_connection;
static peer_loop_init_fn g_on_loop_init;
static cpu_set_t g_allowed; /* the process's affinity mask, read before any pinning */

static void die(const char *what, int err) {
    fprintf(stderr, "%s: %s\n", what, err < 0 ? uv_strerror(err) : strerror(err));
    exit(1);
}

/* A bound IPv4 socket with SO_REUSEPORT (libuv 1.44 has no UV_TCP_REUSEPORT). */
static int bound_socket(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket", errno);
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) die("SO_REUSEADDR", errno);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) die("SO_REUSEPORT", errno);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)g_port);
    if (inet_pton(AF_INET, g_addr, &sa.sin_addr) != 1) {
        fprintf(stderr, "bad --addr %s\n", g_addr);
        exit(2);
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) die("bind", errno);
    return fd;
}

/* Pins the calling thread to CPU `index` when the process may run there: the rule
 * ringwork's runtime applies to its core threads, so both sides get the same placement. */
static void pin(int index) {
    if (index >= CPU_SETSIZE || !CPU_ISSET(index, &g_allowed)) return;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(index, &one);
    int r = pthread_setaffinity_np(pthread_self(), sizeof one, &one);
    if (r) fprintf(stderr, "warning: could not pin thread %d: %s\n", index, strerror(r));
}

static void *run_loop(void *arg) {
    pin((int)(intptr_t)arg);
    uv_loop_t loop;
    int r = uv_loop_init(&loop);
    if (r) die("uv_loop_init", r);
    if (g_on_loop_init) g_on_loop_init(&loop);
    uv_tcp_t server;
    uv_tcp_init(&loop, &server);
    if ((r = uv_tcp_open(&server, bound_socket()))) die("uv_tcp_open", r);
    if ((r = uv_listen((uv_stream_t *)&server, 4096, g_on_connection))) die("uv_listen", r);
    uv_run(&loop, UV_RUN_DEFAULT);
    return NULL;
}

int peer_main(int argc, char **argv, const char *name, uv_connection_cb on_connection,
              peer_loop_init_fn on_loop_init) {
    int cores = 1;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--port") == 0) g_port = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--cores") == 0) cores = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--addr") == 0) g_addr = argv[++i];
        else {
            fprintf(stderr, "usage: %s --port P --cores N [--addr 127.0.0.1]\n", name);
            return 2;
        }
    }
    if (cores < 1 || g_port <= 0 || g_port > 65535) {
        fprintf(stderr, "%s: bad --port or --cores\n", name);
        return 2;
    }
    g_on_connection = on_connection;
    g_on_loop_init = on_loop_init;
    fprintf(stderr, "%s (libuv %s) listening on %s:%d, %d loop thread(s)\n", name,
            uv_version_string(), g_addr, g_port, cores);
    if (sched_getaffinity(0, sizeof g_allowed, &g_allowed) != 0) CPU_ZERO(&g_allowed);
    pthread_t threads[cores];
    for (int i = 1; i < cores; i++) {
        int r = pthread_create(&threads[i], NULL, run_loop, (void *)(intptr_t)i);
        if (r) die("pthread_create", r);
    }
    run_loop((void *)(intptr_t)0); /* the main thread is loop 0 */
    return 0;
}
