package dial

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/portstorm/portstorm/loadgen/platform"
)

// Strategy is how a connection's local port is chosen (docs/ports.md).
type Strategy uint8

const (
	// StrategyKernel is a plain connect(): the kernel picks the port (and, without a source
	// address, the address). With a source address, the address is bound with
	// IP_BIND_ADDRESS_NO_PORT, so the port is still chosen by connect() exactly as without it.
	StrategyKernel Strategy = iota
	// StrategyBindNoPort binds the source address with IP_BIND_ADDRESS_NO_PORT (set in the dialer's
	// Control hook, before bind): the port is chosen at connect() time, per destination, so one
	// local port serves every destination.
	StrategyBindNoPort
	// StrategyBind is classic bind(addr, 0) then connect(): bind reserves a port for the socket
	// alone, so ports are not shared across destinations. Kept to show its cost.
	StrategyBind
	// StrategyRange sets the per-socket IP_LOCAL_PORT_RANGE (Linux 6.3+) to the window; connect()
	// picks within it. The kernel clamps it to ip_local_port_range and ignores it when it lies
	// wholly outside.
	StrategyRange
	// StrategyExplicit picks every port itself from the window and binds it with SO_REUSEADDR, so
	// any of 1024-65535 works without a sysctl. SO_REUSEADDR also lets connect() take over a
	// 4-tuple in TIME_WAIT at once, whatever tcp_tw_reuse says.
	StrategyExplicit
	numStrategies
)

var strategyNames = [numStrategies]string{"kernel", "bind-no-port", "bind", "range", "explicit"}

func (s Strategy) String() string {
	if s < numStrategies {
		return strategyNames[s]
	}
	return "invalid"
}

// ParseStrategy reads a plan's source.ports.strategy.
func ParseStrategy(s string) (Strategy, error) {
	for i, n := range strategyNames {
		if n == s {
			return Strategy(i), nil
		}
	}
	return 0, fmt.Errorf("port strategy %q: want one of kernel, bind-no-port, bind, range, explicit", s)
}

// ConnectPicksPort reports whether connect() chooses the port (so the kernel's parity rule applies).
func (s Strategy) ConnectPicksPort() bool {
	return s == StrategyKernel || s == StrategyBindNoPort || s == StrategyRange
}

// Window is an inclusive range of local ports.
type Window struct{ Lo, Hi uint16 }

// Size is the number of ports in the window.
func (w Window) Size() int {
	if w.Hi < w.Lo || w.Lo == 0 {
		return 0
	}
	return int(w.Hi) - int(w.Lo) + 1
}

// Contains reports whether p lies in the window.
func (w Window) Contains(p uint16) bool { return w.Lo != 0 && p >= w.Lo && p <= w.Hi }

// SyscallPicker names the failing step when the explicit strategy's own picker finds every port of
// the window in use toward a destination (no syscall was made).
const SyscallPicker = "portstorm-pick"

// Syscall names the system call an error came from ("connect", "bind", "setsockopt"), or "".
func Syscall(err error) string {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Syscall
	}
	return ""
}

// Releaser is implemented by dialers that track the local ports they hand out (the explicit
// strategy): the engine calls Release with the connection's local port once it is closed.
type Releaser interface {
	Release(dst Destination, port uint16)
}

// Options configure New. The zero value is the kernel strategy with a 3 s connect timeout.
type Options struct {
	// ConnectTimeout bounds connect(); 0 means 3 s.
	ConnectTimeout time.Duration
	// Strategy chooses local ports.
	Strategy Strategy
	// Window is the port window of the range and explicit strategies.
	Window Window
}

// Ports dials with a port strategy. Each Destination carries the source address to bind (or none).
type Ports struct {
	o        Options
	plain    net.Dialer // the kernel strategy without a source address: no Control hook at all
	attempts sync.Pool  // *attempt: a net.Dialer with its Control hook bound once
	explicit *picker
}

var _ Dialer = (*Ports)(nil)
var _ Releaser = (*Ports)(nil)

// New returns a Dialer for the strategy in o.
func New(o Options) (*Ports, error) {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 3 * time.Second
	}
	if o.Strategy >= numStrategies {
		return nil, fmt.Errorf("dial: unknown strategy %d", o.Strategy)
	}
	if !platform.Linux && (o.Strategy == StrategyBindNoPort || o.Strategy == StrategyRange) {
		return nil, platform.Unsupported("dial: the " + o.Strategy.String() + " strategy")
	}
	if (o.Strategy == StrategyRange || o.Strategy == StrategyExplicit) && o.Window.Size() == 0 {
		return nil, fmt.Errorf("dial: the %s strategy needs a port window", o.Strategy)
	}
	// KeepAlive -1: probes are pointless on short load-test connections and cost a setsockopt each.
	d := &Ports{o: o, plain: net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: -1}}
	if o.Strategy == StrategyExplicit {
		d.explicit = newPicker(o.Window)
	}
	d.attempts.New = func() any {
		a := &attempt{d: d}
		a.nd = net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: -1}
		a.ctl = a.setup // bound once, so Control allocates no closure per dial
		a.nd.Control = a.control
		a.attemptSys.init()
		return a
	}
	return d, nil
}

