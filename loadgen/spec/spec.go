// Package spec compiles a validated, defaulted plan once, against the host's facts, into the typed
// run spec every later step reads: the load model, close mode, port strategy, protocol and target
// mode as typed values, the ramp, the process layout, the exchange, the TLS material and the
// built-in target's configuration. A plan key is read here and nowhere below; what travels on is a
// typed value (connection.close becomes a dial.CloseMode that reaches the socket unchanged).
package spec

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/portstorm/portstorm/loadgen/dial"
	"github.com/portstorm/portstorm/loadgen/engine"
	"github.com/portstorm/portstorm/loadgen/isolate"
	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/preflight"
	"github.com/portstorm/portstorm/loadgen/proto"
	"github.com/portstorm/portstorm/loadgen/schedule"
	"github.com/portstorm/portstorm/target"
)

// FDHeadroom is the descriptors a process keeps free beyond its share of connections: arrivals
// still connecting while others close, the poller, files, a margin for uneven splits.
const FDHeadroom = 1000

// Facts are what Compile needs to know of the machine: its limits, and whether the user set
// GOMAXPROCS (every process then keeps it instead of a share of the cores).
type Facts struct {
	Host     preflight.Host
	ProcsSet bool
}

// Spec is a compiled plan. Plan is kept for what is written as the plan (summary.json's plan, a
// contract) and to cut a worker's segment or a search's probe from it (Segment, Probe), which
// derive their typed fields from the cut plan again; nothing decides from its strings.
type Spec struct {
	Plan *plan.Plan
	Host preflight.Host

	Name      string
	OutputDir string
	// Interval is the snapshot interval.
	Interval time.Duration

	Model  schedule.Model
	Ramp   schedule.Ramp
	Layout Layout

	MaxInFlight    int
	Drop           bool
	MaxConnectRate float64
	GracefulStop   time.Duration

	ConnectTimeout, IOTimeout, Hold time.Duration
	Close                           dial.CloseMode
	// OnConnectFailure is nil when the plan measures failing connects (on_connect_failure.measure).
	OnConnectFailure *engine.FailPolicy

	Strategy dial.Strategy
	// Window is source.ports.range (zero without one).
	Window  dial.Window
	Sources []netip.Addr
	// Preflight is what the preflight's forecast reads of the plan (Preflight).
	Preflight preflight.Load

	// Addresses are the plan's destinations as written (nil with the built-in target).
	Addresses   []string
	AllowRemote bool

	Send *Send
	TLS  *ClientTLS
	// Target is never sent to a worker: the built-in target runs in the coordinator's processes.
	Target *Target `json:"-"`
	// Search is the plan's search: section (nil for a plan that is run); each probe is a spec of
	// its own (Probe).
	Search *Search `json:"-"`
	// Isolate is isolate: true (or --netns): the run goes into a private network namespace with
	// these sysctls of its own (netns:); nil runs in the namespace portstorm was started in. A
	// worker never isolates again.
	Isolate *isolate.Sysctls `json:"-"`
	// Calibrate measures the host's reference before the run (baseline.normalize: calibration,
	// or run --calibrate, which sets it): the coordinator does, so a worker never does;
	// summary.json's calibration holds it.
	Calibrate bool `json:"-"`
}

// MaxFile is the largest spec file read (a worker's segment): the plan's payload is at most a few
// MiB, the rest is small.
const MaxFile = 64 << 20

// Write writes s as JSON to path (a worker's segment, handed over as a file).
func (s *Spec) Write(path string) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encoding the run spec: %w", err)
	}
	return os.WriteFile(path, b, 0o600)
}

// ReadFile reads a spec written by Write.
func ReadFile(path string) (*Spec, error) {
	b, err := plan.ReadFile(path, MaxFile)
	if err != nil {
		return nil, err
	}
	var s Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: not a run spec: %w", path, err)
	}
	if s.Plan == nil {
		return nil, fmt.Errorf("%s: not a run spec: no plan", path)
	}
	return &s, nil
}

