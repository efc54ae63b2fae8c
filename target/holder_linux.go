package target

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portstorm/portstorm/internal/sockfd"
)

// holder keeps the connections of the sink and hold modes as bare descriptors in an epoll set of
// its own, served by one goroutine: no goroutine, stack or runtime poller entry per connection,
// so that tens of thousands of idle connections cost the target little more than their kernel
// sockets. It reads (and discards) what clients send, notices their close, and closes those
// silent for the idle timeout.
type holder struct {
	s     *Server
	epfd  int
	wake  int // eventfd: Close's signal to the loop
	start time.Time
	sweep time.Duration // how often silent connections are looked for

	mu   sync.Mutex
	last map[int32]time.Duration // descriptor -> its last activity, since start
	shut bool
}

func newHolder(s *Server) (*holder, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}); err != nil {
		unix.Close(wake)
		unix.Close(epfd)
		return nil, err
	}
	// An idle connection is closed between idle and idle + sweep.
	sweep := min(max(s.idle/20, 5*time.Millisecond), time.Second)
	return &holder{s: s, epfd: epfd, wake: wake, start: time.Now(), sweep: sweep, last: make(map[int32]time.Duration)}, nil
}

// add takes c over: its descriptor is duplicated into the holder's set and c itself closed (the
// socket stays open through the duplicate). It reports false when it could not, and c is then
// untouched, for the caller to serve another way.
func (h *holder) add(c net.Conn) bool {
	fd, ok := sockfd.Dup(c)
	if !ok {
		return false
	}
	if !h.addFD(fd) {
		unix.Close(fd)
		return false
	}
	c.Close() // the duplicate keeps the connection; this only drops Go's poller entry
	return true
}

// addFD takes a connected, non-blocking descriptor into the set; on false the caller still owns it.
func (h *holder) addFD(fd int) bool {
	// Under mu, so that shutdown (which closes the set) cannot come between the two.
	h.mu.Lock()
	if h.shut {
		h.mu.Unlock()
		return false
	}
	// Edge-triggered: the loop reads until EAGAIN. Adding a descriptor that already has data (or
	// the peer's FIN) queued reports it at once.
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}
	if err := unix.EpollCtl(h.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		h.mu.Unlock()
		return false
	}
	h.last[int32(fd)] = time.Since(h.start)
	h.mu.Unlock()
	return true
}

// run serves the set until stop, then closes every connection still held.
func (h *holder) run() {
	defer h.s.wg.Done()
	events := make([]unix.EpollEvent, 256)
	buf := make([]byte, 64<<10)
	lastSweep := time.Duration(0)
	for {
		n, err := unix.EpollWait(h.epfd, events, int(h.sweep/time.Millisecond))
		if err != nil && !errors.Is(err, unix.EINTR) {
			n = 0
		}
		now := time.Since(h.start)
		for _, ev := range events[:max(n, 0)] {
			if int(ev.Fd) == h.wake {
				h.shutdown()
				return
			}
			h.drain(int(ev.Fd), buf, now)
		}
		if now-lastSweep >= h.sweep {
			lastSweep = now
			h.closeIdle(now)
		}
	}
}

// drain reads what fd holds until EAGAIN; the end of the stream or an error closes it.
func (h *holder) drain(fd int, buf []byte, now time.Duration) {
	open, read := h.s.discard(fd, buf, false)
	if !open {
		h.release(fd, false)
		return
	}
	if read {
		h.mu.Lock()
		if _, ok := h.last[int32(fd)]; ok {
			h.last[int32(fd)] = now
		}
		h.mu.Unlock()
	}
}

// discard reads and throws away what fd holds, counting it, until the queue is empty (EAGAIN),
// or, with once, after the first read that fills buf (more may be queued; an edge-triggered add
// to the set reports it at once). It reports whether fd is still open, and whether it read
// anything; not open (the client's FIN, or a reset) means the caller closes it.
func (s *Server) discard(fd int, buf []byte, once bool) (open, read bool) {
	for {
		n, err := sockfd.ReadNow(fd, buf)
		switch {
		case n > 0:
			s.bytesIn.Add(uint64(n))
			read = true
			if once && n == len(buf) {
				return true, true
			}
		case err == unix.EAGAIN:
			return true, read
		case err == unix.EINTR:
		default:
			return false, read
		}
	}
}

// closeIdle closes the connections silent for the idle timeout.
func (h *holder) closeIdle(now time.Duration) {
	var idle []int32
	h.mu.Lock()
	for fd, last := range h.last {
		if now-last >= h.s.idle {
			idle = append(idle, fd)
		}
	}
	h.mu.Unlock()
	for _, fd := range idle {
		h.release(int(fd), true)
	}
}

