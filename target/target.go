// Package target is portstorm's built-in target server: on loopback ports, over TCP or TLS, it echoes,
// sinks, holds, closes (FIN), resets (RST), answers HTTP/1.1 or echoes WebSocket messages on every
// connection, counting what it saw.
package target

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Mode is what the target does with each accepted connection.
type Mode string

// The modes. Under TLS (Config.TLS) echo, sink, hold and http run their exchange inside the TLS
// session, after the handshake; close and rst act on the TCP connection at accept, before any
// handshake, so a TLS client sees its handshake fail with EOF or a reset.
const (
	ModeEcho  Mode = "echo"  // read up to MaxFrame bytes, write them back
	ModeSink  Mode = "sink"  // read and discard
	ModeHold  Mode = "hold"  // accept and keep open, reading (to notice the peer's close) and discarding; never writes
	ModeClose Mode = "close" // FIN right after accept (plain close)
	ModeRST   Mode = "rst"   // RST right after accept (SO_LINGER {1,0} then close)
	ModeHTTP  Mode = "http"  // minimal HTTP/1.1 server: every request gets the same small response (see http.go)
	// ModeWebSocket is an RFC 6455 echo server: upgrade, every message back, pings answered, the
	// closing handshake (see websocket.go).
	ModeWebSocket Mode = "websocket"
)

// Defaults applied by Start to zero Config fields.
const (
	DefaultListen      = "127.0.0.1:0"
	DefaultIdleTimeout = 60 * time.Second
	DefaultMaxFrame    = 64 << 10
	// DefaultHeaderTimeout bounds the reading of an http request head, however its bytes trickle
	// in: nginx's client_header_timeout (60s there) for a target whose clients, load generators,
	// send a head in one write. A legitimate head takes one round trip; 10 s is three orders of
	// magnitude above a loaded loopback's.
	DefaultHeaderTimeout = 10 * time.Second
	// MaxFrameLimit caps MaxFrame: every connection holds up to a frame, and a plan's largest
	// message (connection.send.bytes) is 16 MiB too.
	MaxFrameLimit = 16 << 20
)

// MaxProcs bounds a target's GOMAXPROCS setting (`portstorm target --procs`,
// target.builtin.procs_per_process).
const MaxProcs = 1024

// DefaultProcs is the GOMAXPROCS of a target process that is given none, on a machine of cores
// cores: half of them, at least one, because a target this tool starts shares its host with the
// client that loads it; bench/target-procs measures the choice (the figures are in the README,
// "The built-in target under keep-alive load"; docs/architecture.md, "The built-in target's loops
// and cores", says where it applies).
func DefaultProcs(cores int) int {
	return max(cores/2, 1)
}

var (
	// ErrUnknownMode is wrapped by errors about a mode that is not one of Modes().
	ErrUnknownMode = errors.New("unknown target mode")
	// ErrNotLoopback is wrapped by Start's error when a listen address is not loopback and
	// Config.AllowRemote is false.
	ErrNotLoopback = errors.New("listen address is not loopback (needs AllowRemote)")
)

var modes = []Mode{ModeEcho, ModeSink, ModeHold, ModeClose, ModeRST, ModeHTTP, ModeWebSocket}

// Modes returns every mode, in the order they are documented.
func Modes() []Mode { return slices.Clone(modes) }

// ParseMode returns the mode named s (exact, lower case); the error lists the valid modes.
func ParseMode(s string) (Mode, error) {
	if m := Mode(s); slices.Contains(modes, m) {
		return m, nil
	}
	return "", fmt.Errorf("target: %w %q (valid: %s)", ErrUnknownMode, s, modeList())
}

func modeList() string {
	names := make([]string, len(modes))
	for i, m := range modes {
		names[i] = string(m)
	}
	return strings.Join(names, ", ")
}

