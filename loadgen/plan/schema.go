package plan

import (
	"reflect"
	"strings"
	"sync"

	"github.com/agnivade/levenshtein"
)

// The schema is the Plan struct itself: keys are its `yaml` tags, read by reflection, so a field
// added to types.go is known to the strict pass, to --set and to the environment at once.

var (
	planType      = reflect.TypeFor[Plan]()
	durationType  = reflect.TypeFor[Duration]()
	sizeType      = reflect.TypeFor[Size]()
	countType     = reflect.TypeFor[Count]()
	rateType      = reflect.TypeFor[Rate]()
	sendCountType = reflect.TypeFor[SendCount]()
	percentType   = reflect.TypeFor[Percent]()
	thresholdType = reflect.TypeFor[Threshold]()
)

// EnvPrefix starts every environment variable that overrides a plan setting.
const EnvPrefix = "PORTSTORM_"

// schemaField is one key of a mapping in the plan.
type schemaField struct {
	name  string
	index int
	typ   reflect.Type
}

// fieldsOf lists the keys of a struct type, in declaration order.
func fieldsOf(t reflect.Type) []schemaField {
	var fs []schemaField
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		fs = append(fs, schemaField{name: name, index: i, typ: f.Type})
	}
	return fs
}

// lookupField finds key among the fields of t.
func lookupField(t reflect.Type, key string) (schemaField, bool) {
	for _, f := range fieldsOf(t) {
		if f.name == key {
			return f, true
		}
	}
	return schemaField{}, false
}

// isGroup reports whether t (after pointers) is a mapping of further keys rather than one setting.
// Lists, even of mappings, are single settings: an override replaces the whole list.
func isGroup(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() == reflect.Struct
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// Keys lists the path of every setting that --set and PORTSTORM_* variables can override, in schema
// order: "version", "name", "target.builtin.mode", ..., "load.stages", ....
func Keys() []string { return append([]string(nil), keys()...) }

var keys = sync.OnceValue(func() []string {
	var out []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for _, f := range fieldsOf(t) {
			p := joinPath(prefix, f.name)
			if isGroup(f.typ) {
				walk(deref(f.typ), p)
				continue
			}
			out = append(out, p)
		}
	}
	walk(planType, "")
	return out
})

// EnvVar names the environment variable that overrides the setting at path:
// EnvPrefix + the path upper-cased with dots as underscores ("load.max_in_flight" ->
// "PORTSTORM_LOAD_MAX_IN_FLIGHT").
func EnvVar(path string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

// envPaths maps each environment variable name back to its setting.
var envPaths = sync.OnceValue(func() map[string]string {
	m := make(map[string]string)
	for _, k := range keys() {
		m[EnvVar(k)] = k
	}
	return m
})

func joinPath(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// parentPath strips the last element of a field path: "load.stages[1].target" -> "load.stages[1]"
// -> "load.stages" -> "load" -> "".
func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// suggest returns ` (did you mean "x"?)` for the valid key nearest to key, when it is near enough to
// be a typo: at most two edits, or a third of the key's length, and fewer edits than the key has
// letters.
func suggest(key string, fields []schemaField) string {
	best, bestD := "", -1
	if len(key) > 64 {
		return "" // no key is that long; and the distance costs len(key) per candidate letter
	}
	for _, f := range fields {
		d := levenshtein.ComputeDistance(key, f.name)
		if bestD < 0 || d < bestD {
			best, bestD = f.name, d
		}
	}
	if bestD < 0 || bestD >= len(key) || (bestD > 2 && bestD > len(key)/3) {
		return ""
	}
	return ` (did you mean "` + best + `"?)`
}

// keyList renders the valid keys of a mapping for messages.
func keyList(fields []schemaField) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	return strings.Join(names, ", ")
}
