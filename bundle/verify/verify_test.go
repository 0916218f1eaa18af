package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/iso"
	"github.com/ferry-k8s/ferry/signing"
)

var testNow = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// testKey makes a signing key and the keyring that trusts it.
func testKey(t *testing.T) (*signing.Signer, *signing.Keyring) {
	t.Helper()
	sec, pub, err := signing.GenerateKey(signing.KeyOptions{Name: "Test", Email: "test@example.com", Created: testNow.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := signing.LoadSigner(bytes.NewReader(sec), nil)
	if err != nil {
		t.Fatal(err)
	}
	k, err := signing.ReadKeyring(bytes.NewReader(pub))
	if err != nil {
		t.Fatal(err)
	}
	return s, k
}

// bundleISO writes a signed bundle of files (all listed in the manifest)
// plus unlisted extra entries, and returns the image's bytes.
func bundleISO(t *testing.T, s *signing.Signer, files map[string][]byte, extra []iso.Entry) []byte {
	t.Helper()
	dir := t.TempDir()
	m := &bundle.Manifest{SchemaVersion: bundle.ManifestSchemaVersion, Product: bundle.Product, Name: "test", Version: "1.0.0",
		Created: testNow.Add(-time.Hour), Expires: testNow.Add(24 * time.Hour)}
	entries := extra
	for p, c := range files {
		src := filepath.Join(dir, fmt.Sprintf("src-%d", len(entries)))
		if err := os.WriteFile(src, c, 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(c)
		m.Files = append(m.Files, bundle.File{Path: p, Size: int64(len(c)), SHA256: hex.EncodeToString(sum[:])})
		entries = append(entries, iso.Entry{Path: p, Source: src, Size: int64(len(c))})
	}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.SignBytes(data, testNow.Add(-time.Minute), true)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string][]byte{bundle.ManifestPath: data, bundle.ManifestSigPath: sig} {
		src := filepath.Join(dir, name)
		if err := os.WriteFile(src, c, 0o644); err != nil {
			t.Fatal(err)
		}
		entries = append(entries, iso.Entry{Path: name, Source: src, Size: int64(len(c))})
	}
	var buf bytes.Buffer
	if err := iso.Write(&buf, entries, iso.WriteOptions{VolumeID: "test", ModTime: testNow}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func saveISO(t *testing.T, img []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bundle.iso")
	if err := os.WriteFile(p, img, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var testFiles = map[string][]byte{
	"installer":       bytes.Repeat([]byte("genuine installer\n"), 300),
	"packages/README": []byte("a file in a directory\n"),
}

func TestVerifyGenuine(t *testing.T) {
	s, ring := testKey(t)
	p := saveISO(t, bundleISO(t, s, testFiles, nil))
	rep, err := Verify(context.Background(), Options{ISO: p, Keyring: ring, Now: testNow})
	if err != nil || !rep.OK || rep.Files != len(testFiles) {
		t.Fatalf("Verify: %v, %+v", err, rep)
	}
}

// TestVerifyRefusesJolietAttack: the Joliet record of /installer (what 7z
// and isoinfo -J extract; iso's attack tests show it) is changed; the
// signed manifest and the Rock Ridge tree are untouched, and Verify fails
// naming the tree, the path and the field.
func TestVerifyRefusesJolietAttack(t *testing.T) {
	s, ring := testKey(t)
	img := bundleISO(t, s, testFiles, nil)
	id := []byte{18}
	for _, c := range utf16.Encode([]rune("installer")) {
		id = append(id, byte(c>>8), byte(c))
	}
	i := bytes.Index(img, id)
	if i < 32 {
		t.Fatal("no Joliet record of installer")
	}
	rec := img[i-32:]
	size := uint32(rec[10]) | uint32(rec[11])<<8
	rec[10], rec[17] = byte(size-1), byte(size-1) // both byte orders, low byte
	rep, err := Verify(context.Background(), Options{ISO: saveISO(t, img), Keyring: ring, Now: testNow})
	if !errors.Is(err, ErrFailed) || rep.OK {
		t.Fatalf("Verify: %v, want a failure", err)
	}
	t.Log(err)
	for _, want := range []string{"joliet /installer", "extents", "rock ridge /installer"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if _, _, err := OpenVerified(context.Background(), saveISO(t, img), ring, Options{Now: testNow}); !errors.Is(err, ErrFailed) {
		t.Errorf("OpenVerified: %v, want a failure", err)
	}
}

// TestVerifyMemoryBound: an image whose signed manifest lists two files but
// which holds many unlisted entries. Verify reads the root (manifest and
// signature), checks the signature, then reads the trees only up to the
// number of entries the manifest allows: what it allocates does not grow
// with the entries the image claims. iso.Open, which reads them all, is the
// contrast.
func TestVerifyMemoryBound(t *testing.T) {
	s, ring := testKey(t)
	const unlisted = 20000
	extra := make([]iso.Entry, unlisted)
	for i := range extra {
		extra[i] = iso.Entry{Path: fmt.Sprintf("junk/%06d", i)}
	}
	img := bundleISO(t, s, testFiles, extra)
	p := saveISO(t, img)

	verifyAlloc := allocated(t, func() {
		_, err := Verify(context.Background(), Options{ISO: p, Keyring: ring, Now: testNow})
		if err == nil || !strings.Contains(err.Error(), "more than") {
			t.Fatalf("Verify: %v, want the entry limit", err)
		}
	})
	openAlloc := allocated(t, func() {
		if _, err := iso.Open(bytes.NewReader(img), int64(len(img))); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%d unlisted entries: Verify allocated %d bytes, iso.Open %d", unlisted, verifyAlloc, openAlloc)
	// Per unlisted entry, Verify may allocate at most 16 bytes (it should
	// allocate nothing per entry; the slack is the signature check and
	// the bounded reads), while reading them all costs hundreds.
	if verifyAlloc > 16*unlisted {
		t.Errorf("Verify allocated %d bytes for %d unlisted entries (%d per entry)", verifyAlloc, unlisted, verifyAlloc/unlisted)
	}
	if openAlloc < 100*unlisted {
		t.Errorf("iso.Open allocated only %d bytes: the contrast does not hold, the test proves nothing", openAlloc)
	}
}

// allocated returns the bytes fn allocates.
func allocated(t *testing.T, fn func()) uint64 {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}
