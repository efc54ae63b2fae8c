package ports

import "net/netip"

// TCP states as the kernel numbers them (include/net/tcp_states.h).
const (
	StateEstablished = 1
	StateSynSent     = 2
	StateSynRecv     = 3
	StateFinWait1    = 4
	StateFinWait2    = 5
	StateTimeWait    = 6
	StateClose       = 7
	StateCloseWait   = 8
	StateLastAck     = 9
	StateListen      = 10
	StateClosing     = 11
)

// StateMask selects TCP states for Dump: bit s is state s.
type StateMask uint32

// AllStates selects every TCP state.
const AllStates StateMask = 0xfff

// Socket is one TCP socket as sock_diag reports it.
type Socket struct {
	State  uint8
	Local  netip.AddrPort
	Remote netip.AddrPort
}

// Address families for Dump: Linux's numbers, which sock_diag reads (include/linux/socket.h).
const (
	FamilyV4 = 2  // AF_INET
	FamilyV6 = 10 // AF_INET6
)
