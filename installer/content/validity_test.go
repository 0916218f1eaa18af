package content

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferry-k8s/ferry/bundle/validity"
	"github.com/ferry-k8s/ferry/bundle/verify"
)

// TestExpiredBundleKeepsServing is R59 on the content service, with an
// injected clock: a served bundle passes its end of validity and keeps
// serving its registry and its yum repository (the real dnf installs from
// it), the metrics and /readyz say it expired, a restart serves it again;
// a new import of it is refused naming it; a validity statement makes it
// valid again and is served beside the ISO; an older statement (a
// rollback) and one for another bundle are refused.
func TestExpiredBundleKeepsServing(t *testing.T) {
	dnf, err := exec.LookPath("dnf")
	if err != nil {
		t.Fatalf("dnf is required for this test (make deps installs it): %v", err)
	}
	ctx := context.Background()
	clk := &clock{t: time.Now()}
	e := newEnv(t, Options{Now: clk.Now, ExpiryCheck: 20 * time.Millisecond})
	// A private copy: the statement written beside it must not reach the
	// other tests' shared ISOs.
	iso := copyISO(t, e.f.iso100)
	if errs := e.svc.Sync(ctx, []string{iso}); errs != nil {
		t.Fatal(errs)
	}
	info := e.svc.Bundles()[0]
	if info.Expired || !info.ValidUntil.Equal(info.Expires) || metric(t, e.svc.m.expired) != 0 {
		t.Fatalf("a fresh bundle: %+v, expired gauge %v", info, metric(t, e.svc.m.expired))
	}

	// 400 days later: past the bundle's validity (365 days).
	clk.Set(clk.Now().Add(400 * 24 * time.Hour))
	waitFor(t, "the expired gauge", func() bool { return metric(t, e.svc.m.expired) == 1 })
	if got := len(e.svc.Bundles()); got != 1 {
		t.Fatalf("%d bundles served after expiry, want 1", got)
	}
	// A pull: the manifest, then its layers, every byte checked.
	code, _, body := e.get("/v2/"+appRepo+"/manifests/1.0", "Accept", imgspecv1.MediaTypeImageManifest)
	var mf imgspecv1.Manifest
	if code != 200 || json.Unmarshal(body, &mf) != nil || len(mf.Layers) == 0 {
		t.Fatalf("an expired bundle's image manifest: %d %s", code, body)
	}
	for _, l := range mf.Layers {
		if code, _, blob := e.get("/v2/" + appRepo + "/blobs/" + l.Digest.String()); code != 200 || digest.FromBytes(blob) != l.Digest {
			t.Errorf("an expired bundle's layer %s: %d, %d bytes", l.Digest, code, len(blob))
		}
	}
	if code, _, body := e.get("/readyz"); code != 200 || !strings.Contains(string(body), "validity ended") || !strings.Contains(string(body), iso) {
		t.Errorf("/readyz with an expired bundle: %d %s", code, body)
	}
	if _, _, m := e.get("/metrics"); !strings.Contains(string(m), "ferry_content_bundles_expired 1") ||
		!strings.Contains(string(m), `ferry_content_bundle_expiry_timestamp_seconds{name="example",version="1.0.0"}`) {
		t.Errorf("/metrics:\n%s", grep(string(m), "ferry_content_bundle"))
	}
	if root, out, err := e.dnfInstall(t, dnf, "ferry-hello"); err != nil {
		t.Errorf("dnf from an expired bundle: %v\n%s", err, out)
	} else if _, err := os.Stat(filepath.Join(root, "usr/bin/ferry-hello")); err != nil {
		t.Errorf("dnf installed nothing: %v", err)
	}
	waitFor(t, "the expiry warning", func() bool { return strings.Contains(e.logs.String(), "bundle validity ended: still served") })
	time.Sleep(100 * time.Millisecond) // several more checks
	if n := strings.Count(e.logs.String(), "bundle validity ended: still served"); n != 1 {
		t.Errorf("the expiry was logged %d times, want once", n)
	}

	// A restart at that time (the service's Sync at start) serves it too.
	svc2 := New(Options{Keyring: e.f.ring, Now: clk.Now, Registerer: prometheus.NewRegistry()})
	defer svc2.Close()
	if errs := svc2.Sync(ctx, []string{iso}); errs != nil || len(svc2.Bundles()) != 1 || !svc2.Bundles()[0].Expired {
		t.Errorf("Sync of an expired, configured ISO: %v, %+v", errs, svc2.Bundles())
	}

	// A new import (installer bundle add) is refused, naming the ISO.
	if _, err := CheckISO(ctx, iso, e.f.ring, verify.Options{Now: clk.Now()}); err == nil || !strings.Contains(err.Error(), iso) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("importing an expired ISO: %v", err)
	}

	// The publisher extends it: a statement issued now, for 300 days.
	stmt := func(issued time.Time, days int, manifest string) []byte {
		st := &validity.Statement{SchemaVersion: validity.SchemaVersion, Kind: validity.Kind,
			Bundle: validity.BundleRef{Name: "example", Version: "1.0.0", ManifestSHA256: manifest},
			Issued: issued, Expires: issued.Add(time.Duration(days) * 24 * time.Hour)}
		data, err := validity.Sign(st, e.f.ex.Signer)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	now := clk.Now().Truncate(time.Second)
	ext := stmt(now, 300, info.ManifestSHA256)
	extFile := filepath.Join(t.TempDir(), "x.validity")
	if err := os.WriteFile(extFile, ext, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := CheckISO(ctx, iso, e.f.ring, verify.Options{Now: clk.Now(), ValidityFile: extFile}); err != nil || !got.ValidUntil.Equal(now.Add(300*24*time.Hour)) || got.Expired {
		t.Errorf("importing with the statement: %+v, %v", got, err)
	}
	// bundle add --validity: the statement is kept beside the ISO.
	imported := copyISO(t, iso)
	if got, err := PrepareImport(ctx, imported, extFile, e.f.ring, clk.Now()); err != nil || got.Extension == nil {
		t.Errorf("bundle add --validity: %+v, %v", got, err)
	} else if data, _ := os.ReadFile(validity.Beside(imported)); string(data) != string(ext) {
		t.Error("bundle add --validity did not keep the statement beside the ISO")
	}
	cfg := &Config{Dir: filepath.Dir(iso), ISOs: []string{iso}}
	if p, _, changed, err := ExtendConfigured(cfg, ext, e.f.ring, clk.Now()); err != nil || !changed || p != iso {
		t.Fatalf("bundle extend: %s %v %v", p, changed, err)
	}
	if _, _, changed, err := ExtendConfigured(cfg, ext, e.f.ring, clk.Now()); err != nil || changed {
		t.Errorf("the same statement again: changed %v, %v", changed, err)
	}
	// The reload sees the statement beside the ISO.
	if errs := e.svc.Sync(ctx, []string{iso}); errs != nil {
		t.Fatal(errs)
	}
	got := e.svc.Bundles()[0]
	if got.Expired || !got.ValidUntil.Equal(now.Add(300*24*time.Hour)) || got.Extension == nil || got.Extension.Path != validity.Beside(iso) {
		t.Errorf("served after the extension: %+v", got)
	}
	waitFor(t, "the expired gauge to drop", func() bool { return metric(t, e.svc.m.expired) == 0 })
	if code, _, body := e.get("/bundles/example-1.0.0.validity"); code != 200 || string(body) != string(ext) {
		t.Errorf("/bundles/example-1.0.0.validity: %d %q", code, body)
	}
	if code, _, body := e.get("/readyz"); code != 200 || strings.Contains(string(body), "validity ended") {
		t.Errorf("/readyz after the extension: %d %s", code, body)
	}
	if _, err := CheckISO(ctx, iso, e.f.ring, verify.Options{Now: clk.Now()}); err != nil {
		t.Errorf("importing with the statement beside the ISO: %v", err)
	}

	// An older statement (issued a day before, reaching further) is a
	// rollback: refused, the accepted one stays.
	if _, _, _, err := ExtendConfigured(cfg, stmt(now.Add(-24*time.Hour), 900, info.ManifestSHA256), e.f.ring, clk.Now()); err == nil || !strings.Contains(err.Error(), "rollback") {
		t.Errorf("an older statement: %v", err)
	}
	if data, _ := os.ReadFile(validity.Beside(iso)); string(data) != string(ext) {
		t.Error("the refused statement replaced the accepted one")
	}
	// A statement for another bundle: refused by extend, and by an import.
	other := stmt(now, 300, strings.Repeat("a", 64))
	if _, _, _, err := ExtendConfigured(cfg, other, e.f.ring, clk.Now()); err == nil || !strings.Contains(err.Error(), "no configured ISO") {
		t.Errorf("a statement for another bundle: %v", err)
	}
	if err := os.WriteFile(extFile, other, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := CheckISO(ctx, iso, e.f.ring, verify.Options{Now: clk.Now(), ValidityFile: extFile}); err == nil || !strings.Contains(err.Error(), "not for this one") {
		t.Errorf("importing with another bundle's statement: %v", err)
	}
}
