package plan

import (
	"encoding/hex"
	"fmt"
	"math"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits Validate enforces (docs/architecture.md "Safety rules": plans are capped in size, stages in number, durations in
// length).
const (
	MaxListeners   = 64
	MaxTargetProcs = 1024                       // target.builtin.procs_per_process
	MaxIOTimeout   = Duration(10 * time.Minute) // connect_timeout and io_timeout
	MaxSendBytes   = Size(16 << 20)
	MaxSendCount   = 1_000_000
	MaxStages      = 100
	MaxStage       = Duration(24 * time.Hour)
	MaxTotal       = Duration(7 * 24 * time.Hour) // all stages together
	MaxTarget      = 10_000_000                   // concurrent connections, or connections per second
	MaxInFlight    = 10_000_000
	MinConnectRate = 0.001                            // load.max_connect_rate: one connection per 1000 s, the limiter's finest step
	MaxConnectRate = MaxTarget                        // load.max_connect_rate, per second
	MinInterval    = Duration(100 * time.Millisecond) // output.interval
	MaxInterval    = Duration(time.Hour)
	maxHold        = Duration(24 * time.Hour) // hold and builtin.idle_timeout
	maxPause       = Duration(time.Hour)      // send.interval and graceful_stop
	maxNameLength  = 64
	// connection.send.rate and total_rate (and rate_stages' targets), requests per second: from one
	// request per 1000 s to more than any one machine sends.
	MinRequestRate = 0.001
	MaxRequestRate = 100_000_000
	// MaxPipeline caps connection.send.pipeline, the requests outstanding on one connection.
	MaxPipeline = 4096
	minBackoff  = Duration(time.Millisecond) // on_connect_failure's backoffs and give_up_after

	MaxBackoffAfter   = 1_000_000
	MaxGiveUpAttempts = 1_000_000_000
	maxHostnameLen    = 253
)

var (
	nameRE     = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	hostnameRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	portRE     = regexp.MustCompile(`^[0-9]{1,5}$`)
	rangeRE    = regexp.MustCompile(`^([0-9]{1,5})-([0-9]{1,5})$`)
	// tokenRE is an HTTP token (RFC 9110 section 5.6.2): a method or a header name.
	tokenRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
)

// The accepted words of each enumerated field.
var (
	Modes      = []string{"echo", "sink", "hold", "close", "rst", "http", "websocket"}
	Strategies = []string{"kernel", "bind-no-port", "bind", "range", "explicit"}
	Expects    = []string{"echo", "reply", "none"}
	Protocols  = []string{"raw", "http", "redis", "websocket"}
	// Messages are the kinds of a websocket message.
	Messages    = []string{"text", "binary"}
	CloseModes  = []string{"fin", "rst", "half", "server"}
	Models      = []string{"concurrency", "arrival"}
	Saturations = []string{"queue", "drop"}
	TWReuses    = []string{"0", "1", "2"}
	// Dimensions are what a search may search (docs/search.md).
	Dimensions = []string{"arrival_rate", "concurrency", "request_rate"}
	// Normalizes are baseline.normalize's words.
	Normalizes   = []string{NormalizeCalibration}
	rangeNeeders = []string{"range", "explicit"}
)

// enums maps each enumerated setting to its words above, for shell completion (Values). A test
// checks it against what Validate accepts.
var enums = map[string][]string{
	"target.builtin.mode":               Modes,
	"source.ports.strategy":             Strategies,
	"connection.send.expect":            Expects,
	"connection.send.protocol":          Protocols,
	"connection.send.websocket.message": Messages,
	"connection.close":                  CloseModes,
	"load.model":                        Models,
	"load.on_saturation":                Saturations,
	"netns.tw_reuse":                    TWReuses,
	"search.dimension":                  Dimensions,
	"baseline.normalize":                Normalizes,
}

// Validate reports every problem with the plan at once, each a *FieldError naming the field, its
// file:line (or the override that set it) and what would be accepted. It checks values, not
// presence of defaults: a zero value that Defaults would fill passes, so Validate gives the same
// verdict before and after Defaults, except for the name, which Defaults takes from the file name.
func (p *Plan) Validate() []error {
	c := &checker{p: p}
	c.version()
	c.name()
	c.target()
	c.source()
	c.connection()
	c.load()
	c.thresholds()
	c.baseline()
	c.output()
	c.isolation()
	c.linuxOnly()
	c.search()
	return c.errs
}

type checker struct {
	p    *Plan
	errs []error
}

func (c *checker) fail(path, format string, args ...any) {
	if c.p.Undecoded(path) {
		return // the strict pass reported this field
	}
	c.errs = append(c.errs, c.p.ErrorAt(path, fmt.Sprintf(format, echoArgs(args)...)))
}

// ErrorAt places a problem at path: at its override, or its line, or failing that the nearest
// enclosing field that has one (a missing key is reported where its mapping starts). Validate and
// the threshold gate's own checks place their problems with it alike.
func (p *Plan) ErrorAt(path, msg string) *FieldError {
	e := &FieldError{File: p.File, Field: path, Msg: msg}
	for q := path; ; q = parentPath(q) {
		if o, ok := p.Origins[q]; ok {
			e.Origin = o
			break
		}
		if l := p.Lines[q]; l > 0 {
			e.Line = l
			break
		}
		if q == "" {
			break
		}
	}
	return e
}

func (c *checker) version() {
	_, written := c.p.Lines["version"]
	switch v := c.p.Version; {
	case v == 0 && !written:
		c.fail("version", "missing; want version: %d as the first line", SchemaVersion)
	case v != SchemaVersion:
		c.fail("version", "unsupported schema version %d; this build reads version %d", v, SchemaVersion)
	}
}

func (c *checker) name() {
	switch n := c.p.Name; {
	case n == "":
		c.fail("name", "missing; want 1 to %d letters, digits, '.', '_' or '-'", maxNameLength)
	case !nameRE.MatchString(n):
		c.fail("name", "want 1 to %d letters, digits, '.', '_' or '-', got %q", maxNameLength, n)
	}
}

func (c *checker) target() {
	t := c.p.Target
	switch {
	case t.Builtin != nil && len(t.Addresses) > 0:
		c.fail("target", "set target.builtin or target.addresses, not both (--set target.builtin=null or target.addresses=null removes one)")
	case t.Builtin == nil && len(t.Addresses) == 0:
		c.fail("target", "set one of target.builtin (portstorm's own target, e.g. {mode: echo}) or target.addresses (a list of host:port)")
	}
	if b := t.Builtin; b != nil {
		c.oneOf("target.builtin.mode", b.Mode, Modes)
		if b.MaxConns < 0 {
			c.fail("target.builtin.max_conns", "want 0 (no cap) or a positive number, got %d", b.MaxConns)
		}
		if b.Listeners < 0 || b.Listeners > MaxListeners {
			c.fail("target.builtin.listeners", "want 1 to %d, got %d", MaxListeners, b.Listeners)
		}
		if b.ProcsPerProcess < 0 || b.ProcsPerProcess > MaxTargetProcs {
			c.fail("target.builtin.procs_per_process", "want 0 (half the cores) or 1 to %d, got %d", MaxTargetProcs, b.ProcsPerProcess)
		}
		c.duration("target.builtin.idle_timeout", b.IdleTimeout, 0, maxHold)
		c.duration("target.builtin.header_timeout", b.HeaderTimeout, 0, maxHold)
		if b.HeaderTimeout != 0 && orDefault(b.Mode, DefaultMode) != "http" {
			c.fail("target.builtin.header_timeout", "only the http mode reads request heads; the mode is %s", orDefault(b.Mode, DefaultMode))
		}
		if a, err := netip.ParseAddr(b.Address); b.Address != "" && (err != nil || !a.IsLoopback()) {
			c.fail("target.builtin.address", "want a loopback address (127.0.0.1, another of 127.0.0.0/8, or ::1), got %q", b.Address)
		}
		if b.HTTPStatus != 0 && (b.HTTPStatus < 200 || b.HTTPStatus > 599) {
			c.fail("target.builtin.http_status", "want a status from 200 to 599, got %d", b.HTTPStatus)
		}
		if b.HTTPStatus != 0 && orDefault(b.Mode, DefaultMode) != "http" {
			c.fail("target.builtin.http_status", "only the http mode answers with a status; the mode is %s", orDefault(b.Mode, DefaultMode))
		}
		if b.MaxFrame < 0 || b.MaxFrame > MaxSendBytes {
			c.fail("target.builtin.max_frame", "want 1B to %s, got %s", MaxSendBytes, b.MaxFrame)
		}
	}
	for i, a := range t.Addresses {
		if msg := checkHostPort(a); msg != "" {
			c.fail(fmt.Sprintf("target.addresses[%d]", i), "%s", msg)
		}
	}
}

// checkHostPort returns what is wrong with a destination address, or "".
func checkHostPort(a string) string {
	const want = "want host:port like 127.0.0.1:6379, [::1]:80 or db.example:5432"
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Sprintf("%s, got %q", want, a)
	}
	if host == "" {
		return fmt.Sprintf("%s; the host is missing in %q", want, a)
	}
	if _, err := netip.ParseAddr(host); err != nil && (len(host) > maxHostnameLen || !hostnameRE.MatchString(host)) {
		return fmt.Sprintf("%s; %q is neither an IP address nor a host name", want, host)
	}
	if n, err := strconv.Atoi(port); !portRE.MatchString(port) || err != nil || n < 1 || n > 65535 {
		return fmt.Sprintf("%s; the port must be a number from 1 to 65535, got %q", want, port)
	}
	return ""
}

func (c *checker) source() {
	s := c.p.Source
	valid := true
	for i, a := range s.Addresses {
		_, errA := netip.ParseAddr(a)
		_, errP := netip.ParsePrefix(a)
		if errA != nil && errP != nil {
			c.fail(fmt.Sprintf("source.addresses[%d]", i), "want an IP address or a CIDR prefix (127.0.0.2, 127.0.0.0/24, ::1), got %q", a)
			valid = false
		}
	}
	if valid && len(s.Addresses) > 0 {
		if _, err := s.SourceAddrs(); err != nil {
			c.fail("source.addresses", "%v", err)
		}
	}
	strategy := s.Ports.Strategy
	c.oneOf("source.ports.strategy", strategy, Strategies)
	needsRange := slices.Contains(rangeNeeders, strategy)
	switch r := s.Ports.Range; {
	case r == "" && needsRange:
		c.fail("source.ports.range", `required by the %s strategy; want "lo-hi" like "40000-40999"`, strategy)
	case r != "" && !needsRange && slices.Contains(Strategies, orDefault(strategy, DefaultStrategy)):
		c.fail("source.ports.range", "only the range and explicit strategies use a port range; the strategy is %s", orDefault(strategy, DefaultStrategy))
	case r != "":
		if _, _, ok := ParsePortRange(r); !ok {
			c.fail("source.ports.range", `want "lo-hi" with 1 <= lo <= hi <= 65535, like "40000-40999", got %q`, r)
		}
	}
}

// ParsePortRange reads "lo-hi" with 1 <= lo <= hi <= 65535.
func ParsePortRange(r string) (lo, hi int, ok bool) {
	m := rangeRE.FindStringSubmatch(r)
	if m == nil {
		return 0, 0, false
	}
	lo, _ = strconv.Atoi(m[1])
	hi, _ = strconv.Atoi(m[2])
	return lo, hi, 1 <= lo && lo <= hi && hi <= 65535
}

func (c *checker) connection() {
	cn := c.p.Connection
	c.timeout("connection.connect_timeout", cn.ConnectTimeout)
	c.timeout("connection.io_timeout", cn.IOTimeout)
	c.duration("connection.hold", cn.Hold, 0, maxHold)
	c.oneOf("connection.close", cn.Close, CloseModes)
	c.tls()
	c.onConnectFailure()
	s := cn.Send
	if s == nil {
		return
	}
	if s.Count != Unlimited && (s.Count < 0 || s.Count > MaxSendCount) {
		c.fail("connection.send.count", `want 1 to %d requests per connection, or "unlimited", got %d`, MaxSendCount, s.Count)
	}
	c.duration("connection.send.interval", s.Interval, 0, maxPause)
	c.sendRate(s)
	if s.MaxResponse < 0 || s.MaxResponse > MaxSendBytes {
		c.fail("connection.send.max_response", "want 1B to %s, got %s", MaxSendBytes, s.MaxResponse)
	}
	c.oneOf("connection.send.protocol", s.Protocol, Protocols)
	protocol := orDefault(s.Protocol, "raw")
	if s.HTTP != nil && protocol != "http" {
		c.fail("connection.send.http", "only the http protocol sends an HTTP request; want protocol: http, or no http block")
	}
	if s.Redis != nil && protocol != "redis" {
		c.fail("connection.send.redis", "only the redis protocol sends a Redis command; want protocol: redis, or no redis block")
	}
	if s.WebSocket != nil {
		c.oneOf("connection.send.websocket.message", s.WebSocket.Message, Messages)
	}
	if s.WebSocket != nil && protocol != "websocket" {
		c.fail("connection.send.websocket", "only the websocket protocol upgrades; want protocol: websocket, or no websocket block")
	}
	if protocol != "raw" && protocol != "websocket" {
		for _, f := range []struct{ path, v string }{{"data", s.Data}, {"hex", s.Hex}, {"file", s.File}, {"reply", s.Reply}} {
			if f.v != "" {
				c.fail("connection.send."+f.path, "only raw and websocket requests use it; the protocol is %s", protocol)
			}
		}
	}
	b := c.p.Target.Builtin
	mode := ""
	if b != nil {
		mode = orDefault(b.Mode, DefaultMode)
	}
	switch protocol {
	case "raw":
		c.rawSend(s, mode, "echo")
	case "websocket":
		c.rawSend(s, mode, "websocket")
		if b != nil && mode != "websocket" {
			c.fail("connection.send.protocol", "websocket needs a WebSocket server, but the built-in target runs in %s mode; want target.builtin.mode: websocket", mode)
		}
		if c.p.Connection.Close == "server" {
			c.fail("connection.close", "a websocket connection ends with the closing handshake, after which the client closes; want close: fin, rst or half")
		}
		if w := s.WebSocket; w != nil {
			c.webSocket(w)
		}
	case "http":
		if b != nil && c.p.Connection.Close == "server" {
			c.fail("connection.close", "the built-in http target closes only when asked; want close: fin, or the header \"Connection: close\"")
		}
		if b != nil && mode != "http" {
			c.fail("connection.send.protocol", "http needs an HTTP server, but the built-in target runs in %s mode; want target.builtin.mode: http", mode)
		}
		if s.HTTP != nil {
			c.httpRequest(s.HTTP)
		}
	case "redis":
		if b != nil {
			c.fail("connection.send.protocol", "redis needs a Redis server in target.addresses; the built-in target does not speak RESP")
		}
		if r := s.Redis; r != nil {
			for i, a := range r.Command {
				if i == 0 && a == "" {
					c.fail("connection.send.redis.command", "the command name is empty; want a list like [PING] or [GET, key]")
				}
			}
		}
	}
}

// sendRate checks the keys of requests at a rate (docs/measurements.md "Requests at a rate"):
// rate, total_rate and rate_stages, count: unlimited, pipeline, and how they combine.
func (c *checker) sendRate(s *Send) {
	badRate := func(r float64) bool { return math.IsNaN(r) || r != 0 && (r < MinRequestRate || r > MaxRequestRate) }
	if badRate(s.Rate) || s.Rate < 0 {
		c.fail("connection.send.rate", "want %v to %d requests per second per connection, got %v", MinRequestRate, MaxRequestRate, s.Rate)
	}
	if badRate(s.TotalRate) || s.TotalRate < 0 {
		c.fail("connection.send.total_rate", "want %v to %d requests per second across the connections, got %v", MinRequestRate, MaxRequestRate, s.TotalRate)
	}
	if s.Rate != 0 && s.TotalRate != 0 {
		c.fail("connection.send.total_rate", "rate (per connection) and total_rate (across the connections) are both set; want one of them")
	}
	if len(s.RateStages) > 0 {
		if s.Rate != 0 || s.TotalRate != 0 {
			c.fail("connection.send.rate_stages", "ramp the total rate with rate_stages, or hold it with total_rate (or a per-connection rate): want one of them")
		}
		c.rateStages(s.RateStages)
	}
	// A request_rate search sets total_rate at each probe's level (docs/search.md).
	rated := s.Rated() || c.p.SearchesRequests()
	if rated && s.Interval != 0 {
		c.fail("connection.send.interval", "interval is think time after each answer (closed loop), a rate paces requests whatever the answers (open loop); want one of them")
	}
	if s.Count == Unlimited {
		switch {
		case !rated:
			c.fail("connection.send.count", "unlimited needs a rate to pace its requests; want rate, total_rate or rate_stages, or a number of requests")
		case c.p.Load.Model == "arrival" && c.p.Connection.Hold == 0:
			c.fail("connection.send.count", "under the arrival model an unlimited connection would send until the run ends, and arrivals would pile up; want connection.hold (the time each connection sends)")
		}
		if c.p.Connection.Close == "server" {
			c.fail("connection.close", "the server closes after the requests' bytes, and count: unlimited has no end to count; want close: fin, rst or half")
		}
	}
	if s.Pipeline < 0 || s.Pipeline > MaxPipeline {
		c.fail("connection.send.pipeline", "want 1 to %d requests outstanding per connection, got %d", MaxPipeline, s.Pipeline)
	}
	if s.Pipeline > 1 {
		if s.Interval != 0 {
			c.fail("connection.send.pipeline", "interval waits after each answer, which a window of requests does not; want pipeline: 1, or no interval")
		}
		if p := orDefault(s.Protocol, "raw"); (p == "raw" || p == "websocket") && c.rawExpect(s) == "none" {
			c.fail("connection.send.pipeline", "expect: none reads no answer, so no request is ever outstanding; want pipeline: 1, or expect: echo or reply")
		}
		if h := s.HTTP; h != nil && orDefault(s.Protocol, "raw") == "http" {
			for _, hd := range h.Headers {
				name, value, _ := strings.Cut(hd, ":")
				if strings.EqualFold(strings.TrimSpace(name), "Connection") && strings.Contains(strings.ToLower(value), "close") {
					c.fail("connection.send.pipeline", "the requests ask the server to close after its first answer (Connection: close), which drops the rest of the window; want pipeline: 1")
				}
			}
		}
	}
}

// rawExpect is the expect of a raw request after Defaults.
func (c *checker) rawExpect(s *Send) string {
	switch b := c.p.Target.Builtin; {
	case s.Expect != "":
		return s.Expect
	case s.Reply != "":
		return "reply"
	case b != nil && orDefault(b.Mode, DefaultMode) == "echo" && orDefault(s.Protocol, "raw") == "raw":
		return "echo"
	case b != nil && orDefault(b.Mode, DefaultMode) == "websocket" && s.Protocol == "websocket":
		return "echo"
	}
	return "none"
}

// rateStages checks connection.send.rate_stages: like load.stages, and no longer than them (a
// request intended after the run's end would never be sent).
func (c *checker) rateStages(stages []Stage) {
	if len(stages) > MaxStages {
		c.fail("connection.send.rate_stages", "want at most %d stages, got %d", MaxStages, len(stages))
		return
	}
	var total, load time.Duration
	rises := false
	for i, st := range stages {
		path := fmt.Sprintf("connection.send.rate_stages[%d]", i)
		if st.Duration <= 0 || st.Duration > MaxStage {
			c.fail(path+".duration", "want more than 0s and at most %s, got %s", short(MaxStage), st.Duration)
		} else {
			total += st.Duration.D()
		}
		if math.IsNaN(st.Target) || st.Target < 0 || st.Target > MaxRequestRate {
			c.fail(path+".target", "want 0 to %d requests per second across the connections, got %v", MaxRequestRate, st.Target)
		}
		rises = rises || st.Target > 0
	}
	for _, st := range c.p.Load.Stages {
		load += st.Duration.D()
	}
	if !rises {
		c.fail("connection.send.rate_stages", "the rate never rises above zero; want a stage with a target above 0")
	}
	if load > 0 && total > load {
		c.fail("connection.send.rate_stages", "the rate stages last %s, the load stages %s: requests intended after the run's end would never be sent; want rate stages no longer than the load stages", Duration(total), Duration(load))
	}
}

// Rated reports whether the requests are paced by a rate (open loop) rather than by the answers.
func (s *Send) Rated() bool { return s.Rate != 0 || s.TotalRate != 0 || len(s.RateStages) > 0 }

// rawSend checks a raw (or websocket) request: where its bytes come from, and what answer it
// expects; echoMode is the built-in target's mode that echoes it.
func (c *checker) rawSend(s *Send, mode, echoMode string) {
	if s.Bytes < 0 || s.Bytes > MaxSendBytes {
		c.fail("connection.send.bytes", "want 1B to %s, got %s", MaxSendBytes, s.Bytes)
	}
	var given []string
	for _, f := range []struct{ name, v string }{{"data", s.Data}, {"hex", s.Hex}, {"file", s.File}} {
		if f.v != "" {
			given = append(given, f.name)
		}
	}
	if len(given) > 1 {
		c.fail("connection.send."+given[1], "give the request once: %s are both set; want one of data, hex or file", strings.Join(given, " and "))
	}
	if s.Hex != "" {
		if _, err := hex.DecodeString(strings.Join(strings.Fields(s.Hex), "")); err != nil {
			c.fail("connection.send.hex", "want pairs of hexadecimal digits (spaces allowed), like \"2a 31 0d 0a\": %v", err)
		}
	}
	if s.File != "" {
		// Read, not only looked at, so that a file the run could not read fails here, before
		// the run makes its results folder.
		switch b, err := ReadFile(s.File, int64(MaxSendBytes)); {
		case err != nil:
			c.fail("connection.send.file", "cannot read the request file (want 1B to %s of request): %v", MaxSendBytes, err)
		case len(b) == 0:
			c.fail("connection.send.file", "want 1B to %s of request, %s is empty", MaxSendBytes, echoPath(s.File))
		}
	}
	c.oneOf("connection.send.expect", s.Expect, Expects)
	switch {
	case s.Expect == "reply" && s.Reply == "":
		c.fail("connection.send.reply", "expect: reply needs the reply to compare with; want reply: \"+OK\\r\\n\" or similar")
	case s.Reply != "" && s.Expect != "" && s.Expect != "reply":
		c.fail("connection.send.expect", "a reply is given but expect is %s; want expect: reply, or no reply", s.Expect)
	}
	if s.Expect == "echo" && mode != "" && mode != echoMode {
		c.fail("connection.send.expect", "echo needs a target that echoes, but the built-in target runs in %s mode; want expect: none, or target.builtin.mode: %s", mode, echoMode)
	}
}

// webSocket checks connection.send.websocket: the upgrade request and the message kind.
func (c *checker) webSocket(w *WebSocket) {
	if w.Path != "" && (!strings.HasPrefix(w.Path, "/") || strings.IndexFunc(w.Path, func(r rune) bool { return r <= ' ' || r >= 0x7f }) >= 0) {
		c.fail("connection.send.websocket.path", "want a path starting with / and without spaces, like /chat?room=1, got %q", w.Path)
	}
	if strings.IndexFunc(w.Host, func(r rune) bool { return r <= ' ' || r >= 0x7f }) >= 0 {
		c.fail("connection.send.websocket.host", "want a host like example.com or 127.0.0.1:8080, got %q", w.Host)
	}
	if w.Subprotocol != "" && !tokenRE.MatchString(w.Subprotocol) {
		c.fail("connection.send.websocket.subprotocol", "want one token like chat or graphql-ws, got %q", w.Subprotocol)
	}
	for i, hd := range w.Headers {
		path := fmt.Sprintf("connection.send.websocket.headers[%d]", i)
		name, value, ok := strings.Cut(hd, ":")
		lower := strings.ToLower(name)
		switch {
		case !ok || !tokenRE.MatchString(name):
			c.fail(path, "want \"Name: value\" like \"Origin: http://example.com\", got %q", hd)
		case strings.ContainsAny(value, "\r\n"):
			c.fail(path, "a header value cannot hold a line break, got %q", hd)
		case lower == "host":
			c.fail(path, "Host is set by portstorm (use websocket.host)")
		case lower == "upgrade" || lower == "connection" || strings.HasPrefix(lower, "sec-websocket-"):
			c.fail(path, "%s is the opening handshake's own (a subprotocol is websocket.subprotocol)", name)
		}
	}
}

// onConnectFailure checks connection.on_connect_failure; zero values pass (Defaults fills them).
func (c *checker) onConnectFailure() {
	const path = "connection.on_connect_failure"
	f := c.p.Connection.OnConnectFailure
	if f.Measure {
		for _, k := range []struct {
			name string
			set  bool
		}{{"backoff_after", f.BackoffAfter != 0}, {"backoff", f.Backoff != 0}, {"max_backoff", f.MaxBackoff != 0},
			{"max_fail_rate", f.MaxFailRate != 0}, {"give_up_after", f.GiveUpAfter != 0}, {"give_up_attempts", f.GiveUpAttempts != 0}} {
			if k.set {
				c.fail(path+"."+k.name, "measure: true makes every connect however many fail, so %s would go unused; want one of them", k.name)
			}
		}
		return
	}
	if f.BackoffAfter < 0 || f.BackoffAfter > MaxBackoffAfter {
		c.fail(path+".backoff_after", "want 1 to %d refused connects in a row, got %d", MaxBackoffAfter, f.BackoffAfter)
	}
	if d := f.Backoff; d != 0 && (d < minBackoff || d > maxPause) {
		c.fail(path+".backoff", "want %s to %s, got %s", short(minBackoff), short(maxPause), d)
	}
	if d := f.MaxBackoff; d != 0 && (d < minBackoff || d > maxPause) {
		c.fail(path+".max_backoff", "want %s to %s, got %s", short(minBackoff), short(maxPause), d)
	} else if d != 0 && f.Backoff != 0 && d < f.Backoff {
		c.fail(path+".max_backoff", "want at least backoff (%s), got %s", f.Backoff, d)
	}
	if r := f.MaxFailRate; r < 0 || r > MaxTarget || math.IsNaN(r) {
		c.fail(path+".max_fail_rate", "want a number of failed connects per second above 0, at most %d, got %v", MaxTarget, r)
	}
	if d := f.GiveUpAfter; d != 0 && (d < minBackoff || d > maxHold) {
		c.fail(path+".give_up_after", "want %s to %s, got %s", short(minBackoff), short(maxHold), d)
	}
	if n := f.GiveUpAttempts; n < 0 || n > MaxGiveUpAttempts {
		c.fail(path+".give_up_attempts", "want 1 to %d failed connects, got %d", MaxGiveUpAttempts, n)
	}
}

// httpRequest checks what ends up on the request line and in the headers: nothing that could
// split the request (CR, LF) and nothing a server must refuse.
func (c *checker) httpRequest(h *HTTPRequest) {
	if h.Method != "" && !tokenRE.MatchString(h.Method) {
		c.fail("connection.send.http.method", "want a method like GET, POST or HEAD, got %q", h.Method)
	}
	if h.Path != "" && (!strings.HasPrefix(h.Path, "/") || strings.ContainsAny(h.Path, " \r\n\t")) {
		c.fail("connection.send.http.path", "want a path starting with / and without spaces, like /health?x=1, got %q", h.Path)
	}
	if strings.ContainsAny(h.Host, " \r\n\t") {
		c.fail("connection.send.http.host", "want a host like example.com or 127.0.0.1:8080, got %q", h.Host)
	}
	for i, hd := range h.Headers {
		name, value, ok := strings.Cut(hd, ":")
		switch {
		case !ok || !tokenRE.MatchString(name):
			c.fail(fmt.Sprintf("connection.send.http.headers[%d]", i), "want \"Name: value\" like \"Accept: */*\", got %q", hd)
		case strings.ContainsAny(value, "\r\n"):
			c.fail(fmt.Sprintf("connection.send.http.headers[%d]", i), "a header value cannot hold a line break, got %q", hd)
		case strings.EqualFold(name, "Content-Length") || strings.EqualFold(name, "Transfer-Encoding") || strings.EqualFold(name, "Host"):
			c.fail(fmt.Sprintf("connection.send.http.headers[%d]", i), "%s is set by portstorm (use http.host or http.body)", name)
		}
	}
	if h.Status != 0 && (h.Status < 100 || h.Status > 599) {
		c.fail("connection.send.http.status", "want a status from 100 to 599 (or none for any 2xx), got %d", h.Status)
	}
}

// tls checks connection.tls against the target: the built-in target's certificate is made for
// the run, so it needs no ca_file, and it serves TLS only when told to.
func (c *checker) tls() {
	t := c.p.Connection.TLS
	b := c.p.Target.Builtin
	if b != nil && b.TLS {
		switch m := orDefault(b.Mode, DefaultMode); m {
		case "close", "rst":
			c.fail("target.builtin.tls", "the %s mode closes before any handshake; want a mode that serves (echo, sink, hold, http)", m)
		}
	}
	if t == nil {
		return
	}
	if t.Insecure && t.CAFile != "" {
		c.fail("connection.tls.insecure", "insecure skips verification, so ca_file would go unused; want one of them")
	}
	if b != nil {
		if !b.TLS {
			c.fail("connection.tls", "the built-in target does not serve TLS; want target.builtin.tls: true")
		} else if t.CAFile != "" {
			c.fail("connection.tls.ca_file", "the built-in target's certificate is made for the run and trusted without a ca_file")
		}
	}
	if t.CAFile != "" && b == nil && !t.Insecure {
		// Read and parsed as the run will, so that a CA file the run would refuse fails here,
		// before the run makes its results folder.
		if data, err := ReadFile(t.CAFile, MaxCAFile); err != nil {
			c.fail("connection.tls.ca_file", "cannot read the CA file: %v", err)
		} else if err := checkCA(t.CAFile, data); err != nil {
			c.fail("connection.tls.ca_file", "%v", err)
		}
	}
	if strings.ContainsAny(t.ServerName, " \r\n\t/") {
		c.fail("connection.tls.server_name", "want a host name like example.com, got %q", t.ServerName)
	}
}

func (c *checker) load() {
	l := c.p.Load
	c.oneOf("load.model", l.Model, Models)
	if badTarget(l.Start) {
		c.fail("load.start", "want 0 to %d %s, got %v", MaxTarget, l.targetUnit(), l.Start)
	}
	if c.p.Search == nil {
		c.stages(l)
	}
	if l.MaxInFlight < 0 || l.MaxInFlight > MaxInFlight {
		c.fail("load.max_in_flight", "want 1 to %d, got %d", MaxInFlight, l.MaxInFlight)
	}
	c.oneOf("load.on_saturation", l.OnSaturation, Saturations)
	// 0 is unlimited (ParseRate reads only "unlimited" as 0). A rate outside the range would not
	// be the rate asked for: the engine's limiter counts connections per 1000 s in an int.
	if r := float64(l.MaxConnectRate); r != 0 && !(r >= MinConnectRate && r <= MaxConnectRate) {
		c.fail("load.max_connect_rate", `want "unlimited" or a number from %v to %d per second, got %v`, MinConnectRate, MaxConnectRate, r)
	}
	c.duration("load.graceful_stop", l.GracefulStop, 0, maxPause)
}

// badTarget reports a load target outside 0..MaxTarget (NaN included).
func badTarget(f float64) bool { return math.IsNaN(f) || f < 0 || f > MaxTarget }

// targetUnit is what a stage target counts under the model.
func (l Load) targetUnit() string {
	if l.Model == "arrival" {
		return "connections per second"
	}
	return "concurrent connections"
}

func (c *checker) stages(l Load) {
	switch n := len(l.Stages); {
	case n == 0:
		c.fail("load.stages", "want at least one stage, like - {duration: 10s, target: 100}")
	case n > MaxStages:
		c.fail("load.stages", "want at most %d stages, got %d", MaxStages, n)
		return // not one message per stage of a runaway list
	}
	var total time.Duration
	rises, allValid := l.Start > 0, !badTarget(l.Start)
	for i, s := range l.Stages {
		path := fmt.Sprintf("load.stages[%d]", i)
		if s.Duration <= 0 || s.Duration > MaxStage {
			c.fail(path+".duration", "want more than 0s and at most %s, got %s", short(MaxStage), s.Duration)
		} else {
			total += s.Duration.D() // at most 100 stages of at most 24h: no overflow
		}
		if badTarget(s.Target) {
			c.fail(path+".target", "want 0 to %d %s, got %v", MaxTarget, l.targetUnit(), s.Target)
			allValid = false
		}
		rises = rises || s.Target > 0
	}
	if total > MaxTotal.D() {
		c.fail("load.stages", "the stages last %s together; the limit is %s (7 days)", Duration(total), short(MaxTotal))
	}
	if len(l.Stages) > 0 && allValid && !rises {
		c.fail("load.stages", "the load never rises above zero; want a stage with a target above 0")
	}
}

func (c *checker) thresholds() {
	for i, t := range c.p.Thresholds {
		path := fmt.Sprintf("thresholds[%d]", i)
		switch {
		case strings.TrimSpace(t.Expr) == "":
			c.fail(path+".expr", `empty; want an expression like "connect.p99 < 5ms"`)
		case !printable(t.Expr):
			c.fail(path+".expr", "want one line of printable text, got %q", t.Expr)
		}
		c.duration(path+".delay", t.Delay, 0, MaxTotal)
	}
}

func (c *checker) baseline() {
	b := c.p.Baseline
	if b == nil {
		return
	}
	switch {
	case strings.TrimSpace(b.File) == "":
		c.fail("baseline.file", "empty; want the path of a previous summary.json, like results/baseline/quickstart.json")
	case !printable(b.File):
		c.fail("baseline.file", "want one line of printable text, got %q", b.File)
	}
	if r := float64(b.MaxRegression); r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		c.fail("baseline.max_regression", "want a percentage of 0%% or more, like 10%%, got %s", b.MaxRegression)
	}
	c.oneOf("baseline.normalize", b.Normalize, Normalizes)
}

