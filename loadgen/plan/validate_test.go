package plan

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestValidateReportsEveryProblem(t *testing.T) {
	src := `version: 1
name: three
target:
  builtin: {mode: echo, listeners: 65}
load:
  model: arrival
  stages:
    - {duration: 10s, target: 100}
  on_saturation: wait
output: {dir: ../up}
`
	p, err := Parse("three.yaml", []byte(src), Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	p.Defaults()
	errs := p.Validate()
	want := []string{
		"three.yaml:4: target.builtin.listeners: want 1 to 64, got 65",
		`three.yaml:9: load.on_saturation: want one of queue, drop, got "wait"`,
		`three.yaml:10: output.dir: want a path inside the working directory, without ".." elements, got "../up"`,
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(want), errors.Join(errs...))
	}
	for i, w := range want {
		if errs[i].Error() != w {
			t.Errorf("error %d:\n got %s\nwant %s", i, errs[i], w)
		}
		var fe *FieldError
		if !errors.As(errs[i], &fe) {
			t.Errorf("error %d is %T, want *FieldError", i, errs[i])
		}
	}
}

// validPlan is a minimal plan built in code, already defaulted.
func validPlan() *Plan {
	p := &Plan{
		Version: 1,
		Name:    "code",
		Target:  Target{Builtin: &Builtin{}},
		Load:    Load{Stages: []Stage{{Duration(time.Second), 10}}},
	}
	p.Defaults()
	return p
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(p *Plan)
		field string // "" when the plan is valid
		msg   string
	}{
		{"valid", func(p *Plan) {}, "", ""},
		{"name with a space", func(p *Plan) { p.Name = "a b" }, "name", "letters, digits"},
		{"name too long", func(p *Plan) { p.Name = strings.Repeat("n", 65) }, "name", "1 to 64"},
		{"no target", func(p *Plan) { p.Target.Builtin = nil }, "target", "set one of"},
		{"unknown mode", func(p *Plan) { p.Target.Builtin.Mode = "https" }, "target.builtin.mode", "echo, sink, hold, close, rst, http, websocket"},
		{"address without port", func(p *Plan) { p.Target = Target{Addresses: []string{"10.0.0.1"}} }, "target.addresses[0]", "host:port"},
		{"address port zero", func(p *Plan) { p.Target = Target{Addresses: []string{"h:0"}} }, "target.addresses[0]", "1 to 65535"},
		{"address with a name", func(p *Plan) { p.Target = Target{Addresses: []string{"db.internal:5432"}} }, "", ""},
		{"address bad host", func(p *Plan) { p.Target = Target{Addresses: []string{"a b:80"}} }, "target.addresses[0]", "neither"},
		{"source CIDR", func(p *Plan) {
			p.Source.Addresses = []string{"127.0.0.0/24", "::1"}
			p.Source.Ports.Strategy = "bind-no-port"
		}, "", ""},
		{"source pool too big", func(p *Plan) {
			p.Source.Addresses = []string{"127.0.0.0/8"}
			p.Source.Ports.Strategy = "bind-no-port"
		}, "source.addresses", "127.0.0.0/22"},
		{"kernel with a source address", func(p *Plan) { p.Source.Addresses = []string{"127.0.0.2"} }, "", ""},
		{"isolate with the built-in target", func(p *Plan) { p.Isolate = true }, "", ""},
		{"isolate with addresses", func(p *Plan) { p.Isolate = true; p.Target = Target{Addresses: []string{"127.0.0.1:7"}} }, "isolate", "target.builtin"},
		{"netns without isolate", func(p *Plan) { p.Netns = &Netns{PortRange: "40000-40999"} }, "netns", "isolate: true"},
		{"netns range", func(p *Plan) { p.Isolate = true; p.Netns = &Netns{PortRange: "40000-40999", TWReuse: "0"} }, "", ""},
		{"netns range too low", func(p *Plan) { p.Isolate = true; p.Netns = &Netns{PortRange: "80-90"} }, "netns.port_range", "1024 <= lo"},
		{"netns tw_reuse", func(p *Plan) { p.Isolate = true; p.Netns = &Netns{TWReuse: "3"} }, "netns.tw_reuse", "0, 1, 2"},
		{"netns reuse delay", func(p *Plan) { p.Isolate = true; p.Netns = &Netns{TWReuseDelay: Duration(2 * time.Minute)} }, "netns.tw_reuse_delay", "0s to 1m"},
		{"source name", func(p *Plan) { p.Source.Addresses = []string{"localhost"} }, "source.addresses[0]", "IP address or a CIDR"},
		{"unknown strategy", func(p *Plan) { p.Source.Ports.Strategy = "random" }, "source.ports.strategy", "kernel, bind-no-port"},
		{"range needs a range", func(p *Plan) { p.Source.Ports.Strategy = "range" }, "source.ports.range", "required by the range strategy"},
		{"range reversed", func(p *Plan) { p.Source.Ports = Ports{Strategy: "explicit", Range: "2000-1000"} }, "source.ports.range", "lo <= hi"},
		{"range from 0", func(p *Plan) { p.Source.Ports = Ports{Strategy: "range", Range: "0-10"} }, "source.ports.range", "1 <= lo"},
		{"range unused", func(p *Plan) { p.Source.Ports.Range = "1-10" }, "source.ports.range", "strategy is kernel"},
		{"zero connect timeout is the default", func(p *Plan) { p.Connection.ConnectTimeout = 0 }, "", ""},
		{"connect timeout too long", func(p *Plan) { p.Connection.ConnectTimeout = Duration(11 * time.Minute) }, "connection.connect_timeout", "at most 10m"},
		{"negative io timeout", func(p *Plan) { p.Connection.IOTimeout = -1 }, "connection.io_timeout", "more than 0s"},
		{"negative hold", func(p *Plan) { p.Connection.Hold = Duration(-time.Second) }, "connection.hold", "0s to 24h"},
		{"unknown close", func(p *Plan) { p.Connection.Close = "abort" }, "connection.close", "fin, rst, half, server"},
		{"send too big", func(p *Plan) { p.Connection.Send = &Send{Bytes: MaxSendBytes + 1} }, "connection.send.bytes", "1B to 16MiB"},
		{"send count", func(p *Plan) { p.Connection.Send = &Send{Count: 1_000_001} }, "connection.send.count", "1 to 1000000"},
		{"expect unknown", func(p *Plan) { p.Connection.Send = &Send{Expect: "http"} }, "connection.send.expect", "echo, reply, none"},
		{"expect echo to remote", func(p *Plan) {
			p.Target = Target{Addresses: []string{"127.0.0.1:7"}}
			p.Connection.Send = &Send{Expect: "echo"}
		}, "", ""},
		{"unknown protocol", func(p *Plan) { p.Connection.Send = &Send{Protocol: "grpc"} }, "connection.send.protocol", "raw, http, redis"},
		{"data and hex", func(p *Plan) { p.Connection.Send = &Send{Data: "x", Hex: "78"} }, "connection.send.hex", "data and hex"},
		{"bad hex", func(p *Plan) { p.Connection.Send = &Send{Hex: "7g"} }, "connection.send.hex", "hexadecimal"},
		{"hex with spaces", func(p *Plan) { p.Connection.Send = &Send{Hex: "2a 31 0d0a"} }, "", ""},
		{"missing file", func(p *Plan) { p.Connection.Send = &Send{File: "/nonexistent/payload.bin"} }, "connection.send.file", "cannot read"},
		{"reply without expect reply", func(p *Plan) { p.Connection.Send = &Send{Reply: "+OK\r\n", Expect: "echo"} }, "connection.send.expect", "want expect: reply"},
		{"expect reply without reply", func(p *Plan) { p.Connection.Send = &Send{Expect: "reply"} }, "connection.send.reply", "needs the reply"},
		{"http block on raw", func(p *Plan) { p.Connection.Send = &Send{HTTP: &HTTPRequest{}} }, "connection.send.http", "protocol: http"},
		{"websocket to the websocket target", func(p *Plan) {
			p.Target.Builtin.Mode = "websocket"
			p.Connection.Send = &Send{Protocol: "websocket", Data: "hi", Expect: "echo", WebSocket: &WebSocket{Path: "/chat?a=1",
				Subprotocol: "graphql-ws", Message: "text", Headers: []string{"Origin: http://x"}}}
		}, "", ""},
		{"websocket to the echo target", func(p *Plan) { p.Connection.Send = &Send{Protocol: "websocket"} },
			"connection.send.protocol", "target.builtin.mode: websocket"},
		{"websocket block on raw", func(p *Plan) { p.Connection.Send = &Send{WebSocket: &WebSocket{}} }, "connection.send.websocket", "protocol: websocket"},
		{"websocket path", func(p *Plan) {
			p.Target.Builtin.Mode = "websocket"
			p.Connection.Send = &Send{Protocol: "websocket", WebSocket: &WebSocket{Path: "chat"}}
		}, "connection.send.websocket.path", "starting with /"},
		{"websocket subprotocol", func(p *Plan) {
			p.Target.Builtin.Mode = "websocket"
			p.Connection.Send = &Send{Protocol: "websocket", WebSocket: &WebSocket{Subprotocol: "a b"}}
		}, "connection.send.websocket.subprotocol", "one token"},
		{"websocket message", func(p *Plan) {
			p.Target.Builtin.Mode = "websocket"
			p.Connection.Send = &Send{Protocol: "websocket", WebSocket: &WebSocket{Message: "json"}}
		}, "connection.send.websocket.message", "text, binary"},
		{"websocket handshake header", func(p *Plan) {
			p.Target.Builtin.Mode = "websocket"
			p.Connection.Send = &Send{Protocol: "websocket", WebSocket: &WebSocket{Headers: []string{"Sec-WebSocket-Key: x"}}}
		}, "connection.send.websocket.headers[0]", "handshake's own"},
		{"websocket close server", func(p *Plan) {
			p.Target.Builtin.Mode = "websocket"
			p.Connection.Close = "server"
			p.Connection.Send = &Send{Protocol: "websocket"}
		}, "connection.close", "closing handshake"},
		{"data on http", func(p *Plan) {
			p.Target.Builtin.Mode = "http"
			p.Connection.Send = &Send{Protocol: "http", Data: "x"}
		}, "connection.send.data", "only raw and websocket requests"},
		{"http to an echo target", func(p *Plan) { p.Connection.Send = &Send{Protocol: "http"} }, "connection.send.protocol", "target.builtin.mode: http"},
		{"http to the http target", func(p *Plan) {
			p.Target.Builtin.Mode = "http"
			p.Connection.Send = &Send{Protocol: "http", HTTP: &HTTPRequest{Method: "POST", Path: "/x?y=1", Headers: []string{"Accept: */*"}, Body: "{}", Status: 201}}
		}, "", ""},
		{"http header injection", func(p *Plan) {
			p.Target = Target{Addresses: []string{"127.0.0.1:80"}}
			p.Connection.Send = &Send{Protocol: "http", HTTP: &HTTPRequest{Headers: []string{"X-A: b\r\nX-B: c"}}}
		}, "connection.send.http.headers[0]", "line break"},
		{"http header without colon", func(p *Plan) {
			p.Target = Target{Addresses: []string{"127.0.0.1:80"}}
			p.Connection.Send = &Send{Protocol: "http", HTTP: &HTTPRequest{Headers: []string{"Accept"}}}
		}, "connection.send.http.headers[0]", "Name: value"},
		{"http content-length header", func(p *Plan) {
			p.Target = Target{Addresses: []string{"127.0.0.1:80"}}
			p.Connection.Send = &Send{Protocol: "http", HTTP: &HTTPRequest{Headers: []string{"Content-Length: 3"}}}
		}, "connection.send.http.headers[0]", "set by portstorm"},
		{"http path", func(p *Plan) {
			p.Target = Target{Addresses: []string{"127.0.0.1:80"}}
			p.Connection.Send = &Send{Protocol: "http", HTTP: &HTTPRequest{Path: "index.html"}}
		}, "connection.send.http.path", "starting with /"},
		{"http method", func(p *Plan) {
			p.Target = Target{Addresses: []string{"127.0.0.1:80"}}
			p.Connection.Send = &Send{Protocol: "http", HTTP: &HTTPRequest{Method: "GET /"}}
		}, "connection.send.http.method", "GET, POST"},
		{"http status", func(p *Plan) {
			p.Target = Target{Addresses: []string{"127.0.0.1:80"}}
			p.Connection.Send = &Send{Protocol: "http", HTTP: &HTTPRequest{Status: 99}}
		}, "connection.send.http.status", "100 to 599"},
		{"redis to the built-in target", func(p *Plan) { p.Connection.Send = &Send{Protocol: "redis"} }, "connection.send.protocol", "Redis server"},
		{"redis empty command", func(p *Plan) {
			p.Target = Target{Addresses: []string{"127.0.0.1:6379"}}
			p.Connection.Send = &Send{Protocol: "redis", Redis: &RedisCommand{Command: []string{""}}}
		}, "connection.send.redis.command", "empty"},
		{"max response", func(p *Plan) { p.Connection.Send = &Send{MaxResponse: MaxSendBytes + 1} }, "connection.send.max_response", "1B to 16MiB"},
		{"tls to a plain built-in target", func(p *Plan) { p.Connection.TLS = &TLS{} }, "connection.tls", "target.builtin.tls: true"},
		{"tls built-in with a CA file", func(p *Plan) { p.Target.Builtin.TLS = true; p.Connection.TLS = &TLS{CAFile: "ca.pem"} }, "connection.tls.ca_file", "made for the run"},
		{"tls insecure and CA", func(p *Plan) {
			p.Target = Target{Addresses: []string{"127.0.0.1:443"}}
			p.Connection.TLS = &TLS{Insecure: true, CAFile: "/dev/null"}
		}, "connection.tls.insecure", "one of them"},
		{"tls missing CA", func(p *Plan) {
			p.Target = Target{Addresses: []string{"127.0.0.1:443"}}
			p.Connection.TLS = &TLS{CAFile: "/nonexistent/ca.pem"}
		}, "connection.tls.ca_file", "cannot read"},
		{"tls on a closing built-in target", func(p *Plan) { p.Target.Builtin.Mode = "rst"; p.Target.Builtin.TLS = true }, "target.builtin.tls", "closes before any handshake"},
		{"http status on echo", func(p *Plan) { p.Target.Builtin.HTTPStatus = 404 }, "target.builtin.http_status", "only the http mode"},
		{"negative procs_per_process", func(p *Plan) { p.Target.Builtin.ProcsPerProcess = -1 }, "target.builtin.procs_per_process", "want 0 (half the cores) or 1 to 1024"},
		{"procs_per_process too high", func(p *Plan) { p.Target.Builtin.ProcsPerProcess = 1025 }, "target.builtin.procs_per_process", "got 1025"},
		{"header timeout on echo", func(p *Plan) { p.Target.Builtin.HeaderTimeout = Duration(time.Second) }, "target.builtin.header_timeout", "only the http mode"},
		{"negative header timeout", func(p *Plan) { p.Target.Builtin.Mode = "http"; p.Target.Builtin.HeaderTimeout = -1 }, "target.builtin.header_timeout", "want 0s to 24h"},
		{"http status out of range", func(p *Plan) { p.Target.Builtin.Mode = "http"; p.Target.Builtin.HTTPStatus = 700 }, "target.builtin.http_status", "200 to 599"},
		{"built-in target on ::1", func(p *Plan) { p.Target.Builtin.Address = "::1" }, "", ""},
		{"built-in target off loopback", func(p *Plan) { p.Target.Builtin.Address = "10.0.0.1" }, "target.builtin.address", "loopback"},
		{"http built-in with server close", func(p *Plan) {
			p.Target.Builtin.Mode = "http"
			p.Connection.Close = "server"
			p.Connection.Send = &Send{Protocol: "http"}
		}, "connection.close", "Connection: close"},
		{"unknown model", func(p *Plan) { p.Load.Model = "open" }, "load.model", "concurrency, arrival"},
		{"no stages", func(p *Plan) { p.Load.Stages = nil }, "load.stages", "at least one stage"},
		{"too many stages", func(p *Plan) {
			for range 100 {
				p.Load.Stages = append(p.Load.Stages, Stage{Duration(time.Second), 1})
			}
		}, "load.stages", "at most 100 stages"},
		{"zero stage", func(p *Plan) { p.Load.Stages[0].Duration = 0 }, "load.stages[0].duration", "more than 0s"},
		{"long stage", func(p *Plan) { p.Load.Stages[0].Duration = Duration(25 * time.Hour) }, "load.stages[0].duration", "at most 24h"},
		{"week exceeded", func(p *Plan) {
			p.Load.Stages = nil
			for range 8 {
				p.Load.Stages = append(p.Load.Stages, Stage{Duration(24 * time.Hour), 1})
			}
		}, "load.stages", "7 days"},
		{"target too high", func(p *Plan) { p.Load.Stages[0].Target = 1e7 + 1 }, "load.stages[0].target", "0 to 10000000 concurrent"},
		{"arrival target too high", func(p *Plan) { p.Load.Model = "arrival"; p.Load.Stages[0].Target = 2e7 }, "load.stages[0].target", "per second"},
		{"NaN target", func(p *Plan) { p.Load.Stages[0].Target = math.NaN() }, "load.stages[0].target", "0 to"},
		{"negative start", func(p *Plan) { p.Load.Start = -1 }, "load.start", "0 to"},
		{"never above zero", func(p *Plan) { p.Load.Stages[0].Target = 0 }, "load.stages", "never rises above zero"},
		{"start alone is load", func(p *Plan) { p.Load.Start = 5; p.Load.Stages[0].Target = 0 }, "", ""},
		{"max in flight", func(p *Plan) { p.Load.MaxInFlight = -1 }, "load.max_in_flight", "1 to 10000000"},
		{"on saturation", func(p *Plan) { p.Load.OnSaturation = "block" }, "load.on_saturation", "queue, drop"},
		{"negative rate", func(p *Plan) { p.Load.MaxConnectRate = -1 }, "load.max_connect_rate", `"unlimited" or a number from 0.001 to 10000000 per second, got -1`},
		{"huge rate", func(p *Plan) { p.Load.MaxConnectRate = 1e300 }, "load.max_connect_rate", `from 0.001 to 10000000 per second, got 1e+300`},
		{"rate above the cap", func(p *Plan) { p.Load.MaxConnectRate = MaxConnectRate + 1 }, "load.max_connect_rate", `got 1.0000001e+07`},
		{"rate below one per 1000 s", func(p *Plan) { p.Load.MaxConnectRate = 0.0001 }, "load.max_connect_rate", `got 0.0001`},
		{"NaN rate", func(p *Plan) { p.Load.MaxConnectRate = Rate(math.NaN()) }, "load.max_connect_rate", `got NaN`},
		{"slow rate", func(p *Plan) { p.Load.MaxConnectRate = 0.05 }, "", ""},
		{"slowest rate", func(p *Plan) { p.Load.MaxConnectRate = MinConnectRate }, "", ""},
		{"fastest rate", func(p *Plan) { p.Load.MaxConnectRate = MaxConnectRate }, "", ""},
		{"graceful stop", func(p *Plan) { p.Load.GracefulStop = -1 }, "load.graceful_stop", "0s to 1h"},
		{"empty threshold", func(p *Plan) { p.Thresholds = []Threshold{{Expr: " "}} }, "thresholds[0].expr", "empty"},
		{"threshold with a newline", func(p *Plan) { p.Thresholds = []Threshold{{Expr: "a\nb"}} }, "thresholds[0].expr", "printable"},
		{"baseline without file", func(p *Plan) { p.Baseline = &Baseline{} }, "baseline.file", "summary.json"},
		{"negative regression", func(p *Plan) { p.Baseline = &Baseline{File: "b.json", MaxRegression: -0.1} }, "baseline.max_regression", "0% or more"},
		{"absolute dir", func(p *Plan) { p.Output.Dir = "/var/results" }, "output.dir", "relative"},
		{"climbing dir", func(p *Plan) { p.Output.Dir = "a/../../b" }, "output.dir", `".."`},
		{"dotted dir is fine", func(p *Plan) { p.Output.Dir = "./out..x/y" }, "", ""},
		{"interval too short", func(p *Plan) { p.Output.Interval = Duration(10 * time.Millisecond) }, "output.interval", "100ms to 1h"},
		{"missing version", func(p *Plan) { p.Version = 0 }, "version", "missing"},
		{"measure refusals", func(p *Plan) { p.Connection.OnConnectFailure = OnConnectFailure{Measure: true} }, "", ""},
		{"measure with a backoff", func(p *Plan) {
			p.Connection.OnConnectFailure = OnConnectFailure{Measure: true, Backoff: Duration(time.Second)}
		},
			"connection.on_connect_failure.backoff", "would go unused"},
		{"backoff too short", func(p *Plan) { p.Connection.OnConnectFailure.Backoff = Duration(time.Microsecond) },
			"connection.on_connect_failure.backoff", "1ms to 1h"},
		{"max backoff under backoff", func(p *Plan) {
			p.Connection.OnConnectFailure.Backoff = Duration(time.Second)
			p.Connection.OnConnectFailure.MaxBackoff = Duration(time.Millisecond * 500)
		}, "connection.on_connect_failure.max_backoff", "at least backoff (1s)"},
		{"negative backoff_after", func(p *Plan) { p.Connection.OnConnectFailure.BackoffAfter = -1 }, "connection.on_connect_failure.backoff_after", "1 to 1000000"},
		{"negative fail rate", func(p *Plan) { p.Connection.OnConnectFailure.MaxFailRate = -5 }, "connection.on_connect_failure.max_fail_rate", "above 0"},
		{"NaN fail rate", func(p *Plan) { p.Connection.OnConnectFailure.MaxFailRate = math.NaN() }, "connection.on_connect_failure.max_fail_rate", "above 0"},
		{"give up after too long", func(p *Plan) { p.Connection.OnConnectFailure.GiveUpAfter = Duration(48 * time.Hour) },
			"connection.on_connect_failure.give_up_after", "1ms to 24h"},
		{"negative give-up attempts", func(p *Plan) { p.Connection.OnConnectFailure.GiveUpAttempts = -1 },
			"connection.on_connect_failure.give_up_attempts", "1 to 1000000000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := validPlan()
			tc.edit(p)
			errs := p.Validate()
			if tc.field == "" {
				if len(errs) > 0 {
					t.Fatalf("refused: %v", errors.Join(errs...))
				}
				return
			}
			if len(errs) != 1 {
				t.Fatalf("got %d errors, want 1:\n%v", len(errs), errors.Join(errs...))
			}
			var fe *FieldError
			if !errors.As(errs[0], &fe) || fe.Field != tc.field || !strings.Contains(fe.Msg, tc.msg) {
				t.Errorf("got %q, want field %s and a message with %q", errs[0], tc.field, tc.msg)
			}
		})
	}
}

