package plan

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// MaxFileSize is the largest plan file LoadFile and Parse read (1 MiB). A plan is a page of settings; a
// bigger file is a mistake or an attack on the parser.
const MaxFileSize = 1 << 20

const nullTag = "!!null"

// LoadFile reads the plan file at path, applies the overrides and decodes it strictly. The error,
// when not from reading the file, is Errors: every problem found, each with file:line or its
// override. LoadFile neither fills defaults nor validates: call Defaults, then Validate. (It is not
// named Load because the type Load, the load model, holds that name in this package.)
//
// Only a regular file is read (see ReadFile): a named pipe given as the plan would otherwise
// block the open until something writes to it.
//
// When the strict pass finds problems, LoadFile returns them with the partial plan, as Parse does.
func LoadFile(path string, o Overrides) (*Plan, error) {
	data, err := readRegular(path, MaxFileSize)
	var big *tooLargeError
	switch {
	case errors.As(err, &big):
		return nil, tooBig(path, big.size)
	case err != nil:
		return nil, fmt.Errorf("read plan: %w", err)
	}
	return Parse(path, data, o)
}

func tooBig(file string, n int64) error {
	return Errors{{File: file, Msg: fmt.Sprintf("plan file is %d bytes; the limit is %d bytes (1 MiB)", n, MaxFileSize)}}
}

// Parse decodes a plan from data, naming file in errors, with the overrides applied on top: the YAML
// is read into a node tree, the overrides are applied to it one by one (see Overrides: each value
// replaces the node at its path, a null removes it), and one strict pass
// decodes the merged tree into a Plan, collecting every unknown key, duplicate key, alias, wrong type
// and unreadable value. It records the line (or override) of every field set in Plan.Lines and
// Plan.Origins. A null value (`key:` or `key: ~`) leaves the field unset.
//
// When the document is read but the strict pass finds problems, Parse returns the errors and the
// partial plan: every field that decoded, the others left unset. Defaults and Validate work on it
// and Validate leaves out what would only repeat the strict pass's problems (see Plan.Undecoded), so
// that a user sees every problem of a plan at once. When the document cannot be read at all (bad
// YAML, not a mapping, too big) the plan is nil.
func Parse(file string, data []byte, o Overrides) (*Plan, error) {
	if len(data) > MaxFileSize {
		return nil, tooBig(file, int64(len(data)))
	}
	ovs, ovErrs := o.resolve()
	root, errs := parseDocument(file, data)
	if root == nil {
		return nil, append(errs, ovErrs...)
	}
	d := &decoder{
		file:    file,
		lines:   make(map[string]int),
		origins: make(map[string]string),
		marks:   make(map[*yaml.Node]string),
	}
	d.applyAll(root, ovs)
	p := &Plan{File: file}
	d.decode(root, reflect.ValueOf(p).Elem(), "", root.Line, "")
	errs = append(append(errs, d.errs...), ovErrs...)
	p.Lines, p.Origins = d.lines, d.origins
	if len(errs) > 0 {
		p.undecoded = d.unset
		return p, errs
	}
	return p, nil
}

// Undecoded reports whether the strict pass left the field at path unset because its value could
// not be decoded, or a field it holds, or the field that holds it: a check of the field would only
// repeat (or follow from) a problem already reported. It is false for every field of a plan Parse
// accepted.
func (p *Plan) Undecoded(path string) bool {
	for _, u := range p.undecoded {
		if within(path, u) || within(u, path) {
			return true
		}
	}
	return false
}

// within reports whether path is inner or the field inner is in: "load.stages[1].target" is
// within "load.stages" and "load", not within "load.stage".
func within(inner, path string) bool {
	if !strings.HasPrefix(inner, path) {
		return false
	}
	return len(inner) == len(path) || path == "" || inner[len(path)] == '.' || inner[len(path)] == '['
}

var yamlErrRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseDocument reads exactly one YAML document whose top is a mapping.
func parseDocument(file string, data []byte) (*yaml.Node, Errors) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	err := dec.Decode(&doc)
	if errors.Is(err, io.EOF) {
		return nil, Errors{{File: file, Line: 1, Msg: "the plan is empty; want a mapping that starts with version: 1"}}
	}
	if err != nil {
		return nil, Errors{syntaxError(file, data, err)}
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, Errors{{File: file, Line: extra.Line, Msg: "a plan file holds one YAML document; found a second"}}
	case !errors.Is(err, io.EOF):
		return nil, Errors{syntaxError(file, data, err)}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, Errors{{File: file, Line: 1, Msg: "the plan is empty; want a mapping that starts with version: 1"}}
	}
	root := doc.Content[0]
	switch {
	case root.Kind == yaml.ScalarNode && root.ShortTag() == nullTag:
		return nil, Errors{{File: file, Line: max(root.Line, 1), Msg: "the plan is empty; want a mapping that starts with version: 1"}}
	case root.Kind != yaml.MappingNode:
		return nil, Errors{{File: file, Line: root.Line, Msg: "the plan must be a mapping of keys (version, name, target, ...), got " + describe(root)}}
	}
	return root, nil
}

// syntaxError places a YAML error. The parser leaves out the line of errors on the first line and
// of errors in the bytes themselves (not UTF-8, control characters); for those the line is found
// here, so that binary junk in a plan is reported where it is.
func syntaxError(file string, data []byte, err error) *FieldError {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlErrRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &FieldError{File: file, Line: line, Msg: "invalid YAML: " + m[2]}
	}
	inBytes := strings.Contains(msg, "UTF-") || strings.Contains(msg, "control characters") || strings.Contains(msg, "Unicode")
	if line, col, junk := firstJunk(data); inBytes && line > 0 {
		return &FieldError{File: file, Line: line, Msg: fmt.Sprintf("invalid YAML: %s (%s at column %d); a plan is UTF-8 text", msg, junk, col)}
	}
	return &FieldError{File: file, Line: 1, Msg: "invalid YAML: " + msg}
}

// firstJunk finds the first character YAML does not allow in a stream (YAML 1.2 section 5.1,
// c-printable; the set go.yaml.in/yaml/v3's reader checks) or the first bytes that are not UTF-8:
// its 1-based line and column (in characters), and the bytes in hex. line is 0 when there is none,
// or when the stream starts with a UTF-16 byte order mark (the YAML reader decodes those; this scan
// does not).
func firstJunk(data []byte) (line, col int, junk string) {
	if bytes.HasPrefix(data, []byte{0xFF, 0xFE}) || bytes.HasPrefix(data, []byte{0xFE, 0xFF}) {
		return 0, 0, ""
	}
	line, col = 1, 1
	for i := 0; i < len(data); {
		r, w := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && w <= 1:
			return line, col, fmt.Sprintf("byte 0x%02x, not UTF-8,", data[i])
		case r == '\n':
			line, col = line+1, 0
		case r == 0x09, r == 0x0D, r >= 0x20 && r <= 0x7E, r == 0x85,
			r >= 0xA0 && r <= 0xD7FF, r >= 0xE000 && r <= 0xFFFD, r >= 0x10000 && r <= 0x10FFFF:
		default:
			return line, col, fmt.Sprintf("control character %U", r)
		}
		i += w
		col++
	}
	return 0, 0, ""
}

// decoder is the strict pass: it walks a node tree alongside the Plan type.
type decoder struct {
	file    string
	errs    Errors
	lines   map[string]int
	origins map[string]string
	// unset lists the fields left unset because their value could not be decoded.
	unset []string
	// marks holds the nodes an override put in the tree (its value, and mappings it had to create),
	// with the override's name; everything under a marked node is attributed to it.
	marks map[*yaml.Node]string
}

// fail records a problem at line of the file, or at the override named by origin.
func (d *decoder) fail(line int, origin, field, format string, args ...any) {
	e := &FieldError{Field: field, Msg: fmt.Sprintf(format, echoArgs(args)...)}
	if origin != "" {
		e.Origin = origin
	} else {
		e.File, e.Line = d.file, line
	}
	d.errs = append(d.errs, e)
}

// bad records a problem that leaves the field at path unset.
func (d *decoder) bad(line int, origin, field, format string, args ...any) {
	d.fail(line, origin, field, format, args...)
	d.unset = append(d.unset, field)
}

