package bundle

import (
	"reflect"

	"github.com/ferry-k8s/ferry/internal/strictyaml"
)

// FieldError is a spec or manifest problem at a field path such as
// "spec.images[2].source" (internal/strictyaml's, shared by every Ferry
// configuration file).
type FieldError = strictyaml.FieldError

func fieldErr(field, format string, args ...any) error {
	return strictyaml.Errorf(field, format, args...)
}

// JSONFields maps the JSON names of t's exported fields (a struct type)
// to their types, as encoding/json names them (strictyaml.JSONFields).
func JSONFields(t reflect.Type) map[string]reflect.Type { return strictyaml.JSONFields(t) }
