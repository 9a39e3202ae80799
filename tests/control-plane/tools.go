//go:build tools

// The programs this module builds that live in other modules; importing them here keeps
// `go mod tidy` from dropping their requirements.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
