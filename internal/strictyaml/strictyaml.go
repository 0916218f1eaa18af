package strictyaml

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/ferry-k8s/ferry/internal/fileutil"
)

// Decode decodes a configuration file's YAML into v (a pointer to a
// struct) refusing unknown fields, and says what is wrong in the file's
// terms: every unknown field by its path, or a type error by its field
// ("spec.firewall.enabled: must be true or false, got string"), or the
// syntax error. stringTypes are the package's named string types
// ("cluster.Role"), described as strings.
func Decode(data []byte, v any, stringTypes ...string) error {
	err := yaml.UnmarshalStrict(data, v)
	if err == nil {
		return nil
	}
	if unknown := UnknownFields(data, reflect.TypeOf(v).Elem()); len(unknown) > 0 {
		var errs []error
		for _, f := range unknown {
			errs = append(errs, Errorf(f, "unknown field (check its spelling and indentation)"))
		}
		return errors.Join(errs...)
	}
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "error converting YAML to JSON: ")
	msg = strings.TrimPrefix(msg, "error unmarshaling JSON: while decoding JSON: ")
	if m := typeErrRE.FindStringSubmatch(msg); m != nil {
		return Errorf(m[2], "must be %s, got %s", describeType(m[3], stringTypes), m[1])
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

// FieldError is a problem at a field path of a configuration file, such as
// "spec.nodes[2].roles[0]": its message is "field.path: problem".
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// Errorf is a *FieldError at field.
func Errorf(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// Options say what a configuration file must be.
type Options struct {
	// MaxSize bounds the file (bytes); 0 is DefaultMaxSize.
	MaxSize int64
	// APIVersion and Kind, when set, are the values the file's apiVersion
	// and kind must have.
	APIVersion, Kind string
	// StringTypes are the named string types of v's package
	// ("cluster.Role"), described in type errors as strings.
	StringTypes []string
}

// DefaultMaxSize bounds a configuration file unless Options say otherwise:
// real ones are a few KiB.
const DefaultMaxSize = 1 << 20

func (o Options) maxSize() int64 {
	if o.MaxSize > 0 {
		return o.MaxSize
	}
	return DefaultMaxSize
}

// Parse checks data's size, decodes it into v (a pointer to a struct)
// with Decode, and checks apiVersion and kind: every problem a
// *FieldError, joined. It does not validate values.
func Parse(data []byte, v any, o Options) error {
	if max := o.maxSize(); int64(len(data)) > max {
		return fmt.Errorf("larger than %d bytes", max)
	}
	if err := Decode(data, v, o.StringTypes...); err != nil {
		return err
	}
	if o.APIVersion == "" && o.Kind == "" {
		return nil
	}
	var h struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(data, &h); err != nil {
		return fmt.Errorf("parsing: %w", err)
	}
	var errs []error
	if o.APIVersion != "" && h.APIVersion != o.APIVersion {
		errs = append(errs, Errorf("apiVersion", "must be %q, got %q", o.APIVersion, h.APIVersion))
	}
	if o.Kind != "" && h.Kind != o.Kind {
		errs = append(errs, Errorf("kind", "must be %q, got %q", o.Kind, h.Kind))
	}
	return errors.Join(errs...)
}

// Load reads file (bounded by o.MaxSize) and parses it into v with Parse.
// what names the file in errors: "reading WHAT: open FILE: …", and
// "WHAT FILE: field.path: problem" for each problem.
func Load(what, file string, v any, o Options) error {
	data, err := fileutil.ReadFile(file, o.maxSize())
	if err != nil {
		return fmt.Errorf("reading %s: %w", what, err)
	}
	if err := Parse(data, v, o); err != nil {
		return fmt.Errorf("%s %s: %w", what, file, err)
	}
	return nil
}
