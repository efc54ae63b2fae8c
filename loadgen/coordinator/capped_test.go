package coordinator

import (
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// openFDs counts this process's open file descriptors.
func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// checkFDs fails the test if it ends with more descriptors open than it started with. Register it
// first, so that it runs after every other cleanup has closed what it opened.
func checkFDs(t *testing.T) {
	t.Helper()
	before := openFDs(t)
	t.Cleanup(func() {
		if after := openFDs(t); after != before {
			t.Errorf("%d open fds after the test, %d before: descriptors leaked", after, before)
		}
	})
}

// capped is an echo server of known capacity, on loopback. Each connection sends one request of
// reqBytes, which is echoed, then the client closes. Above its capacity the server answers delay
// late: with rate set, it serves at most rate connections per second at once, from a token bucket
// that holds burst of them (so that a scheduling stall of either side, whose connections then
// come in a bunch, is not read as overload: the load averages 20 on this 2-core machine); with
// conns set, a connection accepted while conns others are open. The step from at once to delay
// late is what the thresholds see.
type capped struct {
	ln    net.Listener
	rate  float64
	conns int
	delay time.Duration

	mu     sync.Mutex
	tokens float64
	last   time.Time
	open   int
	live   map[net.Conn]bool
	wg     sync.WaitGroup
	close  sync.Once
}

// burst is the bucket's depth in time: rate x burst connections.
const burst = 100 * time.Millisecond

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
		if s.rate > 0 {
			now, depth := time.Now(), s.rate*burst.Seconds()
			if s.last.IsZero() {
				s.tokens = depth
			} else {
				s.tokens = min(depth, s.tokens+now.Sub(s.last).Seconds()*s.rate)
			}
			s.last = now
			over = s.tokens < 1
			if !over {
				s.tokens--
			}
		}
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
	if _, err := io.ReadFull(c, buf); err != nil {
		return
	}
	if over {
		// The server's own service time (what the test's capacity is made of), not a wait for
		// anything: bounded, and a connection the client closes meanwhile is closed by stop.
		time.Sleep(s.delay)
	}
	if _, err := c.Write(buf); err != nil {
		return
	}
	io.Copy(io.Discard, c) // until the client closes
}