// attempt is one dial's state, reused through a pool.
type attempt struct {
	d   *Ports
	nd  net.Dialer
	ctl func(fd uintptr)
	src netip.Addr
	v6  bool
	// port is the explicit strategy's pick (0 otherwise).
	port uint16
	err  error
	attemptSys
}

// Dial connects to dst from dst.Source (when valid) by the strategy.
func (d *Ports) Dial(ctx context.Context, dst Destination) (net.Conn, error) {
	a := d.attempts.Get().(*attempt)
	defer d.attempts.Put(a)
	a.src = dst.Source
	a.v6 = dst.AddrPort.Addr().Is6()
	a.port, a.err = 0, nil
	nd := &a.nd
	if d.o.Strategy == StrategyKernel && !a.src.IsValid() {
		nd = &d.plain // no Control hook: a plain connect costs nothing extra
	}
	if d.explicit != nil {
		p, ok := d.explicit.pick(dst)
		if !ok {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(dst.AddrPort),
				Err: os.NewSyscallError(SyscallPicker, syscall.EADDRNOTAVAIL)}
		}
		a.port = p
	}
	c, err := nd.DialContext(ctx, "tcp", dst.addr)
	if err != nil && a.port != 0 {
		d.explicit.release(dst, a.port)
	}
	return c, err
}

// Release returns an explicit pick to the window.
func (d *Ports) Release(dst Destination, port uint16) {
	if d.explicit != nil {
		d.explicit.release(dst, port)
	}
}

// control runs before bind and connect, with the socket created.
func (a *attempt) control(_, _ string, c syscall.RawConn) error {
	if err := c.Control(a.ctl); err != nil {
		return err
	}
	return a.err
}

// picker hands out the explicit strategy's ports: per (source, destination) a bitmap of the ports
// open toward it and a cursor that walks the window, so each port number is shared by every
// destination (as with bind-no-port) and a 4-tuple is never handed out twice at once.
type picker struct {
	w     Window
	mu    sync.Mutex
	pairs map[pickKey]*pickPair
}

type pickKey struct {
	src netip.Addr
	dst netip.AddrPort
}

type pickPair struct {
	inUse  []uint64 // bit i: port w.Lo+i is open toward this destination
	cursor int
	open   int
	skip   int // the destination itself (same address and port), never a usable local port
}

func newPicker(w Window) *picker {
	return &picker{w: w, pairs: make(map[pickKey]*pickPair)}
}

func (p *picker) pair(dst Destination) *pickPair {
	k := pickKey{dst.Source, dst.AddrPort}
	pp := p.pairs[k]
	if pp == nil {
		pp = &pickPair{inUse: make([]uint64, (p.w.Size()+63)/64), skip: -1}
		// A listener on the source address itself holds its port: never pick it.
		if src := dst.Source; (!src.IsValid() || src == dst.AddrPort.Addr()) && p.w.Contains(dst.AddrPort.Port()) {
			pp.skip = int(dst.AddrPort.Port() - p.w.Lo)
			pp.inUse[pp.skip/64] |= 1 << (pp.skip % 64)
			pp.open++
		}
		p.pairs[k] = pp
	}
	return pp
}

// pick returns the next port of the window not open toward dst, or false when all are.
func (p *picker) pick(dst Destination) (uint16, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pp := p.pair(dst)
	n := p.w.Size()
	if pp.open >= n {
		return 0, false
	}
	i := pp.cursor
	for scanned := 0; scanned <= n+63; {
		free := ^pp.inUse[i/64] >> (i % 64)
		if free != 0 {
			j := i + bits.TrailingZeros64(free)
			if j < n {
				pp.inUse[j/64] |= 1 << (j % 64)
				pp.open++
				pp.cursor = (j + 1) % n
				return p.w.Lo + uint16(j), true
			}
		}
		scanned += 64 - i%64
		i = (i/64 + 1) * 64
		if i >= n {
			i = 0
		}
	}
	return 0, false
}

func (p *picker) release(dst Destination, port uint16) {
	if !p.w.Contains(port) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pp := p.pairs[pickKey{dst.Source, dst.AddrPort}]
	if pp == nil {
		return
	}
	j := int(port - p.w.Lo)
	if j == pp.skip || pp.inUse[j/64]&(1<<(j%64)) == 0 {
		return
	}
	pp.inUse[j/64] &^= 1 << (j % 64)
	pp.open--
}
