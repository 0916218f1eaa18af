package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ferry-k8s/ferry/builder"
	"github.com/ferry-k8s/ferry/internal/example"
)

func TestInstallerVerify(t *testing.T) {
	dir := t.TempDir()
	ex, err := example.Write(filepath.Join(dir, "in"), example.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "b.iso")
	if _, err := builder.Build(context.Background(), builder.Options{SpecPath: ex.Spec, Output: out, Signer: ex.Signer, SourceDateEpoch: time.Now()}); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		a := app()
		var b bytes.Buffer
		a.Writer, a.ErrWriter = &b, &b
		a.ExitErrHandler = func(*cli.Context, error) {}
		err := a.RunContext(context.Background(), append([]string{"installer"}, args...))
		return b.String(), err
	}
	if o, err := run("verify", "--iso", out, "--keyring", ex.PublicKey); err != nil || !strings.Contains(o, "OK      example 1.0.0") {
		t.Fatalf("verify: %v\n%s", err, o)
	}
	var ec cli.ExitCoder
	// A secret key where the keyring goes: refused with exit code 2.
	if o, err := run("verify", "--iso", out, "--keyring", ex.SecretKey); err == nil || !asExit(err, &ec) || ec.ExitCode() != 2 || !strings.Contains(err.Error(), "secret key material") {
		t.Errorf("a secret key as the keyring: %v\n%s", err, o)
	}
	// The validity, in --json; a statement for another ISO is refused.
	if o, err := run("verify", "--iso", out, "--keyring", ex.PublicKey, "--json"); err != nil || !strings.Contains(o, `"validUntil"`) || !strings.Contains(o, `"expired": false`) {
		t.Errorf("verify --json: %v\n%s", err, o)
	}
	other := filepath.Join(dir, "other.iso")
	if _, err := builder.Build(context.Background(), builder.Options{SpecPath: ex.Spec, Output: other, Signer: ex.Signer, SourceDateEpoch: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := builder.Extend(builder.ExtendOptions{ISO: other, Until: time.Now().Add(1000 * 24 * time.Hour), Signer: ex.Signer}); err != nil {
		t.Fatal(err)
	}
	if o, err := run("verify", "--iso", out, "--keyring", ex.PublicKey, "--validity", filepath.Join(dir, "other.validity")); err == nil || !asExit(err, &ec) || ec.ExitCode() != 1 || !strings.Contains(o, "not for this one") {
		t.Errorf("verify with another bundle's statement: %v\n%s", err, o)
	}
	if o, err := run("verify", "--iso", other, "--keyring", ex.PublicKey); err != nil || !strings.Contains(o, "extended until") {
		t.Errorf("verify with the statement beside the ISO: %v\n%s", err, o)
	}
	// Truncate the ISO: the installer must refuse it with exit code 1.
	data, _ := os.ReadFile(out)
	if err := os.WriteFile(out, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	o, err := run("verify", "--iso", out, "--keyring", ex.PublicKey)
	if err == nil || !asExit(err, &ec) || ec.ExitCode() != 1 || !strings.Contains(o, "FAILED") {
		t.Fatalf("truncated ISO: %v\n%s", err, o)
	}
}

func asExit(err error, ec *cli.ExitCoder) bool {
	e, ok := err.(cli.ExitCoder)
	*ec = e
	return ok
}
