package nodeconfig

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/installer/cluster"
	"github.com/ferry-k8s/ferry/installer/pki"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// The example of installer/cluster (five nodes, three planes, OIDC) and a
// single-node cluster (R4).
const (
	exampleConfig = "../cluster/testdata/cluster.yaml"
	singleConfig  = "testdata/single.yaml"
)

func load(t *testing.T, file string) *cluster.Cluster {
	t.Helper()
	c, err := cluster.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// facts are the facts of a node of the single-node cluster; the key is
// fixed so the golden files are.
func facts() Facts {
	return Facts{
		KubernetesVersion: testKubernetesVersion,
		ImageRepository:   bundle.DefaultImageRepository,
		EtcdImageTag:      "3.6.8-0",
		CoreDNSImageTag:   "v1.14.2",
		PauseImage:        bundle.DefaultImageRepository + "/pause:3.10.2",
		ContentServices:   []string{"bootstrap.lab.example.com:5443"},
		ContentCAFile:     "/etc/ferry/pki/content/ca.crt",
		NodeIPs:           map[string]string{PlaneControlPlane: "10.10.0.11", PlaneEtcd: "10.10.0.11", PlaneWorkload: "10.10.0.11"},
		CgroupVersion:     2,
		HasSystemd:        true,
		EncryptionKey:     bytes.Repeat([]byte{0x5a}, EncryptionKeySize),
		Version:           "1.2.0-test",
	}
}

// exampleIPs are addresses of the example's nodes on its three planes.
var exampleIPs = map[string]int{"cp1": 11, "cp2": 12, "cp3": 13, "gpu1": 21, "lab1": 22}

// exampleFacts are a node of the example: its planes' addresses and the
// OIDC issuer's CA (spec.authentication.oidc.caFile).
func exampleFacts(t *testing.T, node string) Facts {
	t.Helper()
	f := facts()
	n := exampleIPs[node]
	f.NodeIPs = map[string]string{
		PlaneControlPlane: fmt.Sprintf("192.168.10.%d", n),
		PlaneWorkload:     fmt.Sprintf("192.168.20.%d", n),
		PlaneEtcd:         fmt.Sprintf("192.168.30.%d", n),
	}
	f.OIDCCA = oidcCA(t)
	return f
}

var oidcCAPEM []byte

func oidcCA(t *testing.T) []byte {
	t.Helper()
	if oidcCAPEM == nil {
		r, err := pki.NewRealm(pki.RealmKubernetes, pki.Options{Organization: "oidc-test"})
		if err != nil {
			t.Fatal(err)
		}
		oidcCAPEM = r.RootCertPEM()
	}
	return oidcCAPEM
}

func render(t *testing.T, c *cluster.Cluster, node string, f Facts) map[string]File {
	t.Helper()
	files, err := Render(c, node, f)
	if err != nil {
		t.Fatalf("Render %s: %v", node, err)
	}
	m := map[string]File{}
	for _, file := range files {
		m[file.Path] = file
	}
	return m
}

// writeRoot writes files under root as they would be on the node.
func writeRoot(t *testing.T, root string, files map[string]File) {
	t.Helper()
	for _, f := range files {
		p := filepath.Join(root, f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.Content, f.Mode); err != nil {
			t.Fatal(err)
		}
	}
}

// TestGoldenSingleNode compares every file of the single-node cluster
// with testdata/golden/ (-update rewrites it), and their paths, modes and
// owners with testdata/golden.files.
func TestGoldenSingleNode(t *testing.T) {
	files, err := Render(load(t, singleConfig), "n1", facts())
	if err != nil {
		t.Fatal(err)
	}
	var list strings.Builder
	for _, f := range files {
		fmt.Fprintf(&list, "%04o %s:%s %s secret=%t\n", f.Mode.Perm(), f.Owner, f.Group, f.Path, f.Secret)
	}
	dir := filepath.Join("testdata", "golden")
	if *update {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		writeRoot(t, dir, render(t, load(t, singleConfig), "n1", facts()))
		if err := os.WriteFile(dir+".files", []byte(list.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(dir + ".files")
	if err != nil {
		t.Fatalf("%v (go test -run TestGoldenSingleNode -update writes it)", err)
	}
	if list.String() != string(want) {
		t.Errorf("files differ from %s.files (-update rewrites it):\n%s", dir, list.String())
	}
	for _, f := range files {
		want, err := os.ReadFile(filepath.Join(dir, f.Path))
		if err != nil {
			t.Errorf("%v (-update writes it)", err)
			continue
		}
		if !bytes.Equal(f.Content, want) {
			t.Errorf("%s differs from its golden file (-update rewrites it):\n%s", f.Path, f.Content)
		}
	}
	// No golden file is left over from a file Render no longer makes.
	n := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return err
	})
	if n != len(files) {
		t.Errorf("%s holds %d files, Render made %d (-update rewrites it)", dir, n, len(files))
	}
}

// Rendering is deterministic: the same input, the same bytes (maps are
// iterated in random order, so several runs would catch one that is not
// sorted).
func TestDeterministic(t *testing.T) {
	c := load(t, exampleConfig)
	for node := range exampleIPs {
		first := render(t, c, node, exampleFacts(t, node))
		for range 5 {
			again := render(t, c, node, exampleFacts(t, node))
			if len(again) != len(first) {
				t.Fatalf("%s: %d files, then %d", node, len(first), len(again))
			}
			for p, f := range first {
				if !bytes.Equal(f.Content, again[p].Content) || f.Mode != again[p].Mode || f.Owner != again[p].Owner {
					t.Fatalf("%s: %s differs between two renders", node, p)
				}
			}
		}
	}
	// Render does not change the configuration it is given.
	before, _ := yaml.Marshal(c)
	render(t, c, "cp1", exampleFacts(t, "cp1"))
	if after, _ := yaml.Marshal(c); !bytes.Equal(before, after) {
		t.Error("Render changed the cluster configuration")
	}
}

// Every file starts with the R19 header: Ferry's version and the sha256
// of the content below it.
func TestHeaders(t *testing.T) {
	for _, f := range render(t, load(t, exampleConfig), "cp1", exampleFacts(t, "cp1")) {
		h, body, err := SplitHeader(f.Content)
		if err != nil {
			t.Errorf("%s: %v", f.Path, err)
			continue
		}
		if h.Version != "1.2.0-test" || len(body) == 0 || !bytes.Equal(f.Body(), body) {
			t.Errorf("%s: header %+v, body of %d bytes", f.Path, h, len(body))
		}
	}
	content := WithHeader("1.0", []byte("a: 1\n"))
	sum := sha256.Sum256([]byte("a: 1\n"))
	if string(content) != fmt.Sprintf("# Generated by Ferry 1.0 — do not edit; content sha256:%x\na: 1\n", sum) {
		t.Errorf("WithHeader: %q", content)
	}
	edited := append(bytes.Clone(content), "b: 2\n"...)
	if _, _, err := SplitHeader(edited); !errors.Is(err, ErrEdited) {
		t.Errorf("edited file: %v, want ErrEdited", err)
	}
	for _, bad := range []string{"", "a: 1\n", "# Generated by Ferry  — do not edit; content sha256:00\n", "# Generated by Ferry 1.0 — do not edit; content sha256:" + strings.Repeat("A", 64) + "\n"} {
		if _, _, err := SplitHeader([]byte(bad)); !errors.Is(err, ErrNoHeader) {
			t.Errorf("%q: %v, want ErrNoHeader", bad, err)
		}
	}
}

var ipInURL = regexp.MustCompile(`https?://\[?([0-9a-fA-F:.]+)\]?(:[0-9]+)?`)

// R29: Ferry's files name every endpoint by DNS name; the only addresses
// are where a component binds (R31), the Node's InternalIP, and the
// API server's advertised address (its Endpoints object).
func TestNoIPIdentities(t *testing.T) {
	c := load(t, exampleConfig)
	for node := range exampleIPs {
		for _, f := range render(t, c, node, exampleFacts(t, node)) {
			for i, line := range strings.Split(string(f.Body()), "\n") {
				bind := strings.Contains(line, "--listen-") || strings.Contains(line, "bind-address") || strings.Contains(line, "BindAddress")
				for _, m := range ipInURL.FindAllStringSubmatch(line, -1) {
					if strings.Count(m[1], ".") == 3 || strings.Contains(m[1], ":") {
						if !bind {
							t.Errorf("%s %s:%d: an address as an endpoint: %s", node, f.Path, i+2, line)
						}
					}
				}
				if strings.Contains(strings.ToLower(line), "certsans") {
					t.Errorf("%s %s:%d: certificate SANs are Ferry's (installer/pki), not kubeadm's: %s", node, f.Path, i+2, line)
				}
			}
		}
	}
}
