package plan

import (
	"strconv"
	"strings"
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
	switch {
	case e.Origin != "":
		b.WriteString(e.Origin)
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
	field := e.Field
	if e.Origin != "" && field != "" && strings.HasSuffix(e.Origin, " "+field) {
		field = ""
	}
	if field != "" {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(field)
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
