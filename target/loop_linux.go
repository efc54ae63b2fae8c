package target

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portstorm/portstorm/internal/sockfd"
)

// loops serve the echo and http modes' connections without TLS as bare descriptors in epoll sets
// of their own, one goroutine per set: no goroutine, stack or runtime poller entry per connection,
// and one epoll_wait for every connection that has something to read, where Go's poller wakes a
// goroutine per connection and switches to it. Connections are spread round-robin over as many
// loops as GOMAXPROCS. See docs/architecture.md ("The built-in target's loops and cores").
//
// Each connection is edge-triggered for input and output alike (EPOLLIN|EPOLLOUT|EPOLLET): a loop
// reads until EAGAIN, answers at once, and keeps only what the socket did not take (a partial
// write): then it reads nothing more from that connection until EPOLLOUT says the rest went out,
// so a client that does not read its answers holds at most one frame of them. A connection that
// makes no progress (nothing read, nothing written) for IdleTimeout is closed, as is an http head
// not complete HeaderTimeout after its first byte; the loop looks for them every sweep.
type loops struct {
	ls   []*loop
	next atomic.Uint32
}

func newLoops(s *Server, n int) (*loops, error) {
	ls := &loops{}
	for range max(n, 1) {
		l, err := newLoop(s)
		if err != nil {
			for _, l := range ls.ls {
				l.closeFDs()
			}
			return nil, err
		}
		ls.ls = append(ls.ls, l)
	}
	return ls, nil
}

// start runs every loop in a goroutine of s's wait group.
func (ls *loops) start(s *Server) {
	s.wg.Add(len(ls.ls))
	for _, l := range ls.ls {
		go l.run()
	}
}

// addFD takes a connected, non-blocking descriptor; on false the caller still owns it.
func (ls *loops) addFD(fd int) bool {
	return ls.ls[int(ls.next.Add(1))%len(ls.ls)].add(fd)
}

// stop asks every loop to end; each closes the connections it holds.
func (ls *loops) stop() {
	for _, l := range ls.ls {
		l.stop()
	}
}

// maxTurns is how many reads one connection gets per wake-up before the loop serves the others;
// one that had more is served again right after (edge-triggered: no event would come for it).
const maxTurns = 8

type loop struct {
	s     *Server
	epfd  int
	ep    *os.File        // epfd, registered in Go's poller: the loop parks there (see run)
	rc    syscall.RawConn // ep's
	start time.Time
	sweep time.Duration

	mu    sync.Mutex // guards conns and shut against add
	conns map[int32]*lconn
	shut  bool

	// The loop goroutine's alone.
	buf   []byte   // every read lands here first
	out   []byte   // http answers to one read, written at once
	ready []*lconn // the connections of one epoll_wait
	again []*lconn // connections with more to read than maxTurns took
	evs   []unix.EpollEvent
}

// lconn is a connection of a loop, touched only by its loop's goroutine once added.
type lconn struct {
	fd int
	ev uint32 // the events of its last harvest

	last time.Duration // last progress (bytes read or written), since the loop's start
	seen int64         // bytes read, for CloseFirst
	// out is what the socket did not take of an answer, in outFrame when it fits one; reads wait
	// until it is written. fin: once out is written, the connection ends (echo closing first:
	// closed; http: half-closed and lingering).
	out      []byte
	outFrame *[]byte
	fin      bool
	closed   bool

	// http: an incomplete head kept at the start of a frame, the request being read, and its body
	// still to discard; headBy is its header deadline (0: none).
	in      *[]byte
	have    int
	backlog bool // in holds requests to answer, not only an incomplete head
	req     request
	body    int64
	pending bool
	headBy  time.Duration
	// lingerBy > 0: half-closed after the last answer, reading and discarding until then (see
	// lingerClose); drained counts what was read meanwhile.
	lingerBy time.Duration
	drained  int
}

func newLoop(s *Server) (*loop, error) {
	epfd, ep, rc, err := sockfd.PolledEpoll()
	if err != nil {
		return nil, err
	}
	// A silent connection is closed between its deadline and the deadline plus a sweep.
	d := s.idle
	if s.mode == ModeHTTP {
		d = min(d, s.headerWait, httpLinger)
	}
	sweep := min(max(d/20, 5*time.Millisecond), time.Second)
	return &loop{
		s: s, epfd: epfd, ep: ep, rc: rc, start: time.Now(), sweep: sweep,
		conns: make(map[int32]*lconn),
		buf:   make([]byte, s.frameSize),
		evs:   make([]unix.EpollEvent, 256),
	}, nil
}

