// Command etcd is upstream etcd's server entry point, built from the pinned
// go.etcd.io/etcd/server/v3 module (the same call as etcd's own main.go).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
