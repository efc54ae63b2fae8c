//go:build linux

// Command gorate is bench/reference/rate.c in Go on raw system calls: the floor of a Go client at a
// fixed total rate. One goroutine, non-blocking sockets opened with socket(2) (never in Go's
// poller), request k due at t0 + k/R on connection k mod C, request/response (window 1), latency
// from the intended time into an hdrhistogram-go histogram, and epoll_pwait2 with nanosecond
// timeouts until the next request is due (-poller: parked in Go's poller on a timerfd armed before
// each wait instead, as portstorm's rated loops were until December 2026). docs/measurements.md
// "Rated loops in the kernel" has what it measured.
//
//	go run ./bench/reference/gorate -D 127.0.0.1:PORT [-c 300] [-r 30000] [-b 64] [-d 6] [-poller]
//
// Prints one line: sent, received, request p50/p99/p99.9 in µs, and this process's CPU per request.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"time"
	"unsafe"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/sys/unix"
)

type conn struct {
	fd       int
	next     int64
	due      []time.Time
	head, wr int64
	got      int
}

func main() {
	dst := flag.String("D", "127.0.0.1:17001", "the echo server, a loopback ip:port")
	nc := flag.Int("c", 300, "connections")
	rate := flag.Float64("r", 30000, "requests per second in all")
	b := flag.Int("b", 64, "request (and echoed answer) bytes")
	secs := flag.Float64("d", 6, "seconds")
	poller := flag.Bool("poller", false, "park in Go's poller (timerfd) instead of epoll_pwait2")
	flag.Parse()
	if *nc < 1 || *nc > 19000 || *rate <= 0 || *rate > 1e7 || *b < 1 || *b > 65536 || *secs <= 0 || *secs > 600 {
		fail("-c 1-19000, -r 0-1e7, -b 1-65536, -d 0-600 s")
	}
	ap, err := net.ResolveTCPAddr("tcp", *dst)
	if err != nil || ap.IP.To4() == nil || !ap.IP.IsLoopback() {
		fail(*dst + ": not a loopback ip:port")
	}
	sa := &unix.SockaddrInet4{Port: ap.Port}
	copy(sa.Addr[:], ap.IP.To4())
	ep, err := unix.EpollCreate1(0)
	if err != nil {
		fail(err.Error())
	}
	cs := make([]*conn, *nc)
	for i := range cs {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			fail("socket: " + err.Error())
		}
		if err := unix.Connect(fd, sa); err != nil {
			fail("connect: " + err.Error())
		}
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		unix.SetNonblock(fd, true)
		cs[i] = &conn{fd: fd, next: int64(i), due: make([]time.Time, 1)}
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(i)}
		unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &ev)
	}
	var f *os.File
	var tfd int
	if *poller {
		tfd, _ = unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK)
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: -1}
		unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, tfd, &ev)
		unix.SetNonblock(ep, true)
		f = os.NewFile(uintptr(ep), "ep")
	}
	var rc interface {
		Read(func(uintptr) bool) error
	}
	if f != nil {
		rc, _ = f.SyscallConn()
	}
	lat := hdr.New(1, 3_600_000_000, 3)
	req := make([]byte, *b)
	buf := make([]byte, 1<<16)
	evs := make([]unix.EpollEvent, 1024)
	total := int64(*rate * *secs)
	var due, sent, recv int64
	t0 := time.Now().Add(time.Millisecond)
	at := func(k int64) time.Time { return t0.Add(time.Duration(float64(k) / *rate * 1e9)) }
	drain := t0.Add(time.Duration(*secs*1e9) + 2*time.Second)
	var ru0 unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru0)
	for {
		now := time.Now()
		for ; due < total && !at(due).After(now); due++ {
			c := cs[due%int64(*nc)]
			if c.next != due || c.wr-c.head >= 1 {
				continue
			}
			c.due[0] = at(due)
			c.wr++
			c.next += int64(*nc)
			sent++
			unix.Write(c.fd, req)
		}
		if (due >= total && recv >= sent) || now.After(drain) {
			break
		}
		next := drain
		if due < total {
			next = at(due)
		}
		wait := max(time.Until(next), 0)
		var n int
		if rc != nil {
			spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(max(wait, 1)))}
			unix.TimerfdSettime(tfd, 0, &spec, nil)
			rc.Read(func(fd uintptr) bool {
				n, _ = unix.EpollWait(int(fd), evs, 0)
				return n > 0 || !time.Now().Before(next)
			})
		} else {
			ts := unix.NsecToTimespec(int64(wait))
			r, _, _ := unix.Syscall6(unix.SYS_EPOLL_PWAIT2, uintptr(ep), uintptr(unsafe.Pointer(&evs[0])), uintptr(len(evs)), uintptr(unsafe.Pointer(&ts)), 0, 0)
			n = int(r)
			if int(r) < 0 {
				n = 0
			}
		}
		t := time.Now()
		for j := 0; j < n; j++ {
			if evs[j].Fd < 0 {
				continue
			}
			c := cs[evs[j].Fd]
			r, err := unix.Read(c.fd, buf)
			if err == unix.EAGAIN {
				continue
			}
			if err != nil || r == 0 {
				fail("the server closed a connection")
			}
			c.got += r
			for c.got >= *b && c.head < c.wr {
				lat.RecordValue(max(t.Sub(c.due[0]).Microseconds(), 1))
				c.head++
				recv++
				c.got -= *b
			}
			for c.next < due && c.wr-c.head < 1 {
				c.due[0] = at(c.next)
				c.wr++
				c.next += int64(*nc)
				sent++
				unix.Write(c.fd, req)
			}
		}
	}
	var ru1 unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	fmt.Printf("sent=%d received=%d p50_us=%d p99_us=%d p999_us=%d cpu_per_req_us=%.1f\n", sent, recv, lat.ValueAtQuantile(50), lat.ValueAtQuantile(99), lat.ValueAtQuantile(99.9), float64(cpu.Microseconds())/float64(recv))
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "gorate:", msg)
	os.Exit(2)
}
