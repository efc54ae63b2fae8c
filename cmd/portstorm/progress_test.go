package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/coordinator"
)

// TestProgressLine: a run about requests shows requests per second and the request latency's p99
// (request_intended when rated, else rtt) where a connection run shows opened/s and connect p99,
// which read zero once a keep-alive run's connections are open.
func TestProgressLineRequests(t *testing.T) {
	base := coordinator.Progress{Stage: 2, Stages: 3, Elapsed: 12500 * time.Millisecond, Total: 20 * time.Second,
		Active: 50, Errors: 3, ConnectP99: 180 * time.Microsecond}
	tests := []struct {
		name string
		mod  func(*coordinator.Progress)
		want string
	}{
		{"connections", func(p *coordinator.Progress) { p.OpenedPerSecond = 512 },
			"stage[2] of 3  12s/20s  active 50  opened 512/s  errors 3  connect p99 180µs"},
		{"keep-alive requests", func(p *coordinator.Progress) {
			p.Requests, p.RequestsPerSecond, p.RequestP99 = true, 41234.4, 950*time.Microsecond
		}, "stage[2] of 3  12s/20s  active 50  requests 41234/s  errors 3  rtt p99 950µs  opened 0/s"},
		{"rated requests", func(p *coordinator.Progress) {
			p.Requests, p.Rated, p.RequestsPerSecond, p.RequestP99 = true, true, 30000, 1500*time.Microsecond
		}, "stage[2] of 3  12s/20s  active 50  requests 30000/s  errors 3  request_intended p99 1.5ms  opened 0/s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pr := base
			tc.mod(&pr)
			var b bytes.Buffer
			newProgress(&b, false, false).update(pr)
			if got := b.String(); got != tc.want+"\n" {
				t.Errorf("line\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}
