package schedule

import "fmt"

// Model is the load model: what a Ramp's target means. It lives here, with the ramp it reads, so
// that the engine that runs it and the report and gate that read its results share one type
// (engine.Model is this type) without the readers of results importing the engine.
type Model uint8

const (
	// Concurrency keeps Ramp.Concurrency(t) connections alive, replacing each one that ends.
	Concurrency Model = iota
	// Arrival starts connections at the intended times of Ramp.Arrivals.
	Arrival
)

var modelNames = []string{"concurrency", "arrival"}

// String is the model's name in a plan (load.model).
func (m Model) String() string {
	if int(m) < len(modelNames) {
		return modelNames[m]
	}
	return fmt.Sprintf("Model(%d)", m)
}

// ParseModel reads a plan's load.model: the one place that knows the models' names (the compiler
// reads a plan with it, and a results reader the plan a summary records).
func ParseModel(s string) (Model, error) {
	for i, n := range modelNames {
		if n == s {
			return Model(i), nil
		}
	}
	return Concurrency, fmt.Errorf("unknown model %q (concurrency or arrival)", s)
}
