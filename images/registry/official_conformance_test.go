//go:build conformance

package registry_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestOfficialConformanceSuite builds the official conformance suite from
// its source and runs its pull-only workflow against the handler:
//
//	OCI_CONFORMANCE_SRC=/path/to/distribution-spec/conformance \
//	    go test -tags 'conformance containers_image_openpgp' -run OfficialConformance ./images/registry/
//
// The source must come from elsewhere (a checkout of distribution-spec at
// v1.1.x): this machine's module proxy refuses the module, so the test is
// behind the build tag "conformance" (make conformance) and fails without
// the variable; TestConformance stands in for it in every run.
// The test binary is cached under the user cache directory by a hash of
// the source, so only the first run pays for the build.
func TestOfficialConformanceSuite(t *testing.T) {
	src := os.Getenv("OCI_CONFORMANCE_SRC")
	if src == "" {
		t.Fatal("OCI_CONFORMANCE_SRC is not set: point it at distribution-spec's conformance/ source (the module proxy here does not serve it)")
	}
	srv, c := conformanceServer(t)
	res, err := runConformanceSuite(t, src, conformanceCacheDir(t), map[string]string{
		"OCI_ROOT_URL":                srv.URL,
		"OCI_NAMESPACE":               conformanceNamespace,
		"OCI_TEST_PULL":               "1",
		"OCI_TEST_PUSH":               "0",
		"OCI_TEST_CONTENT_DISCOVERY":  "0",
		"OCI_TEST_CONTENT_MANAGEMENT": "0",
		// Seeded content: the suite's pull setup then pushes nothing.
		"OCI_TAG_NAME":        c.tag,
		"OCI_MANIFEST_DIGEST": c.manifest.String(),
		"OCI_BLOB_DIGEST":     c.blob.String(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("official suite: %d specs, %d failures, %d errors, %d skipped (the workflows other than pull, and the pull setup that would push)",
		res.Tests, res.Failures, res.Errors, res.Skipped)
	if res.Tests == 0 || res.Failures+res.Errors > 0 || res.Tests == res.Skipped {
		t.Errorf("official suite failed or ran nothing; its report:\n%s", res.raw)
	}
}

// conformanceCacheDir is where suite binaries are kept: beside the Go build
// cache, so that cleaning caches cleans it too.
func conformanceCacheDir(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("go env GOCACHE: %v", err)
	}
	return filepath.Join(filepath.Dir(strings.TrimSpace(string(out))), "ferry-oci-conformance")
}