// Config configures Start. The zero value is a usable echo target on one ephemeral loopback port.
type Config struct {
	// Listen holds the addresses to listen on, one listener each ("127.0.0.1:0" picks a free port).
	// Empty means [DefaultListen].
	Listen []string
	// Mode is what happens to each connection. Empty means ModeEcho.
	Mode Mode
	// IdleTimeout closes a connection that sends nothing for this long, and one whose echo write
	// makes no progress for this long (a client that never reads). It also bounds the TLS handshake
	// and, in http mode, the wait between requests and each response write. Zero means
	// DefaultIdleTimeout; negative is an error, because every I/O must have a deadline.
	IdleTimeout time.Duration
	// MaxFrame is the largest read, in bytes, buffered and echoed at once. Zero means
	// DefaultMaxFrame; negative is an error. Under TLS a read returns at most one record (16 KiB),
	// so frames are capped there; http mode raises them to at least 16 KiB, room for a request
	// head of up to 8 KiB plus the next read.
	MaxFrame int
	// HeaderTimeout, in http mode, is how long a request head may take from its first byte to its
	// blank line, however steadily its bytes arrive: IdleTimeout alone restarts with every read, so
	// a head dripped one byte at a time (slowloris) would hold the connection for ever. Past it the
	// connection is closed without an answer, as nginx does at client_header_timeout (it logs 408 but
	// sends nothing): a client that trickles its head is not reading answers either. The wait for a
	// head's first byte is IdleTimeout's. Zero means DefaultHeaderTimeout; negative is an error.
	HeaderTimeout time.Duration
	// AllowRemote permits listen addresses that are not loopback (127.0.0.0/8, ::1, "localhost").
	// An empty host, 0.0.0.0 and :: are not loopback.
	AllowRemote bool
	// PortBelow, when above 1024, gives each listen address with port 0 the highest free port below
	// it instead of an ephemeral one. Set to the low end of ip_local_port_range, it keeps the target
	// out of the port range its clients' connect() draws from: a listening port there is a port no
	// client can use, toward any destination. When no port below is free, the ephemeral port is used.
	PortBelow int
	// CloseFirst makes the target close every connection first (FIN), so that it, not the client,
	// holds TIME_WAIT: the server side of the client's "server" close mode. It closes once it has
	// read CloseAfter bytes (and, in echo mode, written them back; in http mode, answered the
	// request in hand, with "Connection: close"); with CloseAfter 0, right after accept, or under
	// TLS right after the handshake (with close_notify), so that the client's handshake succeeds.
	CloseFirst bool
	CloseAfter int64
	// ReusePort sets SO_REUSEPORT on every listener, so that several target processes can listen on
	// the same addresses and the kernel spreads connections over them: how the built-in target
	// serves more connections than one process's open-files limit allows.
	ReusePort bool
	// MaxConns caps the connections open at once; one accepted beyond it is reset at once and
	// counted in Rejected, so a flood cannot exhaust the target's descriptors and clients within
	// the cap are still served. Zero means no cap.
	MaxConns int
	// HTTPStatus is the status code of every answer in http mode (the response is otherwise fixed,
	// see http.go). Zero means 200; otherwise 200 to 599. Other modes ignore it.
	HTTPStatus int
	// ClientsHold says the clients keep their connections open after connecting (a plan's
	// connection.hold): the sink and hold modes then skip the read right after accept that catches
	// a client already gone (a connection storm, where that read, the close and the accept are all
	// the connection costs the target), since it would find nothing but EAGAIN, one system call
	// per connection for nothing. What such a client sends is read when it arrives, as ever.
	ClientsHold bool
	// TLS, when not nil, makes every connection a TLS server connection with this configuration
	// (cloned by Start): the handshake runs in the connection's goroutine, under IdleTimeout, before
	// the mode's exchange. It needs a certificate (Certificates, GetCertificate or
	// GetConfigForClient); TLSConfig and SelfSigned make one. Close and rst modes do not handshake.
	TLS *tls.Config `json:"-"` // never marshalled: target processes get the certificate as PEM
}

