package depcheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/ferry-k8s/ferry"

// rules: package From (and its subpackages when it ends in "/...") must
// not import To (a package or, ending in "/...", a tree), directly or
// transitively. Tests are not counted (go list -deps without -test).
var rules = []struct {
	from, to, why string
}{
	{"internal/cliutil", "bundle/verify/...", "every command links cliutil; the verifier is linked by the verify command only (bundle/verify/verifycmd)"},
	{"builder/...", "installer/...", "the builder and the installer are separate programs; what both need lives in a neutral package (the systemd units are internal/systemd)"},
	{"repo/...", "bundle/...", "the yum repository code is below the bundle format: the bundle uses it, not the other way (package constraints are repo/rpmver's)"},
	{"internal/...", "builder/...", "internal/ is the shared base; the builder is on top of it"},
	{"bundle", "images/...", "the bundle's formats (spec, lock, manifest) import no content handling"},
	{"internal/fileutil", module + "/...", "a leaf: every package may use it"},
	{"internal/atomicfile", module + "/...", "a leaf: every package may use it"},
	{"internal/strictyaml", "bundle/...", "bundle uses it for its spec and lock"},
	{"internal/...", "installer/...", "internal/ is the shared base, the test helpers too (internal/testcluster takes its programs and CA from the caller; the API server's configuration as Ferry renders it is installer/nodeconfig/nodeconfigtest's)"},
	{"installer/desired", "installer/nodestate", "desired is a pure function of what was observed: the observing is nodestate's, before"},
	{"installer/desired", "installer/bootstrap/...", "desired is a pure function; the commands use it, not the other way"},
	{"installer/nodeconfig", "installer/desired", "nodeconfig renders files; desired decides which files a node gets"},
	{"installer/nodeconfig", "installer/bootstrap/...", "nodeconfig renders files; the commands use it"},
	{"installer/addon", "installer/converge", "an add-on is Kubernetes objects applied through the API; converge changes the node"},
	{"installer/addon", "installer/bootstrap/...", "the add-on seam is below the commands that run it"},
}

// directRules: package From must not import To itself (a standard package
// here, where other packages it uses may: installer/converge runs commands,
// and installer/desired uses only its types).
var directRules = []struct {
	from, to, why string
}{
	{"installer/desired", "os", "desired reads nothing from the node (installer/nodestate does)"},
	{"installer/desired", "os/exec", "desired runs no command"},
	{"installer/desired", "syscall", "desired reads nothing from the node"},
	{"installer/desired", "crypto/rand", "desired is deterministic: keys made once are inputs"},
	{"installer/desired", "math/rand", "desired is deterministic"},
	{"installer/desired", "math/rand/v2", "desired is deterministic"},
}

// exceptions are forbidden edges not fixed yet, each with its reason; an
// exception that no longer happens fails the test, so the list only
// shrinks.
var exceptions = map[string]string{}

type pkg struct {
	ImportPath string
	Imports    []string
	Module     *struct{ Path string }
}

func goList(t *testing.T, args ...string) map[string]pkg {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-json=ImportPath,Imports,Module"}, args...)...)
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs[p.ImportPath] = p
	}
	return pkgs
}

// touchSources opens every Go file of the module, so that go test's result
// cache, which knows the files a test opens but not what `go list` read,
// runs the test again when an import changes.
func touchSources(t *testing.T) {
	t.Helper()
	err := filepath.WalkDir("../..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != "../.." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".go") || d.Name() == "go.mod") {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			return f.Close()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func matches(pattern, path string) bool {
	if !strings.HasPrefix(pattern, module) {
		pattern = module + "/" + pattern
	}
	if tree, ok := strings.CutSuffix(pattern, "/..."); ok {
		return path == tree || strings.HasPrefix(path, tree+"/")
	}
	return path == pattern
}

// pathTo is the shortest import chain from from to a package matching
// to, or nil.
func pathTo(pkgs map[string]pkg, from, to string) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p != from && matches(to, p) {
			var chain []string
			for q := p; q != ""; q = prev[q] {
				chain = append([]string{strings.TrimPrefix(q, module+"/")}, chain...)
			}
			return chain
		}
		for _, imp := range pkgs[p].Imports {
			if _, seen := prev[imp]; !seen && strings.HasPrefix(imp, module) {
				prev[imp] = p
				queue = append(queue, imp)
			}
		}
	}
	return nil
}

func TestImportRules(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("the go command is needed to list the packages: %v", err)
	}
	touchSources(t)
	pkgs := goList(t, "-deps", module+"/...")
	if len(pkgs) < 20 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	used := map[string]bool{}
	for _, r := range rules {
		n := 0
		for path := range pkgs {
			if !strings.HasPrefix(path, module) || !matches(r.from, path) {
				continue
			}
			n++
			chain := pathTo(pkgs, path, r.to)
			if chain == nil {
				continue
			}
			edge := chain[0] + " -> " + chain[len(chain)-1]
			if _, ok := exceptions[edge]; ok {
				used[edge] = true
				continue
			}
			t.Errorf("%s must not import %s (%s), but: %s", chain[0], r.to, r.why, strings.Join(chain, " -> "))
		}
		if n == 0 {
			t.Errorf("rule %s -> %s matches no package", r.from, r.to)
		}
	}
	for _, r := range directRules {
		p, ok := pkgs[module+"/"+r.from]
		if !ok {
			t.Errorf("rule %s -> %s matches no package", r.from, r.to)
			continue
		}
		if slices.Contains(p.Imports, r.to) {
			t.Errorf("%s must not import %s (%s)", r.from, r.to, r.why)
		}
	}
	for edge := range exceptions {
		if !used[edge] {
			t.Errorf("exception %q no longer happens: remove it", edge)
		}
	}
}

// TestPathTo: the checker finds a transitive import and names its chain.
func TestPathTo(t *testing.T) {
	p := func(path string, imports ...string) pkg {
		for i := range imports {
			imports[i] = module + "/" + imports[i]
		}
		return pkg{ImportPath: module + "/" + path, Imports: imports}
	}
	pkgs := map[string]pkg{}
	for _, x := range []pkg{p("a", "b"), p("b", "c/d"), p("c/d"), p("e")} {
		pkgs[x.ImportPath] = x
	}
	if got := strings.Join(pathTo(pkgs, module+"/a", "c/..."), " -> "); got != "a -> b -> c/d" {
		t.Errorf("got %q", got)
	}
	if got := pathTo(pkgs, module+"/a", "e"); got != nil {
		t.Errorf("got %q", got)
	}
}
