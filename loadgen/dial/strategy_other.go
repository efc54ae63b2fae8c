//go:build !linux

package dial

// attemptSys holds nothing here: there is no bare dial to time out.
type attemptSys struct{}

func (*attemptSys) init() {}

// setup is setupPortable: without Linux's socket options.
func (a *attempt) setup(fd uintptr) { a.setupPortable(fd) }
