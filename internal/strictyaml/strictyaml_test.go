package strictyaml

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

type role string

type conf struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Spec       spec   `json:"spec"`
}

type spec struct {
	Name    string            `json:"name"`
	Enabled bool              `json:"enabled"`
	Roles   []role            `json:"roles"`
	Labels  map[string]string `json:"labels"`
	Nodes   []node            `json:"nodes"`
}

type node struct {
	Host string `json:"host"`
}

var opts = Options{MaxSize: 4096, APIVersion: "ferry.dev/v1alpha1", Kind: "Test", StringTypes: []string{"strictyaml.role"}}

const good = `apiVersion: ferry.dev/v1alpha1
kind: Test
spec:
  name: a
  enabled: true
  roles: [x]
  labels: {any: thing}
  nodes: [{host: h}]
`

func TestParse(t *testing.T) {
	var c conf
	if err := Parse([]byte(good), &c, opts); err != nil {
		t.Fatal(err)
	}
	if c.Spec.Name != "a" || !c.Spec.Enabled || c.Spec.Nodes[0].Host != "h" {
		t.Fatalf("decoded %+v", c)
	}
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown fields by path", strings.Replace(good, "  nodes: [{host: h}]", "  nodes: [{host: h, hots: 1}]\n  extra: 1", 1),
			[]string{"spec.extra: unknown field", "spec.nodes[0].hots: unknown field"}},
		{"a bool", strings.Replace(good, "enabled: true", "enabled: yes please", 1), []string{"spec.enabled: must be true or false, got string"}},
		{"a named string type", strings.Replace(good, "roles: [x]", "roles: [{a: 1}]", 1), []string{"spec.roles: must be a string, got object"}},
		{"a list", strings.Replace(good, "roles: [x]", "roles: x", 1), []string{"spec.roles: must be a list, got string"}},
		{"apiVersion and kind", strings.Replace(strings.Replace(good, "Test", "Other", 1), "v1alpha1", "v2", 1),
			[]string{`apiVersion: must be "ferry.dev/v1alpha1", got "ferry.dev/v2"`, `kind: must be "Test", got "Other"`}},
		{"syntax", "spec: [", []string{"parsing: "}},
		{"too large", good + "# " + strings.Repeat("x", 4096), []string{"larger than 4096 bytes"}},
	} {
		var c conf
		err := Parse([]byte(tc.yaml), &c, opts)
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", tc.name, err, w)
			}
		}
	}
}

func TestFieldErrors(t *testing.T) {
	var c conf
	err := Parse([]byte(strings.Replace(good, "kind: Test", "kind: Test\nbogus: 1", 1)), &c, opts)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "bogus" {
		t.Fatalf("got %v", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(p, []byte(strings.Replace(good, "name: a", "nmae: a", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	var c conf
	err := Load("test config", p, &c, opts)
	if want := "test config " + p + ": spec.nmae: unknown field (check its spelling and indentation)"; err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	err = Load("test config", filepath.Join(dir, "missing"), &c, opts)
	if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "reading test config: ") {
		t.Fatalf("missing file: %v", err)
	}
	if err := os.WriteFile(p, []byte(good+strings.Repeat("#", 5000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Load("test config", p, &c, opts); err == nil || !strings.Contains(err.Error(), p+" is larger than 4096 bytes") {
		t.Fatalf("large file: %v", err)
	}
}

// FuzzParse: any input gives a configuration or an error, never a panic,
// and a problem reported at a field path is a FieldError.
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("spec: {nodes: [{host: 1, x: [2]}]}"))
	f.Add([]byte("apiVersion: [\n"))
	f.Add([]byte("spec:\n  roles: {a: b}\n  labels: [1]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c conf
		err := Parse(data, &c, opts)
		if err == nil {
			return
		}
		if err.Error() == "" {
			t.Fatal("empty error")
		}
		var fe *FieldError
		if errors.As(err, &fe) && fe.Field == "" {
			t.Fatalf("a FieldError without a field: %v", err)
		}
	})
}

// An unknown key that is empty or would read as a path is quoted in the
// field path, so the error still names it (found by FuzzParse: "! :").
func TestUnknownFieldNames(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"! :", `""`},
		{"spec: {a.b: 1}", `spec."a.b"`},
		{"spec: {x: 1}", "spec.x"},
	} {
		got := UnknownFields([]byte(tc.doc), reflect.TypeOf(conf{}))
		if len(got) != 1 || got[0] != tc.want {
			t.Errorf("%q: unknown fields %q, want [%s]", tc.doc, got, tc.want)
		}
	}
}