func (l *loop) closeFDs() {
	l.ep.Close()
}

func (l *loop) add(fd int) bool {
	// As Go's net package does for every TCP connection: without it, an answer written while the
	// previous one is unacknowledged (pipelining) waits for the client's delayed ACK.
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	c := &lconn{fd: fd, last: time.Since(l.start)}
	// Under mu, so that shutdown (which closes the set) cannot come between the two. Adding a
	// descriptor that has data (or the peer's FIN) queued reports it at once.
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.shut {
		return false
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return false
	}
	l.conns[int32(fd)] = c
	return true
}

// run serves the set until stop, then closes every connection still held.
//
// It waits in Go's poller, not in epoll_wait: the set's descriptor is itself registered there, and
// the loop parks on it (RawConn.Read) like any goroutine waiting for a socket, then harvests with a
// non-blocking epoll_wait. A loop blocked in epoll_wait would keep its thread's P in a system call
// while other goroutines of the process (a generator's, when the target runs inside it) wait for
// one until sysmon takes it back, up to 10 ms later. The sweep is the file's read deadline.
func (l *loop) run() {
	defer l.s.wg.Done()
	defer l.shutdown()
	next := l.sweep
	l.ep.SetReadDeadline(l.start.Add(next))
	harvest := func(fd uintptr) bool {
		n, err := unix.EpollWait(int(fd), l.evs, 0)
		if err != nil {
			n = 0
		}
		if n <= 0 && len(l.again) == 0 {
			return false // nothing ready: park in the poller
		}
		l.turn(l.evs[:max(n, 0)], time.Since(l.start))
		return true
	}
	for {
		err := l.rc.Read(harvest)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
		case err != nil:
			return // closed by stop
		}
		if now := time.Since(l.start); now >= next {
			l.closeExpired(now)
			next = now + l.sweep
			l.ep.SetReadDeadline(l.start.Add(next))
		}
	}
}

// turn serves the connections of one harvest, then those left with more to read.
func (l *loop) turn(evs []unix.EpollEvent, now time.Duration) {
	l.ready = l.ready[:0]
	l.mu.Lock()
	for _, ev := range evs {
		if c := l.conns[ev.Fd]; c != nil {
			c.ev = ev.Events
			l.ready = append(l.ready, c)
		}
	}
	l.mu.Unlock()
	for _, c := range l.ready {
		l.serve(c, now)
	}
	if len(l.again) > 0 {
		again := l.again
		l.again = nil
		for _, c := range again {
			if !c.closed {
				l.serve(c, now)
			}
		}
	}
}

// serve does what c's state allows: write what is pending, then read and answer, until EAGAIN.
func (l *loop) serve(c *lconn, now time.Duration) {
	if c.closed {
		return
	}
	if len(c.out) > 0 {
		switch l.flush(c, now) {
		case flushBlocked, flushFailed:
			return
		}
	}
	if c.fin {
		c.fin = false
		if l.s.mode != ModeHTTP {
			l.release(c, false)
			return
		}
		l.startLinger(c, now)
	}
	if c.lingerBy > 0 {
		l.linger(c)
		return
	}
	if c.backlog {
		// Requests read before a write blocked: answer them before reading more.
		c.backlog = false
		if !l.answerHTTP(c, (*c.in)[:c.have], now) {
			return
		}
	}
	for range maxTurns {
		var more bool
		if l.s.mode == ModeHTTP {
			more = l.readHTTP(c, now)
		} else {
			more = l.readEcho(c, now)
		}
		if !more {
			return
		}
	}
	c.ev |= unix.EPOLLRDHUP // read on until EAGAIN (see drained)
	l.again = append(l.again, c)
}

// drained says whether a read of n bytes into a buffer of size bytes has left c's receive queue
// empty, so that reading again would only get EAGAIN: a short read did, unless the harvest saw the
// peer's FIN (or an error), which the next read must collect. Data or a FIN that arrive after the
// read make the connection ready again (edge-triggered: every arrival is an edge), so stopping at
// a short read loses nothing and saves a system call per message.
func drained(c *lconn, n, size int) bool {
	return n < size && c.ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) == 0
}

// read reads into b, retrying EINTR. It returns n > 0, or 0 with done false for EAGAIN, or done
// true when the stream has ended (EOF, a reset, any error): the caller then closes.
func (l *loop) read(c *lconn, b []byte, now time.Duration) (n int, done bool) {
	for {
		n, err := unix.Read(c.fd, b)
		switch {
		case n > 0:
			l.s.bytesIn.Add(uint64(n))
			c.last = now
			c.seen += int64(n)
			return n, false
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			return 0, false
		default:
			return 0, true
		}
	}
}

