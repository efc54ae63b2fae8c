package report

import (
	"time"

	"github.com/portstorm/portstorm/loadgen/ports"
)

// ShardSummary is one distributed segment of a merged result (summary.json `shards[]`).
type ShardSummary struct {
	Segment     string    `json:"segment"`
	Host        string    `json:"host"`
	Dir         string    `json:"dir"`
	StartedAt   time.Time `json:"started_at"`
	EndedAt     time.Time `json:"ended_at"`
	Interrupted bool      `json:"interrupted"`
	Aborted     bool      `json:"aborted"`
	Error       string    `json:"error,omitempty"`
}

// HostPorts is one segment's port report in a merged result (summary.json `ports_by_host[]`). Port
// statistics belong to a (host, source address): hosts that share an address each have their own
// port space, so they are kept apart, never summed.
type HostPorts struct {
	Host    string        `json:"host"`
	Segment string        `json:"segment"`
	Ports   *ports.Report `json:"ports"`
}
