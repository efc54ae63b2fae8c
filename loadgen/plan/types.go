// Package plan holds portstorm's YAML test plan: its types, strict loading with file:line errors,
// environment and --set overrides layered over the file (override.go), defaults, and Validate.
package plan

import "time"

// SchemaVersion is the only plan schema this build reads.
const SchemaVersion = 1

// Plan is a resolved test plan (schema v1). Zero values mean "use the default"; Defaults fills them.
type Plan struct {
	Version    int         `yaml:"version" json:"version"`
	Name       string      `yaml:"name" json:"name"`
	Target     Target      `yaml:"target" json:"target"`
	Source     Source      `yaml:"source" json:"source"`
	Connection Connection  `yaml:"connection" json:"connection"`
	Load       Load        `yaml:"load" json:"load"`
	Thresholds []Threshold `yaml:"thresholds" json:"thresholds,omitempty"`
	Baseline   *Baseline   `yaml:"baseline" json:"baseline,omitempty"`
	Output     Output      `yaml:"output" json:"output"`
	// Search, when set, makes the plan a capacity search (portstorm search): the load stages are
	// the search's probes, one level each, instead of load.stages.
	Search *Search `yaml:"search" json:"search,omitempty"`
	// Isolate runs the generator and the built-in target in a private network namespace (as the
	// --netns flag does): the port space, TIME_WAIT state and kernel counters belong to the run alone.
	Isolate bool `yaml:"isolate" json:"isolate,omitempty"`
	// Netns sets sysctls of the private namespace; it needs isolate (or --netns).
	Netns *Netns `yaml:"netns" json:"netns,omitempty"`

	// File is the path the plan was read from ("" for plans built in code).
	File string `yaml:"-" json:"-"`
	// Lines maps a field path ("load.stages[1].target") to the line it came from, so that Validate
	// can name file:line. Overridden fields map to 0 and are named by their override instead.
	Lines map[string]int `yaml:"-" json:"-"`
	// Origins maps a field path to the override that set it ("--set load.model", "env PORTSTORM_LOAD_MODEL").
	Origins map[string]string `yaml:"-" json:"-"`
	// undecoded lists the fields the strict pass could not decode (see Undecoded).
	undecoded []string
}

// Target says what to connect to: portstorm's built-in target, or real servers.
type Target struct {
	// Builtin, when set, starts portstorm's own target on ephemeral loopback ports for the run.
	Builtin *Builtin `yaml:"builtin" json:"builtin,omitempty"`
	// Addresses are host:port destinations, used round-robin. Exclusive with Builtin.
	Addresses []string `yaml:"addresses" json:"addresses,omitempty"`
	// AllowRemote permits non-loopback destinations (the --allow-remote flag is needed as well).
	AllowRemote bool `yaml:"allow_remote" json:"allow_remote,omitempty"`
}

// Builtin configures the built-in target started by the run.
type Builtin struct {
	// Mode is echo, sink, hold, close (FIN right after accept), rst (RST right after accept),
	// http (a small fixed response to every request, keep-alive) or websocket (an RFC 6455 echo
	// server: every message back, pings answered, the closing handshake).
	Mode string `yaml:"mode" json:"mode"`
	// Listeners is how many listening ports to open (default 1); connections spread round-robin.
	Listeners int `yaml:"listeners" json:"listeners"`
	// IdleTimeout closes a connection that sends nothing for this long (default 60s).
	IdleTimeout Duration `yaml:"idle_timeout" json:"idle_timeout"`
	// MaxFrame is the largest read the target buffers and echoes at once (default 64KiB).
	MaxFrame Size `yaml:"max_frame" json:"max_frame"`
	// Processes is how many target processes share the listeners with SO_REUSEPORT ("auto", the
	// default: enough to stay under each process's open-files limit).
	Processes Count `yaml:"processes" json:"processes"`
	// ProcsPerProcess is the GOMAXPROCS of each target process: the cores it may use at once (0, the
	// default: half the cores to the target's processes, half to the generator's, see
	// spec.CPUShares). Setting it runs the target as processes of its own (at least one), where
	// processes: auto would have kept it inside the generator.
	ProcsPerProcess int `yaml:"procs_per_process" json:"procs_per_process,omitempty"`
	// MaxConns caps the connections each target process holds at once; beyond it a connection is
	// reset at once and counted (0: no cap).
	MaxConns int `yaml:"max_conns" json:"max_conns,omitempty"`
	// HTTPStatus is the status the http mode answers with (default 200).
	HTTPStatus int `yaml:"http_status" json:"http_status,omitempty"`
	// TLS serves TLS with a certificate generated for the run; clients trust it without ca_file.
	TLS bool `yaml:"tls" json:"tls,omitempty"`
	// Address is the loopback address the target listens on (default 127.0.0.1; ::1 for IPv6).
	Address string `yaml:"address" json:"address,omitempty"`
	// HeaderTimeout, in http mode, closes a connection whose request head is not complete this long
	// after its first byte, however steadily the bytes come (0: the target's default, 10s).
	HeaderTimeout Duration `yaml:"header_timeout" json:"header_timeout,omitempty"`
}