// Layout is how many processes run a plan.
type Layout struct {
	Workers int    // generator processes (1: this process alone)
	Targets int    // built-in target processes (0: inside the generator)
	Why     string // for people: "fd limit 20000: 4 worker processes"
	// GenProcs and TargetProcs are the GOMAXPROCS of each generator process and each target
	// process when the two sides run as processes of their own (0: the runtime's default).
	GenProcs, TargetProcs int
}

// Send is the request side of every connection.
type Send struct {
	// Count is requests per connection; with Unlimited the connection sends until its hold (the
	// sending period), its slot or the run ends.
	Count     int
	Unlimited bool
	Interval  time.Duration
	// Rate is requests per second per connection (connection.send.rate); TotalRate, when set, the
	// requests per second across the connections over the run (total_rate, held over the load
	// stages, or rate_stages). At most one of them; with neither, requests are closed-loop.
	Rate      float64
	TotalRate *schedule.Ramp `json:",omitempty"`
	// Pipeline is the requests that may be outstanding on a connection (at least 1).
	Pipeline int
	// Generated says the requests are Bytes of random data made by the engine (random, so that an
	// echo proves the target returned these bytes and not any), read back when Echo is set.
	Generated bool
	Bytes     int
	Echo      bool
	// Exchange is the request and the check of its answer otherwise. An HTTP Host left empty is
	// the first destination's address, known once the built-in target listens.
	Exchange proto.Spec
}

// Engine is the engine's request side; defaultHost is the Host header of an HTTP request whose
// plan names none and whose target is the built-in one.
func (s *Send) Engine(defaultHost string) (*engine.Send, error) {
	if s == nil {
		return nil, nil
	}
	out := &engine.Send{Count: s.Count, Unlimited: s.Unlimited, Interval: s.Interval, Rate: s.Rate, TotalRate: s.TotalRate,
		Pipeline: s.Pipeline}
	if s.Generated {
		out.Bytes, out.Echo = s.Bytes, s.Echo
		return out, nil
	}
	ps := s.Exchange
	if ps.Protocol == proto.HTTP && ps.HTTP.Host == "" {
		ps.HTTP.Host = defaultHost
	}
	if ps.Protocol == proto.WebSocket {
		if ps.WebSocket.Host == "" {
			ps.WebSocket.Host = defaultHost
		}
		generate(&ps, s.Bytes, textPayload)
	}
	x, err := proto.Compile(ps)
	if err != nil {
		return nil, fmt.Errorf("connection.send: %w", err)
	}
	out.Exchange = x
	return out, nil
}

// ClientTLS is what every connection's TLS client needs.
type ClientTLS struct {
	// ServerName is the name verified and sent as SNI; empty means each destination's address.
	ServerName string
	// CAPEM is the certificates to trust (connection.tls.ca_file); nil means the system's, or the
	// built-in target's own certificate when Builtin is set.
	CAPEM    []byte
	Insecure bool
	Builtin  bool
}

// Configs is the TLS client configuration of every destination, in order. builtinCert is the
// built-in target's certificate, when Builtin is set.
func (t *ClientTLS) Configs(dsts []dial.Destination, builtinCert []byte) ([]*tls.Config, error) {
	if t == nil {
		return nil, nil
	}
	base := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.Insecure}
	switch {
	case t.Builtin:
		if builtinCert == nil {
			return nil, errors.New("the built-in target's certificate is missing")
		}
		base.RootCAs = x509.NewCertPool()
		base.RootCAs.AppendCertsFromPEM(builtinCert)
	case t.CAPEM != nil:
		base.RootCAs = x509.NewCertPool()
		base.RootCAs.AppendCertsFromPEM(t.CAPEM)
	}
	out := make([]*tls.Config, len(dsts))
	for i, d := range dsts {
		c := base.Clone()
		c.ServerName = t.ServerName
		if c.ServerName == "" {
			c.ServerName = d.AddrPort.Addr().String()
		}
		out[i] = c
	}
	return out, nil
}

