package plan

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The texts below are how plans write durations, sizes, rates and percentages. Parsing and
// formatting are exact inverses on values, so a resolved plan written out loads back equal.

const (
	wantDuration = "want a duration with a unit, like 10s, 250ms or 1m30s"
	wantSize     = "want a size like 64B, 1KiB or 2MiB (units B, KB, KiB, MB, MiB, GB, GiB; a bare integer is bytes)"
	wantRate     = `want a number above 0 (per second), or "unlimited" for no limit`
	wantPercent  = "want a percentage like 10% or 2.5%"
)

// ParseDuration reads a duration with units ("10s", "1m30s", "-5s"). A bare number ("10", even "0")
// is refused: it is ambiguous. Sign and range are Validate's business.
func ParseDuration(s string) (Duration, error) {
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return 0, errors.New(wantDuration) // a bare number has no unit: 10 what?
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New(wantDuration)
	}
	return Duration(d), nil
}

// String renders the duration as time.Duration does ("1m30s").
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalYAML writes the duration as text ("10s").
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML reads a duration with units.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	return unmarshalScalar(n, ParseDuration, d)
}

// MarshalJSON writes the duration as a string ("10s").
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string ("10s").
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(wantDuration)
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

var (
	sizeRE    = regexp.MustCompile(`^([0-9]+)(B|KB|KiB|MB|MiB|GB|GiB)?$`)
	sizeUnits = map[string]int64{"": 1, "B": 1, "KB": 1e3, "KiB": 1 << 10, "MB": 1e6, "MiB": 1 << 20, "GB": 1e9, "GiB": 1 << 30}
)

// ParseSize reads a non-negative byte count: an integer with an optional unit (B, KB, KiB, MB, MiB,
// GB, GiB; KB is 1000 and KiB 1024), no space between. A bare integer is bytes.
func ParseSize(s string) (Size, error) {
	m := sizeRE.FindStringSubmatch(s)
	if m == nil {
		return 0, errors.New(wantSize)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	unit := sizeUnits[m[2]]
	if err != nil || n > math.MaxInt64/unit {
		return 0, errors.New("size too large; " + wantSize)
	}
	return Size(n * unit), nil
}

// String renders the size in the largest binary unit that divides it exactly, else in bytes:
// "64B", "1KiB", "1000B".
func (s Size) String() string {
	for _, u := range []struct {
		name string
		n    Size
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if s != 0 && s%u.n == 0 {
			return strconv.FormatInt(int64(s/u.n), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10) + "B"
}

// MarshalYAML writes the size as text ("64B").
func (s Size) MarshalYAML() (any, error) { return s.String(), nil }

// UnmarshalYAML reads a size.
func (s *Size) UnmarshalYAML(n *yaml.Node) error { return unmarshalScalar(n, ParseSize, s) }

// MarshalJSON writes the size as a string ("64B").
func (s Size) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON reads a size string ("1KiB") or a number of bytes.
func (s *Size) UnmarshalJSON(b []byte) error {
	var text string
	if err := json.Unmarshal(b, &text); err != nil {
		text = string(b)
	}
	v, err := ParseSize(text)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseRate reads "unlimited" (returned as 0) or a finite number > 0. Zero and negative numbers are
// refused rather than read as unlimited: "unlimited" must be said.
func ParseRate(s string) (Rate, error) {
	if s == "unlimited" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, errors.New(wantRate)
	}
	if f <= 0 {
		return 0, errors.New(wantRate) // 0 is not read as unlimited: that must be said
	}
	return Rate(f), nil
}

// String renders "unlimited" for 0, else the number.
func (r Rate) String() string {
	if r == 0 {
		return "unlimited"
	}
	return strconv.FormatFloat(float64(r), 'g', -1, 64)
}

// MarshalYAML writes "unlimited" or the number.
func (r Rate) MarshalYAML() (any, error) {
	if r == 0 {
		return "unlimited", nil
	}
	return float64(r), nil
}

// UnmarshalYAML reads "unlimited" or a positive number.
func (r *Rate) UnmarshalYAML(n *yaml.Node) error { return unmarshalScalar(n, ParseRate, r) }

// MarshalJSON writes "unlimited" or the number.
func (r Rate) MarshalJSON() ([]byte, error) {
	if r == 0 {
		return []byte(`"unlimited"`), nil
	}
	return json.Marshal(float64(r))
}

// UnmarshalJSON reads "unlimited" or a number.
func (r *Rate) UnmarshalJSON(b []byte) error {
	var text string
	if err := json.Unmarshal(b, &text); err != nil {
		text = string(b)
	}
	v, err := ParseRate(text)
	if err != nil {
		return err
	}
	*r = v
	return nil
}

var decimalRE = regexp.MustCompile(`^([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?$`)

// ParsePercent reads "10%" as 0.10. The decimal point is moved in the text, not by dividing a float
// by 100, so that String and ParsePercent are exact inverses.
func ParsePercent(s string) (Percent, error) {
	body, ok := strings.CutSuffix(s, "%")
	m := decimalRE.FindStringSubmatch(body)
	if !ok || m == nil || m[2]+m[3] == "" {
		return 0, errors.New(wantPercent)
	}
	exp := 0
	if m[4] != "" {
		e, err := strconv.Atoi(m[4])
		if err != nil || e > 1e6 || e < -1e6 {
			return 0, errors.New(wantPercent)
		}
		exp = e
	}
	lit := m[1] + m[2] + m[3] + "e" + strconv.Itoa(exp-len(m[3])-2)
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, errors.New(wantPercent)
	}
	return Percent(f), nil
}

// String renders the ratio as a percentage ("10%"), exactly: the shortest decimal of the ratio with
// the point moved two places.
func (p Percent) String() string {
	f := float64(p)
	switch {
	case f == 0:
		return "0%"
	case math.IsNaN(f) || math.IsInf(f, 0):
		return fmt.Sprint(f) + "%"
	}
	s := strconv.FormatFloat(f, 'e', -1, 64) // [-]d[.ddd]e±XX
	sign := ""
	if s[0] == '-' {
		sign, s = "-", s[1:]
	}
	mant, e, _ := strings.Cut(s, "e")
	exp, _ := strconv.Atoi(e)
	digits := strings.Replace(mant, ".", "", 1)
	point := exp + 1 + 2 // digits before the decimal point, after multiplying by 100
	var out string
	switch {
	case point > 21 || point < -6:
		out = digits[:1]
		if len(digits) > 1 {
			out += "." + digits[1:]
		}
		out += "e" + strconv.Itoa(point-1)
	case point <= 0:
		out = "0." + strings.Repeat("0", -point) + digits
	case point >= len(digits):
		out = digits + strings.Repeat("0", point-len(digits))
	default:
		out = digits[:point] + "." + digits[point:]
	}
	return sign + out + "%"
}

// MarshalYAML writes the percentage as text ("10%").
func (p Percent) MarshalYAML() (any, error) { return p.String(), nil }

// UnmarshalYAML reads a percentage ("10%").
func (p *Percent) UnmarshalYAML(n *yaml.Node) error { return unmarshalScalar(n, ParsePercent, p) }

// MarshalJSON writes the percentage as a string ("10%").
func (p Percent) MarshalJSON() ([]byte, error) { return json.Marshal(p.String()) }

// UnmarshalJSON reads a percentage string ("10%").
func (p *Percent) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(wantPercent)
	}
	v, err := ParsePercent(s)
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// unmarshalScalar serves the UnmarshalYAML methods, for callers that decode plan parts with yaml
// directly; Parse uses the same parse functions through its strict pass.
func unmarshalScalar[T any](n *yaml.Node, parse func(string) (T, error), out *T) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a single value, got %s", n.Line, describe(n))
	}
	if n.ShortTag() == nullTag {
		var zero T
		*out = zero
		return nil
	}
	v, err := parse(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w, got %q", n.Line, err, n.Value)
	}
	*out = v
	return nil
}