// withDefaults returns cfg with zero fields filled, or an error naming the first bad field.
func (cfg Config) withDefaults() (Config, error) {
	if len(cfg.Listen) == 0 {
		cfg.Listen = []string{DefaultListen}
	} else {
		cfg.Listen = slices.Clone(cfg.Listen)
	}
	if cfg.Mode == "" {
		cfg.Mode = ModeEcho
	}
	if _, err := ParseMode(string(cfg.Mode)); err != nil {
		return cfg, err
	}
	switch {
	case cfg.IdleTimeout == 0:
		cfg.IdleTimeout = DefaultIdleTimeout
	case cfg.IdleTimeout < 0:
		return cfg, fmt.Errorf("target: IdleTimeout %v is negative (want > 0, or 0 for %v)", cfg.IdleTimeout, DefaultIdleTimeout)
	}
	switch {
	case cfg.MaxFrame == 0:
		cfg.MaxFrame = DefaultMaxFrame
	case cfg.MaxFrame < 0:
		return cfg, fmt.Errorf("target: MaxFrame %d is negative (want > 0, or 0 for %d)", cfg.MaxFrame, DefaultMaxFrame)
	case cfg.MaxFrame > MaxFrameLimit:
		return cfg, fmt.Errorf("target: MaxFrame %d is above %d (16 MiB)", cfg.MaxFrame, MaxFrameLimit)
	}
	switch {
	case cfg.HeaderTimeout == 0:
		cfg.HeaderTimeout = DefaultHeaderTimeout
	case cfg.HeaderTimeout < 0:
		return cfg, fmt.Errorf("target: HeaderTimeout %v is negative (want > 0, or 0 for %v)", cfg.HeaderTimeout, DefaultHeaderTimeout)
	}
	if cfg.CloseAfter < 0 {
		return cfg, fmt.Errorf("target: CloseAfter %d is negative", cfg.CloseAfter)
	}
	if cfg.MaxConns < 0 {
		return cfg, fmt.Errorf("target: MaxConns %d is negative (want > 0, or 0 for no cap)", cfg.MaxConns)
	}
	switch {
	case cfg.HTTPStatus == 0:
		cfg.HTTPStatus = 200
	case cfg.HTTPStatus < 200 || cfg.HTTPStatus > 599:
		// 1xx are interim answers, not a final response a client could count.
		return cfg, fmt.Errorf("target: HTTPStatus %d is out of range (want 200 to 599, or 0 for 200)", cfg.HTTPStatus)
	}
	if cfg.TLS != nil {
		if len(cfg.TLS.Certificates) == 0 && cfg.TLS.GetCertificate == nil && cfg.TLS.GetConfigForClient == nil {
			return cfg, errors.New("target: TLS config has no certificate (set Certificates, GetCertificate or GetConfigForClient; TLSConfig and SelfSigned make one)")
		}
		// A caller changing its config while handshakes read it would be a data race.
		cfg.TLS = cfg.TLS.Clone()
	}
	return cfg, nil
}

// Stats is a snapshot of a server's counters. Fields are read one at a time while connections come
// and go, but in an order that keeps Closed <= Accepted, IdleClosed <= Closed, Active <= Peak and
// TLSHandshakes+TLSFailed <= Accepted true in every snapshot.
//
// Under TLS, BytesIn and BytesOut count what the mode read and wrote inside the session (application
// data), not the bytes on the wire.
//
// It is also the run's record of the built-in target: the "target" object of summary.json, with the
// JSON keys below, and the "stats" of `portstorm target --json`'s last line. The fields marked "-"
// matter only while the server runs (Active) or in its own log (AcceptErrors, BadRequests), and are
// not part of either.
type Stats struct {
	Accepted      uint64 `json:"accepted"`                 // connections accepted
	Active        int64  `json:"-"`                        // open now
	Peak          int64  `json:"peak"`                     // highest Active seen
	Closed        uint64 `json:"closed"`                   // connections closed, for any reason
	BytesIn       uint64 `json:"bytes_in"`                 // bytes read from clients
	BytesOut      uint64 `json:"bytes_out"`                // bytes written to clients (echo and http only)
	IdleClosed    uint64 `json:"idle_closed"`              // closed because a read, an echo or http write, or a TLS handshake made no progress for IdleTimeout, or an http head was not complete within HeaderTimeout
	AcceptErrors  uint64 `json:"-"`                        // failed accept calls (EMFILE, ENFILE, ...), each followed by a back-off
	Rejected      uint64 `json:"rejected,omitempty"`       // accepted beyond MaxConns and reset at once (not in Accepted)
	Requests      uint64 `json:"requests,omitempty"`       // http mode: requests answered with HTTPStatus
	BadRequests   uint64 `json:"-"`                        // http mode: requests refused (400, 413, 431, 501, 505), each closing its connection
	TLSHandshakes uint64 `json:"tls_handshakes,omitempty"` // TLS handshakes completed
	TLSFailed     uint64 `json:"tls_failed,omitempty"`     // TLS handshakes failed: bad ClientHello, the client's alert, the peer gone, IdleTimeout or Close
	// Processes is how many target processes' counters were added up (0: one server, never
	// added). Peak is then the sum of their peaks, an upper bound of the true combined peak.
	Processes int `json:"processes,omitempty"`
}

