package rpmbuild

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/internal/testutil"
	"github.com/ferry-k8s/ferry/signing"
)

// epoch is the tests' SOURCE_DATE_EPOCH: 2026-01-01T00:00:00Z.
var epoch = time.Unix(1767225600, 0).UTC()

// run runs a program with a time limit and returns its combined output; a
// non-zero exit is returned as an error carrying the output.
func run(t testing.TB, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testutil.Need(t, name), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

func mustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := run(t, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// testKey is a fresh Ed25519 signing key (the project's default kind) and
// its armored public key written to a file.
type testKey struct {
	signer  *signing.Signer
	pubPath string
}

func newKey(t testing.TB, name string) testKey {
	t.Helper()
	sec, pub, err := signing.GenerateKey(signing.KeyOptions{Name: name, Email: "rpm@ferry.invalid", Created: epoch.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := signing.LoadSigner(bytes.NewReader(sec), nil)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "RPM-GPG-KEY-"+strings.ReplaceAll(name, " ", "-"))
	if err := os.WriteFile(p, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	return testKey{signer: s, pubPath: p}
}

// writeRPM writes p into dir under its FileName and returns the path.
func writeRPM(t testing.TB, dir string, p Package, o Options) string {
	t.Helper()
	path := filepath.Join(dir, p.FileName())
	if err := WriteFile(path, p, o); err != nil {
		t.Fatal(err)
	}
	return path
}

// lines splits output into non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
