package plan

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// FieldError is one problem with a plan, placed where the user can find it: a file and line, or the
// override (--set or environment variable) that carried the value.
type FieldError struct {
	// File is the plan file ("" for plans built in code).
	File string
	// Line is the 1-based line in File; 0 when unknown (a default, or a value from an override).
	Line int
	// Field is the field path, e.g. "load.stages[1].target"; "" when the problem is the whole document.
	Field string
	// Msg says what is wrong and what would be accepted.
	Msg string
	// Origin names the override that set the value ("--set load.model", "env PORTSTORM_LOAD_MODEL");
	// when set, it replaces file:line in the message.
	Origin string
}

// Error renders "file:line: field: msg", or "origin: field: msg" for overridden values. Parts that are
// unknown are left out; when the origin already ends with the field ("--set load.modle") the field is
// not repeated.
func (e *FieldError) Error() string {
	var b strings.Builder
	field := e.Field
	switch {
	case e.Origin != "" && field != "" && strings.HasSuffix(e.Origin, " "+field):
		b.WriteString(strings.TrimSuffix(e.Origin, field))
		b.WriteString(echoPath(field))
		field = ""
	case e.Origin != "":
		b.WriteString(echoPath(e.Origin))
	case e.File != "" && e.Line > 0:
		b.WriteString(e.File)
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	case e.File != "":
		b.WriteString(e.File)
	case e.Line > 0:
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
	}
	if field != "" {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(echoPath(field))
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one pass, in the order found. Load and Parse return it.
type Errors []*FieldError

// Error renders one line per problem.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes each *FieldError to errors.As and errors.Is.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// maxEcho is how many characters of a value a message repeats: enough to recognise it, where a
// pasted 100 KB value echoed whole would bury the message.
const maxEcho = 80

// maxEchoPath is how many characters of a path, a field path or an override's name a message
// repeats: more than of a value, since real paths run long.
const maxEchoPath = 240

// echoLen is the byte length of the first max characters of s.
func echoLen(s string, max int) int {
	i := 0
	for n := 0; i < len(s) && n < max; n++ {
		_, w := utf8.DecodeRuneInString(s[i:])
		i += w
	}
	return i
}

// clip shortens a path for a message to its first maxEchoPath characters, an ellipsis and its whole length;
// cut says whether it did.
func clip(s string) (short string, cut bool) {
	i := echoLen(s, maxEchoPath)
	if i == len(s) {
		return s, false
	}
	return fmt.Sprintf("%s... (%d bytes)", s[:i], len(s)), true
}

// quote is strconv.Quote of a value, shortened as clip does (the ellipsis outside the quotes, so
// that what is quoted is exactly the value's start).
func quote(s string) string {
	i := echoLen(s, maxEcho)
	if i == len(s) {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(s[:i]), len(s))
}

// echo is a string argument of an error message: %q quotes it shortened (see quote); other verbs
// print it as a string would.
type echo string

func (e echo) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		f.Write([]byte(quote(string(e))))
		return
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), string(e))
}

// echoArgs makes the string arguments of a message echo, so that every value a message quotes is
// shortened, whoever wrote the format.
func echoArgs(args []any) []any {
	for i, a := range args {
		if s, ok := a.(string); ok {
			args[i] = echo(s)
		}
	}
	return args
}
