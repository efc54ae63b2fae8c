package coordinator

import "github.com/portstorm/portstorm/loadgen/preflight"

// Refused is the preflight's refusal of a plan (exit 3): the forecast says which limit
// of this host stops it first. A capacity search reads it as the client running out at a level.
type Refused struct {
	Forecast *preflight.Forecast
	err      error
}

func (r *Refused) Error() string { return r.err.Error() }
func (r *Refused) Unwrap() error { return r.err }
