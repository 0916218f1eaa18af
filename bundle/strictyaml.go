package bundle

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// StrictYAML decodes a configuration file's YAML into v (a pointer to a
// struct) refusing unknown fields, and says what is wrong in the file's
// terms: every unknown field by its path, or a type error by its field
// ("spec.firewall.enabled: must be true or false, got string"), or the
// syntax error. stringTypes are the package's named string types
// ("cluster.Role"), described as strings.
func StrictYAML(data []byte, v any, stringTypes ...string) error {
	err := yaml.UnmarshalStrict(data, v)
	if err == nil {
		return nil
	}
	if unknown := UnknownFields(data, reflect.TypeOf(v).Elem()); len(unknown) > 0 {
		var errs []error
		for _, f := range unknown {
			errs = append(errs, fieldErr(f, "unknown field (check its spelling and indentation)"))
		}
		return errors.Join(errs...)
	}
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "error converting YAML to JSON: ")
	msg = strings.TrimPrefix(msg, "error unmarshaling JSON: while decoding JSON: ")
	if m := typeErrRE.FindStringSubmatch(msg); m != nil {
		return fieldErr(m[2], "must be %s, got %s", describeType(m[3], stringTypes), m[1])
	}
	return fmt.Errorf("parsing: %w", errors.New(msg))
}

// typeErrRE matches encoding/json's type errors, which name the field's
// path without list indices ("spec.nodes.roles").
var typeErrRE = regexp.MustCompile(`^json: cannot unmarshal (\S+) into Go struct field \S+?\.(\S+) of type (\S+)$`)

// describeType says a Go type in YAML terms.
func describeType(goType string, stringTypes []string) string {
	t := strings.TrimPrefix(goType, "*")
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["):
		return "a mapping"
	case t == "string", slices.Contains(stringTypes, t):
		return "a string"
	case t == "bool":
		return "true or false"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "a whole number"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case strings.Contains(t, "."):
		return "a mapping"
	}
	return goType
}
