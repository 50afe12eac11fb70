// Command pause is the test bed's Pod sandbox image (what registry.k8s.io/pause is): PID 1 of a Pod that holds its
// namespaces, does nothing, reaps the zombies its children leave (a Pod sharing its PID namespace) and exits on
// SIGINT or SIGTERM. A static Go binary, assembled into an OCI image by testbed/node.sh.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
