// Command etcd is etcd's own server (etcdmain), built from go.etcd.io/etcd/server/v3 at the
// version k8s.io/kubernetes was released with, so that the control plane needs nothing but the
// Go module proxy.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
