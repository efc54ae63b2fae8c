package plan

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Overrides change plan settings without editing the file. Each names a setting by its path (see
// Keys) and gives its value as YAML text, so "--set load.max_in_flight=100" is an integer and
// "--set load.stages=[{duration: 5s, target: 10}]" a list. Precedence, lowest first: the file, the
// environment, --set. The environment's variables are applied first (in Keys order), then the --set
// flags one after another in flag order, each to the plan as the ones before it left it: a later
// --set of the same key wins over an earlier one, and "--set load.stages=[...] --set
// load.stages[0].target=5" edits the list the first flag gave.
//
// What a --set can name (README.md, "Overrides" under "Plans"):
//   - a setting ("load.model", "target.builtin.mode"); a setting inside a group the file lacks
//     creates the group. A list-valued setting (load.stages, target.addresses, thresholds) given
//     whole is replaced whole.
//   - an element of a list the plan has, by its index from 0 ("load.stages[0]",
//     "load.stages[0].target", "thresholds[1].abort_on_fail", "target.addresses[0]"). An index
//     past the end is an error that names the list's length: to add elements, set the whole list.
//   - with the value null (or ~, or nothing: "--set baseline="), anything above, and a group
//     ("--set baseline=null"): the key is removed, as if the file had never written it (a list
//     element is removed from its list). A group can not be given a value other than null:
//     "--set target.builtin={mode: sink}" is refused; set its keys one by one.
//
// Some settings exclude each other (exclusive): target.builtin and target.addresses; the request's
// connection.send.data, hex and file. An override that sets one of them removes the others when a
// lower layer gave them (the file, or the environment under a --set), so "--set
// target.addresses=[127.0.0.1:8080]" turns a built-in target plan into one against that server.
// Two overrides of the same layer that set both are left for Validate to refuse.
type Overrides struct {
	// Sets are "key=value" pairs from --set flags, in flag order.
	Sets []string
	// Env is the environment, os.Environ style ("K=V"), injected so tests need not touch the process
	// environment. A setting's variable is EnvVar(path): PORTSTORM_ and the path upper-cased with
	// dots as underscores (PORTSTORM_LOAD_MODEL, PORTSTORM_CONNECTION_CONNECT_TIMEOUT). Variables that
	// name no setting are not overrides (UnknownEnv lists them for a warning), and empty values are
	// ignored.
	Env []string
}

// exclusive lists the settings that exclude each other (see Overrides). Validate refuses a plan
// that sets two of one group.
var exclusive = [][]string{
	{"target.builtin", "target.addresses"},
	{"connection.send.data", "connection.send.hex", "connection.send.file"},
}

// override is one override: the setting (or element, or group) it names, its value as text, and
// where it came from.
type override struct {
	path, text, origin string
	steps              []step
	// set is true for a --set flag, false for an environment variable: the layer it belongs to.
	set bool
}

// step is one element of an override's path: a key, and the index of a list element when the
// path gives one ("stages[0]"; -1 when not). typ is the type at the step (the element's type after
// an index).
type step struct {
	name  string
	index int
	typ   reflect.Type
}

// resolve lists the overrides in the order they apply: the environment's, then the --set flags.
// Malformed --set flags are errors named by the flag.
func (o Overrides) resolve() ([]override, Errors) {
	var errs Errors
	var out []override
	env := make(map[string]string) // setting -> variable that set it
	vals := make(map[string]string)
	for _, kv := range o.Env {
		name, val, ok := strings.Cut(kv, "=")
		path, known := envPaths()[name]
		if !ok || !known || val == "" {
			continue
		}
		env[path], vals[path] = name, val
	}
	for _, path := range keys() {
		if name, ok := env[path]; ok {
			steps, _ := parseKey(path, false) // a key of the schema: never an error
			out = append(out, override{path: path, text: vals[path], origin: "env " + name, steps: steps})
		}
	}
	for _, kv := range o.Sets {
		key, val, ok := strings.Cut(kv, "=")
		key = strings.TrimSpace(key)
		origin := "--set " + key
		if !ok || key == "" {
			if key == "" {
				origin = "--set " + kv
			}
			errs = append(errs, &FieldError{Origin: origin, Field: key, Msg: "want key=value, e.g. --set load.model=arrival"})
			continue
		}
		steps, e := parseKey(key, isNull(val))
		if e != nil {
			e.Origin = origin
			errs = append(errs, e)
			continue
		}
		out = append(out, override{path: key, text: val, origin: origin, steps: steps, set: true})
	}
	return out, errs
}

// isNull reports whether a value's YAML text is null: empty, "null", "~" (as YAML reads them).
func isNull(text string) bool {
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(text), &n); err != nil {
		return false
	}
	return len(n.Content) == 0 || (len(n.Content) == 1 && n.Content[0].Kind == yaml.ScalarNode && n.Content[0].ShortTag() == nullTag)
}

