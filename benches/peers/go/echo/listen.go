package main

import (
	"context"
	"fmt"
	"net"
	"syscall"
)

// soReusePort is SO_REUSEPORT on Linux (the syscall package does not name it).
const soReusePort = 0xf

// listen binds addr:port with SO_REUSEPORT (like every peer of the comparison).
func listen(addr string, port int) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, soReusePort, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	return lc.Listen(context.Background(), "tcp4", fmt.Sprintf("%s:%d", addr, port))
}
