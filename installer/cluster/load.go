package cluster

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/ferry-k8s/ferry/bundle"
)

// MaxFileSize bounds a configuration file; real ones are a few KiB.
const MaxFileSize = 1 << 20

// Load reads, parses and validates a configuration file. The result is
// not defaulted: use Defaulted for the values to apply.
func Load(file string) (*Cluster, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("reading cluster config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading cluster config %s: %w", file, err)
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, fmt.Errorf("reading cluster config %s: %w", file, err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("cluster config %s: %w", file, err)
	}
	c.Dir = filepath.Dir(abs)
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("cluster config %s: %w", file, err)
	}
	return c, nil
}

// Parse parses a configuration: size, YAML syntax, field types, unknown
// fields (each reported at its path), apiVersion and kind. It does not
// validate values (see Validate) nor fill in defaults (see Defaulted).
func Parse(data []byte) (*Cluster, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("larger than %d bytes", MaxFileSize)
	}
	var c Cluster
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		if unknown := bundle.UnknownFields(data, reflect.TypeFor[Cluster]()); len(unknown) > 0 {
			var errs []error
			for _, f := range unknown {
				errs = append(errs, fieldErr(f, "unknown field (check its spelling and indentation)"))
			}
			return nil, errors.Join(errs...)
		}
		return nil, fmt.Errorf("parsing: %w", cleanYAMLError(err))
	}
	var errs []error
	if c.APIVersion != bundle.APIVersion {
		errs = append(errs, fieldErr("apiVersion", "must be %q, got %q", bundle.APIVersion, c.APIVersion))
	}
	if c.Kind != KindCluster {
		errs = append(errs, fieldErr("kind", "must be %q, got %q", KindCluster, c.Kind))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &c, nil
}

func fieldErr(field, format string, args ...any) error {
	return &bundle.FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// typeErrRE matches encoding/json's type errors, which name the field's
// path without list indices ("spec.nodes.roles").
var typeErrRE = regexp.MustCompile(`^json: cannot unmarshal (\S+) into Go struct field \S+?\.(\S+) of type (\S+)$`)

// cleanYAMLError drops the JSON-decoder prefix of sigs.k8s.io/yaml's
// errors and says type errors in the file's terms.
func cleanYAMLError(err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "error converting YAML to JSON: ")
	msg = strings.TrimPrefix(msg, "error unmarshaling JSON: while decoding JSON: ")
	if m := typeErrRE.FindStringSubmatch(msg); m != nil {
		return fieldErr(m[2], "must be %s, got %s", describeType(m[3]), m[1])
	}
	return errors.New(msg)
}

// describeType says a Go type of this package in YAML terms.
func describeType(goType string) string {
	t := strings.TrimPrefix(goType, "*")
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["):
		return "a mapping"
	case t == "string", t == "cluster.Role", t == "cluster.SELinuxMode":
		return "a string"
	case t == "bool":
		return "true or false"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"), strings.HasPrefix(t, "float"):
		return "a number"
	case strings.HasPrefix(t, "cluster."):
		return "a mapping"
	}
	return goType
}