func (c *checker) output() {
	o := c.p.Output
	switch dir := filepath.ToSlash(o.Dir); {
	case !printable(dir):
		c.fail("output.dir", "want one line of printable text, got %q", o.Dir)
	case filepath.IsAbs(o.Dir) || strings.HasPrefix(dir, "/"):
		c.fail("output.dir", "want a path relative to the working directory, like results, got %q", o.Dir)
	case slices.Contains(strings.Split(dir, "/"), ".."):
		c.fail("output.dir", `want a path inside the working directory, without ".." elements, got %q`, o.Dir)
	}
	if iv := o.Interval; iv != 0 && (iv < MinInterval || iv > MaxInterval) {
		c.fail("output.interval", "want %s to %s, got %s", short(MinInterval), short(MaxInterval), iv)
	}
}

func (c *checker) isolation() {
	p := c.p
	if p.Isolate && p.Target.Builtin == nil {
		c.fail("isolate", "a private network namespace has only its own loopback, so target.addresses cannot be reached from it; want target.builtin, or isolate: false")
	}
	n := p.Netns
	if n == nil {
		return
	}
	if !p.Isolate {
		c.fail("netns", "sets sysctls of the run's private network namespace and needs isolate: true (or the --netns flag); portstorm never changes the host's sysctls")
	}
	if n.PortRange != "" {
		if lo, _, ok := ParsePortRange(n.PortRange); !ok || lo < 1024 {
			c.fail("netns.port_range", `want "lo-hi" with 1024 <= lo <= hi <= 65535, like "40000-40999", got %q`, n.PortRange)
		}
	}
	c.oneOf("netns.tw_reuse", n.TWReuse, TWReuses)
	c.duration("netns.tw_reuse_delay", n.TWReuseDelay, 0, Duration(time.Minute))
	if d := n.TWReuseDelay; d != 0 && d < Duration(time.Millisecond) {
		c.fail("netns.tw_reuse_delay", "want 1ms to 1m, got %s", d)
	}
	if n.MaxTWBuckets < 0 {
		c.fail("netns.max_tw_buckets", "want 0 (the namespace's default) or more, got %d", n.MaxTWBuckets)
	}
}

