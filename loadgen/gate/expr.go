package gate

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/portstorm/portstorm/loadgen/plan"
)

// Op is a threshold's comparison.
type Op uint8

const (
	Less Op = iota
	LessEqual
	Greater
	GreaterEqual
	Equal
	NotEqual
)

var opTexts = [...]string{"<", "<=", ">", ">=", "==", "!="}

func (o Op) String() string { return opTexts[o] }

func (o Op) holds(a, b float64) bool {
	switch o {
	case Less:
		return a < b
	case LessEqual:
		return a <= b
	case Greater:
		return a > b
	case GreaterEqual:
		return a >= b
	case Equal:
		return a == b
	default:
		return a != b
	}
}

// Threshold is one compiled condition: METRIC OP LIMIT.
type Threshold struct {
	// Expr is the expression as written in the plan.
	Expr   string
	Metric *Metric
	Op     Op
	// Limit is in summary.json's units for the metric's kind (µs, fraction, count, per second,
	// bytes). None is true when the limit is "none" (the event never happened).
	Limit float64
	None  bool
	// LimitText is the limit as written ("5ms", "0.1%").
	LimitText string
	// AbortOnFail stops the run as soon as the threshold fails on the running totals, once Delay of
	// the run has passed.
	AbortOnFail bool
	Delay       time.Duration
}

// Condition is the operator and limit as written: "< 5ms".
func (t *Threshold) Condition() string { return t.Op.String() + " " + t.LimitText }

const wantExpr = `want METRIC OP VALUE, like "connect.p99 < 5ms" (OP is <, <=, >, >=, == or !=)`

// maxExpr bounds an expression's length; plans are capped, and so is each part.
const maxExpr = 512

// Parse compiles a threshold expression against the plan's context. Errors say what is wrong and
// what would be accepted; they never panic, whatever the input.
func Parse(expr string, c Context) (*Threshold, error) {
	s := strings.TrimSpace(expr)
	if s == "" {
		return nil, errors.New("empty; " + wantExpr)
	}
	if len(s) > maxExpr {
		return nil, fmt.Errorf("%d characters; an expression is at most %d", len(s), maxExpr)
	}
	i := strings.IndexAny(s, "<>=!")
	if i < 0 {
		return nil, fmt.Errorf("no comparison in %q; %s", s, wantExpr)
	}
	name, rest := strings.TrimSpace(s[:i]), s[i:]
	var op Op
	var opText string
	for _, o := range []Op{LessEqual, GreaterEqual, Equal, NotEqual, Less, Greater} {
		if strings.HasPrefix(rest, o.String()) {
			op, opText = o, o.String()
			break
		}
	}
	switch {
	case strings.HasPrefix(rest, "=<") || strings.HasPrefix(rest, "=>"):
		return nil, fmt.Errorf("%q is not an operator; write %s=", rest[:2], rest[1:2])
	case opText == "" && strings.HasPrefix(rest, "="):
		return nil, fmt.Errorf("a single = is not a comparison; write == for equality")
	case opText == "":
		return nil, fmt.Errorf("%q is not an operator; %s", rest[:1], wantExpr)
	}
	limit := strings.TrimSpace(rest[len(opText):])
	switch {
	case name == "":
		return nil, fmt.Errorf("no metric before %s; %s", opText, wantExpr)
	case strings.ContainsAny(name, " \t"):
		return nil, fmt.Errorf("metric %q contains a space; %s", name, wantExpr)
	case limit == "":
		return nil, fmt.Errorf("no value after %s; %s", opText, wantExpr)
	case strings.ContainsAny(limit, "<>=!"):
		return nil, fmt.Errorf("more than one comparison in %q; a threshold is one comparison, write one threshold per condition", s)
	}
	m, err := Resolve(name, c)
	if err != nil {
		return nil, err
	}
	t := &Threshold{Expr: expr, Metric: m, Op: op, LimitText: limit}
	if limit == "none" {
		if !m.Nullable {
			return nil, fmt.Errorf("%s always has a value, so it cannot be none; none applies to ports.exhaustion and first.OUTCOME", m.Name)
		}
		if op != Equal && op != NotEqual {
			return nil, fmt.Errorf("none compares only with == or !=, not %s", op)
		}
		t.None = true
		return t, nil
	}
	if t.Limit, err = parseLimit(limit, m); err != nil {
		return nil, err
	}
	return t, nil
}

var (
	countRE = regexp.MustCompile(`^[0-9]+$|^[0-9]{1,3}(_[0-9]{3})+$`)
	spaceRE = regexp.MustCompile(`^[0-9.]+\s+\S+$`)
)

