/* Shared by the libuv peers: CLI, and one thread per core, each with its own uv loop and
 * its own SO_REUSEPORT listener (the kernel spreads the connections over them); thread i
 * is pinned to CPU i when the process may run there (as ringwork pins its cores). */
#ifndef PEERS_COMMON_H
#define PEERS_COMMON_H

#include <uv.h>

/* Called on each loop thread before it listens (may be NULL). */
typedef void (*peer_loop_init_fn)(uv_loop_t *loop);

/* Parses --port P --cores N [--addr A], starts N threads and never returns. */
int peer_main(int argc, char **argv, const char *name, uv_connection_cb on_connection,
              peer_loop_init_fn on_loop_init);

#endif