// goos is the system plans are checked for: runtime.GOOS, set by tests to check another's rules.
var goos = runtime.GOOS

// linuxOnly refuses, off Linux, what rests on Linux interfaces: network namespaces (isolate,
// netns), IP_BIND_ADDRESS_NO_PORT (bind-no-port) and IP_LOCAL_PORT_RANGE (range). Run anyway,
// they would fail at start or on every connect.
func (c *checker) linuxOnly() {
	if goos == "linux" {
		return
	}
	p := c.p
	if p.Isolate {
		c.fail("isolate", "a private network namespace needs Linux (this is %s); want isolate: false", goos)
	}
	if p.Netns != nil {
		c.fail("netns", "the sysctls of a private network namespace need Linux (this is %s); remove netns", goos)
	}
	switch p.Source.Ports.Strategy {
	case "bind-no-port":
		c.fail("source.ports.strategy", "bind-no-port needs Linux (IP_BIND_ADDRESS_NO_PORT; this is %s); want kernel, bind or explicit", goos)
	case "range":
		c.fail("source.ports.strategy", "range needs Linux 6.3 or later (IP_LOCAL_PORT_RANGE; this is %s); want explicit with the same range", goos)
	}
}

// oneOf checks an enumerated field; "" passes, since Defaults fills it.
func (c *checker) oneOf(path, v string, accepted []string) {
	if v != "" && !slices.Contains(accepted, v) {
		c.fail(path, "want one of %s, got %q", strings.Join(accepted, ", "), v)
	}
}

// timeout checks connect_timeout and io_timeout: above zero (zero means the default), at most 10m.
func (c *checker) timeout(path string, d Duration) {
	if d < 0 || d > MaxIOTimeout {
		c.fail(path, "want more than 0s and at most %s, got %s", short(MaxIOTimeout), d)
	}
}

// duration checks lo <= d <= hi.
func (c *checker) duration(path string, d, lo, hi Duration) {
	if d < lo || d > hi {
		c.fail(path, "want %s to %s, got %s", short(lo), short(hi), d)
	}
}

// cmp returns v, or def when v is unset.
func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// printable reports whether s is valid UTF-8 made of printable characters (spaces allowed, no tabs
// or line breaks): free-text fields end up in file names, reports and terminals.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// short renders a limit for messages without trailing zero units: "24h", "10m", not "24h0m0s".
func short(d Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