// Add adds another process's (or segment's) counters, as when several target processes share the
// listeners. Peak becomes the sum of the peaks: an upper bound of the true combined peak.
func (st *Stats) Add(o Stats) {
	st.Accepted += o.Accepted
	st.Active += o.Active
	st.Peak += o.Peak
	st.Closed += o.Closed
	st.BytesIn += o.BytesIn
	st.BytesOut += o.BytesOut
	st.IdleClosed += o.IdleClosed
	st.AcceptErrors += o.AcceptErrors
	st.Rejected += o.Rejected
	st.Requests += o.Requests
	st.BadRequests += o.BadRequests
	st.TLSHandshakes += o.TLSHandshakes
	st.TLSFailed += o.TLSFailed
	st.Processes += max(o.Processes, 1)
}

// Message is one JSON line of `portstorm target --json`: its addresses (and, with a self-signed
// certificate, the file clients should trust) once listening, its counters once stopped. The
// coordinator reads these lines when it runs the built-in target as several processes.
type Message struct {
	Addrs  []string `json:"addrs,omitempty"`
	CAFile string   `json:"ca_file,omitempty"`
	Stats  *Stats   `json:"stats,omitempty"`
}

// Server is a running target. Its methods are safe for concurrent use.
type Server struct {
	closeFirst bool
	earlyRead  bool // read right after accept (sink and hold on the holder): !Config.ClientsHold
	closeAfter int64
	maxConns   int64
	rejected   atomic.Uint64

	mode Mode
	idle time.Duration
	// headerWait is HeaderTimeout: how long an http request head may take once it has begun.
	headerWait time.Duration
	maxFrame   int
	frameSize  int         // bytes of each pooled frame: maxFrame, adjusted for TLS and http mode
	tls        *tls.Config // nil: plain TCP
	responses  httpResponses

	listeners []net.Listener
	addrs     []string

	// frames holds *[]byte of frameSize bytes (a *sync.Pool; tests count what it lends). Without
	// TLS a connection takes one only while a read has data for it (or, in http mode, while a
	// request head is incomplete), so idle connections, however many, hold no buffer at all. Under
	// TLS each connection holds one for its life (see frameReader).
	frames framePool

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	holder *holder // sink and hold: connections kept without a goroutine each (nil: not used)
	loops  *loops  // echo and http without TLS: connections served by epoll loops (nil: not used)
	// rawListeners are the raw accept loops' duplicates of the listeners (see acceptRaw), which Close
	// closes: that wakes their accept loops and lets the listening sockets go.
	rawListeners []*os.File

	done      chan struct{} // closed by Close: interrupts accept back-offs
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
	stopCtx   func() bool

	// pause waits d, or returns false if the server is closing. Tests replace it.
	pause func(d time.Duration) bool

	accepted, closedConns, bytesIn, bytesOut, idleClosed, acceptErrors atomic.Uint64
	requests, badRequests, tlsHandshakes, tlsFailed                    atomic.Uint64
	active, peak                                                       atomic.Int64
	// stalls counts the loops' writes the socket did not take whole (the rest waits for EPOLLOUT),
	// for tests to know that path ran.
	stalls atomic.Uint64
}