// parseLimit reads a limit in the units of the metric's kind, refusing what would be ambiguous: a
// bare number for a time (5 what?), a count with a unit, a share above 1 without %.
func parseLimit(s string, m *Metric) (float64, error) {
	if spaceRE.MatchString(s) {
		return 0, fmt.Errorf("%q: write the number and its unit without a space, like %s", s, strings.Join(strings.Fields(s), ""))
	}
	if strings.ContainsAny(s, " \t") {
		return 0, fmt.Errorf("%q: one value after the operator, without spaces", s)
	}
	switch m.Kind {
	case Time:
		if _, err := strconv.ParseFloat(s, 64); err == nil {
			return 0, fmt.Errorf("%s is a time; write the limit with a unit, like %sms or %ss", m.Name, s, s)
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%s is a time; want a duration like 5ms, 250us or 1.5s, got %q", m.Name, s)
		}
		if d < 0 {
			return 0, fmt.Errorf("%s: a time limit is 0 or more, got %s", m.Name, s)
		}
		return float64(d) / float64(time.Microsecond), nil
	case Ratio:
		if p, ok := strings.CutSuffix(s, "%"); ok {
			f, err := strconv.ParseFloat(p, 64)
			if err != nil || math.IsNaN(f) || f < 0 || f > 100 {
				return 0, fmt.Errorf("%s is a share; want a percentage from 0%% to 100%%, like 0.1%%, got %q", m.Name, s)
			}
			return f / 100, nil
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || f < 0 {
			return 0, fmt.Errorf("%s is a share; want a percentage like 0.1%% or a fraction like 0.001, got %q", m.Name, s)
		}
		if f > 1 {
			return 0, fmt.Errorf("%s is a share between 0 and 1; did you mean %s%%?", m.Name, s)
		}
		return f, nil
	case PerSecond:
		p := strings.TrimSuffix(s, "/s")
		f, err := strconv.ParseFloat(p, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
			return 0, fmt.Errorf("%s is a rate; want a number per second like 500 or 500/s, got %q", m.Name, s)
		}
		return f, nil
	case Bytes:
		n, err := plan.ParseSize(s)
		if err != nil {
			return 0, fmt.Errorf("%s is a size: %v, got %q", m.Name, err, s)
		}
		return float64(n), nil
	default:
		if !countRE.MatchString(s) {
			return 0, fmt.Errorf("%s is a count; want a whole number like 1000 or 60_000, got %q", m.Name, s)
		}
		n, err := strconv.ParseUint(strings.ReplaceAll(s, "_", ""), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: count %q is too large", m.Name, s)
		}
		return float64(n), nil
	}
}

// judge evaluates the threshold on a view: whether it holds and the observed figure as shown.
func (t *Threshold) judge(v *view) (bool, string) {
	ok, obs, _ := t.judgeFigure(v)
	return ok, obs
}

// judgeFigure is judge, also saying whether the figure was missing (no evidence either way).
func (t *Threshold) judgeFigure(v *view) (pass bool, observed string, isMissing bool) {
	pass, observed = t.compare(t.Metric.get(v))
	return pass, observed, strings.HasPrefix(observed, "n/a (")
}

func (t *Threshold) compare(f figure) (bool, string) {
	switch f.st {
	case missing:
		return false, "n/a (" + f.why + ")"
	case never:
		if t.None {
			return t.Op == Equal, "none"
		}
		// Never happened: later, or larger, than any limit.
		return t.Op.holds(math.Inf(1), t.Limit), "none"
	}
	obs := Format(t.Metric.Kind, f.v)
	if t.None {
		return t.Op == NotEqual, obs
	}
	return t.Op.holds(f.v, t.Limit), obs
}

// Format shows a value of a kind as people read it: 730µs, 1.25ms, 0.012%, 1,000/s, 64KiB.
func Format(k Kind, v float64) string {
	switch k {
	case Time:
		return formatUS(v)
	case Ratio:
		p := v * 100
		switch {
		case p == 0:
			return "0%"
		case p >= 1:
			return trimZeros(strconv.FormatFloat(p, 'f', 2, 64)) + "%"
		default:
			return strconv.FormatFloat(p, 'g', 3, 64) + "%"
		}
	case PerSecond:
		return trimZeros(strconv.FormatFloat(v, 'f', 1, 64)) + "/s"
	case Bytes:
		return formatBytes(v)
	default:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
}

func formatUS(us float64) string {
	switch {
	case math.IsInf(us, 0) || math.IsNaN(us):
		return strconv.FormatFloat(us, 'f', -1, 64)
	case us < 1000:
		return trimZeros(strconv.FormatFloat(us, 'f', 1, 64)) + "µs"
	case us < 1_000_000:
		return trimZeros(strconv.FormatFloat(us/1e3, 'f', 2, 64)) + "ms"
	default:
		return trimZeros(strconv.FormatFloat(us/1e6, 'f', 2, 64)) + "s"
	}
}

func formatBytes(b float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	if i == 0 {
		return strconv.FormatFloat(b, 'f', 0, 64) + "B"
	}
	return trimZeros(strconv.FormatFloat(b, 'f', 2, 64)) + units[i]
}

func trimZeros(s string) string {
	if !strings.Contains(s, ".") {
		return s
	}
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
