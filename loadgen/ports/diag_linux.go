package ports

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// Sizes of the sock_diag structures (include/uapi/linux/inet_diag.h): inet_diag_req_v2 is 56
// bytes, inet_diag_msg 72, both after a 16-byte nlmsghdr.
const (
	nlmsgHdrLen = 16
	diagReqLen  = 56
	diagMsgLen  = 72
)

// dumpBuf is reused across dumps: the kernel fills at most 32 KiB per recvmsg of a dump.
var dumpBuf = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// Dump asks the kernel (netlink sock_diag, SOCK_DIAG_BY_FAMILY) for the TCP sockets of one address
// family (unix.AF_INET or unix.AF_INET6) in the states of mask, in this network namespace, and calls
// fn for each. The state filter runs in the kernel, so a TIME_WAIT-only dump costs a fraction of a
// full one, and nothing here reads /proc/net/tcp. fn must not keep the Socket's memory; it gets
// values. Dump allocates nothing per socket.
func Dump(family int, mask StateMask, fn func(Socket)) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return os.NewSyscallError("socket(AF_NETLINK)", err)
	}
	defer unix.Close(fd)
	var req [nlmsgHdrLen + diagReqLen]byte
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:], 1) // sequence
	req[16] = byte(family)
	req[17] = unix.IPPROTO_TCP
	ne.PutUint32(req[20:], uint32(mask))
	// inet_diag_sockid: all zero matches everything; the cookie must be INET_DIAG_NOCOOKIE.
	ne.PutUint32(req[16+8+40:], ^uint32(0))
	ne.PutUint32(req[16+8+44:], ^uint32(0))
	if err := unix.Sendto(fd, req[:], 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return os.NewSyscallError("sendto(sock_diag)", err)
	}
	bp := dumpBuf.Get().(*[]byte)
	defer dumpBuf.Put(bp)
	buf := *bp
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("recvfrom(sock_diag)", err)
		}
		done, err := parseDump(buf[:n], family, fn)
		if err != nil || done {
			return err
		}
	}
}

var errShortDump = errors.New("sock_diag: truncated message")

// parseDump walks one datagram of netlink messages; it reports whether the dump is over.
func parseDump(b []byte, family int, fn func(Socket)) (bool, error) {
	ne := binary.NativeEndian
	for len(b) >= nlmsgHdrLen {
		l := int(ne.Uint32(b))
		typ := ne.Uint16(b[4:])
		if l < nlmsgHdrLen || l > len(b) {
			return false, errShortDump
		}
		data := b[nlmsgHdrLen:l]
		switch typ {
		case unix.NLMSG_DONE:
			return true, nil
		case unix.NLMSG_ERROR:
			if len(data) >= 4 {
				if e := int32(ne.Uint32(data)); e != 0 {
					return true, fmt.Errorf("sock_diag: %w", unix.Errno(-e))
				}
			}
			return true, nil
		case unix.SOCK_DIAG_BY_FAMILY:
			if len(data) < diagMsgLen {
				return false, errShortDump
			}
			fn(decodeSocket(data, family))
		}
		b = b[min(len(b), (l+3)&^3):]
	}
	return false, nil
}

func decodeSocket(d []byte, family int) Socket {
	be := binary.BigEndian
	s := Socket{State: d[1]}
	sport, dport := be.Uint16(d[4:]), be.Uint16(d[6:])
	if family == unix.AF_INET6 {
		s.Local = netip.AddrPortFrom(netip.AddrFrom16([16]byte(d[8:24])).Unmap(), sport)
		s.Remote = netip.AddrPortFrom(netip.AddrFrom16([16]byte(d[24:40])).Unmap(), dport)
	} else {
		s.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte(d[8:12])), sport)
		s.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte(d[24:28])), dport)
	}
	return s
}

// FamilyV4 and FamilyV6 must be unix.AF_INET and unix.AF_INET6: if not, this does not compile.
const _ = -uint(FamilyV4 ^ unix.AF_INET | FamilyV6 ^ unix.AF_INET6)
