package bootstrap

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/builder"
	"github.com/ferry-k8s/ferry/installer/cluster/clustertest"
	"github.com/ferry-k8s/ferry/internal/example"
	"github.com/ferry-k8s/ferry/signing"
)

// singleNode is one server (control plane and worker).
const singleNode = clustertest.SingleNode

// A bundle that is not trusted, has expired (unless a validity statement
// extends it) or is not a distribution is refused before anything on the
// node changes: the root stays empty.
func TestBootstrapRefusesBeforeAnyChange(t *testing.T) {
	dir := t.TempDir()
	ex, err := example.Write(filepath.Join(dir, "in"), example.Options{LayerSizes: []int64{1024}})
	if err != nil {
		t.Fatal(err)
	}
	// A real bundle's validity (the example's own is 100 years).
	spec, err := os.ReadFile(ex.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ex.Spec, []byte(strings.Replace(string(spec), "expiresAfter: 36500d", "expiresAfter: 365d", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	iso := filepath.Join(dir, "example.iso")
	created := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	if _, err := builder.Build(context.Background(), builder.Options{SpecPath: ex.Spec, Output: iso, Signer: ex.Signer, SourceDateEpoch: created}); err != nil {
		t.Fatal(err)
	}
	other, _, err := signing.GenerateKey(signing.KeyOptions{Name: "Someone Else", Email: "else@example.invalid"})
	if err != nil {
		t.Fatal(err)
	}
	otherSigner, err := signing.LoadSigner(strings.NewReader(string(other)), nil)
	if err != nil {
		t.Fatal(err)
	}
	otherPub, err := otherSigner.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	otherRing := filepath.Join(dir, "other.pub.asc")
	os.WriteFile(otherRing, otherPub, 0o644)
	cfg := filepath.Join(dir, "cluster.yaml")
	os.WriteFile(cfg, []byte(singleNode), 0o644)
	// A statement that extends the bundle to 800 days, and one that ended.
	later := created.Add(400 * 24 * time.Hour)
	extended := filepath.Join(dir, "extended.validity")
	if _, _, err := builder.Extend(builder.ExtendOptions{ISO: iso, Until: created.Add(800 * 24 * time.Hour), Signer: ex.Signer, Output: extended, Now: later.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	ended := filepath.Join(dir, "ended.validity")
	if _, _, err := builder.Extend(builder.ExtendOptions{ISO: iso, Until: later.Add(-time.Minute), Signer: ex.Signer, Output: ended, Now: later.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, keyring string
		now           time.Time
		validity      string
		want          string
	}{
		{"wrong key", otherRing, time.Now(), "", "not in the keyring"},
		{"expired", ex.PublicKey, later, "", "expired"},
		{"validity ended", ex.PublicKey, later, ended, "validity, extended by " + ended + ", ended"},
		// Extended, the bundle passes its validity check and is refused
		// for the next reason.
		{"expired, extended", ex.PublicKey, later, extended, "distribution.json"},
		{"not a distribution", ex.PublicKey, time.Now(), "", "distribution.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			_, err := Run(context.Background(), Options{ISO: iso, Config: cfg, Keyring: tc.keyring, Node: "node1", Root: root,
				Validity: tc.validity, Now: func() time.Time { return tc.now }})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error about %q, got %v", tc.want, err)
			}
			if entries, _ := os.ReadDir(root); len(entries) != 0 {
				t.Fatalf("the node changed before the refusal: %v", entries)
			}
		})
	}
}
