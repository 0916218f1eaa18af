package joinfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"

	"github.com/ferry-k8s/ferry/internal/strictyaml"
)

// maxJSONDepth bounds how deeply a strictly decoded document nests (a
// join file nests three deep: the object, files, an entry).
const maxJSONDepth = 8

// decodeStrictJSON decodes one JSON object from data into v (a pointer to
// a struct) more strictly than encoding/json does: every key of an object
// decoded into a struct must be one of its fields' names exactly (encoding/json
// matches them case-insensitively, and takes the last of duplicates
// silently), no key may repeat in an object, and nothing but white space
// may follow the object.
func decodeStrictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != json.Delim('{') {
		return errors.New("not a JSON object")
	}
	if err := walkStrict(dec, tok, reflect.TypeOf(v), "", 1); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the object")
	}
	dec = json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// walkStrict checks the value that begins with tok (already read) and
// that decodes into t; path names it in errors.
func walkStrict(dec *json.Decoder, tok json.Token, t reflect.Type, path string, depth int) error {
	if depth > maxJSONDepth {
		return fmt.Errorf("%s: nested deeper than %d", orRoot(path), maxJSONDepth)
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch tok {
	case json.Delim('{'):
		var fields map[string]reflect.Type
		if t != nil && t.Kind() == reflect.Struct {
			fields = strictyaml.JSONFields(t)
		}
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			k, _ := kt.(string)
			p := k
			if path != "" {
				p = path + "." + k
			}
			if seen[k] {
				return fmt.Errorf("%s: duplicate key", p)
			}
			seen[k] = true
			var ft reflect.Type
			if fields != nil {
				var ok bool
				if ft, ok = fields[k]; !ok {
					return fmt.Errorf("%s: unknown field (names are case-sensitive)", p)
				}
			}
			vt, err := dec.Token()
			if err != nil {
				return err
			}
			if err := walkStrict(dec, vt, ft, p, depth+1); err != nil {
				return err
			}
		}
		_, err := dec.Token() // }
		return err
	case json.Delim('['):
		var et reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			et = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			vt, err := dec.Token()
			if err != nil {
				return err
			}
			if err := walkStrict(dec, vt, et, fmt.Sprintf("%s[%d]", path, i), depth+1); err != nil {
				return err
			}
		}
		_, err := dec.Token() // ]
		return err
	}
	return nil
}

func orRoot(path string) string {
	if path == "" {
		return "the object"
	}
	return path
}
