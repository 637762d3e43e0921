// HTTP/1.1 "Hello, World!" peer on Go's net/http: keep-alive, HTTP/1.0 and
// `Connection: close` handled by the standard server. GOMAXPROCS = --cores; one
// SO_REUSEPORT listener.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"runtime"
)

var hello = []byte("Hello, World!")

func handler(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h["Content-Type"] = []string{"text/plain"}
	h["Content-Length"] = []string{"13"}
	w.Write(hello)
}

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
	fmt.Fprintf(os.Stderr, "go-http listening on %s:%d, GOMAXPROCS=%d\n", *addr, *port, *cores)
	srv := &http.Server{Handler: http.HandlerFunc(handler)}
	log.Fatal(srv.Serve(ln))
}