// Start checks cfg, listens on every address of cfg.Listen and starts serving. If any address is
// refused or cannot be listened on, Start closes what it opened and returns an error naming it.
//
// ctx bounds the server's life: when ctx is done the server closes as if Close were called. Call
// Close anyway; it waits until every goroutine has finished.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	// Check every address before opening any, so a refused plan leaves nothing behind.
	for _, addr := range cfg.Listen {
		if err := checkListenAddr(addr, cfg.AllowRemote); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	// The idle deadline already reaps dead peers; TCP keep-alive would only add four setsockopt
	// calls to every accept.
	lc := net.ListenConfig{KeepAlive: -1}
	if cfg.ReusePort {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = reusePort(fd)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	lns := make([]net.Listener, 0, len(cfg.Listen))
	below := cfg.PortBelow
	for _, addr := range cfg.Listen {
		var ln net.Listener
		var err error
		if below > 1024 {
			ln, below = listenBelow(ctx, &lc, addr, below)
		}
		if ln == nil {
			ln, err = lc.Listen(ctx, "tcp", addr)
		}
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("target: listen on %q: %w", addr, err)
		}
		lns = append(lns, ln)
	}
	s := newServer(cfg)
	s.run(lns)
	// Under mu because the callback may run, and Close read stopCtx, before AfterFunc returns.
	s.mu.Lock()
	s.stopCtx = context.AfterFunc(ctx, func() { s.Close() })
	s.mu.Unlock()
	return s, nil
}

// listenBelow listens on addr's host at the highest free port below below, when addr asks for
// port 0; it returns nil when none of the next 256 candidates is free, and the next candidate.
func listenBelow(ctx context.Context, lc *net.ListenConfig, addr string, below int) (net.Listener, int) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port != "0" {
		return nil, below
	}
	// Listened to with SO_REUSEPORT, a port another process of the same user already listens on
	// with SO_REUSEPORT is not refused: the listen joins that process's group and the kernel shares
	// the connections between the two (seen: a TLS run's handshakes answered by another run's echo
	// target). A listen without SO_REUSEPORT fails on any port in use: a port it gets, closed again
	// at once, is free for the run's own options.
	var plain net.ListenConfig
	for p := below - 1; p > 1024 && p >= below-256; p-- {
		hp := net.JoinHostPort(host, strconv.Itoa(p))
		probe, err := plain.Listen(ctx, "tcp", hp)
		if err != nil {
			continue
		}
		probe.Close()
		if ln, err := lc.Listen(ctx, "tcp", hp); err == nil {
			return ln, p
		}
	}
	return nil, below
}

func newServer(cfg Config) *Server {
	s := &Server{
		closeFirst: cfg.CloseFirst,
		earlyRead:  !cfg.ClientsHold,
		maxConns:   int64(cfg.MaxConns),
		closeAfter: cfg.CloseAfter,
		mode:       cfg.Mode,
		idle:       cfg.IdleTimeout,
		headerWait: cfg.HeaderTimeout,
		maxFrame:   cfg.MaxFrame,
		frameSize:  cfg.MaxFrame,
		tls:        cfg.TLS,
		conns:      make(map[net.Conn]struct{}),
		done:       make(chan struct{}),
		stopCtx:    func() bool { return false },
	}
	if s.tls != nil {
		// crypto/tls returns at most one record's plaintext per Read (RFC 8446 section 5.1), and a
		// TLS connection keeps its frame for life: more than a record would be held and never used.
		s.frameSize = min(s.frameSize, maxTLSPlaintext)
	}
	if s.mode == ModeHTTP {
		s.frameSize = max(s.frameSize, minHTTPFrame)
		s.responses = buildResponses(cfg.HTTPStatus)
	}
	s.frames = &sync.Pool{New: func() any {
		b := make([]byte, s.frameSize)
		return &b
	}}
	s.pause = s.sleep
	return s
}

// noHolder serves sink and hold connections with a goroutine each, as where the epoll holder is
// unavailable (off Linux): set by tests, so that path runs on Linux too.
var noHolder bool

// noLoop serves echo and http connections with a goroutine each, as where the epoll loops are
// unavailable (off Linux): set by tests and benchmarks, so that path runs on Linux too.
var noLoop bool