// parseKey reads an override's path against the schema: keys separated by dots, a list-valued
// key followed by [N] to name one element. null says the value is null (a removal), which a group
// may take.
func parseKey(key string, null bool) ([]step, *FieldError) {
	t := planType
	parts := strings.Split(key, ".")
	steps := make([]step, 0, len(parts))
	for i, part := range parts {
		name, index, err := splitIndex(part)
		path := strings.Join(parts[:i], ".")
		if err != "" {
			return nil, &FieldError{Field: joinPath(path, part), Msg: err}
		}
		path = joinPath(path, name)
		fields := fieldsOf(t)
		f, ok := lookupField(t, name)
		if !ok {
			msg := "unknown key" + suggest(name, fields)
			if !strings.Contains(msg, "did you mean") {
				msg += "; want one of " + keyList(fields)
			}
			return nil, &FieldError{Field: path, Msg: msg}
		}
		last := i == len(parts)-1
		typ := f.typ
		if index >= 0 {
			if typ.Kind() != reflect.Slice {
				return nil, &FieldError{Field: path, Msg: "is not a list; [N] selects an element of a list, like load.stages[0].target"}
			}
			typ = typ.Elem()
			path += "[" + strconv.Itoa(index) + "]"
		}
		switch {
		case index < 0 && typ.Kind() == reflect.Slice && !last:
			return nil, &FieldError{Field: path, Msg: fmt.Sprintf("is a list; name one of its elements by its index from 0, like %s[0].%s", path, parts[i+1])}
		case last && index < 0 && isGroup(typ) && !null:
			return nil, &FieldError{Field: path, Msg: "is a group of settings; set one of its keys: " + prefixed(path, fieldsOf(deref(typ))) + " (or " + path + "=null to remove it)"}
		case !last && !isGroup(typ):
			return nil, &FieldError{Field: path, Msg: "is a single setting with no keys below it"}
		}
		steps = append(steps, step{name: name, index: index, typ: typ})
		t = deref(typ)
	}
	return steps, nil
}

// splitIndex splits "stages[3]" into "stages" and 3; a part without brackets has index -1. The
// error is a message for a part that is neither.
func splitIndex(part string) (name string, index int, msg string) {
	open := strings.IndexByte(part, '[')
	if open < 0 {
		if strings.IndexByte(part, ']') >= 0 {
			return "", 0, "unbalanced ]; an element is named key[N], like load.stages[0]"
		}
		return part, -1, ""
	}
	name, num := part[:open], part[open+1:]
	num, closed := strings.CutSuffix(num, "]")
	n, err := strconv.Atoi(num)
	switch {
	case !closed || strings.ContainsAny(num, "[]"):
		return "", 0, "want key[N], one index in brackets at the end of a key, like load.stages[0]"
	case err != nil || n < 0 || num != strconv.Itoa(n):
		return "", 0, fmt.Sprintf("want a list index from 0 in the brackets, got %q", num)
	case name == "":
		return "", 0, "want a key before [N], like load.stages[0]"
	}
	return name, n, ""
}

func prefixed(path string, fields []schemaField) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = path + "." + f.name
	}
	return strings.Join(names, ", ")
}

// applyAll applies the overrides in order, removing for each one the settings it excludes (see
// Overrides) that a lower layer gave.
func (d *decoder) applyAll(root *yaml.Node, ovs []override) {
	setBy := make(map[string]bool) // exclusive setting -> set by a --set (true) or the environment (false)
	for _, ov := range ovs {
		if !d.apply(root, ov) {
			continue
		}
		for _, group := range exclusive {
			i := slices.IndexFunc(group, func(m string) bool { return within(ov.path, m) })
			if i < 0 {
				continue
			}
			for j, other := range group {
				if by, ok := setBy[other]; j != i && (!ok || by != ov.set) {
					steps, _ := parseKey(other, true)
					removeAt(root, steps)
					delete(setBy, other)
				}
			}
			setBy[group[i]] = ov.set
		}
	}
}

// apply puts an override's value into the tree at its path, creating mappings on the way; what it
// replaces or creates is marked with the override's name. A null value removes what is at the path.
// It reports whether it set a value (false for a removal, and for an override it refused).
func (d *decoder) apply(root *yaml.Node, ov override) bool {
	var doc, extra yaml.Node
	dec := yaml.NewDecoder(strings.NewReader(ov.text))
	err := dec.Decode(&doc)
	if err == nil {
		// A value is one YAML document; a second (after a "---" or "..." line) would be dropped.
		if err = dec.Decode(&extra); !errors.Is(err, io.EOF) {
			d.bad(0, ov.origin, ov.path, "the value holds more than one YAML document (a line \"---\" or \"...\" ends the first); quote it to set the text")
			return false
		}
	}
	if err != nil && !errors.Is(err, io.EOF) {
		d.bad(0, ov.origin, ov.path, "the value is not valid YAML (%s); quote it", strings.TrimPrefix(err.Error(), "yaml: "))
		return false
	}
	val := &yaml.Node{Kind: yaml.ScalarNode, Tag: nullTag}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		val = doc.Content[0]
	}
	if val.Kind == yaml.ScalarNode && val.ShortTag() == nullTag {
		if msg := removeAt(root, ov.steps); msg != "" {
			d.bad(0, ov.origin, ov.path, "%s", msg)
		}
		return false
	}
	d.marks[val] = ov.origin
	m := root
	for i, s := range ov.steps {
		last := i == len(ov.steps)-1
		idx := keyIndex(m, s.name) // index of the key node; its value follows it
		if s.index >= 0 {
			list, msg := element(m, idx, ov.steps[:i+1])
			if msg != "" {
				d.bad(0, ov.origin, ov.path, "%s", msg)
				return false
			}
			if last {
				list.Content[s.index] = val
				return true
			}
			m = d.mappingAt(list.Content, s.index, s.typ, ov.origin)
			continue
		}
		if last {
			if idx >= 0 {
				m.Content[idx+1] = val
			} else {
				m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s.name}, val)
			}
			return true
		}
		if idx < 0 {
			m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s.name}, nil)
			idx = len(m.Content) - 2
		}
		m = d.mappingAt(m.Content, idx+1, s.typ, ov.origin)
	}
	return true
}

