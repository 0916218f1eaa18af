package registry_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// suiteResult counts the test cases of a JUnit report.
type suiteResult struct {
	Tests, Failures, Errors, Skipped int
	raw                              []byte
}

// runConformanceSuite builds the Go test package at src (the official
// conformance suite, or a stand-in) into cacheDir, keyed by a hash of its
// files, runs it with env in a fresh directory, and reads the junit.xml it
// writes there (or into OCI_REPORT_DIR, set to the same directory). A
// non-zero exit with no failure in the report is an error of its own.
func runConformanceSuite(t *testing.T, src, cacheDir string, env map[string]string) (suiteResult, error) {
	t.Helper()
	bin, err := buildSuite(t, src, cacheDir)
	if err != nil {
		return suiteResult{}, err
	}
	work := t.TempDir()
	cmd := exec.Command(bin)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "OCI_REPORT_DIR="+work)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, runErr := cmd.CombinedOutput()
	report, err := os.ReadFile(filepath.Join(work, "junit.xml"))
	if err != nil {
		return suiteResult{}, fmt.Errorf("the suite wrote no junit.xml (%v, exit: %v):\n%s", err, runErr, out)
	}
	res, err := parseJUnit(report)
	if err != nil {
		return suiteResult{}, err
	}
	if runErr != nil && res.Failures+res.Errors == 0 {
		return res, fmt.Errorf("the suite exited with %v but reports no failure:\n%s", runErr, out)
	}
	return res, nil
}

// buildSuite returns the cached test binary of src, building it if needed.
// The build runs in a copy of src, so that resolving its modules (through
// the module proxy) leaves the source untouched.
func buildSuite(t *testing.T, src, cacheDir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(src, p)
		b, err := os.ReadFile(p)
		fmt.Fprintf(h, "%s %d\n", rel, len(b))
		h.Write(b)
		return err
	})
	if err != nil {
		return "", err
	}
	bin := filepath.Join(cacheDir, hex.EncodeToString(h.Sum(nil))[:24], "conformance.test")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	build := t.TempDir()
	if err := os.CopyFS(build, os.DirFS(src)); err != nil {
		return "", err
	}
	tmp := filepath.Join(build, "conformance.test")
	cmd := exec.Command("go", "test", "-c", "-o", tmp, ".")
	cmd.Dir = build
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the suite: %v\n%s", err, out)
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", err
	}
	return bin, os.Rename(tmp, bin)
}

// parseJUnit counts test cases and their outcomes in a JUnit report, whether
// its root is <testsuites> (Ginkgo v2) or <testsuite> (Ginkgo v1).
func parseJUnit(report []byte) (suiteResult, error) {
	type testCase struct {
		Failure *struct{} `xml:"failure"`
		Error   *struct{} `xml:"error"`
		Skipped *struct{} `xml:"skipped"`
	}
	var root struct {
		XMLName xml.Name
		Suites  []struct {
			Cases []testCase `xml:"testcase"`
		} `xml:"testsuite"`
		Cases []testCase `xml:"testcase"`
	}
	if err := xml.Unmarshal(report, &root); err != nil {
		return suiteResult{}, fmt.Errorf("junit.xml: %w", err)
	}
	cases := root.Cases
	for _, s := range root.Suites {
		cases = append(cases, s.Cases...)
	}
	res := suiteResult{raw: report}
	for _, c := range cases {
		res.Tests++
		switch {
		case c.Failure != nil:
			res.Failures++
		case c.Error != nil:
			res.Errors++
		case c.Skipped != nil:
			res.Skipped++
		}
	}
	if root.XMLName.Local != "testsuites" && root.XMLName.Local != "testsuite" {
		return res, errors.New("junit.xml: root is neither testsuites nor testsuite")
	}
	return res, nil
}

// TestConformanceSuiteRunner checks the runner with a stand-in suite (a Go
// test package that asks the registry for /v2/ and writes a JUnit report
// as Ginkgo does), so that TestOfficialConformanceSuite's build, caching,
// environment and report parsing are known to work where the official
// suite cannot be had.
func TestConformanceSuiteRunner(t *testing.T) {
	srv, _ := conformanceServer(t)
	src := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/standin\n\ngo 1.22\n",
		"standin_test.go": `package standin

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

func TestMain(m *testing.M) {
	failure := ""
	resp, err := http.Get(os.Getenv("OCI_ROOT_URL") + "/v2/")
	if err != nil || resp.StatusCode != 200 || os.Getenv("OCI_TEST_PULL") != "1" || os.Getenv("STANDIN_FAIL") != "" {
		failure = "<failure message=\"pull\"></failure>"
	}
	report := fmt.Sprintf("<?xml version=\"1.0\"?>\n<testsuites tests=\"3\"><testsuite name=\"OCI\" tests=\"3\">" +
		"<testcase name=\"Pull blobs\">%s</testcase><testcase name=\"Push\"><skipped message=\"off\"></skipped></testcase>" +
		"<testcase name=\"Pull manifests\"></testcase></testsuite></testsuites>", failure)
	if err := os.WriteFile(filepath.Join(os.Getenv("OCI_REPORT_DIR"), "junit.xml"), []byte(report), 0o644); err != nil {
		panic(err)
	}
	if failure != "" {
		os.Exit(1)
	}
}
`,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(src, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cache := t.TempDir()
	env := map[string]string{"OCI_ROOT_URL": srv.URL, "OCI_TEST_PULL": "1"}
	res, err := runConformanceSuite(t, src, cache, env)
	if err != nil || res.Tests != 3 || res.Skipped != 1 || res.Failures != 0 {
		t.Fatalf("passing stand-in: %+v, %v", res, err)
	}
	bins, _ := filepath.Glob(filepath.Join(cache, "*", "conformance.test"))
	if len(bins) != 1 {
		t.Fatalf("cached binaries: %q", bins)
	}
	before, _ := os.Stat(bins[0])
	env["STANDIN_FAIL"] = "1"
	res, err = runConformanceSuite(t, src, cache, env)
	if err != nil || res.Failures != 1 {
		t.Fatalf("failing stand-in: %+v, %v", res, err)
	}
	if after, _ := os.Stat(bins[0]); !os.SameFile(before, after) {
		t.Error("the cached binary was rebuilt")
	}
	if _, err := parseJUnit([]byte("<html></html>")); err == nil {
		t.Error("parseJUnit accepted a non-JUnit document")
	}
}