// run starts one accept loop per listener; the server owns the listeners from here on.
func (s *Server) run(lns []net.Listener) {
	s.listeners = lns
	s.addrs = make([]string, len(lns))
	for i, ln := range lns {
		s.addrs[i] = ln.Addr().String()
	}
	// Sink and hold connections only read and wait: without TLS or a close of their own to run,
	// they are held as bare descriptors by one holder goroutine (see holder). Where it cannot
	// start, they get a goroutine each as the other modes do.
	if (s.mode == ModeSink || s.mode == ModeHold) && s.tls == nil && !s.closeFirst && !noHolder {
		if h, err := newHolder(s); err == nil {
			s.holder = h
			s.wg.Add(1)
			go h.run()
		}
	}
	// Echo and http without TLS are served by epoll loops, one per P (see loops), where they can
	// start; otherwise, and under TLS (crypto/tls needs a blocking net.Conn), by a goroutine each.
	if (s.mode == ModeEcho || s.mode == ModeHTTP) && s.tls == nil && !noLoop {
		if ls, err := newLoops(s, runtime.GOMAXPROCS(0)); err == nil {
			s.loops = ls
			ls.start(s)
		}
	}
	s.wg.Add(len(lns))
	for _, ln := range lns {
		go s.acceptLoop(ln)
	}
}

// checkListenAddr refuses a listen address whose host is not loopback, unless allowRemote.
// Host names other than "localhost" are not resolved: they need allowRemote.
func checkListenAddr(addr string, allowRemote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("target: listen address %q: %w", addr, err)
	}
	if !allowRemote && !IsLoopbackHost(host) {
		return fmt.Errorf("target: listen address %q: %w", addr, ErrNotLoopback)
	}
	return nil
}

// IsLoopbackHost reports whether a listen address's host is loopback (127.0.0.0/8, ::1,
// "localhost"), as Start checks it without Config.AllowRemote.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	return ip.WithZone("").Unmap().IsLoopback()
}

// Addrs returns the listening addresses ("127.0.0.1:41234"), in Config.Listen order.
func (s *Server) Addrs() []string { return slices.Clone(s.addrs) }

// Mode returns the server's mode.
func (s *Server) Mode() Mode { return s.mode }

// Stats returns the counters now.
func (s *Server) Stats() Stats {
	// Per connection the counters move in the order accepted, active+peak, the TLS handshake's
	// outcome, closed, idleClosed; loading them in reverse keeps the invariants in Stats' doc comment.
	var st Stats
	st.IdleClosed = s.idleClosed.Load()
	st.Closed = s.closedConns.Load()
	st.TLSHandshakes = s.tlsHandshakes.Load()
	st.TLSFailed = s.tlsFailed.Load()
	st.Accepted = s.accepted.Load()
	st.Active = s.active.Load()
	st.Peak = s.peak.Load()
	st.BytesIn = s.bytesIn.Load()
	st.BytesOut = s.bytesOut.Load()
	st.AcceptErrors = s.acceptErrors.Load()
	st.Rejected = s.rejected.Load()
	st.Requests = s.requests.Load()
	st.BadRequests = s.badRequests.Load()
	return st
}

// Close stops accepting, closes every open connection and waits for all the server's goroutines to
// finish. It is idempotent: later calls wait for the first and return its result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.stopCtx()
		s.closed = true
		for c := range s.conns {
			c.Close()
		}
		for _, f := range s.rawListeners {
			f.Close()
		}
		s.mu.Unlock()
		if s.holder != nil {
			s.holder.stop()
		}
		if s.loops != nil {
			s.loops.stop()
		}
		close(s.done)
		var errs []error
		for _, ln := range s.listeners {
			if err := ln.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		s.wg.Wait()
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// Accept back-off bounds. Without one, an accept loop facing EMFILE spins at full speed: the
// pending connection stays in the backlog, so every retry fails again at once.
const (
	minAcceptBackoff = 5 * time.Millisecond
	maxAcceptBackoff = time.Second
)

// nextBackoff doubles d within [minAcceptBackoff, maxAcceptBackoff].
func nextBackoff(d time.Duration) time.Duration {
	return min(max(2*d, minAcceptBackoff), maxAcceptBackoff)
}

func (s *Server) acceptLoop(ln net.Listener) {
	defer s.wg.Done()
	if (s.holder != nil || s.loops != nil) && s.acceptRaw(ln) {
		return
	}
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Every other accept error is taken as passing (EMFILE, ENFILE, ENOBUFS, EPERM from
			// a firewall): a client must not be able to stop the target by making accept fail.
			s.acceptErrors.Add(1)
			backoff = nextBackoff(backoff)
			if !s.pause(backoff) {
				return
			}
			continue
		}
		backoff = 0
		s.handle(c)
	}
}

