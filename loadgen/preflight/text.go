package preflight

import (
	"fmt"
	"io"
)

func orUnknown(v int) string {
	if v < 0 {
		return "unknown"
	}
	return fmt.Sprint(v)
}

// WriteHost prints the host's limits that shape a connection test.
func WriteHost(w io.Writer, h Host) {
	fmt.Fprintf(w, "host %s (%s, %d cores)%s\n", h.Hostname, h.Kernel, h.Cores, map[bool]string{true: ", in the run's private network namespace", false: ""}[h.Isolated])
	fmt.Fprintf(w, "  open files        soft %d, hard %d per process (Go raises the soft limit to the hard one)\n", h.FDSoft, h.FDHard)
	fmt.Fprintf(w, "  port range        %d-%d (%d ports), reserved: %s\n", h.PortRange.Lo, h.PortRange.Hi, h.PortRange.Size(), orNone(h.ReservedPorts))
	reuse := map[int]string{0: "off", 1: "on", 2: "loopback only"}[h.TWReuse]
	fmt.Fprintf(w, "  TIME_WAIT         tcp_tw_reuse %s (%s), tcp_tw_reuse_delay %s ms, tcp_max_tw_buckets %s, tcp_timestamps %s\n",
		orUnknown(h.TWReuse), reuse, orUnknown(h.TWReuseDelay), orUnknown(h.MaxTWBuckets), orUnknown(h.TCPTimestamps))
	fmt.Fprintf(w, "  somaxconn         %s\n", orUnknown(h.Somaxconn))
	fmt.Fprintf(w, "  syncookies        %s\n", orUnknown(h.Syncookies))
	if h.ConntrackMax < 0 {
		fmt.Fprintf(w, "  conntrack         not loaded (nothing tracks these connections)\n")
	} else {
		state := map[string]string{
			ConntrackActive:   "tracks connections in this namespace",
			ConntrackInactive: "loaded, but tracks nothing in this namespace (a probe connection was not tracked): nf_conntrack_max limits nothing",
			ConntrackUnknown:  "could not be probed",
		}[h.Conntrack]
		if state == "" {
			state = "not probed"
		}
		fmt.Fprintf(w, "  conntrack         %s; %s of %d entries in use\n", state, orUnknown(h.ConntrackCount), h.ConntrackMax)
	}
	fmt.Fprintf(w, "  privileged ports  below %s (root: %v)\n", orUnknown(h.UnprivilegedPortStart), h.Root)
	ns := "root can create them"
	if !h.Root {
		ns = "unprivileged user namespaces " + h.UserNamespaces
	}
	fmt.Fprintf(w, "  --netns           %s\n", ns)
	fmt.Fprintf(w, "  network namespace %s\n", h.Netns)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// WriteText prints the forecast: capacity per (source, destination), the limits in the order they
// bite, and the verdict with the fixes.
func (f *Forecast) WriteText(w io.Writer, name string) {
	r := f.Range
	fmt.Fprintf(w, "\nplan %s: strategy %s, peak %d concurrent", name, f.Strategy, f.Peak)
	if f.Rate > 0 {
		fmt.Fprintf(w, ", churn %.0f connections/s", f.Rate)
	}
	fmt.Fprintf(w, "\n  port range        %d-%d from %s: %d ports", r.Lo, r.Hi, r.From, r.Size)
	if r.Reserved > 0 || r.Listeners > 0 {
		fmt.Fprintf(w, " - %d reserved - %d listening = %d usable", r.Reserved, r.Listeners, r.Effective)
	}
	if r.HeldAtStart > 0 {
		fmt.Fprintf(w, "; %d held by other sockets now (toward their own destinations)", r.HeldAtStart)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  %-20s %-24s %9s %9s %10s\n", "source", "destination", "capacity", "demand", "time_wait")
	for i, p := range f.Pairs {
		if i == 8 && len(f.Pairs) > 10 {
			fmt.Fprintf(w, "  ... %d more pairs like these\n", len(f.Pairs)-i)
			break
		}
		fmt.Fprintf(w, "  %-20s %-24s %9d %9d %10d\n", p.Source, p.Destination, p.Capacity, p.Demand, p.TimeWait)
	}
	fmt.Fprintln(w, "  limits, first to bite first:")
	for _, l := range f.Limits {
		mark := "ok   "
		if l.Stops {
			mark = "STOPS"
		}
		fmt.Fprintf(w, "    %s %-12s allows %d %s, the plan needs %d: %s\n", mark, l.Name, l.Max, l.Unit, l.Demand, l.Why)
	}
	for _, warn := range f.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", warn)
	}
	first := f.First()
	switch {
	case first == nil:
		fmt.Fprintf(w, "verdict: can be carried out (the tightest limit is %s)\n", f.Limits[0].Name)
		return
	case first.Ports && f.ExpectExhaustion && !f.Refuse:
		fmt.Fprintf(w, "verdict: will run the %s out at %d %s, as the plan expects (source.ports.expect_exhaustion)\n", first.Name, first.Max, first.Unit)
	default:
		fmt.Fprintf(w, "verdict: cannot be carried out: %s stops it at %d %s (it needs %d)\n", first.Name, first.Max, first.Unit, first.Demand)
	}
	for _, l := range f.Limits {
		if !l.Stops {
			continue
		}
		fmt.Fprintf(w, "  to lift %s:\n", l.Name)
		for _, fx := range l.Fixes {
			fmt.Fprintf(w, "    - %s\n", fx)
		}
	}
	if first.Ports && !f.ExpectExhaustion {
		fmt.Fprintln(w, "  (to measure the exhaustion itself, set source.ports.expect_exhaustion: true)")
	}
}
