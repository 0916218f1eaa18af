package builder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/bundle/verify"
	"github.com/ferry-k8s/ferry/internal/example"
	"github.com/ferry-k8s/ferry/iso"
	"github.com/ferry-k8s/ferry/signing"
)

var epoch = time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)

// fixture is one generated example and a bundle built from it.
type fixture struct {
	ex   *example.Example
	iso  string
	ring *signing.Keyring
	res  *Result
	inst string // the installer stand-in placed on the ISO
}

func buildExample(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	ex, err := example.Write(filepath.Join(dir, "in"), example.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out", "example.iso")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	// A stand-in for the installer binary: its content does not matter here,
	// its place and mode on the ISO do.
	inst := filepath.Join(dir, "installer")
	if err := os.WriteFile(inst, []byte("#!/bin/sh\necho installer\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	res, err := Build(context.Background(), Options{SpecPath: ex.Spec, Output: out, Signer: ex.Signer, SourceDateEpoch: epoch, InstallerBinary: inst})
	if err != nil {
		t.Fatal(err)
	}
	ring, err := signing.LoadKeyringFile(ex.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{ex: ex, iso: out, ring: ring, res: res, inst: inst}
}

func TestBuildExample(t *testing.T) {
	f := buildExample(t)
	r := f.res
	if r.Name != "example" || r.Version != "1.0.0" || !r.Created.Equal(epoch) || !r.Expires.Equal(epoch.Add(36500*24*time.Hour)) {
		t.Errorf("result %+v", r)
	}
	if len(r.Images) != 2 || len(r.Repositories) != 1 || r.Repositories[0].Packages != 3 {
		t.Fatalf("images %+v repositories %+v", r.Images, r.Repositories)
	}
	byName := map[string]bundle.Image{}
	for _, im := range r.Images {
		byName[im.Name] = im
	}
	if got := byName["registry.example.com/ferry/app:1.0"].Digest; got != f.ex.AppDigest {
		t.Errorf("app digest on the ISO %s, source %s: digests must be preserved", got, f.ex.AppDigest)
	}
	if fi, err := os.Stat(f.iso); err != nil || fi.Size() != r.Size {
		t.Errorf("ISO size %v, result says %d (%v)", fi, r.Size, err)
	}
	sum := fileSHA256(t, f.iso)
	if sum != r.SHA256 {
		t.Errorf("result sha256 %s, file %s", r.SHA256, sum)
	}
	entries, _ := os.ReadDir(filepath.Dir(f.iso))
	if len(entries) != 1 {
		t.Errorf("output directory holds %d entries, want only the ISO (work directory left behind?)", len(entries))
	}
	rep, err := verify.Verify(context.Background(), verify.Options{ISO: f.iso, Keyring: f.ring, Now: epoch.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	// Modes on the ISO are the bundle's, not the inputs': only the installer
	// is executable.
	data, err := os.ReadFile(f.iso)
	if err != nil {
		t.Fatal(err)
	}
	im, err := iso.Open(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{bundle.InstallerPath: 0o755, "packages/base/Packages/ferry-hello-1.0.0-1.noarch.rpm": 0o644, bundle.ManifestPath: 0o644} {
		if fi, err := im.Stat(p); err != nil || fi.Mode.Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v", p, fi.Mode.Perm(), err, want)
		}
	}
	// Every file but the manifest and its signature is listed.
	if rep.Files != len(rep.Manifest.Files) || rep.Files < 20 {
		t.Errorf("checked %d of %d files", rep.Files, len(rep.Manifest.Files))
	}
}

func TestRebuildIsByteIdentical(t *testing.T) {
	f := buildExample(t)
	// Same inputs, another work directory and output directory, other mtimes.
	later := time.Now().Add(time.Hour)
	for _, p := range f.ex.RPMs {
		if err := os.Chtimes(p, later, later); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "again.iso")
	res, err := Build(context.Background(), Options{SpecPath: f.ex.Spec, Output: out, Signer: f.ex.Signer, SourceDateEpoch: epoch, Workers: 1, InstallerBinary: f.inst})
	if err != nil {
		t.Fatal(err)
	}
	if res.SHA256 != f.res.SHA256 {
		t.Fatalf("rebuild differs: %s vs %s", res.SHA256, f.res.SHA256)
	}
	// The same inputs in another directory: no build-host path is recorded.
	moved := filepath.Join(t.TempDir(), "elsewhere")
	if out, err := exec.Command("cp", "-a", f.ex.Dir, moved).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	res3, err := Build(context.Background(), Options{SpecPath: filepath.Join(moved, "bundle.yaml"), Output: filepath.Join(t.TempDir(), "moved.iso"), Signer: f.ex.Signer, SourceDateEpoch: epoch, InstallerBinary: f.inst})
	if err != nil {
		t.Fatal(err)
	}
	if res3.SHA256 != f.res.SHA256 {
		t.Fatalf("a build from another directory differs: %s vs %s", res3.SHA256, f.res.SHA256)
	}
	// A different epoch must change the bundle (the test can fail).
	out2 := filepath.Join(t.TempDir(), "other.iso")
	res2, err := Build(context.Background(), Options{SpecPath: f.ex.Spec, Output: out2, Signer: f.ex.Signer, SourceDateEpoch: epoch.Add(time.Second), InstallerBinary: f.inst})
	if err != nil {
		t.Fatal(err)
	}
	if res2.SHA256 == f.res.SHA256 {
		t.Fatal("a different SOURCE_DATE_EPOCH gave the same ISO")
	}
}

func fileSHA256(t *testing.T, p string) string {
	t.Helper()
	fh, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestFailedBuildLeavesNothing(t *testing.T) {
	tests := []struct {
		name  string
		spoil func(ex *example.Example)
		want  string
	}{
		{"unreadable image source", func(ex *example.Example) {
			rewriteSpec(t, ex, "oci:images/layout:app", "oci:images/nowhere:app")
		}, "spec.images[0].source: unreadable source oci:images/nowhere:app"},
		{"digest mismatch", func(ex *example.Example) {
			rewriteSpec(t, ex, ex.AppDigest, "sha256:"+strings.Repeat("0", 64))
		}, "spec.images[0].digest: source oci:images/layout:app has digest " + ex0Digest},
		{"not an rpm", func(ex *example.Example) {
			if err := os.WriteFile(filepath.Join(ex.Dir, "rpms", "zz-broken.rpm"), []byte("not an rpm"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "zz-broken.rpm"},
		{"image missing from layout", func(ex *example.Example) {
			rewriteSpec(t, ex, "oci:images/layout:multi", "oci:images/layout:nosuchref")
		}, "oci:images/layout:nosuchref"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ex, err := example.Write(filepath.Join(t.TempDir(), "in"), example.Options{})
			if err != nil {
				t.Fatal(err)
			}
			tt.spoil(ex)
			outDir := t.TempDir()
			out := filepath.Join(outDir, "x.iso")
			_, err = Build(context.Background(), Options{SpecPath: ex.Spec, Output: out, Signer: ex.Signer, SourceDateEpoch: epoch})
			want := strings.ReplaceAll(tt.want, ex0Digest, ex.AppDigest)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("got %v, want an error containing %q", err, want)
			}
			if entries, _ := os.ReadDir(outDir); len(entries) != 0 {
				t.Fatalf("failed build left %v in the output directory", entries)
			}
		})
	}
}

// ex0Digest stands for the example's app digest in expectations.
const ex0Digest = "<app digest>"

func rewriteSpec(t *testing.T, ex *example.Example, from, to string) {
	t.Helper()
	b, err := os.ReadFile(ex.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(from)) {
		t.Fatalf("spec has no %q", from)
	}
	if err := os.WriteFile(ex.Spec, bytes.Replace(b, []byte(from), []byte(to), 1), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCancelledBuildLeavesNothing(t *testing.T) {
	ex, err := example.Write(filepath.Join(t.TempDir(), "in"), example.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	outDir := t.TempDir()
	_, err = Build(ctx, Options{SpecPath: ex.Spec, Output: filepath.Join(outDir, "x.iso"), Signer: ex.Signer, SourceDateEpoch: epoch})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	if entries, _ := os.ReadDir(outDir); len(entries) != 0 {
		t.Fatalf("cancelled build left %v", entries)
	}
}

func TestPhasesRunAloneOnAKeptWorkDir(t *testing.T) {
	ex, err := example.Write(filepath.Join(t.TempDir(), "in"), example.Options{})
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	out := filepath.Join(t.TempDir(), "p.iso")
	var want string
	for _, p := range PhaseNames() {
		res, err := Build(context.Background(), Options{SpecPath: ex.Spec, Output: out, Signer: ex.Signer, SourceDateEpoch: epoch, WorkDir: work, Phases: []string{p}})
		if err != nil {
			t.Fatalf("phase %s alone: %v", p, err)
		}
		if p == "iso" {
			want = res.SHA256
		}
	}
	full := filepath.Join(t.TempDir(), "full.iso")
	res, err := Build(context.Background(), Options{SpecPath: ex.Spec, Output: full, Signer: ex.Signer, SourceDateEpoch: epoch})
	if err != nil {
		t.Fatal(err)
	}
	if res.SHA256 != want {
		t.Fatalf("phase by phase gave %s, one build %s", want, res.SHA256)
	}
	if _, err := Build(context.Background(), Options{SpecPath: ex.Spec, Output: out, Signer: ex.Signer, Phases: []string{"nonsense"}}); err == nil || !strings.Contains(err.Error(), `unknown phase "nonsense"`) {
		t.Fatalf("unknown phase: %v", err)
	}
}

// tamperedTree builds the example with a kept work tree, lets edit change the
// tree, and writes an ISO of it without re-signing (the iso phase alone).
func tamperedTree(t *testing.T, edit func(ex *example.Example, tree string)) (string, *signing.Keyring) {
	t.Helper()
	ex, err := example.Write(filepath.Join(t.TempDir(), "in"), example.Options{})
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	out := filepath.Join(t.TempDir(), "t.iso")
	opts := Options{SpecPath: ex.Spec, Output: out, Signer: ex.Signer, SourceDateEpoch: epoch, WorkDir: work}
	if _, err := Build(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	edit(ex, filepath.Join(work, "tree"))
	opts.Phases = []string{"iso"}
	if _, err := Build(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	ring, err := signing.LoadKeyringFile(ex.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return out, ring
}

func TestVerifyRefusesTamperedTrees(t *testing.T) {
	tests := []struct {
		name     string
		edit     func(t *testing.T, ex *example.Example, tree string)
		path     string
		contains string
	}{
		{"extra file", func(t *testing.T, ex *example.Example, tree string) {
			writeFile(t, filepath.Join(tree, "images", "extra"), "x")
		}, "images/extra", "not listed in the manifest"},
		{"missing file", func(t *testing.T, ex *example.Example, tree string) {
			if err := os.Remove(filepath.Join(tree, "packages/base/Packages/ferry-hello-1.0.0-1.noarch.rpm")); err != nil {
				t.Fatal(err)
			}
		}, "packages/base/Packages/ferry-hello-1.0.0-1.noarch.rpm", "missing from the ISO"},
		{"edited manifest", func(t *testing.T, ex *example.Example, tree string) {
			p := filepath.Join(tree, bundle.ManifestPath)
			b, _ := os.ReadFile(p)
			writeFile(t, p, strings.Replace(string(b), `"version": "1.0.0"`, `"version": "9.0.0"`, 1))
		}, bundle.ManifestSigPath, "signature does not match"},
		{"signature by another key", func(t *testing.T, ex *example.Example, tree string) {
			sec, _, err := signing.GenerateKey(signing.KeyOptions{Name: "Mallory", Email: "m@evil.invalid", Created: example.Epoch})
			if err != nil {
				t.Fatal(err)
			}
			other, err := signing.LoadSigner(bytes.NewReader(sec), nil)
			if err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(filepath.Join(tree, bundle.ManifestPath))
			sig, err := other.SignBytes(data, epoch, true)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(tree, bundle.ManifestSigPath), string(sig))
		}, bundle.ManifestSigPath, "not in the keyring"},
		{"unsigned", func(t *testing.T, ex *example.Example, tree string) {
			if err := os.Remove(filepath.Join(tree, bundle.ManifestSigPath)); err != nil {
				t.Fatal(err)
			}
		}, bundle.ManifestSigPath, "not signed"},
		{"content changed, same size", func(t *testing.T, ex *example.Example, tree string) {
			p := filepath.Join(tree, "packages/base/repodata/repomd.xml")
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 1
			writeFile(t, p, string(b))
		}, "packages/base/repodata/repomd.xml", "sha256 is"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, ring := tamperedTree(t, func(ex *example.Example, tree string) { tt.edit(t, ex, tree) })
			rep, err := verify.Verify(context.Background(), verify.Options{ISO: out, Keyring: ring, Now: epoch.Add(time.Hour)})
			if !errors.Is(err, verify.ErrFailed) {
				t.Fatalf("verify accepted a tampered bundle: %v", err)
			}
			if !hasProblem(rep, tt.path, tt.contains) {
				t.Fatalf("problems %+v lack %s: %q", rep.Problems, tt.path, tt.contains)
			}
		})
	}
}

func hasProblem(rep *verify.Report, path, contains string) bool {
	for _, p := range rep.Problems {
		if p.Path == path && strings.Contains(p.Reason, contains) {
			return true
		}
	}
	return false
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyNamesEveryFlippedFile flips one byte inside the extent of each
// kind of file on a finished ISO, as a bad disc or an attacker would.
func TestVerifyNamesEveryFlippedFile(t *testing.T) {
	f := buildExample(t)
	orig, err := os.ReadFile(f.iso)
	if err != nil {
		t.Fatal(err)
	}
	im, err := iso.Open(bytes.NewReader(orig), int64(len(orig)))
	if err != nil {
		t.Fatal(err)
	}
	targets := []string{
		"images/blobs/sha256/" + strings.TrimPrefix(f.ex.AppDigest, "sha256:"),
		"images/index.json",
		"packages/base/Packages/" + example.LongRPMName,
		"packages/base/repodata/repomd.xml.asc",
		bundle.SumsPath,
		bundle.ManifestPath,
		bundle.ManifestSigPath,
	}
	for _, target := range targets {
		t.Run(target, func(t *testing.T) {
			fi, err := im.Stat(target)
			if err != nil {
				t.Fatal(err)
			}
			bad := append([]byte(nil), orig...)
			off := fi.Extents[0].Offset + fi.Size/2
			bad[off] ^= 0x20
			p := filepath.Join(t.TempDir(), "bad.iso")
			if err := os.WriteFile(p, bad, 0o644); err != nil {
				t.Fatal(err)
			}
			rep, err := verify.Verify(context.Background(), verify.Options{ISO: p, Keyring: f.ring, Now: epoch.Add(time.Hour)})
			if err == nil {
				t.Fatal("verify accepted a flipped byte")
			}
			want := target
			if target == bundle.ManifestPath {
				want = bundle.ManifestSigPath // the signature check is what catches it
			}
			found := false
			for _, p := range rep.Problems {
				found = found || p.Path == want
			}
			if !found {
				t.Fatalf("problems %+v do not name %s (err %v)", rep.Problems, want, err)
			}
		})
	}
}

func TestVerifyExpiry(t *testing.T) {
	f := buildExample(t)
	rep, err := verify.Verify(context.Background(), verify.Options{ISO: f.iso, Keyring: f.ring, Now: f.res.Expires.Add(time.Second)})
	if err == nil || !hasProblem(rep, bundle.ManifestPath, "expired") {
		t.Fatalf("expired bundle: %v %+v", err, rep.Problems)
	}
}

func TestVerifyRefusesExpiredKey(t *testing.T) {
	ex, err := example.Write(filepath.Join(t.TempDir(), "in"), example.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sec, pub, err := signing.GenerateKey(signing.KeyOptions{Name: "Short", Email: "s@ferry.invalid", Created: epoch, Lifetime: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := signing.LoadSigner(bytes.NewReader(sec), nil)
	ring, _ := signing.ReadKeyring(bytes.NewReader(pub))
	out := filepath.Join(t.TempDir(), "k.iso")
	if _, err := Build(context.Background(), Options{SpecPath: ex.Spec, Output: out, Signer: signer, SourceDateEpoch: epoch}); err != nil {
		t.Fatal(err)
	}
	if _, err := verify.Verify(context.Background(), verify.Options{ISO: out, Keyring: ring, Now: epoch.Add(time.Hour)}); err != nil {
		t.Fatalf("valid key: %v", err)
	}
	rep, err := verify.Verify(context.Background(), verify.Options{ISO: out, Keyring: ring, Now: epoch.Add(72 * time.Hour)})
	if err == nil || !hasProblem(rep, bundle.ManifestSigPath, "expired") {
		t.Fatalf("expired key: %v %+v", err, rep.Problems)
	}
}

func TestVerifyRefusesGarbage(t *testing.T) {
	f := buildExample(t)
	for name, data := range map[string][]byte{"empty": nil, "text": []byte("hello"), "zeros": make([]byte, 64<<10)} {
		p := filepath.Join(t.TempDir(), name+".iso")
		writeFile(t, p, string(data))
		if _, err := verify.Verify(context.Background(), verify.Options{ISO: p, Keyring: f.ring}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := verify.Verify(context.Background(), verify.Options{ISO: filepath.Join(t.TempDir(), "none.iso"), Keyring: f.ring}); err == nil {
		t.Error("missing ISO accepted")
	}
}

func TestVerifiedReaderCatchesLaterTampering(t *testing.T) {
	f := buildExample(t)
	b, rep, err := verify.OpenVerified(context.Background(), f.iso, f.ring, verify.Options{Now: epoch.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !rep.OK || rep.Files != len(b.Manifest.Files) {
		t.Fatalf("report %+v", rep)
	}
	// The app image's largest layer spans several 1 MiB chunks.
	blob := ""
	var size int64
	for _, file := range b.Manifest.Files {
		if strings.HasPrefix(file.Path, "images/blobs/") && file.Size > size {
			blob, size = file.Path, file.Size
		}
	}
	if size <= bundle.ChunkSize {
		t.Fatalf("largest blob is %d bytes; the test needs one over a chunk", size)
	}
	file, err := b.File(blob)
	if err != nil {
		t.Fatal(err)
	}
	r := file.NewReader()
	defer r.Close()
	whole, err := io.ReadAll(r)
	if err != nil || sha256Hex(whole) != file.Info.SHA256 {
		t.Fatalf("read %d bytes, %v", len(whole), err)
	}
	// A range in the second chunk.
	if _, err := r.Seek(bundle.ChunkSize+10, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	part := make([]byte, 100)
	if _, err := io.ReadFull(r, part); err != nil || !bytes.Equal(part, whole[bundle.ChunkSize+10:bundle.ChunkSize+110]) {
		t.Fatalf("range read: %v", err)
	}
	// Tamper with the first chunk of the blob inside the ISO file, after it
	// was verified: the first chunk now fails, the second still reads.
	fi, err := b.Image.Stat(blob)
	if err != nil {
		t.Fatal(err)
	}
	fh, err := os.OpenFile(f.iso, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteAt([]byte{whole[100] ^ 0xff}, fi.Extents[0].Offset+100); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	r2 := file.NewReader()
	defer r2.Close()
	if _, err := io.ReadAll(r2); !errors.Is(err, verify.ErrDigestMismatch) {
		t.Fatalf("tampered chunk: got %v, want ErrDigestMismatch", err)
	}
	if _, err := r2.Seek(bundle.ChunkSize, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(r2); err != nil || !bytes.Equal(rest, whole[bundle.ChunkSize:]) {
		t.Fatalf("untouched chunk: %v", err)
	}
	if _, err := b.File("../etc/passwd"); err == nil {
		t.Fatal("opened a path outside the manifest")
	}
}

func TestMain(m *testing.M) {
	// The tests run real programs; make their failures readable.
	os.Setenv("LC_ALL", "C")
	os.Exit(m.Run())
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