// Source says where connections come from.
type Source struct {
	// Addresses are local source IPs (default: none, the kernel picks).
	Addresses []string `yaml:"addresses" json:"addresses,omitempty"`
	Ports     Ports    `yaml:"ports" json:"ports"`
}

// Ports selects how local ports are chosen.
type Ports struct {
	// Strategy is kernel (default), bind-no-port, bind, range or explicit.
	Strategy string `yaml:"strategy" json:"strategy"`
	// Range is "lo-hi", used by the range and explicit strategies.
	Range string `yaml:"range" json:"range,omitempty"`
	// ExpectExhaustion says the plan means to run the local ports out: the preflight reports the
	// forecast instead of refusing the plan, and the exhaustion is the finding.
	ExpectExhaustion bool `yaml:"expect_exhaustion" json:"expect_exhaustion,omitempty"`
}

// Netns holds the sysctls set inside the run's private network namespace (never on the host).
// Zero values leave the namespace's own defaults.
type Netns struct {
	// PortRange is net.ipv4.ip_local_port_range, "lo-hi".
	PortRange string `yaml:"port_range" json:"port_range,omitempty"`
	// TWReuse is net.ipv4.tcp_tw_reuse: "0" off, "1" on, "2" loopback only (the kernel default).
	TWReuse string `yaml:"tw_reuse" json:"tw_reuse,omitempty"`
	// TWReuseDelay is net.ipv4.tcp_tw_reuse_delay, how old a TIME_WAIT socket must be to be reused.
	TWReuseDelay Duration `yaml:"tw_reuse_delay" json:"tw_reuse_delay,omitempty"`
	// MaxTWBuckets is net.ipv4.tcp_max_tw_buckets; beyond it TIME_WAIT sockets are not kept.
	MaxTWBuckets int `yaml:"max_tw_buckets" json:"max_tw_buckets,omitempty"`
}

// Connection is the lifecycle every connection runs.
type Connection struct {
	// ConnectTimeout bounds connect() (default 3s).
	ConnectTimeout Duration `yaml:"connect_timeout" json:"connect_timeout"`
	// IOTimeout bounds every read and write after connect (default 5s).
	IOTimeout Duration `yaml:"io_timeout" json:"io_timeout"`
	// Send, when set, writes requests after connect and reads the answers.
	Send *Send `yaml:"send" json:"send,omitempty"`
	// Hold keeps the connection open after the last request; with send.count: unlimited it is the
	// time the connection sends, the first connection of each slot sending for a part of it so the
	// slots do not all reconnect together (docs/measurements.md "Requests at a rate").
	Hold Duration `yaml:"hold" json:"hold"`
	// Close is fin (default), rst (SO_LINGER 0), half (shutdown write, wait for the peer) or server.
	Close string `yaml:"close" json:"close"`
	// TLS, when set, runs a TLS handshake after connect; its time is the tls_handshake latency.
	TLS *TLS `yaml:"tls" json:"tls,omitempty"`
	// OnConnectFailure is what the run does when connects fail at the target's side.
	OnConnectFailure OnConnectFailure `yaml:"on_connect_failure" json:"on_connect_failure"`
}

