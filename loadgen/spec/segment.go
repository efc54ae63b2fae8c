package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/preflight"
)

// Segment is segment i of n of s, as a worker process or a distributed segment runs it: the
// destinations already resolved (addrs: the built-in target runs in the coordinator's processes),
// its own source addresses or its cut of the port window so that segments never compete for
// ports, and nothing a segment must not do again (isolation, thresholds, baseline, workers). With
// the built-in target serving TLS, cert (its certificate) is the CA to trust. The server name and
// the HTTP Host of a destination named by a host name were compiled from the whole plan and
// travel as they are. The segment's Plan is the same cut, for what is written as its plan (a
// segment's summary.json); what Compile derives from the plan and the cut changes (addresses,
// sources, port window, the preflight's Load) is derived again from it.
func (s *Spec) Segment(i, n int, addrs []string, cert []byte) (*Spec, error) {
	wp, err := segmentPlan(s.Plan, i, n, addrs)
	if err != nil {
		return nil, err
	}
	ws := *s
	ws.Plan, ws.Target, ws.Isolate, ws.Search = wp, nil, nil, nil
	ws.Addresses = wp.Target.Addresses
	ws.Layout = Layout{Workers: 1}
	if ws.Sources, err = wp.Source.SourceAddrs(); err != nil {
		return nil, err
	}
	ws.Window = PortWindow(wp)
	ws.Preflight = Preflight(wp)
	if t := s.TLS; t != nil && t.Builtin {
		c := *t
		c.Builtin, c.CAPEM = false, cert
		ws.TLS = &c
	}
	return &ws, nil
}

// segmentPlan is the plan side of Segment.
func segmentPlan(p *plan.Plan, i, n int, addrs []string) (*plan.Plan, error) {
	wp := *p
	wp.Target = plan.Target{AllowRemote: p.Target.AllowRemote, Addresses: addrs}
	wp.Isolate, wp.Netns, wp.Thresholds, wp.Baseline = false, nil, nil, nil
	wp.Load.Workers = 0
	srcs, err := p.Source.SourceAddrs()
	if err != nil {
		return nil, err
	}
	wp.Source = p.Source
	switch {
	case len(srcs) >= n:
		// Source addresses round-robin: each segment owns whole port spaces.
		var mine []string
		for j, a := range srcs {
			if j%n == i {
				mine = append(mine, a.String())
			}
		}
		wp.Source.Addresses = mine
	case p.Source.Ports.Range != "":
		// Too few addresses: split the port window instead.
		lo, hi, ok := plan.ParsePortRange(p.Source.Ports.Range)
		if !ok || hi-lo+1 < n {
			return nil, fmt.Errorf("source.ports.range %q cannot be split over %d workers", p.Source.Ports.Range, n)
		}
		size := hi - lo + 1
		a, b := lo+size*i/n, lo+size*(i+1)/n-1
		wp.Source.Ports.Range = fmt.Sprintf("%d-%d", a, b)
	}
	return &wp, nil
}

// Hash identifies a run: the SHA-256 of the spec's JSON without what belongs to the machine that
// compiled it (its facts and its process layout), so that every segment of a distributed run,
// each compiled on its own host, has the same hash, and a merge refuses shards whose hashes
// differ. The plan is part of the spec, so two plans that differ have different hashes.
func (s *Spec) Hash() (string, error) {
	c := *s
	c.Host, c.Layout = preflight.Host{}, Layout{}
	b, err := json.Marshal(&c)
	if err != nil {
		return "", fmt.Errorf("encoding the run spec: %w", err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:]), nil
}

// Probe is the spec of one probe of a search spec s at level for d, named as s (ProbePlan),
// compiled with facts f.
func (s *Spec) Probe(level float64, d time.Duration, f Facts) (*Spec, error) {
	return Compile(ProbePlan(s.Plan, level, d, s.Name), f)
}
