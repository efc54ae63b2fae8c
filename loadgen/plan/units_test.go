package plan

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want Duration
		ok   bool
	}{
		{"10s", Duration(10 * time.Second), true},
		{"250ms", Duration(250 * time.Millisecond), true},
		{"1m30s", Duration(90 * time.Second), true},
		{"0s", 0, true},
		{"-5s", Duration(-5 * time.Second), true}, // parseable; Validate judges the sign
		{"10", 0, false},
		{"0", 0, false},
		{"1.5", 0, false},
		{"10 s", 0, false},
		{"ten seconds", 0, false},
		{"", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseDuration(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("ParseDuration(%q) = %v, %v; want %v, ok=%v", tc.in, got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want Size
		ok   bool
	}{
		{"64", 64, true},
		{"64B", 64, true},
		{"1KB", 1000, true},
		{"1KiB", 1024, true},
		{"2MB", 2_000_000, true},
		{"2MiB", 2 << 20, true},
		{"1GB", 1e9, true},
		{"1GiB", 1 << 30, true},
		{"0", 0, true},
		{"64 B", 0, false},
		{"1KB?", 0, false},
		{"1kib", 0, false},
		{"-1B", 0, false},
		{"1.5KiB", 0, false},
		{"0x40", 0, false},
		{"9223372036854775807B", math.MaxInt64, true},
		{"9223372036854775807KB", 0, false},
		{"99999999999999999999", 0, false},
		{"", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSize(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("ParseSize(%q) = %v, %v; want %v, ok=%v", tc.in, got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		in   string
		want Rate
		ok   bool
	}{
		{"unlimited", 0, true},
		{"100", 100, true},
		{"0.5", 0.5, true},
		{"1e3", 1000, true},
		{"0", 0, false},
		{"-5", 0, false},
		{"inf", 0, false},
		{"NaN", 0, false},
		{"Unlimited", 0, false},
		{"100/s", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseRate(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("ParseRate(%q) = %v, %v; want %v, ok=%v", tc.in, got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestParsePercent(t *testing.T) {
	tests := []struct {
		in   string
		want Percent
		ok   bool
	}{
		{"10%", 0.10, true},
		{"2.5%", 0.025, true},
		{"0%", 0, true},
		{"100%", 1, true},
		{"7%", 0.07, true},
		{".5%", 0.005, true},
		{"1e1%", 0.1, true},
		{"-10%", -0.1, true}, // parseable; Validate judges the sign
		{"10", 0, false},
		{"10 %", 0, false},
		{"%", 0, false},
		{".%", 0, false},
		{"abc%", 0, false},
		{"1e999999999%", 0, false},
		{"1e400%", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParsePercent(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("ParsePercent(%q) = %v, %v; want %v, ok=%v", tc.in, got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestUnitStrings(t *testing.T) {
	tests := []struct {
		name string
		v    interface{ String() string }
		want string
	}{
		{"duration", Duration(90 * time.Second), "1m30s"},
		{"size bytes", Size(64), "64B"},
		{"size KiB", Size(1024), "1KiB"},
		{"size MiB", Size(3 << 20), "3MiB"},
		{"size inexact", Size(1000), "1000B"},
		{"size zero", Size(0), "0B"},
		{"rate unlimited", Rate(0), "unlimited"},
		{"rate", Rate(250.5), "250.5"},
		{"percent", Percent(0.1), "10%"},
		{"percent small", Percent(0.0001), "0.01%"},
		{"percent 7", Percent(0.07), "7%"},
		{"percent big", Percent(1e30), "1e32%"},
		{"percent tiny", Percent(1e-30), "1e-28%"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.v.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
		})
	}
}

// Percent text and value convert exactly, both ways, for awkward floats too.
func TestPercentExact(t *testing.T) {
	for _, f := range []float64{0.07, 0.1 + 0.2, 1.0 / 3, 5e-324, math.MaxFloat64 / 100, 123456.789e-10, -0.29} {
		p := Percent(f)
		back, err := ParsePercent(p.String())
		if err != nil || back != p {
			t.Errorf("ParsePercent(%q) = %v, %v; want %v", p.String(), back, err, f)
		}
	}
}

// The units marshal to readable text in JSON and YAML and decode back.
func TestUnitMarshalling(t *testing.T) {
	type units struct {
		D Duration `json:"d" yaml:"d"`
		S Size     `json:"s" yaml:"s"`
		R Rate     `json:"r" yaml:"r"`
		U Rate     `json:"u" yaml:"u"`
		P Percent  `json:"p" yaml:"p"`
	}
	in := units{Duration(1500 * time.Millisecond), 1 << 10, 0, 42, 0.125}
	js, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"d":"1.5s","s":"1KiB","r":"unlimited","u":42,"p":"12.5%"}`; string(js) != want {
		t.Errorf("JSON = %s, want %s", js, want)
	}
	var fromJSON units
	if err := json.Unmarshal(js, &fromJSON); err != nil || fromJSON != in {
		t.Errorf("JSON back = %+v, %v; want %+v", fromJSON, err, in)
	}
	ys, err := yaml.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := "d: 1.5s\ns: 1KiB\nr: unlimited\nu: 42\np: 12.5%\n"; string(ys) != want {
		t.Errorf("YAML = %q, want %q", ys, want)
	}
	var fromYAML units
	if err := yaml.Unmarshal(ys, &fromYAML); err != nil || fromYAML != in {
		t.Errorf("YAML back = %+v, %v; want %+v", fromYAML, err, in)
	}
	if err := yaml.Unmarshal([]byte("d: 10\n"), &fromYAML); err == nil {
		t.Error("yaml.Unmarshal accepted a bare-number duration")
	}
}
