//go:build tools

// Package tools records the commands this module builds.
package tools

import (
	_ "github.com/cilium/cilium/cilium-dbg"
	_ "github.com/cilium/cilium/daemon"
	_ "github.com/cilium/cilium/hubble"
	_ "github.com/cilium/cilium/plugins/cilium-cni"
)
