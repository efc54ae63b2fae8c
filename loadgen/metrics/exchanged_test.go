package metrics

import "time"

// Exchanged records one unrated request that ended well: its first byte and full response times
// (negative: no answer was read) and the bytes moved.
func (s *Shard) Exchanged(first, rtt time.Duration, out, in int) {
	s.Request(RequestTiming{FirstByte: first, Service: rtt, Out: out, In: in}, nil)
}