// sleep waits d, or returns false as soon as the server is closing.
func (s *Server) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.done:
		return false
	}
}

// handle deals with one accepted connection: close and rst finish here, without a goroutine (and,
// under TLS, without a handshake: a handshake here would let one slow client stall the accept
// loop).
func (s *Server) handle(c net.Conn) {
	if s.maxConns > 0 && s.active.Load() >= s.maxConns {
		// Over the cap: reset at once (no TIME_WAIT, no goroutine, the descriptor back now).
		s.rejected.Add(1)
		if tc, ok := c.(interface{ SetLinger(int) error }); ok {
			tc.SetLinger(0)
		}
		c.Close()
		return
	}
	switch s.mode {
	case ModeClose:
		// A plain close sends FIN only while the receive queue is empty; data the client already
		// sent turns it into RST (RFC 2525 section 2.17; tcp_close() in Linux).
		s.opened()
		s.finish(c, false)
		return
	case ModeRST:
		s.opened()
		if tc, ok := c.(interface{ SetLinger(int) error }); ok {
			// Linger {on, 0s}: close() aborts the connection with RST and leaves no TIME_WAIT.
			tc.SetLinger(0)
		}
		s.finish(c, false)
		return
	}
	if s.closeFirst && s.closeAfter == 0 && s.tls == nil {
		s.opened()
		s.finish(c, false)
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.opened()
		s.finish(c, false)
		return
	}
	if s.holder != nil {
		s.mu.Unlock()
		s.opened()
		if s.holder.add(c) {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			s.finish(c, false)
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serve(c)
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.opened()
	go s.serve(c)
}

func (s *Server) opened() {
	s.accepted.Add(1)
	n := s.active.Add(1)
	for {
		p := s.peak.Load()
		if n <= p || s.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

// finish counts c as closed, then closes it: a client that has seen the close finds it counted.
func (s *Server) finish(c net.Conn, idle bool) {
	s.active.Add(-1)
	s.closedConns.Add(1)
	if idle {
		s.idleClosed.Add(1)
	}
	c.Close()
}

func (s *Server) serve(c net.Conn) {
	defer s.wg.Done()
	idle := s.converse(c)
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.finish(c, idle)
}

// converse runs the TLS handshake, if configured, then the mode's exchange on c. It reports whether
// a deadline ended it. The caller closes c: the TCP connection, also under TLS, where the session
// was already ended (close_notify) if the target chose to close.
func (s *Server) converse(c net.Conn) (idle bool) {
	r := frameReader{frames: s.frames}
	defer r.release()
	conn := c
	if s.tls == nil && rawReads {
		sc, ok := c.(syscall.Conn)
		if !ok {
			return false
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			return false
		}
		r.rc = rc
		r.readFD = r.read // bound once per connection, so a read allocates nothing
	} else if s.tls == nil {
		r.conn = c
	} else {
		tc := tls.Server(c, s.tls)
		if err := s.handshake(tc); err != nil {
			return errors.Is(err, os.ErrDeadlineExceeded)
		}
		conn, r.conn = tc, tc
	}
	switch s.mode {
	case ModeHTTP:
		return s.serveHTTP(conn, &r)
	case ModeWebSocket:
		return s.serveWebSocket(conn)
	}
	return s.exchange(conn, &r)
}

// handshake runs the server side of the TLS handshake under the idle deadline, in both directions:
// a client that connects and never sends its ClientHello, or stalls halfway, is closed like any
// silent one. Close interrupts it by closing the TCP connection.
func (s *Server) handshake(tc *tls.Conn) error {
	if err := tc.SetDeadline(time.Now().Add(s.idle)); err != nil {
		s.tlsFailed.Add(1)
		return err
	}
	if err := tc.Handshake(); err != nil {
		s.tlsFailed.Add(1)
		return err
	}
	s.tlsHandshakes.Add(1)
	return nil
}

// armRead sets the deadline of the next read: IdleTimeout from now, or by when it is earlier (an
// http head's HeaderTimeout; zero: none). Under TLS it covers writes too: crypto/tls may write
// during a Read (the answer to a KeyUpdate, RFC 8446 section 4.6.3), and the handshake's write
// deadline has passed by then.
func (s *Server) armRead(c net.Conn, by time.Time) error {
	d := time.Now().Add(s.idle)
	if !by.IsZero() && by.Before(d) {
		d = by
	}
	if s.tls != nil {
		return c.SetDeadline(d)
	}
	return c.SetReadDeadline(d)
}

// exchange reads (and in echo mode writes back) until the peer closes, an error, or a deadline. It
// reports whether a deadline ended it.
func (s *Server) exchange(c net.Conn, r *frameReader) (idle bool) {
	var seen int64
	for {
		if s.closeFirst && seen >= s.closeAfter {
			// Closing first: the caller closes, and this end holds TIME_WAIT. Under TLS the session
			// ends first, so the client reads a clean EOF rather than a truncation.
			if tc, ok := c.(*tls.Conn); ok {
				tc.CloseWrite()
			}
			return false
		}
		if err := s.armRead(c, time.Time{}); err != nil {
			return false
		}
		n, err := r.fill(0)
		if err != nil {
			return errors.Is(err, os.ErrDeadlineExceeded)
		}
		s.bytesIn.Add(uint64(n))
		seen += int64(n)
		if s.mode != ModeEcho {
			r.idle()
			continue
		}
		err = s.send(c, (*r.buf)[:n])
		r.idle()
		if err != nil {
			return errors.Is(err, os.ErrDeadlineExceeded)
		}
	}
}

// send writes b under the idle deadline, counting what was written.
func (s *Server) send(c net.Conn, b []byte) error {
	if err := c.SetWriteDeadline(time.Now().Add(s.idle)); err != nil {
		return err
	}
	// net.Conn.Write loops over partial writes itself; it returns short only with an error.
	n, err := c.Write(b)
	s.bytesOut.Add(uint64(n))
	return err
}

// maxTLSPlaintext is the most application data one TLS record carries (RFC 8446 section 5.1), and
// so the most one crypto/tls Read returns.
const maxTLSPlaintext = 16 << 10

// framePool is what *sync.Pool does for frameReader.
type framePool interface {
	Get() any
	Put(any)
}

// frameReader reads into frames taken from a pool.
//
// Without TLS it reads through syscall.RawConn so that a frame is taken from the pool only once the
// socket has data: a plain Read must hold its buffer while it blocks, which at 20k idle connections
// and 64 KiB each is 1.3 GB for nothing. Deadlines and Close still apply, because RawConn.Read waits
// in the same poller as Read.
//
// Under TLS that is not possible: crypto/tls may hold decrypted or raw bytes of the next record
// already, and no API tells, so waiting for the socket could wait for data that has arrived. There
// the frame is given to tls.Conn.Read, and kept for the connection's life; crypto/tls keeps its own
// record buffers (about 16 KiB) per connection anyway.
type frameReader struct {
	frames framePool
	rc     syscall.RawConn // the socket without TLS; nil under TLS
	conn   net.Conn        // the TLS session, read when rc is nil
	readFD func(fd uintptr) bool

	buf *[]byte // the frame held, or nil
	off int     // where the next read goes in buf
	n   int
	err error
}

// fill reads at least one byte into the frame at off, taking a frame first if none is held, and
// returns how many; or an error (io.EOF when the peer closed). The frame is in r.buf afterwards.
// off must be below the frame's size.
func (r *frameReader) fill(off int) (int, error) {
	r.off, r.n, r.err = off, 0, nil
	if r.rc != nil {
		if err := r.rc.Read(r.readFD); err != nil {
			return 0, err
		}
		return r.n, r.err
	}
	if r.buf == nil {
		r.buf = r.frames.Get().(*[]byte)
	}
	n, err := r.conn.Read((*r.buf)[off:])
	if n > 0 {
		// An error that came with data (io.EOF after close_notify) comes back on the next Read.
		return n, nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return 0, err
}

// idle says the caller keeps nothing in the frame: it goes back to the pool, except under TLS.
func (r *frameReader) idle() {
	if r.rc != nil {
		r.release()
	}
}

// release gives the frame, if any, back to the pool.
func (r *frameReader) release() {
	if r.buf != nil {
		r.frames.Put(r.buf)
		r.buf = nil
	}
}
