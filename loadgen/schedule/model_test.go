package schedule

import "testing"

// TestParseModel: load.model's names are known here alone, and read back as they are written.
func TestParseModel(t *testing.T) {
	for _, tt := range []struct {
		name string
		want Model
		ok   bool
	}{
		{"concurrency", Concurrency, true},
		{"arrival", Arrival, true},
		{"", Concurrency, false},
		{"Arrival", Concurrency, false},
	} {
		m, err := ParseModel(tt.name)
		if (err == nil) != tt.ok || m != tt.want {
			t.Errorf("ParseModel(%q) = %v, %v; want %v, ok %v", tt.name, m, err, tt.want, tt.ok)
		}
		if tt.ok && m.String() != tt.name {
			t.Errorf("%v.String() = %q, want %q", m, m.String(), tt.name)
		}
	}
}
