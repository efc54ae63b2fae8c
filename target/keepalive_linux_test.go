package target

import (
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkKeepAlive measures the echo and http modes under keep-alive load, served by the epoll
// loop (see loop_linux.go) and by a goroutine per connection (the path off Linux and under TLS),
// in the same run: N connections, each with one message (64 B to echo, or a GET) outstanding at a
// time, b.N messages in all. The client is this file's own, one goroutine on raw epoll, so that
// it costs the process no goroutine or Go buffer per connection and the memory measured is the
// target's. Metrics: msgs/s, p50-us and p99-us (from each message's write to the last byte of its
// answer), and B/conn, the Go heap and stacks the target holds per connection once they are idle
// again after the load (kernel socket buffers, the same on both paths, are not in it).
//
//	go test ./target -run '^$' -bench KeepAlive -benchtime 200000x
//
// Connections: 300, and 9,000 (client and target share this process, so 9,000 connections are
// 18,000 descriptors, under the open-files hard limit of 20,000 that the project's machines have).
func BenchmarkKeepAlive(b *testing.B) {
	const httpReq = "GET / HTTP/1.1\r\nHost: t\r\n\r\n"
	echoMsg := make([]byte, 64)
	for i := range echoMsg {
		echoMsg[i] = byte('a' + i%26)
	}
	for _, mode := range []struct {
		mode Mode
		msg  []byte
		ans  int
	}{
		{ModeEcho, echoMsg, len(echoMsg)},
		{ModeHTTP, []byte(httpReq), len(okResponse)},
	} {
		for _, conns := range []int{300, 9000} {
			for _, path := range []string{"goroutine", "loop"} {
				b.Run(fmt.Sprintf("%s/conns=%d/%s", mode.mode, conns, path), func(b *testing.B) {
					defer func(v bool) { noLoop = v }(noLoop)
					noLoop = path == "goroutine"
					keepAlive(b, Config{Mode: mode.mode}, conns, mode.msg, mode.ans)
				})
			}
		}
	}
}

// keepAlive runs the load of BenchmarkKeepAlive against a server started with cfg.
func keepAlive(b *testing.B, cfg Config, conns int, msg []byte, ans int) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < uint64(2*conns+200) {
		b.Skipf("open-files limit %d: too low for %d connections (client and target in this process)", lim.Cur, conns)
	}
	s := start(b, cfg)
	cl := newKAClient(b, s.Addrs()[0], conns, msg, ans)
	defer cl.close()
	waitFor(b, "every connection accepted", func() bool { return s.Stats().Active == int64(conns) })

	b.ResetTimer()
	var self0, self1 unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &self0)
	lat, clientCPU := cl.run(b, b.N)
	unix.Getrusage(unix.RUSAGE_SELF, &self1)
	b.StopTimer()

	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(lat[len(lat)/2])/1e3, "p50-us")
	b.ReportMetric(float64(lat[len(lat)*99/100])/1e3, "p99-us")
	// CPU time is what a shared machine distorts least: the process's, less the client thread's.
	targetCPU := cpuTime(&self1) - cpuTime(&self0) - clientCPU
	b.ReportMetric(float64(targetCPU)/1e3/float64(b.N), "target-cpu-us/msg")
	// The target's memory per connection, idle after the load: what it held before the
	// connections, measured once they are open and idle again, over their number. The client's
	// arrays were made before the first measurement.
	b.ReportMetric(float64(int64(after.HeapInuse+after.StackInuse)-int64(cl.base))/float64(conns), "B/conn")
}

// kaClient is the benchmark's client: connections on raw non-blocking sockets in one epoll set.
type kaClient struct {
	epfd   int
	fds    []int
	sentAt []int64 // per connection: when its outstanding message was written (ns since t0), -1 if none
	got    []int   // bytes of its answer read so far
	msg    []byte
	ans    int
	t0     time.Time
	base   uint64 // Go heap and stacks in use before the connections were made
}

func newKAClient(b *testing.B, addr string, conns int, msg []byte, ans int) *kaClient {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		b.Fatal(err)
	}
	cl := &kaClient{fds: make([]int, 0, conns), sentAt: make([]int64, conns), got: make([]int, conns), msg: msg, ans: ans, t0: time.Now()}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	cl.base = ms.HeapInuse + ms.StackInuse
	if cl.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		b.Fatal(err)
	}
	sa := &unix.SockaddrInet4{Port: int(ap.Port())}
	sa.Addr = ap.Addr().As4()
	for i := range conns {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			cl.close()
			b.Fatalf("socket %d: %v", i, err)
		}
		cl.fds = append(cl.fds, fd)
		// A blocking connect: on loopback it returns once the handshake is done.
		if err := unix.Connect(fd, sa); err != nil {
			cl.close()
			b.Fatalf("connect %d: %v", i, err)
		}
		unix.SetNonblock(fd, true)
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		if err := unix.EpollCtl(cl.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(i)}); err != nil {
			cl.close()
			b.Fatal(err)
		}
	}
	return cl
}

func (cl *kaClient) close() {
	for _, fd := range cl.fds {
		unix.Close(fd)
	}
	cl.fds = nil
	if cl.epfd > 0 {
		unix.Close(cl.epfd)
		cl.epfd = 0
	}
}

// run sends total messages, one outstanding per connection, and returns each one's latency in
// nanoseconds, and the CPU time the client's thread took. It fails the benchmark past a minute or
// on any error.
func (cl *kaClient) run(b *testing.B, total int) (lat []int64, cpu time.Duration) {
	// On a thread of its own, so that its CPU time can be told from the target's.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var ru0, ru1 unix.Rusage
	unix.Getrusage(unix.RUSAGE_THREAD, &ru0)
	defer func() {
		unix.Getrusage(unix.RUSAGE_THREAD, &ru1)
		cpu = cpuTime(&ru1) - cpuTime(&ru0)
	}()
	lat = make([]int64, 0, total)
	sent := 0
	now := func() int64 { return int64(time.Since(cl.t0)) }
	send := func(i int) {
		cl.sentAt[i], cl.got[i] = now(), 0
		if n, err := unix.Write(cl.fds[i], cl.msg); n != len(cl.msg) {
			// 64 B into an empty socket buffer: anything short is a failure, not back-pressure.
			b.Fatalf("connection %d: wrote %d of %d bytes: %v", i, n, len(cl.msg), err)
		}
		sent++
	}
	for i := range cl.fds {
		if sent == total {
			break
		}
		send(i)
	}
	events := make([]unix.EpollEvent, 512)
	buf := make([]byte, 64<<10)
	deadline := time.Now().Add(time.Minute)
	for len(lat) < total {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d answers after a minute", len(lat), total)
		}
		n, err := unix.EpollWait(cl.epfd, events, 1000)
		if err != nil && err != unix.EINTR {
			b.Fatal(err)
		}
		for _, ev := range events[:max(n, 0)] {
			i := int(ev.Fd)
			for {
				k, err := unix.Read(cl.fds[i], buf)
				if err == unix.EAGAIN {
					break
				}
				if k <= 0 {
					b.Fatalf("connection %d: read %d: %v", i, k, err)
				}
				cl.got[i] += k
				if cl.got[i] > cl.ans {
					b.Fatalf("connection %d: %d bytes of answer, want %d", i, cl.got[i], cl.ans)
				}
				if cl.got[i] == cl.ans {
					lat = append(lat, now()-cl.sentAt[i])
					if sent < total {
						send(i)
					}
				}
			}
		}
	}
	return lat, 0
}

func cpuTime(ru *unix.Rusage) time.Duration {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