// decode stores node n into v, the field at path, whose key sits at line.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string, line int, origin string) {
	if o, ok := d.marks[n]; ok {
		origin = o
	}
	if origin != "" {
		d.lines[path], d.origins[path] = 0, origin
	} else {
		d.lines[path] = line
	}
	if n.Kind == yaml.AliasNode {
		d.bad(line, origin, path, "aliases (*%s) are not allowed; write the value out", n.Value)
		return
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == nullTag {
		return
	}
	t := v.Type()
	switch t {
	case durationType:
		d.unit(n, v, path, line, origin, func(s string) (any, error) { return ParseDuration(s) })
		return
	case sizeType:
		d.unit(n, v, path, line, origin, func(s string) (any, error) { return ParseSize(s) })
		return
	case countType:
		d.unit(n, v, path, line, origin, func(s string) (any, error) { return ParseCount(s) })
		return
	case rateType:
		d.unit(n, v, path, line, origin, func(s string) (any, error) { return ParseRate(s) })
		return
	case sendCountType:
		d.unit(n, v, path, line, origin, func(s string) (any, error) { return ParseSendCount(s) })
		return
	case percentType:
		d.unit(n, v, path, line, origin, func(s string) (any, error) { return ParsePercent(s) })
		return
	case thresholdType:
		if n.Kind == yaml.ScalarNode { // the short form: just the expression
			d.lines[path+".expr"] = d.lines[path]
			if origin != "" {
				d.origins[path+".expr"] = origin
			}
			v.FieldByName("Expr").SetString(n.Value)
			return
		}
	}
	switch t.Kind() {
	case reflect.Pointer:
		unset := len(d.unset)
		e := reflect.New(t.Elem())
		d.decode(n, e.Elem(), path, line, origin)
		if !slices.Contains(d.unset[unset:], path) {
			v.Set(e) // else the group stays unset: a partial plan has no empty group that was never given
		}
	case reflect.Struct:
		d.mapping(n, v, path, line, origin)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.bad(line, origin, path, "want a list, got %s", describe(n))
			return
		}
		if len(n.Content) == 0 {
			return // an empty list is no list: nil, so that plans round-trip
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), path+"["+strconv.Itoa(i)+"]", item.Line, origin)
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.bad(line, origin, path, "want a string, got %s", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Int:
		var i int64
		if n.Kind != yaml.ScalarNode || n.Decode(&i) != nil || v.OverflowInt(i) {
			d.bad(line, origin, path, "want an integer, got %s", describe(n))
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		var f float64
		if n.Kind != yaml.ScalarNode || n.Decode(&f) != nil {
			d.bad(line, origin, path, "want a number, got %s", describe(n))
			return
		}
		v.SetFloat(f)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
			d.bad(line, origin, path, "want true or false, got %s", describe(n))
			return
		}
		v.SetBool(b)
	default:
		panic("plan: no strict decoding for " + t.String()) // a new field type in types.go
	}
}

// unit decodes a scalar written with units (duration, size, rate, percent).
func (d *decoder) unit(n *yaml.Node, v reflect.Value, path string, line int, origin string, parse func(string) (any, error)) {
	if n.Kind != yaml.ScalarNode {
		d.bad(line, origin, path, "want a single value, got %s", describe(n))
		return
	}
	x, err := parse(n.Value)
	if err != nil {
		d.bad(line, origin, path, "%v, got %s", err, describe(n))
		return
	}
	v.Set(reflect.ValueOf(x))
}

// mapping decodes a YAML mapping into struct v, key by key.
func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string, line int, origin string) {
	if n.Kind != yaml.MappingNode {
		d.bad(line, origin, path, "want a mapping of keys, got %s", describe(n))
		return
	}
	fields := fieldsOf(v.Type())
	seen := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			what := "got " + describe(k)
			if k.Kind == yaml.AliasNode {
				what = "aliases are not allowed"
			}
			d.fail(k.Line, origin, path, "keys must be plain words; %s", what)
			continue
		}
		fpath := joinPath(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.fail(k.Line, origin, fpath, "duplicate key (first at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		f, ok := lookupField(v.Type(), k.Value)
		if !ok {
			if s := suggest(k.Value, fields); s != "" {
				d.fail(k.Line, origin, fpath, "unknown key%s", s)
			} else {
				d.fail(k.Line, origin, fpath, "unknown key; want one of %s", keyList(fields))
			}
			continue
		}
		d.decode(val, v.Field(f.index), fpath, k.Line, origin)
	}
}

// describe names a node's kind, or quotes a scalar's text (shortened), for "got ..." messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	if n.ShortTag() == nullTag {
		return "nothing"
	}
	return quote(n.Value)
}