// readEcho reads once and writes it back; it reports whether c may have more to read.
func (l *loop) readEcho(c *lconn, now time.Duration) bool {
	n, done := l.read(c, l.buf, now)
	if done {
		l.release(c, false)
		return false
	}
	if n == 0 {
		return false
	}
	closing := l.s.closeFirst && c.seen >= l.s.closeAfter
	if !l.send(c, l.buf[:n], now) {
		c.fin = closing
		return false
	}
	if closing {
		l.release(c, false)
		return false
	}
	return !drained(c, n, len(l.buf))
}

// readHTTP reads once and answers what it completes (answerHTTP); it reports whether c may have
// more to read. It does what serveHTTP does on a goroutine.
func (l *loop) readHTTP(c *lconn, now time.Duration) bool {
	dst := l.buf
	if c.in != nil {
		dst = (*c.in)[c.have:]
	}
	n, done := l.read(c, dst, now)
	if done {
		l.release(c, false)
		return false
	}
	if n == 0 {
		return false
	}
	buf := l.buf[:n]
	if c.in != nil {
		buf = (*c.in)[:c.have+n]
	}
	return l.answerHTTP(c, buf, now) && !drained(c, n, len(dst))
}

// httpOutChunk bounds the answers a loop gathers before writing them: what a client that
// pipelines requests and never reads its answers can make the target hold, with the frame of
// requests not yet parsed.
const httpOutChunk = 16 << 10

// answerHTTP parses the requests in buf (an incomplete head kept from earlier reads, then what was
// read) and answers every complete one, gathering the answers into writes of about httpOutChunk.
// It keeps an incomplete head at the start of a frame (c.in); when a write blocks it keeps the
// requests not yet parsed there too (c.backlog), answered once the write is done. It reports
// whether c may go on reading.
func (l *loop) answerHTTP(c *lconn, buf []byte, now time.Duration) bool {
	s := l.s
	out := l.out[:0]
	pos, final := 0, false
	for !final {
		if len(out) >= httpOutChunk {
			l.out = out
			if !l.send(c, out, now) {
				if !c.closed {
					l.keepIn(c, buf[pos:])
					c.backlog = pos < len(buf)
				}
				return false
			}
			out = out[:0]
		}
		if !c.pending {
			if pos == len(buf) {
				break
			}
			req, status := parseRequest(buf[pos:])
			if status != 0 {
				s.badRequests.Add(1)
				out = append(out, refusals[status][boolIndex(req.head)]...)
				final = true
				break
			}
			if req.size == 0 {
				if c.headBy == 0 {
					c.headBy = now + s.headerWait
				}
				break // incomplete: keep it and read on
			}
			c.headBy = 0
			pos += req.size
			c.req, c.body, c.pending = req, req.bodyLen, true
			// The client waits for this only if none of the body has been sent yet.
			if req.expect100 && pos == len(buf) {
				out = append(out, continue100...)
			}
		}
		k := min(c.body, int64(len(buf)-pos))
		pos += int(k)
		c.body -= k
		if c.body > 0 {
			break
		}
		c.pending = false
		conn := connKeepAlive
		switch {
		case !c.req.keepAlive || s.closeFirst && c.seen >= s.closeAfter:
			conn, final = connClose, true
		case c.req.http10:
			conn = connKeepAlive10
		}
		// Counted before the write: a client that has its answer finds it counted.
		s.requests.Add(1)
		out = append(out, s.responses[conn][boolIndex(c.req.head)]...)
	}
	l.out = out
	if final {
		l.dropIn(c)
	} else {
		l.keepIn(c, buf[pos:])
	}
	if len(out) > 0 && !l.send(c, out, now) {
		c.fin = final
		return false
	}
	if final {
		l.startLinger(c, now)
		l.linger(c)
		return false
	}
	return true
}

// keepIn keeps b (unparsed input) at the start of c's frame, taking one if c holds none, or gives
// the frame back when b is empty. b may be in that frame already.
func (l *loop) keepIn(c *lconn, b []byte) {
	if len(b) == 0 {
		l.dropIn(c)
		return
	}
	if c.in == nil {
		c.in = l.s.frames.Get().(*[]byte)
	}
	c.have = copy(*c.in, b)
}

