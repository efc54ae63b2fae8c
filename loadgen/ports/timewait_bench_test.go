//go:build linux

package ports

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/isolate/nstest"
	"github.com/portstorm/portstorm/target"
)

// BenchmarkTimeWaitSample is one interval's TIME_WAIT sample with 60,000 TIME_WAIT sockets present:
// a FIN storm from two source addresses in a private namespace (TIME_WAIT holds no descriptor, so
// one process can leave that many behind). tcp_tw_reuse is off there so that none is recycled.
func BenchmarkTimeWaitSample(b *testing.B) {
	if !nstest.Bench(b) {
		return
	}
	const want = 60_000
	nstest.Sysctl(b, "tcp_tw_reuse", "0")
	nstest.Sysctl(b, "ip_local_port_range", "1024 65535")
	nstest.Sysctl(b, "tcp_max_tw_buckets", "200000")
	srv, err := target.Start(context.Background(), target.Config{Mode: target.ModeEcho})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	dst := dial.NewDestination(netip.MustParseAddrPort(srv.Addrs()[0]))
	d, err := dial.New(dial.Options{Strategy: dial.StrategyBindNoPort})
	if err != nil {
		b.Fatal(err)
	}
	sources := []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")}
	// The observatory hears of every connection, as in a run: it counts only the run's 4-tuples.
	o := New(Config{Destinations: []netip.AddrPort{dst.AddrPort}, Interval: time.Second})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			to := dst.From(sources[g%2])
			for range want/4 + 100 {
				c, err := d.Dial(context.Background(), to)
				if err != nil {
					errs <- err
					return
				}
				now := time.Now()
				oc := o.Opened(dst, c.LocalAddr().(*net.TCPAddr).AddrPort(), now, 0)
				c.Close() // FIN first: this end keeps TIME_WAIT
				o.Closed(oc, now, now, true)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	count := func() (n int) {
		if err := Dump(unix.AF_INET, 1<<StateTimeWait, func(Socket) { n++ }); err != nil {
			b.Fatal(err)
		}
		return n
	}
	// The target closes its ends as it reads the FINs; wait (bounded) until every client end is in
	// TIME_WAIT.
	n := count()
	for i := 0; n < want && i < 500; i++ {
		n = count()
	}
	if n < want {
		b.Fatalf("%d TIME_WAIT sockets, want %d", n, want)
	}
	b.Run("dump", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			count()
		}
		b.ReportMetric(float64(n), "sockets")
	})
	b.Run("observatory", func(b *testing.B) {
		b.ReportAllocs()
		var s Sample
		for b.Loop() {
			o.skipLeft = 0
			s = o.Sample()
		}
		if s.TimeWait < want {
			b.Errorf("the sample counted %d client TIME_WAIT sockets, want %d", s.TimeWait, want)
		}
		b.ReportMetric(float64(s.TimeWait), "sockets")
	})
}

// BenchmarkTimeWaitSampleNone is one interval's TIME_WAIT sample with no TIME_WAIT socket in the
// namespace, as in a run that holds its connections: a dump walks the kernel's whole table of
// connections however empty it is ("dump"); the observatory reads the namespace's count instead
// and dumps nothing ("observatory").
func BenchmarkTimeWaitSampleNone(b *testing.B) {
	if !nstest.Bench(b) {
		return
	}
	srv, err := target.Start(context.Background(), target.Config{Mode: target.ModeEcho})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	dst := dial.NewDestination(netip.MustParseAddrPort(srv.Addrs()[0]))
	o := New(Config{Destinations: []netip.AddrPort{dst.AddrPort}, Interval: time.Second})
	c, err := net.Dial("tcp", dst.AddrPort.String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	o.Opened(dst, c.LocalAddr().(*net.TCPAddr).AddrPort(), time.Now(), 0)
	b.Run("dump", func(b *testing.B) {
		for b.Loop() {
			if err := Dump(unix.AF_INET, 1<<StateTimeWait, func(Socket) {}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("observatory", func(b *testing.B) {
		var s Sample
		for b.Loop() {
			o.skipLeft = 0
			s = o.Sample()
		}
		if s.TimeWait != 0 {
			b.Errorf("the sample counted %d client TIME_WAIT sockets, want 0", s.TimeWait)
		}
	})
}
