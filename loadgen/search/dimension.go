package search

import "fmt"

// Dimension is what a capacity search searches (docs/search.md). ArrivalRate and Concurrency set
// the load stage's target under their load model; RequestRate sets connection.send.total_rate while
// the plan's load section holds the connections.
type Dimension uint8

const (
	// ArrivalRate is new connections per second, under the arrival model.
	ArrivalRate Dimension = iota + 1
	// Concurrency is concurrent connections, under the concurrency model.
	Concurrency
	// RequestRate is requests per second across the connections (connection.send.total_rate),
	// under either model.
	RequestRate
)

// String is the dimension as the plan and summary.json write it.
func (d Dimension) String() string {
	switch d {
	case ArrivalRate:
		return "arrival_rate"
	case Concurrency:
		return "concurrency"
	case RequestRate:
		return "request_rate"
	}
	return fmt.Sprintf("Dimension(%d)", uint8(d))
}

// Unit is what a level of the dimension counts.
func (d Dimension) Unit() string {
	switch d {
	case ArrivalRate:
		return "connections/s"
	case RequestRate:
		return "requests/s"
	}
	return "connections"
}

// Whole says the dimension's levels are whole numbers.
func (d Dimension) Whole() bool { return d == Concurrency }

// ParseDimension reads a dimension as the plan writes it.
func ParseDimension(s string) (Dimension, error) {
	switch s {
	case "arrival_rate":
		return ArrivalRate, nil
	case "concurrency":
		return Concurrency, nil
	case "request_rate":
		return RequestRate, nil
	}
	return 0, fmt.Errorf("unknown dimension %q (arrival_rate, concurrency or request_rate)", s)
}
