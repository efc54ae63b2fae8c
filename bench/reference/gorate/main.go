//go:build linux

// Command gorate is bench/reference/rate.c in Go on raw system calls: the floor of a Go client at a
// fixed total rate. One goroutine, non-blocking sockets opened with socket(2) (never in Go's
// poller), request k due at t0 + k/R on connection k mod C, request/response (window 1), latency
// from the intended time into an hdrhistogram-go histogram, and epoll_pwait2 with nanosecond
// timeouts until the next request is due.
//
//   - -raw: the goroutine on a thread of its own (runtime.LockOSThread), its reads, writes and
//     epoll_pwait2 raw system calls the scheduler is not told of, as portstorm's rated loops: what
//     is left is the runtime itself (its monitor thread, the preemption every 10 ms). The Go floor
//     bench/run compares portstorm with.
//   - without it: the same system calls through the scheduler (entersyscall), whose monitor takes
//     the goroutine's P back during its waits.
//   - -poller: parked in Go's poller on a timerfd armed before each wait instead, as portstorm's
//     rated loops were until December 2026.
//   - -W: before each run (each probe with -S), seconds at its rate, not measured (rate.c -W).
//   - -S: the highest rate whose p99 stays within -P µs, as rate.c -S searches it (probes of -d
//     seconds on the same connections, doubling from -r, then bisecting to 5%, at most -n probes).
//
// docs/measurements.md "Rated loops in the kernel" and "The Go floor, and a warm-up for every
// client" have what it measured.
//
//	go run ./bench/reference/gorate -D 127.0.0.1:PORT [-c 300] [-r 30000] [-b 64] [-d 6] [-W 0] [-raw | -poller] [-S [-P 5000] [-n 16]]
//
// Prints one line: sent, received, request p50/p99/p99.9 in µs, and this process's CPU per request;
// with -S a `probe` line per probe and a `search max_rate=` line.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
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
	warm := flag.Float64("W", 0, "before each run (each probe with -S), seconds at its rate, not measured (rate.c -W)")
	poller := flag.Bool("poller", false, "park in Go's poller (timerfd) instead of epoll_pwait2")
	search := flag.Bool("S", false, "search the highest rate whose p99 stays within -P, over probes of -d seconds on the same connections (rate.c -S)")
	limit := flag.Float64("P", 5000, "the search's p99 limit, µs")
	probes := flag.Int("n", 16, "the search's most probes")
	raw := flag.Bool("raw", false, "on a thread of its own (LockOSThread), reads, writes and epoll_pwait2 as raw system calls the scheduler is not told of, as portstorm's rated loops")
	flag.Parse()
	if *raw && *poller {
		fail("-raw and -poller: one or the other")
	}
	if *raw {
		runtime.LockOSThread()
	}
	read, write := unix.Read, unix.Write
	pwait := unix.Syscall6
	if *raw {
		read, write = rawRW(unix.SYS_READ), rawRW(unix.SYS_WRITE)
		pwait = unix.RawSyscall6
	}
	if *nc < 1 || *nc > 19000 || *rate <= 0 || *rate > 1e7 || *b < 1 || *b > 65536 || *secs <= 0 || *secs > 600 || *warm < 0 || *warm > 600 || *probes < 1 || *probes > 64 || *limit <= 0 {
		fail("-c 1-19000, -r 0-1e7, -b 1-65536, -d 0-600 s, -W 0-600 s, -n 1-64, -P above 0")
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
	req := make([]byte, *b)
	buf := make([]byte, 1<<16)
	evs := make([]unix.EpollEvent, 1024)

	// run sends at rate for secs seconds on the connections, and collects the answers for at most 2
	// s after.
	run := func(rate, secs float64) result {
		for i, c := range cs {
			c.next, c.head, c.wr, c.got = int64(i), 0, 0, 0
		}
		lat := hdr.New(1, 3_600_000_000, 3)
		total := int64(rate * secs)
		var due, sent, recv int64
		t0 := time.Now().Add(time.Millisecond)
		at := func(k int64) time.Time { return t0.Add(time.Duration(float64(k) / rate * 1e9)) }
		drain := t0.Add(time.Duration(secs*1e9) + 2*time.Second)
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
				write(c.fd, req)
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
				r, _, _ := pwait(unix.SYS_EPOLL_PWAIT2, uintptr(ep), uintptr(unsafe.Pointer(&evs[0])), uintptr(len(evs)), uintptr(unsafe.Pointer(&ts)), 0, 0)
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
				r, err := read(c.fd, buf)
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
					write(c.fd, req)
				}
			}
		}
		var ru1 unix.Rusage
		unix.Getrusage(unix.RUSAGE_SELF, &ru1)
		cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
		return result{total: total, sent: sent, recv: recv, p50: lat.ValueAtQuantile(50), p99: lat.ValueAtQuantile(99),
			p999: lat.ValueAtQuantile(99.9), cpuPerReq: float64(cpu.Microseconds()) / float64(max(recv, 1))}
	}
	// lost: a warm-up whose answers did not all come leaves them to arrive in the measured run.
	lost := func(w result) bool {
		if w.recv < w.sent {
			fmt.Fprintf(os.Stderr, "gorate: the warm-up lost %d answers\n", w.sent-w.recv)
			return true
		}
		return false
	}
	if !*search {
		if *warm > 0 && lost(run(*rate, *warm)) {
			os.Exit(1)
		}
		res := run(*rate, *secs)
		fmt.Printf("sent=%d received=%d p50_us=%d p99_us=%d p999_us=%d cpu_per_req_us=%.1f\n", res.sent, res.recv, res.p50, res.p99, res.p999, res.cpuPerReq)
		return
	}
	// The search: double until a probe fails, then bisect until the last pass and the first fail
	// are within 5%; every probe on the same connections (bench/reference/rate.c -S).
	var pass, failed float64
	var best result
	r := *rate
	for range *probes {
		if *warm > 0 && lost(run(r, *warm)) {
			break
		}
		res := run(r, *secs)
		fmt.Printf("probe offered=%.0f sent=%d received=%d p50_us=%d p99_us=%d p999_us=%d cpu_per_req_us=%.1f\n", r, res.sent, res.recv, res.p50, res.p99, res.p999, res.cpuPerReq)
		if res.recv < res.sent {
			break // answers lost: the connections cannot be trusted for more
		}
		if res.recv == res.total && float64(res.p99) <= *limit {
			pass, best = r, res
		} else {
			failed = r
		}
		switch {
		case failed == 0:
			r *= 2
		case pass == 0:
			r /= 2
		case failed/pass <= 1.05:
			r = 0
		default:
			r = (pass + failed) / 2
		}
		if r > 1e7 || r < 1 {
			break
		}
	}
	fmt.Printf("search max_rate=%.0f p99_us=%d limit_us=%.0f first_fail=%.0f\n", pass, best.p99, *limit, failed)
}

// result is one run's figures: requests due, sent and answered, latency quantiles from the
// intended times in µs, and CPU per answer.
type result struct {
	total, sent, recv int64
	p50, p99, p999    int64
	cpuPerReq         float64
}

// rawRW is read(2) or write(2) (trap) as a raw system call: on a non-blocking socket it never
// blocks, so the scheduler need not be told.
func rawRW(trap uintptr) func(int, []byte) (int, error) {
	return func(fd int, b []byte) (int, error) {
		n, _, errno := unix.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
		if errno != 0 {
			return -1, errno
		}
		return int(n), nil
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "gorate:", msg)
	os.Exit(2)
}