// OnConnectFailure says what a run does when connects are refused, unreachable or time out: back
// off from the destination, cap its failures per second, and stop the run (exit 3) when nothing
// was ever established. Zero values take the defaults, unless Measure is set.
type OnConnectFailure struct {
	// Measure says the plan means to measure failing connects (refusals, unreachables, timeouts):
	// every scheduled connect is made, without backoff, cap or give-up.
	Measure bool `yaml:"measure" json:"measure,omitempty"`
	// BackoffAfter is how many refused or unreachable connects in a row to one destination start
	// its backoff (default 3).
	BackoffAfter int `yaml:"backoff_after" json:"backoff_after,omitempty"`
	// Backoff is the first pause between connects to a destination backing off, doubled with every
	// further failure up to MaxBackoff (defaults 10ms and 1s). One connect goes out per pause; the
	// first to succeed ends the backoff.
	Backoff    Duration `yaml:"backoff" json:"backoff,omitempty"`
	MaxBackoff Duration `yaml:"max_backoff" json:"max_backoff,omitempty"`
	// MaxFailRate caps the failed connects per second to each destination (default 1000).
	MaxFailRate float64 `yaml:"max_fail_rate" json:"max_fail_rate,omitempty"`
	// GiveUpAfter and GiveUpAttempts stop the run when nothing was ever established this long after
	// the first failed connect, or after this many failed connects (defaults 2s and 1000).
	GiveUpAfter    Duration `yaml:"give_up_after" json:"give_up_after,omitempty"`
	GiveUpAttempts int      `yaml:"give_up_attempts" json:"give_up_attempts,omitempty"`
}

// Send describes the requests written on each connection and the answers expected.
type Send struct {
	// Protocol is raw (bytes; the default), http (HTTP/1.1 requests, keep-alive), redis (a RESP
	// command) or websocket (RFC 6455: an upgrade after connect, then messages of the raw keys'
	// bytes, checked by expect like raw ones, and the closing handshake at the connection's end;
	// docs/measurements.md "WebSocket").
	Protocol string `yaml:"protocol" json:"protocol,omitempty"`
	// Bytes is the size of one raw request of generated bytes (default 64B), when neither data,
	// hex nor file gives the request.
	Bytes Size `yaml:"bytes" json:"bytes"`
	// Data is a raw request as text, Hex the same as hexadecimal digits, File a file holding it
	// (relative to the plan's directory). At most one of them.
	Data string `yaml:"data" json:"data,omitempty"`
	Hex  string `yaml:"hex" json:"hex,omitempty"`
	File string `yaml:"file" json:"file,omitempty"`
	// Count is how many requests per connection (default 1), or "unlimited": with a rate, the
	// connection sends until its hold ends (hold is then the time it spends sending, and it holds
	// idle no more), its slot is ramped down, or the run stops (docs/measurements.md "Requests at a
	// rate").
	Count SendCount `yaml:"count" json:"count"`
	// Interval is the pause between requests: think time after each answer (closed loop).
	// Exclusive with rate, total_rate and rate_stages.
	Interval Duration `yaml:"interval" json:"interval"`
	// Rate is requests per second per connection, open loop (tcpkali --message-rate): request i of
	// a connection is intended at its start (established, after any TLS handshake) + i/rate,
	// whether or not earlier answers came, and its latency counts from then (request_intended).
	Rate float64 `yaml:"rate" json:"rate,omitempty"`
	// TotalRate is requests per second across all the connections open at each moment (wrk2 -R):
	// the run's intended request times are spread round-robin over the sending connections.
	TotalRate float64 `yaml:"total_rate" json:"total_rate,omitempty"`
	// RateStages ramp the total rate linearly from 0 like load.stages (k6 ramping-arrival-rate),
	// from the run's start; after the last one no request is intended. Exclusive with rate and
	// total_rate.
	RateStages []Stage `yaml:"rate_stages" json:"rate_stages,omitempty"`
	// Pipeline is how many requests may be outstanding on one connection (default 1: request,
	// answer, next request). A rated request whose time comes while the window is full is written
	// late, and its wait counts in window_wait.
	Pipeline int `yaml:"pipeline" json:"pipeline,omitempty"`
	// Expect, for raw and websocket requests, is echo (read the request back and compare), reply (read back
	// exactly the bytes of reply and compare) or none (write only). Default: reply when reply is
	// set, echo when the built-in target runs in echo mode (websocket: in websocket mode), none
	// otherwise.
	Expect string `yaml:"expect" json:"expect"`
	// Reply is the raw answer expected, as text.
	Reply string `yaml:"reply" json:"reply,omitempty"`
	// HTTP is the request of the http protocol; Redis the command of the redis protocol.
	HTTP  *HTTPRequest  `yaml:"http" json:"http,omitempty"`
	Redis *RedisCommand `yaml:"redis" json:"redis,omitempty"`
	// WebSocket is the opening handshake and the message kind of the websocket protocol.
	WebSocket *WebSocket `yaml:"websocket" json:"websocket,omitempty"`
	// MaxResponse caps the bytes read for one answer, headers included (default 1MiB); a longer
	// one ends the connection as bad_response.
	MaxResponse Size `yaml:"max_response" json:"max_response,omitempty"`
}

