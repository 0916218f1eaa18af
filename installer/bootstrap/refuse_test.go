package bootstrap

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/builder"
	"github.com/ferry-k8s/ferry/internal/example"
	"github.com/ferry-k8s/ferry/signing"
)

// A bundle that is not trusted, has expired or is not a distribution is
// refused before anything on the node changes: the root stays empty.
func TestBootstrapRefusesBeforeAnyChange(t *testing.T) {
	dir := t.TempDir()
	ex, err := example.Write(filepath.Join(dir, "in"), example.Options{LayerSizes: []int64{1024}})
	if err != nil {
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

	for _, tc := range []struct {
		name, keyring string
		now           time.Time
		want          string
	}{
		{"wrong key", otherRing, time.Now(), "not in the keyring"},
		{"expired", ex.PublicKey, created.Add(400 * 24 * time.Hour), "expired"},
		{"not a distribution", ex.PublicKey, time.Now(), "distribution.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			_, err := Run(context.Background(), Options{ISO: iso, Config: cfg, Keyring: tc.keyring, Node: "node1", Root: root,
				Now: func() time.Time { return tc.now }})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error about %q, got %v", tc.want, err)
			}
			if entries, _ := os.ReadDir(root); len(entries) != 0 {
				t.Fatalf("the node changed before the refusal: %v", entries)
			}
		})
	}
}