// release counts fd closed, then closes it (a client that has seen the close finds it counted).
func (h *holder) release(fd int, idle bool) {
	h.mu.Lock()
	_, ok := h.last[int32(fd)]
	delete(h.last, int32(fd))
	h.mu.Unlock()
	if !ok {
		return
	}
	h.s.active.Add(-1)
	h.s.closedConns.Add(1)
	if idle {
		h.s.idleClosed.Add(1)
	}
	sockfd.CloseNow(fd) // closing also takes it out of the epoll set
}

// stop asks the loop to end; run then closes what it holds.
func (h *holder) stop() {
	var one = [8]byte{1}
	unix.Write(h.wake, one[:])
}

func (h *holder) shutdown() {
	h.mu.Lock()
	h.shut = true
	fds := make([]int32, 0, len(h.last))
	for fd := range h.last {
		fds = append(fds, fd)
	}
	h.mu.Unlock()
	for _, fd := range fds {
		h.release(int(fd), false)
	}
	unix.Close(h.wake)
	unix.Close(h.epfd)
}

// acceptRaw serves listener ln for the holder or the loops: accept4 in a loop until the queue is
// empty, each connection handed to handleFD, then a wait in the runtime poller for the next. That is one
// system call per connection where the poller's Accept makes several (accept4, the peer's address,
// epoll_ctl, then the holder's dup and close), and x/sys/unix's Accept4 one more (a getsockopt
// SO_PROTOCOL to decode a peer address nobody here reads); a burst of connections is taken in one
// wake-up. It works on a duplicate of the listener's descriptor wrapped in an os.File, because a
// net.Listener's RawConn cannot wait for reads (it returns EINVAL) and an os.File's can; Close
// closes the duplicate, which wakes the wait. It reports false, having served nothing, when it
// cannot start; the caller then runs the ordinary accept loop.
func (s *Server) acceptRaw(ln net.Listener) bool {
	lfd, ok := sockfd.Dup(ln)
	if !ok {
		return false
	}
	f := os.NewFile(uintptr(lfd), "listener")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return false
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		f.Close()
		return true
	}
	s.rawListeners = append(s.rawListeners, f)
	s.mu.Unlock()
	defer f.Close() // a second Close (from Server.Close) is harmless

	var first [2048]byte // this loop's own: the early read (see handleFD)
	var backoff time.Duration
	for {
		err := rc.Read(func(lfd uintptr) bool {
			for {
				fd, errno := sockfd.Accept4Now(lfd)
				switch errno {
				case 0:
					backoff = 0
					s.handleFD(fd, first[:])
				case unix.EAGAIN:
					return false // empty: wait in the poller
				case unix.EINTR, unix.ECONNABORTED:
				default:
					return true // an accept error: back off below
				}
			}
		})
		if err != nil {
			return true // closed: the server is closing
		}
		// EMFILE, ENFILE, ENOBUFS...: a client must not stop the target by making accept fail,
		// nor make it spin (the connection stays queued, so a retry fails again at once).
		s.acceptErrors.Add(1)
		backoff = nextBackoff(backoff)
		if !s.pause(backoff) {
			return true
		}
	}
}

// handleFD deals with a connection accepted by the holder's raw accept loop: the cap, then one
// early read, then into the holder's set. In a connection storm the client has usually closed
// (FIN or RST) before the target gets to accept: on loopback the client's connect() returns with
// the handshake done, and its close() runs before this process is scheduled. The early read sees
// that end at once and the connection is closed on the spot (accept4, read, close), never
// entering the set: no epoll_ctl, no wake-up of the holder, no map entry. Without it the holder
// goroutine falls behind the accept loops and the target's open descriptors climb to its limit.
// Clients that hold their connections (Config.ClientsHold) are still there: no early read then,
// whatever they send is reported by the set (added edge-triggered, data already queued included).
// buf is the accept loop's own.
func (s *Server) handleFD(fd int, buf []byte) {
	if s.maxConns > 0 && s.active.Load() >= s.maxConns {
		s.rejected.Add(1)
		sockfd.LingerRST(fd)
		sockfd.CloseNow(fd)
		return
	}
	s.opened()
	if s.loops != nil {
		// Echo and http: what the client sent first is theirs to answer, no early read. Closing
		// first with nothing to read first closes at once, as handle does.
		if s.closeFirst && s.closeAfter == 0 || !s.loops.addFD(fd) {
			s.active.Add(-1)
			s.closedConns.Add(1)
			sockfd.CloseNow(fd)
		}
		return
	}
	open := true
	if s.earlyRead {
		open, _ = s.discard(fd, buf, true)
	}
	if !open || !s.holder.addFD(fd) {
		// Over already (see above), or the server is closing: count it closed, then close it.
		s.active.Add(-1)
		s.closedConns.Add(1)
		sockfd.CloseNow(fd)
	}
}
