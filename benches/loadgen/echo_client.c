/*
 * A minimal closed-loop TCP echo client: the reference that `ringwork-load tcp` is compared
 * with (issue 16: "the fastest closed-loop client you can find or write").
 *
 *   cc -O2 -o echo_client benches/loadgen/echo_client.c
 *   echo_client HOST PORT CONNECTIONS SIZE SECONDS
 *
 * One thread, level-triggered epoll, MSG_DONTWAIT receives, TCP_NODELAY. Each connection
 * keeps one SIZE-byte message in flight: send it, read until SIZE bytes came back, count one
 * response, send the next. Per message that is one send(2) and one recv(2) (more only when
 * the echo arrives in pieces) plus a share of one epoll_wait(2): no timers, no clock reads
 * per message, no latency recording, no checking of the echoed bytes — less work per
 * message than any load generator that measures something. Counts the responses completed
 * within SECONDS of the first connection's start and prints one line:
 *
 *   requests=N seconds=S rps=R
 *
 * Exit status 1 (with a message) when a connection fails or is closed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIZE (1 << 20)

struct conn {
    int fd;
    size_t got; /* bytes of the current echo received */
};

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void send_message(int fd, const char *msg, size_t size) {
    ssize_t n = send(fd, msg, size, MSG_NOSIGNAL);
    /* A fresh send buffer always takes one small message whole; a short send is a failure
     * of the premise, not something to retry around. */
    if (n != (ssize_t)size) die("send");
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s HOST PORT CONNECTIONS SIZE SECONDS\n", argv[0]);
        return 2;
    }
    int conns = atoi(argv[3]);
    size_t size = (size_t)atol(argv[4]);
    double seconds = atof(argv[5]);
    if (conns < 1 || size < 1 || size > MAX_SIZE || seconds <= 0) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
        fprintf(stderr, "bad IPv4 address %s\n", argv[1]);
        return 2;
    }
    char *msg = malloc(size), *buf = malloc(MAX_SIZE);
    struct conn *c = calloc((size_t)conns, sizeof *c);
    if (!msg || !buf || !c) die("malloc");
    memset(msg, 'x', size);
    int ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    double start = now_s();
    for (int i = 0; i < conns; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) die("socket");
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) die("connect");
        c[i].fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl");
        send_message(fd, msg, size);
    }
    double end = start + seconds;
    unsigned long long done = 0;
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, 100);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int k = 0; k < n; k++) {
            struct conn *cn = &c[evs[k].data.u32];
            ssize_t r = recv(cn->fd, buf, MAX_SIZE, MSG_DONTWAIT);
            if (r == 0) {
                fprintf(stderr, "connection closed by the server\n");
                return 1;
            }
            if (r < 0) {
                if (errno == EAGAIN || errno == EINTR) continue;
                die("recv");
            }
            cn->got += (size_t)r;
            while (cn->got >= size) { /* one message in flight: at most one completes */
                cn->got -= size;
                done++;
                send_message(cn->fd, msg, size);
            }
        }
        /* One clock read per loop turn, not per message. */
        if (now_s() >= end) break;
    }
    double took = now_s() - start;
    printf("requests=%llu seconds=%.3f rps=%.1f\n", done, took, (double)done / took);
    return 0;
}
