//go:build !linux

package ports

import "github.com/portstorm/portstorm/loadgen/platform"

// Dump needs Linux's sock_diag: New turns TIME_WAIT sampling off elsewhere, so the observatory
// never calls it and its TIME_WAIT figures say "not sampled" (-1).
func Dump(family int, mask StateMask, fn func(Socket)) error {
	return platform.Unsupported("ports: sock_diag")
}
