//go:build !linux

package coordinator

import "syscall"

// procAttr: there is no PR_SET_PDEATHSIG outside Linux, so a child of a parent killed with
// SIGKILL runs on until its own stop (its run's duration, or its stdin closing).
func procAttr() *syscall.SysProcAttr { return nil }