// Validate's verdict does not depend on Defaults having run (the name aside).
func TestValidateBeforeDefaults(t *testing.T) {
	p := &Plan{Version: 1, Name: "x", Target: Target{Builtin: &Builtin{}}, Connection: Connection{Send: &Send{}},
		Load: Load{Stages: []Stage{{Duration(time.Second), 1}}}}
	if errs := p.Validate(); len(errs) > 0 {
		t.Errorf("before Defaults: %v", errors.Join(errs...))
	}
	p.Defaults()
	if errs := p.Validate(); len(errs) > 0 {
		t.Errorf("after Defaults: %v", errors.Join(errs...))
	}
}

func TestDefaults(t *testing.T) {
	p := &Plan{File: "dir/my-plan.v2.yaml", Target: Target{Builtin: &Builtin{Mode: "sink"}}, Connection: Connection{Send: &Send{}}}
	p.Defaults()
	if p.Name != "my-plan.v2" {
		t.Errorf("name = %q, want my-plan.v2", p.Name)
	}
	if s := p.Connection.Send; s.Expect != "none" || s.Bytes != 64 || s.Count != 1 {
		t.Errorf("send = %+v, want none, 64B, 1", s)
	}
	if b := p.Target.Builtin; b.Listeners != 1 || b.IdleTimeout != Duration(time.Minute) || b.MaxFrame != 64<<10 {
		t.Errorf("builtin = %+v", b)
	}
	q := &Plan{Target: Target{Builtin: &Builtin{}}, Connection: Connection{Send: &Send{}}}
	q.Defaults()
	if q.Connection.Send.Expect != "echo" || q.Target.Builtin.Mode != "echo" {
		t.Errorf("echo target: expect %q, mode %q; want echo, echo", q.Connection.Send.Expect, q.Target.Builtin.Mode)
	}
	if q.Load.Model != "concurrency" || q.Load.MaxInFlight != 20000 || q.Load.OnSaturation != "queue" ||
		q.Load.GracefulStop != Duration(5*time.Second) || q.Output.Dir != "results" || q.Output.Interval != Duration(time.Second) ||
		q.Connection.Close != "fin" || q.Source.Ports.Strategy != "kernel" ||
		q.Connection.ConnectTimeout != Duration(3*time.Second) || q.Connection.IOTimeout != Duration(5*time.Second) {
		t.Errorf("defaults: %+v", q)
	}
	if q.Name != "" || q.Version != 0 || q.Baseline != nil {
		t.Errorf("Defaults invented name %q, version %d or baseline %v", q.Name, q.Version, q.Baseline)
	}
}

