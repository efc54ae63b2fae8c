package report

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/portstorm/portstorm/loadgen/ports"
)

// portsObserved reports whether any row carries port figures; without them (ports not observed)
// timeline.csv has no port columns at all.
func portsObserved(rows []TimelineRow) bool {
	for _, r := range rows {
		if r.Ports != nil {
			return true
		}
	}
	return false
}

// portColumns are timeline.csv's port columns: TIME_WAIT (-1 when not sampled that interval) and
// the interval's delta of each kernel TCP counter (-1 when /proc could not be read).
func portColumns() []string {
	cols := []string{"time_wait", "time_wait_target", "unique_ports", "shared_ports", "port_reuse", "four_tuple_reuse", "early_reuse"}
	for c := range ports.NumCounters {
		cols = append(cols, "kernel_"+c.String())
	}
	return cols
}

func portCells(s *ports.Sample) []string {
	out := make([]string, 0, 7+ports.NumCounters)
	if s == nil {
		for range 7 + ports.NumCounters {
			out = append(out, "-1")
		}
		return out
	}
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	out = append(out, i(s.TimeWait), i(s.TimeWaitTarget), strconv.Itoa(s.UniquePorts), strconv.Itoa(s.SharedNow),
		u(s.PortReuse), u(s.TupleReuse), u(s.EarlyReuse))
	for _, v := range s.Kernel.V {
		if s.Kernel.Valid {
			out = append(out, u(v))
		} else {
			out = append(out, "-1")
		}
	}
	return out
}

func pct(f float64) string { return strconv.FormatFloat(100*f, 'f', 1, 64) + "%" }

// writePorts prints the port observatory's figures in the text summary.
func writePorts(w io.Writer, r *ports.Report) {
	if r == nil {
		return
	}
	rg := r.Range
	fmt.Fprintf(w, "  ports        strategy %s, range %d-%d (%s): %d usable", r.Strategy, rg.Lo, rg.Hi, rg.From, rg.Effective)
	if rg.Reserved > 0 || rg.Listeners > 0 {
		fmt.Fprintf(w, " (%d - %d reserved - %d listening)", rg.Size, rg.Reserved, rg.Listeners)
	}
	if rg.HeldAtStart > 0 {
		fmt.Fprintf(w, ", %d held by others at start", rg.HeldAtStart)
	}
	fmt.Fprintln(w)
	for i, s := range r.Sources {
		if i == 8 {
			fmt.Fprintf(w, "    ... %d more source addresses\n", len(r.Sources)-i)
			break
		}
		fmt.Fprintf(w, "    source %-15s %d connections, %d unique ports, %d reused; parity even %d / odd %d",
			s.Address, s.Connections, s.UniquePorts, s.Reuse, s.Parity.Even, s.Parity.Odd)
		if sp := s.Parity.SecondPass; sp != nil {
			fmt.Fprintf(w, ", second parity pass at %.2fs (%s full)", sp.AtS, pct(sp.Occupancy))
		}
		fmt.Fprintln(w)
	}
	for i, d := range r.Destinations {
		if i == 8 {
			fmt.Fprintf(w, "    ... %d more (source, destination) pairs\n", len(r.Destinations)-i)
			break
		}
		fmt.Fprintf(w, "    %s -> %-21s peak %d of %d (%s), 4-tuple reuse %d", d.Source, d.Destination, d.PeakConcurrent, d.Capacity, pct(d.Occupancy), d.FourTupleReuse)
		if d.EarlyReuse > 0 {
			fmt.Fprintf(w, ", %d early", d.EarlyReuse)
		}
		fmt.Fprintln(w)
	}
	if r.SharedPorts.Ports > 0 {
		fmt.Fprintf(w, "    shared       %d ports served several destinations at once (peak %d at the same moment)\n", r.SharedPorts.Ports, r.SharedPorts.Peak)
	}
	if ru := r.Reuse; ru.FourTuples > 0 || ru.Ports > 0 {
		fmt.Fprintf(w, "    reuse        port: %d, interval p1 %s p50 %s; 4-tuple: %d, interval p1 %s p50 %s; early (before tcp_tw_reuse_delay %dms): %d\n",
			ru.Ports, fmtUS(ru.PortInterval.P1), fmtUS(ru.PortInterval.P50), ru.FourTuples, fmtUS(ru.TupleInterval.P1),
			fmtUS(ru.TupleInterval.P50), ru.TWReuseDelayMS, ru.Early)
	}
	var dec []string
	for _, d := range r.ConnectByOccupancy {
		if d.Count > 0 {
			dec = append(dec, fmt.Sprintf("%d-%d%% %s", int(d.From*100), int(d.To*100), fmtUS(d.P50)))
		}
	}
	if len(dec) > 1 {
		fmt.Fprintf(w, "    connect p50 by occupancy  %s\n", strings.Join(dec, ", "))
	}
	if x := r.Exhaustion; x != nil {
		fmt.Fprintf(w, "    exhausted    at %.2fs: %s from %s() toward %s from %s, %d open there (%s of %d), %d open in all\n",
			x.AtS, x.Errno, x.Syscall, x.Destination, x.Source, x.Open, pct(x.Occupancy), capacityOf(r), x.Concurrency)
	}
	for _, f := range r.Failures {
		fmt.Fprintf(w, "    failures     %s from %s: %d\n", f.Errno, f.Syscall, f.Count)
	}
	tw := r.TimeWait
	if tw.Samples > 0 {
		fmt.Fprintf(w, "    TIME_WAIT    peak %d (client side), %d on the target's side; %d samples, slowest %s\n",
			tw.Peak, max(tw.TargetPeak, 0), tw.Samples, fmtUS(tw.SampleMaxUS))
		if tw.OthersPeak > 0 {
			fmt.Fprintf(w, "    TIME_WAIT    others' sockets sharing the port space: %d (not counted above)\n", tw.OthersPeak)
		}
	}
	if k := r.Kernel; k != nil {
		fmt.Fprintf(w, "    kernel       ActiveOpens %d, AttemptFails %d, EstabResets %d, OutRsts %d, TWRecycled %d, TCPTimeWaitOverflow %d, ListenOverflows %d\n",
			k["ActiveOpens"], k["AttemptFails"], k["EstabResets"], k["OutRsts"], k["TWRecycled"], k["TCPTimeWaitOverflow"], k["ListenOverflows"])
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "    warning      %s\n", warn)
	}
}

func capacityOf(r *ports.Report) int {
	if len(r.Destinations) > 0 {
		return r.Destinations[0].Capacity
	}
	return r.Range.Effective
}
