package plan

import (
	"errors"
	"io"
	"strings"

	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// Overrides change plan settings without editing the file. Each names a setting by its path (see
// Keys) and gives its value as YAML text, so "--set load.max_in_flight=100" is an integer and
// "--set load.stages=[{duration: 5s, target: 10}]" a list. A list-valued setting (load.stages,
// target.addresses, source.addresses, thresholds) is replaced whole. Precedence, lowest first: the
// file, the environment, --set; a later --set of the same key wins over an earlier one.
//
// Only settings can be overridden, not groups: "--set target.builtin.mode=sink" works,
// "--set target.builtin={mode: sink}" is refused. A setting inside a group the file lacks creates
// the group.
type Overrides struct {
	// Sets are "key=value" pairs from --set flags, in flag order.
	Sets []string
	// Env is the environment, os.Environ style ("K=V"), injected so tests need not touch the process
	// environment. A setting's variable is EnvVar(path): PORTSTORM_ and the path upper-cased with
	// dots as underscores (PORTSTORM_LOAD_MODEL, PORTSTORM_CONNECTION_CONNECT_TIMEOUT). Variables that
	// name no setting are ignored, even with the PORTSTORM_ prefix (other parts of portstorm may use
	// the prefix), and so are empty values, as viper does.
	Env []string
}

// override is one resolved override: the text that wins for one setting, and where it came from.
type override struct {
	path, text, origin string
}

// resolve layers the environment under --set with viper and returns the winning value of every
// overridden setting, in schema order. Malformed --set flags are errors named by the flag.
func (o Overrides) resolve() ([]override, Errors) {
	var errs Errors
	v := viper.New()

	envName := make(map[string]string) // setting -> variable that set it
	env := make(map[string]any)
	for _, kv := range o.Env {
		name, val, ok := strings.Cut(kv, "=")
		path, known := envPaths()[name]
		if !ok || !known || val == "" {
			continue
		}
		setNested(env, path, val)
		envName[path] = name
	}
	if err := v.MergeConfigMap(env); err != nil { // never fails for a map; guard anyway
		errs = append(errs, &FieldError{Origin: "environment", Msg: err.Error()})
	}

	set := make(map[string]bool)
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
		if e := checkKey(key); e != nil {
			e.Origin = origin
			errs = append(errs, e)
			continue
		}
		v.Set(key, val)
		set[key] = true
	}

	var out []override
	for _, path := range keys() {
		_, fromEnv := envName[path]
		if !set[path] && !fromEnv {
			continue
		}
		origin := "env " + envName[path]
		if set[path] {
			origin = "--set " + path
		}
		out = append(out, override{path: path, text: v.GetString(path), origin: origin})
	}
	return out, errs
}

// setNested stores val at a dotted path in nested maps, as viper's config layer expects.
func setNested(m map[string]any, path string, val string) {
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = make(map[string]any)
			m[p] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = val
}

// checkKey reports whether key names a setting (not a group, not an unknown key).
func checkKey(key string) *FieldError {
	t := planType
	parts := strings.Split(key, ".")
	for i, part := range parts {
		path := strings.Join(parts[:i+1], ".")
		fields := fieldsOf(t)
		f, ok := lookupField(t, part)
		if !ok {
			msg := "unknown key" + suggest(part, fields)
			if !strings.Contains(msg, "did you mean") {
				msg += "; want one of " + keyList(fields)
			}
			return &FieldError{Field: path, Msg: msg}
		}
		last := i == len(parts)-1
		switch {
		case last && isGroup(f.typ):
			return &FieldError{Field: path, Msg: "is a group of settings; set one of its keys: " + prefixed(path, fieldsOf(deref(f.typ)))}
		case !last && !isGroup(f.typ):
			return &FieldError{Field: path, Msg: "is a single setting with no keys below it"}
		}
		t = deref(f.typ)
	}
	return nil
}

func prefixed(path string, fields []schemaField) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = path + "." + f.name
	}
	return strings.Join(names, ", ")
}

// apply puts an override's value into the tree at its path, creating mappings on the way; what it
// replaces or creates is marked with the override's name.
func (d *decoder) apply(root *yaml.Node, ov override) {
	var doc, extra yaml.Node
	dec := yaml.NewDecoder(strings.NewReader(ov.text))
	err := dec.Decode(&doc)
	if err == nil {
		// A value is one YAML document; a second (after a "---" or "..." line) would be dropped.
		if err = dec.Decode(&extra); !errors.Is(err, io.EOF) {
			d.bad(0, ov.origin, ov.path, "the value holds more than one YAML document (a line \"---\" or \"...\" ends the first); quote it to set the text")
			return
		}
	}
	if err != nil && !errors.Is(err, io.EOF) {
		d.bad(0, ov.origin, ov.path, "the value is not valid YAML (%s); quote it", strings.TrimPrefix(err.Error(), "yaml: "))
		return
	}
	val := &yaml.Node{Kind: yaml.ScalarNode, Tag: nullTag}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		val = doc.Content[0]
	}
	d.marks[val] = ov.origin
	m := root
	parts := strings.Split(ov.path, ".")
	for i, part := range parts {
		idx := -1 // index of the key node; its value follows it
		for j := 0; j+1 < len(m.Content); j += 2 {
			if k := m.Content[j]; k.Kind == yaml.ScalarNode && k.Value == part {
				idx = j
				break
			}
		}
		if i == len(parts)-1 {
			if idx >= 0 {
				m.Content[idx+1] = val
			} else {
				m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: part}, val)
			}
			return
		}
		var child *yaml.Node
		if idx >= 0 && m.Content[idx+1].Kind == yaml.MappingNode {
			child = m.Content[idx+1]
		} else {
			child = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			d.marks[child] = ov.origin
			if idx >= 0 {
				m.Content[idx+1] = child
			} else {
				m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: part}, child)
			}
		}
		m = child
	}
}