// HTTPRequest is one HTTP/1.1 request, sent count times on each connection (keep-alive).
type HTTPRequest struct {
	// Method is the request method (default GET).
	Method string `yaml:"method" json:"method,omitempty"`
	// Path is the request target (default "/").
	Path string `yaml:"path" json:"path,omitempty"`
	// Host is the Host header (default: the destination's host:port as written in the plan).
	Host string `yaml:"host" json:"host,omitempty"`
	// Headers are extra request headers, each "Name: value".
	Headers []string `yaml:"headers" json:"headers,omitempty"`
	// Body is the request body (Content-Length is added).
	Body string `yaml:"body" json:"body,omitempty"`
	// Status is the status every response must have (default: any 2xx); another one ends the
	// connection as status_mismatch.
	Status int `yaml:"status" json:"status,omitempty"`
}

// RedisCommand is one Redis command, sent count times on each connection.
type RedisCommand struct {
	// Command is the command and its arguments (default [PING]).
	Command []string `yaml:"command" json:"command,omitempty"`
	// Reply is the reply expected, as text: a simple or bulk string, or an integer (default: PONG
	// for PING, otherwise any reply that is not an error).
	Reply string `yaml:"reply" json:"reply,omitempty"`
}

// WebSocket is the opening handshake (RFC 6455 section 4.1) of every connection of the websocket
// protocol, and the kind of its messages. With connection.tls it is wss.
type WebSocket struct {
	// Path is the request target of the upgrade request (default "/"); a query is allowed.
	Path string `yaml:"path" json:"path,omitempty"`
	// Host is the Host header (default: the destination's host:port as written in the plan).
	Host string `yaml:"host" json:"host,omitempty"`
	// Headers are extra upgrade request headers, each "Name: value" (Origin, Authorization...).
	// Host, Upgrade, Connection and Sec-WebSocket-* are the handshake's own.
	Headers []string `yaml:"headers" json:"headers,omitempty"`
	// Subprotocol is offered in Sec-WebSocket-Protocol; the server must select it, or the
	// connection fails as reply_mismatch (default: none offered).
	Subprotocol string `yaml:"subprotocol" json:"subprotocol,omitempty"`
	// Message is text or binary (default text, binary when the request is given as hex or file).
	// Generated requests (bytes) are random letters and digits, valid text.
	Message string `yaml:"message" json:"message,omitempty"`
}

// TLS makes every connection a TLS client after connect.
type TLS struct {
	// ServerName is the name verified in the server's certificate and sent as SNI (default: the
	// destination's host).
	ServerName string `yaml:"server_name" json:"server_name,omitempty"`
	// CAFile is a PEM file of the certificate authorities to trust (default: the system's, or the
	// built-in target's own certificate).
	CAFile string `yaml:"ca_file" json:"ca_file,omitempty"`
	// Insecure skips certificate verification (for tests; never with ca_file).
	Insecure bool `yaml:"insecure" json:"insecure,omitempty"`
}

// Load is the load model.
type Load struct {
	// Model is concurrency (keep N connections open) or arrival (open N connections per second).
	Model string `yaml:"model" json:"model"`
	// Start is the target at time zero, before the first stage ramps from it (default 0); in a
	// request_rate search, the connections held through every probe (docs/search.md).
	Start float64 `yaml:"start" json:"start"`
	// Stages ramp the target linearly, k6 style.
	Stages []Stage `yaml:"stages" json:"stages"`
	// MaxInFlight caps open connections under the arrival model (default 20000).
	MaxInFlight int `yaml:"max_in_flight" json:"max_in_flight"`
	// OnSaturation is queue (start late; the delay shows in connect_intended) or drop (count it).
	OnSaturation string `yaml:"on_saturation" json:"on_saturation"`
	// MaxConnectRate caps new connections per second under the concurrency model (default unlimited).
	MaxConnectRate Rate `yaml:"max_connect_rate" json:"max_connect_rate"`
	// Workers is how many worker processes run the plan, each one segment ("auto", the default:
	// enough to stay under each process's open-files limit).
	Workers Count `yaml:"workers" json:"workers"`
	// GracefulStop is how long in-flight connections may finish after the last stage or a signal
	// (default 5s).
	GracefulStop Duration `yaml:"graceful_stop" json:"graceful_stop"`
}

