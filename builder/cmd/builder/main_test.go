package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ferry-k8s/ferry/internal/example"
)

// runApp runs the builder CLI in process and returns stdout, stderr and the
// exit code it would have.
func runApp(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	a := app()
	var out, errOut bytes.Buffer
	a.Writer, a.ErrWriter = &out, &errOut
	a.ExitErrHandler = func(*cli.Context, error) {} // return, do not exit
	err := a.RunContext(context.Background(), append([]string{"builder"}, args...))
	code := 0
	if err != nil {
		code = 1
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			code = ec.ExitCode()
		}
		errOut.WriteString(err.Error())
	}
	return out.String(), errOut.String(), code
}

func TestKeyGenerateBuildVerifyJSON(t *testing.T) {
	dir := t.TempDir()
	ex, err := example.Write(filepath.Join(dir, "in"), example.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pass := filepath.Join(dir, "pass")
	if err := os.WriteFile(pass, []byte("correct horse\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key, pub := filepath.Join(dir, "k.asc"), filepath.Join(dir, "p.asc")
	if _, e, code := runApp(t, "key", "generate", "--name", "Rel", "--email", "r@x.invalid", "--output", key, "--public-output", pub, "--passphrase-file", pass); code != 0 {
		t.Fatalf("key generate: %d %s", code, e)
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret key mode: %v %v", fi, err)
	}
	if _, e, code := runApp(t, "key", "generate", "--name", "Rel", "--email", "r@x.invalid", "--output", key, "--public-output", pub); code == 0 || !strings.Contains(e, "exists") {
		t.Fatalf("overwrote a key: %d %s", code, e)
	}
	out := filepath.Join(dir, "b.iso")
	if _, e, code := runApp(t, "build", "--spec", ex.Spec, "--output", out, "--signing-key", key, "--source-date-epoch", "1767225600"); code != 2 || !strings.Contains(e, "passphrase") {
		t.Fatalf("build without passphrase: %d %s", code, e)
	}
	stdout, e, code := runApp(t, "build", "--spec", ex.Spec, "--output", out, "--signing-key", key, "--passphrase-file", pass, "--source-date-epoch", "1767225600", "--json")
	if code != 0 {
		t.Fatalf("build: %d %s", code, e)
	}
	var res struct {
		Output, SHA256, Name, Version string
		Images                        []struct{ Name, Digest string }
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("build --json is not JSON: %v\n%s", err, stdout)
	}
	if res.Output != out || len(res.SHA256) != 64 || res.Name != "example" || len(res.Images) != 2 {
		t.Fatalf("build --json: %+v", res)
	}
	stdout, e, code = runApp(t, "verify", "--iso", out, "--keyring", pub, "--json", "--at", time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	if code != 0 {
		t.Fatalf("verify: %d %s %s", code, stdout, e)
	}
	var rep struct {
		OK    bool
		Files int
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || !rep.OK || rep.Files < 20 {
		t.Fatalf("verify --json: %+v %v\n%s", rep, err, stdout)
	}
	// The wrong keyring: exit 1, the signature named.
	stdout, _, code = runApp(t, "verify", "--iso", out, "--keyring", ex.PublicKey)
	if code != 1 || !strings.Contains(stdout, "FAILED") || !strings.Contains(stdout, "manifest.json.asc: signed by a key that is not in the keyring") {
		t.Fatalf("verify with the wrong key: %d\n%s", code, stdout)
	}
}

func TestBadSpecNamesTheField(t *testing.T) {
	dir := t.TempDir()
	ex, err := example.Write(filepath.Join(dir, "in"), example.Options{})
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := os.ReadFile(ex.Spec)
	bad := strings.Replace(string(spec), "      repo: base\n", "      repo: base\n      recursive: true\n", 1)
	if err := os.WriteFile(ex.Spec, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	_, e, code := runApp(t, "build", "--spec", ex.Spec, "--output", filepath.Join(dir, "x.iso"), "--signing-key", ex.SecretKey)
	if code == 0 || !strings.Contains(e, `spec.packages[0].recursive: unknown field`) || !strings.Contains(e, "bundle.yaml") {
		t.Fatalf("got %d %s", code, e)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.iso")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("an ISO was written for a bad spec")
	}
}

func TestHelpTeaches(t *testing.T) {
	out, _, code := runApp(t, "build", "--help")
	if code != 0 || !strings.Contains(out, "apiVersion: ferry.dev/v1alpha1") || !strings.Contains(out, "SOURCE_DATE_EPOCH") {
		t.Fatalf("build --help lacks the example spec:\n%s", out)
	}
}
