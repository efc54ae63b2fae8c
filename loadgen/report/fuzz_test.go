package report

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzDecodeSummary: summary.json from anywhere (a shard, a baseline, a hand-edited file) never
// panics the decoder, and what decodes round-trips: encoding it again and decoding gives the same.
func FuzzDecodeSummary(f *testing.F) {
	seeds, _ := filepath.Glob("../../results/baseline/*.json")
	for _, p := range seeds {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"schema":"portstorm/summary/v1","connections":{"attempted":3},"outcomes":{"ok":3}}`))
	f.Add([]byte(`{"schema":"portstorm/summary/v1","latency":{"connect":{"count":1,"hdr":"!!"}}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSummary(b)
		if err != nil {
			return
		}
		again, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("a decoded summary does not encode: %v", err)
		}
		s2, err := DecodeSummary(again)
		if err != nil {
			t.Fatalf("a re-encoded summary does not decode: %v\n%s", err, again)
		}
		third, _ := json.Marshal(s2)
		if !reflect.DeepEqual(again, third) {
			t.Fatalf("round trip changed the summary:\n%s\n%s", again, third)
		}
	})
}
