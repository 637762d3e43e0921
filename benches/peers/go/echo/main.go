// TCP echo peer on Go's standard library: one goroutine per connection, read and write
// back with a 16 KiB buffer. GOMAXPROCS = --cores; one SO_REUSEPORT listener (Go's
// scheduler spreads the connections over its Ps).
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"runtime"
)

func main() {
	port := flag.Int("port", 8080, "TCP port")
	cores := flag.Int("cores", 1, "GOMAXPROCS")
	addr := flag.String("addr", "127.0.0.1", "address to bind")
	flag.Parse()
	runtime.GOMAXPROCS(*cores)

	ln, err := listen(*addr, *port)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "go-echo listening on %s:%d, GOMAXPROCS=%d\n", *addr, *port, *cores)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			log.Printf("accept: %v", err)
			continue
		}
		go serve(c)
	}
}

func serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 16*1024)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