// Target is the built-in target: its configuration (listeners on ephemeral loopback ports, kept
// below the client's port range; its side of the server close mode) and whether it serves TLS
// with a certificate made for the run.
type Target struct {
	Config target.Config
	TLS    bool
	// Address is the loopback address it listens on (the certificate names it).
	Address string
}

// TargetProcess is what one built-in target process is given, as JSON on its stdin: its
// configuration and the run's one certificate (every process serves it, so clients trust them all
// alike). Config.TLS is never sent: the process makes it from the PEMs.
type TargetProcess struct {
	Config          target.Config
	CertPEM, KeyPEM []byte
}

// MaxTargetProcess is the largest TargetProcess a target process reads.
const MaxTargetProcess = 1 << 20

// Compile turns a validated, defaulted plan into its spec on a host with facts f. It reports every
// problem it finds at once, each named by its plan key.
func Compile(p *plan.Plan, f Facts) (*Spec, error) {
	s := &Spec{Plan: p, Host: f.Host, Name: p.Name, OutputDir: p.Output.Dir, Interval: p.Output.Interval.D(),
		Ramp: Ramp(p), MaxInFlight: p.Load.MaxInFlight, Drop: p.Load.OnSaturation == "drop",
		MaxConnectRate: float64(p.Load.MaxConnectRate), GracefulStop: p.Load.GracefulStop.D(),
		ConnectTimeout: p.Connection.ConnectTimeout.D(), IOTimeout: p.Connection.IOTimeout.D(), Hold: p.Connection.Hold.D(),
		Addresses: p.Target.Addresses, AllowRemote: p.Target.AllowRemote,
		Calibrate: p.Baseline != nil && p.Baseline.Normalize == plan.NormalizeCalibration,
	}
	var errs []error
	fail := func(key string, err error) {
		if key != "" {
			err = fmt.Errorf("%s: %w", key, err)
		}
		errs = append(errs, err)
	}
	var err error
	if s.Model, err = model(p); err != nil {
		fail("load.model", err)
	}
	if s.Close, err = dial.ParseCloseMode(p.Connection.Close); err != nil {
		fail("connection.close", err)
	}
	if s.Strategy, err = dial.ParseStrategy(p.Source.Ports.Strategy); err != nil {
		fail("source.ports.strategy", err)
	}
	if s.Sources, err = p.Source.SourceAddrs(); err != nil {
		fail("source.addresses", err)
	}
	s.Window = PortWindow(p)
	s.Preflight = Preflight(p)
	if c := p.Connection.OnConnectFailure; !c.Measure {
		s.OnConnectFailure = &engine.FailPolicy{BackoffAfter: c.BackoffAfter, Backoff: c.Backoff.D(), MaxBackoff: c.MaxBackoff.D(),
			MaxFailRate: c.MaxFailRate, GiveUpAfter: c.GiveUpAfter.D(), GiveUpAttempts: c.GiveUpAttempts}
	}
	if s.Send, err = compileSend(p); err != nil {
		fail("", err)
	}
	if s.TLS, err = compileTLS(p); err != nil {
		fail("", err)
	}
	if p.Target.Builtin != nil {
		if s.Target, err = compileTarget(p, s.Close, s.Preflight, f.Host); err != nil {
			fail("", err)
		}
	}
	if p.Search != nil {
		if s.Search, err = compileSearch(p); err != nil {
			fail("", err)
		}
	}
	if p.Isolate {
		s.Isolate = &isolate.Sysctls{}
		if n := p.Netns; n != nil {
			s.Isolate = &isolate.Sysctls{PortRange: n.PortRange, TWReuse: n.TWReuse, MaxTWBuckets: n.MaxTWBuckets,
				TWReuseDelayMS: int(n.TWReuseDelay.D().Milliseconds())}
		}
	}
	s.Layout = PlanLayout(p, f.Host, f.ProcsSet)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// model is load.model.
func model(p *plan.Plan) (schedule.Model, error) {
	if p.Load.Model == "" {
		return engine.Concurrency, nil // a plan not defaulted
	}
	return schedule.ParseModel(p.Load.Model)
}

// PortWindow is the window the plan's strategy draws ports from (source.ports.range), before the
// kernel's range; zero without one.
func PortWindow(p *plan.Plan) dial.Window {
	lo, hi, ok := plan.ParsePortRange(p.Source.Ports.Range)
	if !ok {
		return dial.Window{}
	}
	return dial.Window{Lo: uint16(lo), Hi: uint16(hi)}
}

// Preflight is what the preflight's forecast reads of a validated plan, typed: Compile keeps it in
// the spec, and a caller that forecasts a plan it does not run (portstorm doctor, a Kubernetes
// pod's share) compiles it alone. A strategy or close mode Validate would refuse is forecast as
// the kernel's and fin.
func Preflight(p *plan.Plan) preflight.Load {
	l := preflight.Load{Window: PortWindow(p), ExpectExhaustion: p.Source.Ports.ExpectExhaustion,
		Builtin: p.Target.Builtin != nil, MaxListeners: plan.MaxListeners, Isolate: p.Isolate}
	l.Strategy, _ = dial.ParseStrategy(p.Source.Ports.Strategy)
	l.Close, _ = dial.ParseCloseMode(p.Connection.Close)
	l.Sources, _ = p.Source.SourceAddrs()
	if n := p.Netns; n != nil {
		if lo, hi, ok := plan.ParsePortRange(n.PortRange); ok {
			l.Netns.PortRange = preflight.PortRange{Lo: lo, Hi: hi}
		}
		if v, err := strconv.Atoi(n.TWReuse); err == nil {
			l.Netns.TWReuse, l.Netns.TWReuseSet = v, true
		}
		l.Netns.TWReuseDelay, l.Netns.MaxTWBuckets = n.TWReuseDelay.D(), n.MaxTWBuckets
	}
	l.Peak, l.Rate = Demand(p)
	return l
}

// Demand is the plan's most concurrent connections and its churn in connections/s (0 unknown).
func Demand(p *plan.Plan) (peak int64, rate float64) {
	l := p.Load
	m, _ := model(p)
	top := l.Start
	for _, s := range l.Stages {
		top = max(top, s.Target)
	}
	life := p.Connection.Hold.D()
	switch s := p.Connection.Send; {
	case s == nil:
	case s.Count == plan.Unlimited:
		// The hold is the time it sends; without one it sends until the run (or its slot) ends.
		if life == 0 && m != engine.Arrival {
			return int64(math.Floor(top)), 0
		}
	case s.Count > 1 && s.Rate > 0:
		life += time.Duration(float64(s.Count-1) / s.Rate * float64(time.Second))
	case s.Count > 1:
		life += time.Duration(s.Count-1) * s.Interval.D()
	}
	if m == engine.Arrival {
		rate = top
		peak = int64(math.Ceil(top * life.Seconds()))
		if l.MaxInFlight > 0 {
			peak = min(peak, int64(l.MaxInFlight))
		}
		return max(peak, 1), rate
	}
	peak = int64(math.Floor(top))
	if life > 0 {
		rate = float64(peak) / life.Seconds()
	}
	if r := float64(l.MaxConnectRate); r > 0 && (rate == 0 || r < rate) {
		rate = r
	}
	return peak, rate
}

// Ramp is the plan's load stages as a schedule.
func Ramp(p *plan.Plan) schedule.Ramp {
	r := schedule.Ramp{Start: p.Load.Start, Stages: make([]schedule.Stage, len(p.Load.Stages))}
	for i, st := range p.Load.Stages {
		r.Stages[i] = schedule.Stage{Duration: st.Duration.D(), Target: st.Target}
	}
	return r
}

func compileSend(p *plan.Plan) (*Send, error) {
	s := p.Connection.Send
	if s == nil {
		return nil, nil
	}
	out := &Send{Count: int(s.Count), Unlimited: s.Count == plan.Unlimited, Interval: s.Interval.D(), Rate: s.Rate,
		Pipeline: max(s.Pipeline, 1)}
	if out.Unlimited {
		out.Count = 0
	}
	switch {
	case s.TotalRate > 0:
		// Held for the whole of the load stages.
		out.TotalRate = &schedule.Ramp{Start: s.TotalRate, Stages: []schedule.Stage{{Duration: Ramp(p).Total(), Target: s.TotalRate}}}
	case len(s.RateStages) > 0:
		r := schedule.Ramp{Stages: make([]schedule.Stage, len(s.RateStages))}
		for i, st := range s.RateStages {
			r.Stages[i] = schedule.Stage{Duration: st.Duration.D(), Target: st.Target}
		}
		out.TotalRate = &r
	}
	ps := proto.Spec{MaxResponse: int(s.MaxResponse)}
	switch s.Protocol {
	case "http":
		h := s.HTTP
		ps.Protocol = proto.HTTP
		ps.HTTP = proto.HTTPSpec{Method: h.Method, Path: h.Path, Host: h.Host, Body: []byte(h.Body), ExpectStatus: h.Status}
		if ps.HTTP.Host == "" && len(p.Target.Addresses) > 0 {
			// The first destination as the plan wrote it: a name stays a name.
			ps.HTTP.Host = p.Target.Addresses[0]
		}
		for _, hd := range h.Headers {
			name, value, _ := strings.Cut(hd, ":")
			ps.HTTP.Headers = append(ps.HTTP.Headers, proto.Header{Name: strings.TrimSpace(name), Value: strings.TrimSpace(value)})
		}
	case "redis":
		ps.Protocol = proto.Redis
		ps.Redis = proto.RedisSpec{Command: s.Redis.Command, Expect: s.Redis.Reply}
	case "websocket":
		payload, err := s.Payload()
		if err != nil {
			return nil, err
		}
		if payload == nil {
			// Generated by Engine in each process, as raw requests' bytes are: random bytes in
			// the spec would make its hash differ on every host that compiles the plan.
			out.Bytes = int(s.Bytes)
		}
		w := s.WebSocket
		if w == nil {
			w = &plan.WebSocket{}
		}
		ps.Protocol, ps.Payload = proto.WebSocket, payload
		ps.WebSocket = proto.WebSocketSpec{Path: w.Path, Host: w.Host, Subprotocol: w.Subprotocol, Binary: w.Message == "binary"}
		if ps.WebSocket.Host == "" && len(p.Target.Addresses) > 0 {
			ps.WebSocket.Host = p.Target.Addresses[0]
		}
		for _, hd := range w.Headers {
			name, value, _ := strings.Cut(hd, ":")
			ps.WebSocket.Headers = append(ps.WebSocket.Headers, proto.Header{Name: strings.TrimSpace(name), Value: strings.TrimSpace(value)})
		}
		switch s.Expect {
		case "echo":
			ps.Expect, ps.WebSocket.Echo = payload, true
		case "reply":
			ps.Expect = []byte(s.Reply)
		}
	default:
		payload, err := s.Payload()
		if err != nil {
			return nil, err
		}
		if payload == nil {
			out.Generated, out.Bytes, out.Echo = true, int(s.Bytes), s.Expect == "echo"
			return out, nil
		}
		ps.Protocol, ps.Payload = proto.Raw, payload
		switch s.Expect {
		case "echo":
			ps.Protocol = proto.Echo
		case "reply":
			ps.Expect = []byte(s.Reply)
		}
	}
	// Compiled once here so that a bad exchange is a plan error; the engine's own copy is compiled
	// again once the default Host is known.
	probe := ps
	if probe.Protocol == proto.HTTP && probe.HTTP.Host == "" {
		probe.HTTP.Host = "localhost"
	}
	if probe.Protocol == proto.WebSocket {
		if probe.WebSocket.Host == "" {
			probe.WebSocket.Host = "localhost"
		}
		generate(&probe, out.Bytes, func(n int) []byte { return make([]byte, n) })
	}
	if _, err := proto.Compile(probe); err != nil {
		return nil, fmt.Errorf("connection.send: %w", err)
	}
	out.Exchange = ps
	return out, nil
}

// generate gives a websocket exchange with no payload of its own n bytes made by make (and, for an
// echo, expects them back).
func generate(ps *proto.Spec, n int, make func(int) []byte) {
	if len(ps.Payload) > 0 || n < 1 {
		return
	}
	ps.Payload = make(n)
	if ps.WebSocket.Echo {
		ps.Expect = ps.Payload
	}
}

// textPayload is n random letters and digits: a generated websocket message, valid as text (a
// text message must be UTF-8, which random bytes are not) and, random, proof that an echo
// returned these bytes and not any.
func textPayload(n int) []byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[rand.IntN(len(alphabet))]
	}
	return b
}

