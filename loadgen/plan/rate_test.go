package plan

import (
	"errors"
	"strings"
	"testing"
)

// TestSendRateKeys: the keys of requests at a rate load, default and validate with file:line, and
// their bad combinations are refused naming the key.
func TestSendRateKeys(t *testing.T) {
	const head = "version: 1\ntarget: {builtin: {mode: echo}}\n"
	tests := []struct {
		name string
		src  string // after head
		// errs are the substrings of each expected error, in order ("" none).
		errs  []string
		check func(t *testing.T, p *Plan)
	}{
		{"per connection, unlimited", "load: {stages: [{duration: 10s, target: 300}]}\nconnection:\n  hold: 5s\n  send: {rate: 100, count: unlimited, pipeline: 4}\n", nil,
			func(t *testing.T, p *Plan) {
				s := p.Connection.Send
				if s.Rate != 100 || s.Count != Unlimited || s.Pipeline != 4 || !s.Rated() {
					t.Fatalf("send %+v", s)
				}
			}},
		{"total rate, defaults", "load: {stages: [{duration: 10s, target: 300}]}\nconnection:\n  send: {total_rate: 30000, count: unlimited}\n", nil,
			func(t *testing.T, p *Plan) {
				s := p.Connection.Send
				if s.TotalRate != 30000 || s.Pipeline != 0 { // 0: the default, one outstanding
					t.Fatalf("send %+v", s)
				}
			}},
		{"rate stages", "load: {stages: [{duration: 10s, target: 300}]}\nconnection:\n  send:\n    count: unlimited\n    rate_stages: [{duration: 5s, target: 1000}, {duration: 5s, target: 0}]\n", nil,
			func(t *testing.T, p *Plan) {
				if st := p.Connection.Send.RateStages; len(st) != 2 || st[0].Target != 1000 {
					t.Fatalf("stages %+v", st)
				}
			}},
		{"fixed count at a rate", "load: {stages: [{duration: 10s, target: 3}]}\nconnection:\n  send: {rate: 10, count: 50}\n", nil, nil},
		{"count words", "load: {stages: [{duration: 10s, target: 3}]}\nconnection:\n  send: {rate: 10, count: lots}\n",
			[]string{`rate.yaml:5: connection.send.count: want a whole number of requests per connection, or "unlimited"`}, nil},
		{"count -1 is not unlimited", "load: {stages: [{duration: 10s, target: 3}]}\nconnection:\n  send: {rate: 10, count: -1}\n",
			[]string{"rate.yaml:5: connection.send.count: want a whole number"}, nil},
		{"rate with interval", "load: {stages: [{duration: 10s, target: 3}]}\nconnection:\n  send:\n    rate: 10\n    interval: 1s\n",
			[]string{"rate.yaml:7: connection.send.interval: interval is think time"}, nil},
		{"rate and total rate", "load: {stages: [{duration: 10s, target: 3}]}\nconnection:\n  send:\n    rate: 10\n    total_rate: 100\n",
			[]string{"rate.yaml:7: connection.send.total_rate: rate (per connection) and total_rate"}, nil},
		{"rate stages and total rate", "load: {stages: [{duration: 10s, target: 3}]}\nconnection:\n  send:\n    total_rate: 100\n    rate_stages: [{duration: 1s, target: 10}]\n",
			[]string{"rate.yaml:7: connection.send.rate_stages: ramp the total rate"}, nil},
		{"rate stages outlast the load", "load: {stages: [{duration: 10s, target: 3}]}\nconnection:\n  send:\n    count: unlimited\n    rate_stages: [{duration: 11s, target: 10}]\n",
			[]string{"rate.yaml:7: connection.send.rate_stages: the rate stages last 11s, the load stages 10s"}, nil},
		{"rate stage bad", "load: {stages: [{duration: 10s, target: 3}]}\nconnection:\n  send:\n    rate_stages:\n      - {duration: 1s, target: -5}\n",
			[]string{"rate.yaml:7: connection.send.rate_stages[0].target: want 0 to", "connection.send.rate_stages: the rate never rises"}, nil},
		{"negative rate", "load: {stages: [{duration: 10s, target: 3}]}\nconnection:\n  send: {rate: -1}\n",
			[]string{"rate.yaml:5: connection.send.rate: want 0.001 to 100000000"}, nil},
		{"unlimited without rate", "load: {stages: [{duration: 10s, target: 3}]}\nconnection:\n  send: {count: unlimited}\n",
			[]string{"rate.yaml:5: connection.send.count: unlimited needs a rate"}, nil},
		{"unlimited arrivals without hold", "load: {model: arrival, stages: [{duration: 10s, target: 3}]}\nconnection:\n  send: {rate: 1, count: unlimited}\n",
			[]string{"connection.send.count: under the arrival model an unlimited connection"}, nil},
		{"unlimited with close server", "load: {stages: [{duration: 10s, target: 3}]}\nconnection:\n  close: server\n  send: {rate: 1, count: unlimited}\n",
			[]string{"rate.yaml:5: connection.close: the server closes after the requests' bytes"}, nil},
		{"pipeline too big", "load: {stages: [{duration: 10s, target: 3}]}\nconnection:\n  send: {pipeline: 5000}\n",
			[]string{"rate.yaml:5: connection.send.pipeline: want 1 to 4096"}, nil},
		{"pipeline with nothing to read", "load: {stages: [{duration: 10s, target: 3}]}\nconnection:\n  send:\n    expect: none\n    rate: 5\n    pipeline: 2\n",
			[]string{"rate.yaml:8: connection.send.pipeline: expect: none reads no answer"}, nil},
		{"pipeline with interval", "load: {stages: [{duration: 10s, target: 3}]}\nconnection:\n  send:\n    interval: 1s\n    pipeline: 2\n",
			[]string{"rate.yaml:7: connection.send.pipeline: interval waits after each answer"}, nil},
		{"pipeline with connection close", "target: {builtin: {mode: http}}\nload: {stages: [{duration: 10s, target: 3}]}\nconnection:\n  send:\n    protocol: http\n    pipeline: 2\n    http: {headers: [\"Connection: close\"]}\n",
			[]string{"connection.send.pipeline: the requests ask the server to close"}, nil},
		{"pipeline with TLS", "target: {builtin: {mode: echo, tls: true}}\nload: {stages: [{duration: 10s, target: 3}]}\nconnection:\n  tls: {}\n  send: {rate: 10, pipeline: 8, count: 100}\n", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := head + tt.src
			if strings.HasPrefix(tt.src, "target:") {
				src = "version: 1\n" + tt.src
			}
			p, err := Parse("rate.yaml", []byte(src), Overrides{})
			var errs []error
			if err != nil {
				errs = []error{err}
			} else {
				p.Defaults()
				errs = p.Validate()
			}
			if len(tt.errs) == 0 {
				if len(errs) > 0 {
					t.Fatal(errors.Join(errs...))
				}
				if tt.check != nil {
					tt.check(t, p)
				}
				return
			}
			all := errors.Join(errs...).Error()
			for _, w := range tt.errs {
				if !strings.Contains(all, w) {
					t.Errorf("errors:\n%s\nwant one containing %q", all, w)
				}
			}
		})
	}
}

// TestSendCountRoundTrip: count: unlimited is written back as it was read.
func TestSendCountRoundTrip(t *testing.T) {
	for _, c := range []SendCount{Unlimited, 1, 42} {
		b, err := c.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var back SendCount
		if err := back.UnmarshalJSON(b); err != nil || back != c {
			t.Fatalf("%v -> %s -> %v, %v", c, b, back, err)
		}
		if v, _ := c.MarshalYAML(); (c == Unlimited) != (v == "unlimited") {
			t.Fatalf("%v yaml %v", c, v)
		}
	}
}