// Stage is one linear ramp of the load target.
type Stage struct {
	Duration Duration `yaml:"duration" json:"duration"`
	// Target is concurrent connections (concurrency model) or connections per second (arrival).
	Target float64 `yaml:"target" json:"target"`
}

// Threshold is one pass/fail condition over a summary metric.
type Threshold struct {
	Expr        string   `yaml:"expr" json:"expr"`
	AbortOnFail bool     `yaml:"abort_on_fail" json:"abort_on_fail,omitempty"`
	Delay       Duration `yaml:"delay" json:"delay,omitempty"`
}

// Search is a capacity search (docs/search.md): the level of one load dimension is grown
// geometrically while probes hold the plan's thresholds, then bisected between the highest level
// that held and the lowest that failed until the two are within Tolerance, and the answer is
// confirmed by one longer probe.
type Search struct {
	// Dimension is what is searched: arrival_rate (connections per second, load.model arrival),
	// concurrency (concurrent connections, load.model concurrency) or request_rate (requests per
	// second across the connections load.start holds: each probe's connection.send.total_rate, with
	// count: unlimited and no rate of the plan's own). Default: the load model's.
	Dimension string `yaml:"dimension" json:"dimension"`
	// Min and Max bound the levels tried (required); the search starts at Min.
	Min float64 `yaml:"min" json:"min"`
	Max float64 `yaml:"max" json:"max"`
	// Growth multiplies the level after every probe that held, until one fails (default 2).
	Growth float64 `yaml:"growth" json:"growth"`
	// Probe is how long each probe holds its level (default 10s).
	Probe Duration `yaml:"probe" json:"probe"`
	// Settle is the quiet time between probes, once the last probe's connections have all closed,
	// for the target to work off what it left (default 2s).
	Settle Duration `yaml:"settle" json:"settle"`
	// Confirm is the length of the probe that confirms the answer (default 3 x probe).
	Confirm Duration `yaml:"confirm" json:"confirm"`
	// Tolerance is how close the highest level that held and the lowest that failed must be, as a
	// share of the first (default 5%).
	Tolerance Percent `yaml:"tolerance" json:"tolerance"`
	// Require is the level the answer must reach for the search to pass (exit 0); 0: none.
	Require float64 `yaml:"require" json:"require,omitempty"`
	// MaxProbes and MaxTime bound the search, the confirming probe included (defaults 20, 10m).
	MaxProbes int      `yaml:"max_probes" json:"max_probes"`
	MaxTime   Duration `yaml:"max_time" json:"max_time"`
}

// Baseline names a previous summary to compare against.
type Baseline struct {
	File          string  `yaml:"file" json:"file"`
	MaxRegression Percent `yaml:"max_regression" json:"max_regression"`
	// Metrics are the compared metrics, named as in thresholds ("connect.p99", "outcomes.EOF");
	// empty means the gate's declared default set. Counts compare exactly, the rest within
	// MaxRegression.
	Metrics []string `yaml:"metrics" json:"metrics,omitempty"`
	// Normalize, "calibration", compares the figures that move with the host's speed (latencies,
	// achieved rates) as multiples of each run's calibration unit: portstorm measures a fixed
	// loopback reference before the run (summary.json's calibration), so a baseline made on one
	// machine holds on a slower or faster one (docs/results.md, "Baselines across machines").
	// Empty: figures compared as measured.
	Normalize string `yaml:"normalize" json:"normalize,omitempty"`
}

// NormalizeCalibration is baseline.normalize's one value.
const NormalizeCalibration = "calibration"

// Output says where results go.
type Output struct {
	// Dir is the parent folder of result folders (default "results").
	Dir string `yaml:"dir" json:"dir"`
	// Interval is the snapshot interval (default 1s).
	Interval Duration `yaml:"interval" json:"interval"`
}

// Duration is a time.Duration written with units ("10s", "250ms").
type Duration time.Duration

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Size is a byte count written with units ("64B", "1KiB", "2MiB") or as a bare integer.
type Size int64

// Rate is a positive rate per second; 0 means unlimited ("unlimited" in YAML).
type Rate float64

// SendCount is requests per connection: a positive integer, or Unlimited ("unlimited" in YAML).
type SendCount int

// Unlimited is the SendCount of "count: unlimited".
const Unlimited SendCount = -1

// Count is a number of processes: a positive integer, or 0 for "auto" (portstorm decides).
type Count int

// Percent is a ratio written as "10%" (stored as 0.10).
type Percent float64
