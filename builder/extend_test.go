package builder

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/bundle/validity"
	"github.com/ferry-k8s/ferry/bundle/verify"
	"github.com/ferry-k8s/ferry/internal/example"
	"github.com/ferry-k8s/ferry/signing"
)

// buildValid builds the example with a spec validity of days, signed by
// the example's key (or signer), at epoch.
func buildValid(t *testing.T, days string, signer *signing.Signer) (*example.Example, string) {
	t.Helper()
	ex, err := example.Write(filepath.Join(t.TempDir(), "in"), example.Options{LayerSizes: []int64{1024}})
	if err != nil {
		t.Fatal(err)
	}
	spec, err := os.ReadFile(ex.Spec)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, ex.Spec, strings.Replace(string(spec), "expiresAfter: 36500d", "expiresAfter: "+days, 1))
	if signer == nil {
		signer = ex.Signer
	}
	out := filepath.Join(t.TempDir(), "example-1.0.0.iso")
	if _, err := Build(context.Background(), Options{SpecPath: ex.Spec, Output: out, Signer: signer, SourceDateEpoch: epoch}); err != nil {
		t.Fatal(err)
	}
	return ex, out
}

func newSigner(t *testing.T, lifetime time.Duration) (*signing.Signer, []byte) {
	t.Helper()
	sec, pub, err := signing.GenerateKey(signing.KeyOptions{Name: "Other", Email: "other@ferry.invalid", Created: epoch, Lifetime: lifetime})
	if err != nil {
		t.Fatal(err)
	}
	s, err := signing.LoadSigner(bytes.NewReader(sec), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, pub
}

// TestExtend: a bundle valid 30 days is refused after them, is valid again
// with a statement from builder extend (beside the ISO or given), warns
// near the statement's end, and is refused after it; an installed bundle
// is only reported expired.
func TestExtend(t *testing.T) {
	ex, iso := buildValid(t, "30d", nil)
	ring, err := signing.LoadKeyringFile(ex.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	check := func(at time.Time, opts verify.Options) (*verify.Report, error) {
		opts.ISO, opts.Keyring, opts.Now = iso, ring, at
		return verify.Verify(context.Background(), opts)
	}
	day := 24 * time.Hour
	if rep, err := check(epoch.Add(40*day), verify.Options{}); err == nil || !hasProblem(rep, bundle.ManifestPath, "expired on") || !strings.Contains(err.Error(), "builder extend") {
		t.Fatalf("40 days on: %v", err)
	}
	if _, _, err := Extend(ExtendOptions{ISO: iso, Until: epoch.Add(34 * day), Signer: ex.Signer, Now: epoch.Add(35 * day)}); err == nil || !strings.Contains(err.Error(), "not after now") {
		t.Errorf("a statement that would end before it is issued: %v", err)
	}
	st, out, err := Extend(ExtendOptions{ISO: iso, Until: epoch.Add(400 * day), Signer: ex.Signer, Now: epoch.Add(35 * day)})
	if err != nil {
		t.Fatal(err)
	}
	if out != validity.Beside(iso) || st.Bundle.Name != "example" || st.Bundle.Version != "1.0.0" || !st.Expires.Equal(epoch.Add(400*day)) {
		t.Fatalf("Extend wrote %s: %+v", out, st)
	}
	rep, err := check(epoch.Add(40*day), verify.Options{})
	if err != nil || rep.Extension == nil || rep.Extension.Path != out || !rep.ValidUntil.Equal(st.Expires) || len(rep.Warnings) != 0 || rep.Expired {
		t.Fatalf("40 days on, extended: %v %+v", err, rep)
	}
	if rep, err := check(epoch.Add(390*day), verify.Options{}); err != nil || len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "ends in 10 days") {
		t.Errorf("10 days before the statement's end: %v %+v", err, rep.Warnings)
	}
	if rep, err := check(epoch.Add(401*day), verify.Options{}); err == nil || !hasProblem(rep, bundle.ManifestPath, "extended by "+out+", ended on") {
		t.Errorf("after the statement's end: %v", err)
	}
	// Installed content: reported expired, never refused.
	if rep, err := check(epoch.Add(401*day), verify.Options{Installed: true}); err != nil || !rep.Expired || len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "served and converged as installed") {
		t.Errorf("installed, after the statement's end: %v %+v", err, rep)
	}
	// A statement given by path works without the one beside the ISO.
	moved := filepath.Join(t.TempDir(), "given.validity")
	if err := os.Rename(out, moved); err != nil {
		t.Fatal(err)
	}
	if rep, err := check(epoch.Add(40*day), verify.Options{ValidityFile: moved}); err != nil || rep.Extension == nil || rep.Extension.Path != moved {
		t.Errorf("--validity: %v %+v", err, rep)
	}
}

