// testbed-redis serves an in-memory Redis (miniredis) on loopback for Argo CD's repo-server and
// application-controller in the test bed: `testbed-redis -listen 127.0.0.1:PORT`.
package main

import (
	"flag"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/alicebob/miniredis/v2"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:6379", "address to listen on")
	flag.Parse()
	server := miniredis.NewMiniRedis()
	if err := server.StartAddr(*listen); err != nil {
		log.Fatalf("testbed-redis: %v", err)
	}
	log.Printf("testbed-redis: listening on %s", server.Addr())
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
	server.Close()
}
