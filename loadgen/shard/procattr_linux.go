package shard

import "syscall"

// procAttr puts a child in a process group of its own and has the kernel kill it when this
// process dies (PR_SET_PDEATHSIG), so that no child outlives a killed parent.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
