package search

import "fmt"

// Dimension is what a capacity search searches (docs/search.md). Each dimension runs under one
// load model; request_rate (connection.send.total_rate) is meant to join them once the request-rate
// keys land (docs/search.md).
type Dimension uint8

const (
	// ArrivalRate is new connections per second, under the arrival model.
	ArrivalRate Dimension = iota + 1
	// Concurrency is concurrent connections, under the concurrency model.
	Concurrency
)

// String is the dimension as the plan and summary.json write it.
func (d Dimension) String() string {
	switch d {
	case ArrivalRate:
		return "arrival_rate"
	case Concurrency:
		return "concurrency"
	}
	return fmt.Sprintf("Dimension(%d)", uint8(d))
}

// Unit is what a level of the dimension counts.
func (d Dimension) Unit() string {
	if d == ArrivalRate {
		return "connections/s"
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
	}
	return 0, fmt.Errorf("unknown dimension %q (arrival_rate or concurrency)", s)
}