// mappingAt returns the mapping at nodes[i] to descend into, putting a new one (marked with
// origin) there when it holds none. A threshold written short (its expression alone) becomes the
// mapping {expr: ...}, so that "--set thresholds[0].abort_on_fail=true" keeps the expression.
func (d *decoder) mappingAt(nodes []*yaml.Node, i int, typ reflect.Type, origin string) *yaml.Node {
	n := nodes[i]
	if n != nil && n.Kind == yaml.MappingNode {
		return n
	}
	child := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	if n != nil && deref(typ) == thresholdType && n.Kind == yaml.ScalarNode && n.ShortTag() != nullTag {
		child.Line, child.Column = n.Line, n.Column
		child.Content = []*yaml.Node{{Kind: yaml.ScalarNode, Tag: "!!str", Value: "expr", Line: n.Line, Column: n.Column}, n}
	} else {
		d.marks[child] = origin
	}
	nodes[i] = child
	return child
}

// keyIndex finds key in mapping m: the index of its key node, or -1.
func keyIndex(m *yaml.Node, key string) int {
	if m == nil || m.Kind != yaml.MappingNode {
		return -1
	}
	for j := 0; j+1 < len(m.Content); j += 2 {
		if k := m.Content[j]; k.Kind == yaml.ScalarNode && k.Value == key {
			return j
		}
	}
	return -1
}

// element finds the list that the last of steps indexes (its key at m.Content[idx]) and checks
// that the index is in it; the message says why not.
func element(m *yaml.Node, idx int, steps []step) (*yaml.Node, string) {
	s := steps[len(steps)-1]
	var list *yaml.Node
	if idx >= 0 {
		list = m.Content[idx+1]
	}
	name := stepsPath(steps[:len(steps)-1], s.name)
	whole := fmt.Sprintf("set the whole list instead, like --set '%s=[...]'", name)
	switch {
	case list == nil || (list.Kind == yaml.ScalarNode && list.ShortTag() == nullTag):
		return nil, fmt.Sprintf("the plan has no %s list to take element %d of; %s", name, s.index, whole)
	case list.Kind != yaml.SequenceNode:
		return nil, fmt.Sprintf("%s is %s in the plan, not a list; %s", name, describe(list), whole)
	case s.index >= len(list.Content):
		return nil, fmt.Sprintf("index %d is out of range: %s has %d element(s)%s; to add elements, %s",
			s.index, name, len(list.Content), indexRange(name, len(list.Content)), whole)
	}
	return list, ""
}

func indexRange(name string, n int) string {
	switch n {
	case 0:
		return ""
	case 1:
		return fmt.Sprintf(" (%s[0])", name)
	}
	return fmt.Sprintf(" (%s[0] to %s[%d])", name, name, n-1)
}

// stepsPath renders steps, then name, as a path: "load.stages".
func stepsPath(steps []step, name string) string {
	var b strings.Builder
	for _, s := range steps {
		b.WriteString(s.name)
		if s.index >= 0 {
			b.WriteString("[" + strconv.Itoa(s.index) + "]")
		}
		b.WriteByte('.')
	}
	b.WriteString(name)
	return b.String()
}

// removeAt removes what is at steps from the tree: a key with its value, or a list element.
// Nothing there is nothing to remove, except a list index out of range, which it reports.
func removeAt(root *yaml.Node, steps []step) string {
	m := root
	for i, s := range steps {
		last := i == len(steps)-1
		idx := keyIndex(m, s.name)
		if s.index < 0 {
			switch {
			case idx < 0:
				return ""
			case last:
				m.Content = slices.Delete(m.Content, idx, idx+2)
				return ""
			}
			m = m.Content[idx+1]
			continue
		}
		list, msg := element(m, idx, steps[:i+1])
		if msg != "" {
			return msg
		}
		if last {
			list.Content = slices.Delete(list.Content, s.index, s.index+1)
			return ""
		}
		m = list.Content[s.index]
	}
	return ""
}