// send writes b; what the socket does not take is kept in c.out, and send reports false: the
// connection then waits for EPOLLOUT. It reports false too when the write failed (c is closed).
func (l *loop) send(c *lconn, b []byte, now time.Duration) bool {
	n, ok := l.write(c, b, now)
	if !ok {
		return false
	}
	if n == len(b) {
		return true
	}
	l.s.stalls.Add(1)
	rest := b[n:]
	if len(rest) <= l.s.frameSize {
		c.outFrame = l.s.frames.Get().(*[]byte)
		c.out = (*c.outFrame)[:copy(*c.outFrame, rest)]
	} else {
		c.out = append([]byte(nil), rest...) // http answers to a frame of small requests
	}
	return false
}

// write writes as much of b as the socket takes now; false: the connection failed and is closed.
func (l *loop) write(c *lconn, b []byte, now time.Duration) (int, bool) {
	done := 0
	for done < len(b) {
		n, err := unix.Write(c.fd, b[done:])
		switch {
		case n > 0:
			done += n
			l.s.bytesOut.Add(uint64(n))
			c.last = now
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			return done, true
		default:
			l.release(c, false)
			return done, false
		}
	}
	return done, true
}

type flushResult int

const (
	flushDone flushResult = iota
	flushBlocked
	flushFailed
)

// flush writes what c has pending.
func (l *loop) flush(c *lconn, now time.Duration) flushResult {
	n, ok := l.write(c, c.out, now)
	if !ok {
		return flushFailed
	}
	c.out = c.out[n:]
	if len(c.out) > 0 {
		return flushBlocked
	}
	l.dropOut(c)
	return flushDone
}

// startLinger half-closes c after its last answer (see lingerClose).
func (l *loop) startLinger(c *lconn, now time.Duration) {
	unix.Shutdown(c.fd, unix.SHUT_WR)
	c.lingerBy = now + min(l.s.idle, httpLinger)
	l.dropIn(c)
}

// linger reads and discards until the client closes, httpLingerBytes, or EAGAIN.
func (l *loop) linger(c *lconn) {
	for c.drained < httpLingerBytes {
		n, done := l.read(c, l.buf, c.last)
		if done {
			l.release(c, false)
			return
		}
		if n == 0 {
			return
		}
		c.drained += n
	}
	l.release(c, false)
}

func (l *loop) dropIn(c *lconn) {
	if c.in != nil {
		l.s.frames.Put(c.in)
		c.in, c.have, c.backlog = nil, 0, false
	}
}

func (l *loop) dropOut(c *lconn) {
	if c.outFrame != nil {
		l.s.frames.Put(c.outFrame)
		c.outFrame = nil
	}
	c.out = nil
}

// closeExpired closes the connections past a deadline: no progress for IdleTimeout, an http head
// past HeaderTimeout (both counted idle), a linger over.
func (l *loop) closeExpired(now time.Duration) {
	var idle, over []*lconn
	l.mu.Lock()
	for _, c := range l.conns {
		switch {
		case c.lingerBy > 0:
			if now >= c.lingerBy {
				over = append(over, c)
			}
		case now-c.last >= l.s.idle, c.headBy > 0 && now >= c.headBy:
			idle = append(idle, c)
		}
	}
	l.mu.Unlock()
	for _, c := range idle {
		l.release(c, true)
	}
	for _, c := range over {
		l.release(c, false)
	}
}

// release counts c closed, then closes it (a client that has seen the close finds it counted).
func (l *loop) release(c *lconn, idle bool) {
	if c.closed {
		return
	}
	c.closed = true
	l.mu.Lock()
	delete(l.conns, int32(c.fd))
	l.mu.Unlock()
	l.dropIn(c)
	l.dropOut(c)
	l.s.active.Add(-1)
	l.s.closedConns.Add(1)
	if idle {
		l.s.idleClosed.Add(1)
	}
	unix.Close(c.fd) // closing also takes it out of the epoll set
}

// stop asks the loop to end: no connection is added from here on, and closing the set's file
// wakes the loop, which then closes what it holds (the set itself is closed once the loop has
// let go of it).
func (l *loop) stop() {
	l.mu.Lock()
	l.shut = true
	l.mu.Unlock()
	l.ep.Close()
}

func (l *loop) shutdown() {
	l.mu.Lock()
	l.shut = true
	cs := make([]*lconn, 0, len(l.conns))
	for _, c := range l.conns {
		cs = append(cs, c)
	}
	l.mu.Unlock()
	for _, c := range cs {
		l.release(c, false)
	}
	l.ep.Close()
}