// compileTLS: the server name defaults to the target's host name when the plan names one target by
// name (so that its certificate verifies although connections go to resolved addresses), else to
// each destination's address.
func compileTLS(p *plan.Plan) (*ClientTLS, error) {
	t := p.Connection.TLS
	builtin := p.Target.Builtin != nil && p.Target.Builtin.TLS
	if t == nil && !builtin {
		return nil, nil
	}
	if t == nil {
		t = &plan.TLS{}
	}
	out := &ClientTLS{ServerName: t.ServerName, Insecure: t.Insecure, Builtin: builtin}
	if !builtin && t.CAFile != "" {
		pem, err := plan.ReadFile(t.CAFile, plan.MaxCAFile)
		if err != nil {
			return nil, fmt.Errorf("connection.tls.ca_file: %w", err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("connection.tls.ca_file: %s holds no PEM certificate", t.CAFile)
		}
		out.CAPEM = pem
	}
	if out.ServerName == "" {
		out.ServerName = HostName(p.Target.Addresses)
	}
	return out, nil
}

// compileTarget is the built-in target's configuration: one ephemeral loopback listener per
// target.builtin.listeners, kept below the client's port range (a listening port inside it is a
// port no client can use), and the target's side of close: server (it closes first, after
// answering).
func compileTarget(p *plan.Plan, closeMode dial.CloseMode, load preflight.Load, h preflight.Host) (*Target, error) {
	b := p.Target.Builtin
	mode, err := target.ParseMode(b.Mode)
	if err != nil {
		return nil, fmt.Errorf("target.builtin.mode: %w", err)
	}
	addr := b.Address
	if addr == "" {
		addr = "127.0.0.1"
	}
	listen := make([]string, max(b.Listeners, 1))
	for i := range listen {
		listen[i] = net.JoinHostPort(addr, "0")
	}
	cfg := target.Config{
		Listen: listen, Mode: mode, IdleTimeout: b.IdleTimeout.D(), MaxFrame: int(b.MaxFrame), MaxConns: b.MaxConns,
		HTTPStatus: b.HTTPStatus, HeaderTimeout: b.HeaderTimeout.D(),
		// Held connections are still open when the target accepts them: its early read would find
		// nothing (docs/architecture.md, the built-in target).
		ClientsHold: p.Connection.Hold.D() > 0,
	}
	below := preflight.SysctlRange(load, h).Lo
	if w := load.Window; w.Lo > 0 && int(w.Lo) < below {
		below = int(w.Lo)
	}
	cfg.PortBelow = below
	if closeMode == dial.CloseServer {
		cfg.CloseFirst = true
		if s := p.Connection.Send; s != nil {
			n, err := s.RequestBytes()
			if err != nil {
				return nil, err
			}
			cfg.CloseAfter = n * int64(s.Count) // never unlimited: Validate refuses close: server with it
		}
	}
	return &Target{Config: cfg, TLS: b.TLS, Address: addr}, nil
}

// PlanLayout decides the processes: load.workers and target.builtin.processes when set, otherwise
// enough processes that each holds its share of the plan's peak under the open-files limit; and
// how the cores are shared when the target runs apart, unless the user set GOMAXPROCS (procsSet),
// which every process then keeps.
func PlanLayout(p *plan.Plan, h preflight.Host, procsSet bool) Layout {
	peak, _ := Demand(p)
	limit := h.FDHard
	if limit <= 0 {
		limit = 1 << 20
	}
	per := max(limit-FDHeadroom, 1000)
	need := int((peak + per - 1) / per)
	l := Layout{Workers: int(p.Load.Workers)}
	if l.Workers == 0 {
		l.Workers = max(need, 1)
	}
	tprocs := 0 // target.builtin.procs_per_process
	if b := p.Target.Builtin; b != nil {
		tprocs = b.ProcsPerProcess
		switch {
		case b.Processes > 0:
			l.Targets = int(b.Processes)
		case l.Workers > 1 || 2*peak > per:
			l.Targets = max(need, 1)
		case tprocs > 0:
			// Its own GOMAXPROCS needs a process of its own.
			l.Targets = 1
		}
	}
	l.Why = fmt.Sprintf("fd limit %d, peak %d connections: %d worker process(es)", limit, peak, l.Workers)
	if l.Targets > 0 {
		l.Why += fmt.Sprintf(", built-in target in %d process(es)", l.Targets)
		switch {
		case !procsSet:
			l.GenProcs, l.TargetProcs = CPUShares(h.Cores, l.Workers, l.Targets)
			if tprocs > 0 {
				l.TargetProcs = tprocs
			}
			l.Why += fmt.Sprintf("; %d cores: GOMAXPROCS %d per generator process, %d per target process", h.Cores, l.GenProcs, l.TargetProcs)
		case tprocs > 0:
			// GOMAXPROCS set in the environment is kept by the generator's processes; the plan's
			// own setting for the target's wins there.
			l.TargetProcs = tprocs
			l.Why += fmt.Sprintf("; GOMAXPROCS %d per target process (target.builtin.procs_per_process)", l.TargetProcs)
		}
	}
	return l
}

// CPUShares splits cores between the generator's processes and the built-in target's, when the
// target runs as processes of its own: half the cores to each side (the generator gets the odd
// one), each side's share divided among its processes, at least one each. Without the split every
// process would run as many Ps as the machine has cores, and Go's scheduler, with hundreds of
// goroutines over several Ps and every P busy, checks the network poller late (sysmon, every
// 10 ms at worst) and steals work unevenly: 300 echo connections measured p99 6.4 ms with both
// sides in one process at GOMAXPROCS 2, 3.3 ms (and 19% more messages) as two processes at
// GOMAXPROCS 1 each (bench/run echo). One P per process per core is nginx's worker model.
func CPUShares(cores, workers, targets int) (gen, tgt int) {
	cores = max(cores, 1)
	tgtCores := max(cores/2, 1)
	genCores := max(cores-tgtCores, 1)
	return max(genCores/max(workers, 1), 1), max(tgtCores/max(targets, 1), 1)
}

// HostName is the host name of the plan's one target, or "" when there are several or it is an
// address.
func HostName(addrs []string) string {
	if len(addrs) != 1 {
		return ""
	}
	host, _, err := net.SplitHostPort(addrs[0])
	if err != nil {
		return ""
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return ""
	}
	return host
}

// PacingFloor calibrates the arrival pacing of this machine before the run (about 25 ms), for the
// lateness warnings; the concurrency model has no schedule to be late for.
func (s *Spec) PacingFloor() time.Duration {
	if s.Model != engine.Arrival {
		return 0
	}
	return engine.PacingFloor()
}
