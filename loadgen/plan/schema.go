package plan

import (
	"reflect"
	"slices"
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
// be a typo (see nearest).
func suggest(key string, fields []schemaField) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	if best, ok := nearest(key, names); ok {
		return ` (did you mean "` + best + `"?)`
	}
	return ""
}

// nearest returns the candidate nearest to word, when it is near enough to be a typo: at most two
// edits, or a third of the word's length, and fewer edits than the word has letters.
func nearest(word string, candidates []string) (string, bool) {
	best, bestD := "", -1
	if len(word) > 64 {
		return "", false // no key is that long; and the distance costs len(word) per candidate letter
	}
	for _, c := range candidates {
		d := levenshtein.ComputeDistance(word, c)
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	if bestD < 0 || bestD >= len(word) || (bestD > 2 && bestD > len(word)/3) {
		return "", false
	}
	return best, true
}

// UnknownEnv lists the variables of environ (os.Environ style) that start with EnvPrefix but name
// no plan setting and are none of other (portstorm's own variables, like PORTSTORM_CPUPROFILE): one
// message each, naming the nearest setting's variable when it is near enough to be a typo. Such a
// variable changes nothing; a command warns about it, since a misspelt override would otherwise go
// unnoticed.
func UnknownEnv(environ []string, other ...string) []string {
	var out []string
	var names []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if _, known := envPaths()[name]; known || !strings.HasPrefix(name, EnvPrefix) || slices.Contains(other, name) {
			continue
		}
		if names == nil {
			for _, k := range keys() {
				names = append(names, strings.TrimPrefix(EnvVar(k), EnvPrefix))
			}
		}
		msg := name + " names no plan setting and is ignored"
		inGroup := slices.IndexFunc(names, func(n string) bool { return strings.HasPrefix(EnvPrefix+n, name+"_") })
		if best, ok := nearest(strings.TrimPrefix(name, EnvPrefix), names); inGroup >= 0 {
			msg += "; it names a group of settings: set one of them, like " + EnvPrefix + names[inGroup]
		} else if ok {
			msg += " (did you mean " + EnvPrefix + best + "?)"
		} else {
			msg += "; a setting's variable is " + EnvPrefix + " and its key upper-cased, dots as underscores, like " + EnvVar("load.model")
		}
		out = append(out, msg)
	}
	return out
}

// Values lists the values shell completion offers for the setting at path: the words of an
// enumerated setting (the lists Validate checks), true and false, "unlimited" for a rate or a
// send count, "auto" for a process count; nil for the others.
func Values(path string) []string {
	if words, ok := enums[path]; ok {
		return slices.Clone(words)
	}
	steps, err := parseKey(path, false)
	if err != nil {
		return nil
	}
	switch t := steps[len(steps)-1].typ; {
	case t.Kind() == reflect.Bool:
		return []string{"true", "false"}
	case t == rateType:
		return []string{"unlimited"}
	case t == countType:
		return []string{"auto"}
	case t == sendCountType:
		return []string{"unlimited"}
	}
	return nil
}

// keyList renders the valid keys of a mapping for messages.
func keyList(fields []schemaField) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	return strings.Join(names, ", ")
}