// MaxProcesses bounds load.workers and target.builtin.processes.
const MaxProcesses = 256

// ParseCount reads "auto" (0) or a whole number of processes from 1 to MaxProcesses.
func ParseCount(s string) (Count, error) {
	if s == "auto" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxProcesses {
		return 0, fmt.Errorf(`want "auto" or a whole number from 1 to %d`, MaxProcesses)
	}
	return Count(n), nil
}

func (c Count) String() string {
	if c == 0 {
		return "auto"
	}
	return strconv.Itoa(int(c))
}

// MarshalYAML writes "auto" or the number.
func (c Count) MarshalYAML() (any, error) {
	if c == 0 {
		return "auto", nil
	}
	return int(c), nil
}

// UnmarshalYAML reads what MarshalYAML writes.
func (c *Count) UnmarshalYAML(n *yaml.Node) error { return unmarshalScalar(n, ParseCount, c) }

// MarshalJSON writes "auto" or the number.
func (c Count) MarshalJSON() ([]byte, error) {
	if c == 0 {
		return []byte(`"auto"`), nil
	}
	return []byte(strconv.Itoa(int(c))), nil
}

// UnmarshalJSON reads "auto" or a number.
func (c *Count) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	v, err := ParseCount(s)
	if err != nil {
		return err
	}
	*c = v
	return nil
}

const wantSendCount = `want a whole number of requests per connection, or "unlimited"`

// ParseSendCount reads "unlimited" (Unlimited) or a whole number; the range is Validate's.
func ParseSendCount(s string) (SendCount, error) {
	if s == "unlimited" {
		return Unlimited, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, errors.New(wantSendCount)
	}
	if n < 0 {
		return 0, errors.New(wantSendCount) // -1 is not read as unlimited: that must be said
	}
	return SendCount(n), nil
}

func (c SendCount) String() string {
	if c == Unlimited {
		return "unlimited"
	}
	return strconv.Itoa(int(c))
}

// MarshalYAML writes "unlimited" or the number.
func (c SendCount) MarshalYAML() (any, error) {
	if c == Unlimited {
		return "unlimited", nil
	}
	return int(c), nil
}

// UnmarshalYAML reads what MarshalYAML writes.
func (c *SendCount) UnmarshalYAML(n *yaml.Node) error { return unmarshalScalar(n, ParseSendCount, c) }

// MarshalJSON writes "unlimited" or the number.
func (c SendCount) MarshalJSON() ([]byte, error) {
	if c == Unlimited {
		return []byte(`"unlimited"`), nil
	}
	return []byte(strconv.Itoa(int(c))), nil
}

// UnmarshalJSON reads "unlimited" or a number.
func (c *SendCount) UnmarshalJSON(b []byte) error {
	v, err := ParseSendCount(strings.Trim(string(b), `"`))
	if err != nil {
		return err
	}
	*c = v
	return nil
}
