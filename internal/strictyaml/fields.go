package strictyaml

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// UnknownFields lists the field paths of data (YAML) that t, a struct type
// with json tags, does not have: "spec.packages[0].recursive". The strict
// decoder only says `unknown field "recursive"`; a person editing a long
// file wants to know where. Map fields take any key. Every Ferry
// configuration file (bundle spec, lock, cluster.yaml) reports with it.
func UnknownFields(data []byte, t reflect.Type) []string {
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil
	}
	var out []string
	walkUnknown(doc, t, "", &out)
	sort.Strings(out)
	return out
}

// fieldName is key as a field path shows it: quoted when it is empty or
// would read as more than one field ("a.b", "x[0]", " ").
func fieldName(key string) string {
	if key == "" || strings.ContainsAny(key, ".[]\" \t\n") {
		return strconv.Quote(key)
	}
	return key
}

func walkUnknown(v any, t reflect.Type, path string, out *[]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch val := v.(type) {
	case map[string]any:
		if t.Kind() != reflect.Struct {
			return
		}
		fields := JSONFields(t)
		for k, sub := range val {
			p := fieldName(k)
			if path != "" {
				p = path + "." + p
			}
			ft, ok := fields[k]
			if !ok {
				*out = append(*out, p)
				continue
			}
			walkUnknown(sub, ft, p, out)
		}
	case []any:
		if t.Kind() != reflect.Slice {
			return
		}
		for i, sub := range val {
			walkUnknown(sub, t.Elem(), fmt.Sprintf("%s[%d]", path, i), out)
		}
	}
}

// JSONFields maps the JSON names of t's exported fields (a struct type)
// to their types, as encoding/json names them: the strict decoders of
// bundle files and join files check keys against it.
func JSONFields(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = f.Type
	}
	return m
}
