package content

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/bundle/verify"
)

// TestRefusesInconsistentTrees: a real bundle whose Joliet record of
// /SHA256SUMS no longer matches its Rock Ridge record (what 7z and
// isoinfo -J would extract; iso's attack tests show that they do) is
// refused by `installer bundle add` (CheckISO) and by the service (Sync),
// naming the tree and the path.
func TestRefusesInconsistentTrees(t *testing.T) {
	f := bundles(t)
	iso := copyISO(t, f.iso100)
	img, err := os.ReadFile(iso)
	if err != nil {
		t.Fatal(err)
	}
	id := []byte{2 * byte(len(bundle.SumsPath))}
	for _, c := range utf16.Encode([]rune(bundle.SumsPath)) {
		id = append(id, byte(c>>8), byte(c))
	}
	i := bytes.Index(img, id)
	if i < 32 || bytes.Contains(img[i+1:], id) {
		t.Fatal("no single Joliet record of " + bundle.SumsPath)
	}
	rec := img[i-32:]
	rec[10]-- // size, little-endian low byte
	rec[17]-- // and big-endian
	if err := os.WriteFile(iso, img, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err = CheckISO(ctx, iso, f.ring, verify.Options{})
	if err == nil || !strings.Contains(err.Error(), "joliet /"+bundle.SumsPath) || !strings.Contains(err.Error(), "extents") {
		t.Fatalf("CheckISO: %v, want the Joliet tree refused", err)
	}
	svc := New(Options{Keyring: f.ring, Registerer: prometheus.NewRegistry()})
	defer svc.Close()
	if errs := svc.Sync(ctx, []string{iso}); len(errs) == 0 || len(svc.Bundles()) != 0 {
		t.Fatalf("Sync served an inconsistent ISO: %v, %+v", errs, svc.Bundles())
	}
}
