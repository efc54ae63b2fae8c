package coordinator

import (
	"github.com/portstorm/portstorm/internal/fdcheck"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// checkFDs fails the test if it ends with more or fewer descriptors open than it started with.
func checkFDs(t *testing.T) { t.Helper(); fdcheck.Check(t) }

// capped is an echo server of known capacity, on loopback. Each connection sends requests of
// reqBytes (one, or many at a request rate), each echoed in turn, then the client closes. With rate
// set, the server answers at most rate requests per second across its connections, each in the
// next free slot 1/rate after the one before (a single server with a queue): below the rate answers go out at once, a burst (a scheduling stall of
// either side on this shared machine) waits a little and the queue empties again, and above it
// the queue and the latency grow for as long as the load lasts. A pause of idleReset between
// connections (the search's settle) empties the queue: what a probe left does not weigh on the
// next. With conns set, a connection accepted while conns others are open is answered delay late.
type capped struct {
	ln    net.Listener
	rate  float64
	conns int
	delay time.Duration

	mu    sync.Mutex
	slot  time.Time // the last answer's slot
	last  time.Time // the last request's arrival
	open  int
	live  map[net.Conn]bool
	wg    sync.WaitGroup
	close sync.Once
}

// idleReset is the pause between requests that empties the queue.
const idleReset = 200 * time.Millisecond

const reqBytes = 16

func startCapped(t *testing.T, rate float64, conns int, delay time.Duration) *capped {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &capped{ln: ln, rate: rate, conns: conns, delay: delay, live: map[net.Conn]bool{}}
	s.wg.Go(s.accept)
	t.Cleanup(s.stop)
	return s
}

func (s *capped) addr() string { return s.ln.Addr().String() }

func (s *capped) stop() {
	s.close.Do(func() {
		s.ln.Close()
		s.mu.Lock()
		for c := range s.live {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
}

func (s *capped) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.live[c] = true
		s.open++
		over := s.conns > 0 && s.open > s.conns
		s.mu.Unlock()
		s.wg.Go(func() { s.serve(c, over) })
	}
}

func (s *capped) serve(c net.Conn, over bool) {
	defer func() {
		s.mu.Lock()
		delete(s.live, c)
		s.open--
		s.mu.Unlock()
		c.Close()
	}()
	buf := make([]byte, reqBytes)
	// Every request of reqBytes on the connection is answered in turn (keep-alive: the request
	// rate tests send many), until the client closes.
	for {
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		var wait time.Duration
		if over {
			wait = s.delay
		}
		if s.rate > 0 {
			s.mu.Lock()
			now := time.Now()
			s.slot = s.slot.Add(time.Duration(float64(time.Second) / s.rate))
			if now.Sub(s.last) > idleReset || s.slot.Before(now) {
				s.slot = now
			}
			s.last = now
			wait = s.slot.Sub(now)
			s.mu.Unlock()
		}
		if wait > 0 {
			// The server's own service time (what the test's capacity is made of), not a wait for
			// anything: bounded, and a connection the client closes meanwhile is closed by stop.
			time.Sleep(wait)
		}
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
}
