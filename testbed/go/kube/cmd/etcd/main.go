// etcd for the test bed: the etcd server's own entry point (go.etcd.io/etcd/server/v3/etcdmain), built from the
// module version pinned in this go.mod. This file only calls it; nothing of etcd is copied here.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