// TestExtendWithAnotherKey: a key rotated since the build extends the old
// bundle when --keyring names the key that built it; installers that do
// not trust the new key refuse the statement, naming it.
func TestExtendWithAnotherKey(t *testing.T) {
	ex, iso := buildValid(t, "30d", nil)
	oldRing, err := signing.LoadKeyringFile(ex.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	newKey, newPub := newSigner(t, 0)
	at := epoch.Add(40 * 24 * time.Hour)
	if _, _, err := Extend(ExtendOptions{ISO: iso, Until: at.Add(time.Hour), Signer: newKey, Now: at}); err == nil || !strings.Contains(err.Error(), "not in the keyring") {
		t.Fatalf("extending a bundle the signing key did not build, without --keyring: %v", err)
	}
	if _, _, err := Extend(ExtendOptions{ISO: iso, Until: at.Add(300 * 24 * time.Hour), Signer: newKey, Keyring: oldRing, Now: at}); err != nil {
		t.Fatal(err)
	}
	rep, err := verify.Verify(context.Background(), verify.Options{ISO: iso, Keyring: oldRing, Now: at})
	if err == nil || !hasProblem(rep, validity.Beside(iso), "not in the keyring") {
		t.Errorf("a statement by a key the installer does not trust: %v", err)
	}
	oldPub, err := os.ReadFile(ex.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	both, err := signing.ReadKeyring(bytes.NewReader(append(append(oldPub, '\n'), newPub...)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verify.Verify(context.Background(), verify.Options{ISO: iso, Keyring: both, Now: at}); err != nil {
		t.Errorf("with both keys trusted: %v", err)
	}
}

// TestInstalledOutlivesItsKey: a bundle whose signing key expired after it
// signed is refused as new content and trusted as installed content.
func TestInstalledOutlivesItsKey(t *testing.T) {
	signer, pub := newSigner(t, 48*time.Hour)
	_, iso := buildValid(t, "365d", signer)
	ring, err := signing.ReadKeyring(bytes.NewReader(pub))
	if err != nil {
		t.Fatal(err)
	}
	at := epoch.Add(72 * time.Hour)
	if _, err := verify.Open(iso, ring, verify.Options{Now: at}); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("new content signed by an expired key: %v", err)
	}
	b, err := verify.Open(iso, ring, verify.Options{Now: at, Installed: true})
	if err != nil {
		t.Fatalf("installed content signed by a key that expired since: %v", err)
	}
	defer b.Close()
	if len(b.Warnings) != 1 || !strings.Contains(b.Warnings[0], "has expired since it signed") {
		t.Errorf("warnings %v", b.Warnings)
	}
}

// TestBuildWarnsWhenAlreadyExpired: rebuilding an old bundle is fine, and
// the builder says when what it wrote is already past its validity.
func TestBuildWarnsWhenAlreadyExpired(t *testing.T) {
	ex, _ := buildValid(t, "30d", nil)
	for _, tc := range []struct {
		now  time.Time
		warn bool
	}{{epoch.Add(10 * 24 * time.Hour), false}, {epoch.Add(31 * 24 * time.Hour), true}} {
		var logs bytes.Buffer
		out := filepath.Join(t.TempDir(), "x.iso")
		if _, err := Build(context.Background(), Options{SpecPath: ex.Spec, Output: out, Signer: ex.Signer, SourceDateEpoch: epoch,
			Log: slog.New(slog.NewTextHandler(&logs, nil)), Now: func() time.Time { return tc.now }}); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(logs.String(), "validity has already ended"); got != tc.warn {
			t.Errorf("at %s: warned %v, want %v\n%s", tc.now, got, tc.warn, logs.String())
		}
	}
}