func TestOnConnectFailureDefaults(t *testing.T) {
	ms := func(n int) Duration { return Duration(time.Duration(n) * time.Millisecond) }
	tests := []struct {
		name string
		in   OnConnectFailure
		want OnConnectFailure
	}{
		{"all defaults", OnConnectFailure{}, OnConnectFailure{BackoffAfter: 3, Backoff: ms(10), MaxBackoff: ms(1000), MaxFailRate: 1000, GiveUpAfter: ms(2000), GiveUpAttempts: 1000}},
		{"a long backoff raises the cap", OnConnectFailure{Backoff: ms(5000)}, OnConnectFailure{BackoffAfter: 3, Backoff: ms(5000), MaxBackoff: ms(5000), MaxFailRate: 1000, GiveUpAfter: ms(2000), GiveUpAttempts: 1000}},
		{"a low cap lowers the backoff", OnConnectFailure{MaxBackoff: ms(4)}, OnConnectFailure{BackoffAfter: 3, Backoff: ms(4), MaxBackoff: ms(4), MaxFailRate: 1000, GiveUpAfter: ms(2000), GiveUpAttempts: 1000}},
		{"measure: nothing filled", OnConnectFailure{Measure: true}, OnConnectFailure{Measure: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Plan{Connection: Connection{OnConnectFailure: tt.in}}
			p.Defaults()
			if got := p.Connection.OnConnectFailure; got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestOnConnectFailureFileLine(t *testing.T) {
	src := `version: 1
name: dead
target: {addresses: ["127.0.0.1:9"]}
connection:
  on_connect_failure:
    measure: true
    give_up_after: 5s
load:
  stages: [{duration: 1s, target: 1}]
`
	p, err := Parse("dead.yaml", []byte(src), Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	p.Defaults()
	errs := p.Validate()
	want := "dead.yaml:7: connection.on_connect_failure.give_up_after: measure: true makes every connect however many fail, so give_up_after would go unused; want one of them"
	if len(errs) != 1 || errs[0].Error() != want {
		t.Fatalf("got %v\nwant %s", errors.Join(errs...), want)
	}
	q, err := Parse("dead.yaml", []byte(src), Overrides{Sets: []string{"connection.on_connect_failure.measure=false", "connection.on_connect_failure.backoff=1us"}})
	if err != nil {
		t.Fatal(err)
	}
	q.Defaults()
	errs = q.Validate()
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "--set connection.on_connect_failure.backoff") {
		t.Fatalf("got %v, want the --set named", errors.Join(errs...))
	}
}

func TestSourceAddrs(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    []string // first and last of the pool
		n       int
		wantErr string
	}{
		{"one address", []string{"127.0.0.2"}, []string{"127.0.0.2", "127.0.0.2"}, 1, ""},
		{"list, duplicates dropped", []string{"127.0.0.2", "127.0.0.3", "127.0.0.2"}, []string{"127.0.0.2", "127.0.0.3"}, 2, ""},
		{"/30 without network and broadcast", []string{"127.0.0.0/30"}, []string{"127.0.0.1", "127.0.0.2"}, 2, ""},
		{"/31 keeps both", []string{"127.0.0.4/31"}, []string{"127.0.0.4", "127.0.0.5"}, 2, ""},
		{"/32", []string{"127.0.0.9/32"}, []string{"127.0.0.9", "127.0.0.9"}, 1, ""},
		{"unmasked prefix", []string{"127.0.0.5/30"}, []string{"127.0.0.5", "127.0.0.6"}, 2, ""},
		{"/22 fits", []string{"127.0.0.0/22"}, []string{"127.0.0.1", "127.0.3.254"}, 1022, ""},
		{"IPv6 /126", []string{"fd00::/126"}, []string{"fd00::", "fd00::3"}, 4, ""},
		{"mapped address unmapped", []string{"::ffff:127.0.0.7"}, []string{"127.0.0.7", "127.0.0.7"}, 1, ""},
		{"/8 too big", []string{"127.0.0.0/8"}, nil, 0, "127.0.0.0/22"},
		{"IPv6 /64 too big", []string{"fd00::/64"}, nil, 0, "at most 1024"},
		{"two /22 too many", []string{"127.0.0.0/22", "127.1.0.0/22"}, nil, 0, "more than 1024"},
		{"a name", []string{"localhost"}, nil, 0, "IP address or a CIDR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Source{Addresses: tt.in}.SourceAddrs()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.n || got[0].String() != tt.want[0] || got[len(got)-1].String() != tt.want[1] {
				t.Errorf("got %d addresses %v..%v, want %d %v", len(got), got[0], got[len(got)-1], tt.n, tt.want)
			}
		})
	}
}
