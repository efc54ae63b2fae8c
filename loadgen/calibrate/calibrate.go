// Package calibrate measures a fixed reference on this host before a run, so that a baseline made
// on one machine can be compared on another (baseline.normalize: calibration, docs/results.md
// "Baselines across machines"): sequential loopback connections to a listener of its own, each a
// connect, one 64-byte echo exchange and a close with RST (no TIME_WAIT left behind). The median
// time of one is the host's unit: a host twice as slow (or twice as loaded) takes about twice as
// long, and its latencies, divided by the unit, read as the faster host's.
package calibrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/portstorm/portstorm/loadgen/report"
)

// Defaults of Options.
const (
	// Connections is how many reference connections are timed; Warmup more come first, untimed.
	Connections = 1000
	Warmup      = 50
	// MaxTime bounds the calibration; MinConnections must have been timed by then.
	MaxTime        = 3 * time.Second
	MinConnections = 100
	// payload is the echoed message's size.
	payload = 64
)

// Options size a calibration; zero fields take the defaults above (tests make it small).
type Options struct {
	Connections, Warmup int
	MaxTime             time.Duration
	// Address is the loopback address listened on and dialled (default 127.0.0.1).
	Address string
}

// Run measures the reference. It ends early, with an error, when ctx is cancelled or the
// connections cannot be made.
func Run(ctx context.Context, o Options) (*report.Calibration, error) {
	if o.Connections <= 0 {
		o.Connections = Connections
	}
	if o.Warmup < 0 {
		o.Warmup = 0
	} else if o.Warmup == 0 {
		o.Warmup = Warmup
	}
	if o.MaxTime <= 0 {
		o.MaxTime = MaxTime
	}
	if o.Address == "" {
		o.Address = "127.0.0.1"
	}
	minConns := min(MinConnections, o.Connections)
	ctx, cancel := context.WithTimeout(ctx, o.MaxTime)
	defer cancel()
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", net.JoinHostPort(o.Address, "0"))
	if err != nil {
		return nil, fmt.Errorf("calibration: %w", err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { echo(l) })
	defer wg.Wait()
	defer l.Close()

	start := time.Now()
	addr := l.Addr().String()
	var d net.Dialer
	msg := make([]byte, payload)
	for i := range msg {
		msg[i] = byte('a' + i%26)
	}
	buf := make([]byte, payload)
	n := o.Warmup + o.Connections
	connect := make([]time.Duration, 0, o.Connections)
	exchange := make([]time.Duration, 0, o.Connections)
	unit := make([]time.Duration, 0, o.Connections)
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		t0 := time.Now()
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return nil, fmt.Errorf("calibration: %w", err)
		}
		t1 := time.Now()
		_, err = c.Write(msg)
		if err == nil {
			_, err = io.ReadFull(c, buf)
		}
		t2 := time.Now()
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // RST: no TIME_WAIT on the run's ports
		}
		c.Close()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return nil, fmt.Errorf("calibration: echo: %w", err)
		}
		if i >= o.Warmup {
			connect = append(connect, t1.Sub(t0))
			exchange = append(exchange, t2.Sub(t1))
			unit = append(unit, t2.Sub(t0))
		}
	}
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("calibration: %w", err)
	}
	if len(unit) < minConns {
		return nil, fmt.Errorf("calibration: only %d reference connections in %s (want %d): the host is too loaded to calibrate", len(unit), o.MaxTime, minConns)
	}
	return &report.Calibration{UnitUS: median(unit), ConnectP50US: median(connect), EchoP50US: median(exchange),
		Connections: len(unit), DurationUS: time.Since(start).Microseconds()}, nil
}

// echo serves the reference connections one at a time until l is closed: it echoes what it reads
// until the client's RST or FIN.
func echo(l net.Listener) {
	buf := make([]byte, payload)
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if _, werr := c.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		c.Close()
	}
}

// median is the median in microseconds, to 0.01 µs.
func median(ds []time.Duration) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return float64(m.Nanoseconds()/10) / 100
}
