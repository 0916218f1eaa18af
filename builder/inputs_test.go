package builder

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-k8s/ferry/internal/example"
	"github.com/ferry-k8s/ferry/iso"
)

const helloRPM = "ferry-hello-1.0.0-1.noarch.rpm"

// TestLocalRPMsAreNeverDropped: a symlinked *.rpm in a spec's package
// directory is taken (as a regular file) when it leads inside the spec's
// directory, and refused, naming link and target, otherwise; a file named
// for another package than its header's is refused, naming it and the
// header's NEVRA. Nothing is silently dropped.
func TestLocalRPMsAreNeverDropped(t *testing.T) {
	outside := t.TempDir()
	tests := []struct {
		name  string
		spoil func(t *testing.T, ex *example.Example, rpms string)
		want  []string // empty: the build succeeds with 3 packages
	}{
		{"link inside the spec directory", func(t *testing.T, ex *example.Example, rpms string) {
			store := filepath.Join(ex.Dir, "store")
			must(t, os.MkdirAll(store, 0o755))
			must(t, os.Rename(filepath.Join(rpms, helloRPM), filepath.Join(store, helloRPM)))
			must(t, os.Symlink(filepath.Join("..", "store", helloRPM), filepath.Join(rpms, helloRPM)))
		}, nil},
		{"absolute link inside the spec directory", func(t *testing.T, ex *example.Example, rpms string) {
			store := filepath.Join(ex.Dir, "store")
			must(t, os.MkdirAll(store, 0o755))
			must(t, os.Rename(filepath.Join(rpms, helloRPM), filepath.Join(store, helloRPM)))
			must(t, os.Symlink(filepath.Join(store, helloRPM), filepath.Join(rpms, helloRPM)))
		}, nil},
		{"link outside the spec directory", func(t *testing.T, ex *example.Example, rpms string) {
			dir := filepath.Join(outside, t.Name())
			must(t, os.MkdirAll(dir, 0o755))
			must(t, os.Rename(filepath.Join(rpms, helloRPM), filepath.Join(dir, helloRPM)))
			must(t, os.Symlink(filepath.Join(dir, helloRPM), filepath.Join(rpms, helloRPM)))
		}, []string{"spec.packages[0].directory", "link ", "rpms/" + helloRPM + " -> " + outside, "outside the spec's directory"}},
		{"link climbing out", func(t *testing.T, ex *example.Example, rpms string) {
			must(t, os.Rename(filepath.Join(rpms, helloRPM), filepath.Join(filepath.Dir(ex.Dir), helloRPM)))
			must(t, os.Symlink(filepath.Join("..", "..", helloRPM), filepath.Join(rpms, helloRPM)))
		}, []string{"rpms/" + helloRPM + " -> ../../" + helloRPM, "outside the spec's directory"}},
		{"dangling link", func(t *testing.T, ex *example.Example, rpms string) {
			must(t, os.Symlink("nowhere.rpm", filepath.Join(rpms, "zz-1-1.noarch.rpm")))
		}, []string{"rpms/zz-1-1.noarch.rpm -> nowhere.rpm"}},
		{"link to a directory", func(t *testing.T, ex *example.Example, rpms string) {
			must(t, os.Symlink("..", filepath.Join(rpms, "zz-1-1.noarch.rpm")))
		}, []string{"rpms/zz-1-1.noarch.rpm -> ..", "not a regular file"}},
		{"a directory named .rpm", func(t *testing.T, ex *example.Example, rpms string) {
			must(t, os.Mkdir(filepath.Join(rpms, "zz.rpm"), 0o755))
		}, []string{"rpms/zz.rpm is not a regular file"}},
		{"name lying about the package", func(t *testing.T, ex *example.Example, rpms string) {
			must(t, os.Rename(filepath.Join(rpms, helloRPM), filepath.Join(rpms, "ferry-hello-9.9.9-1.noarch.rpm")))
		}, []string{"rpms/ferry-hello-9.9.9-1.noarch.rpm holds the package ferry-hello-1.0.0-1.noarch", "must be " + helloRPM}},
		{"name of a link lying about the package", func(t *testing.T, ex *example.Example, rpms string) {
			must(t, os.Rename(filepath.Join(rpms, helloRPM), filepath.Join(ex.Dir, helloRPM)))
			must(t, os.Symlink(filepath.Join("..", helloRPM), filepath.Join(rpms, "kubelet-1.34.4-1.x86_64.rpm")))
		}, []string{"rpms/kubelet-1.34.4-1.x86_64.rpm holds the package ferry-hello-1.0.0-1.noarch"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ex, err := example.Write(filepath.Join(t.TempDir(), "in"), example.Options{})
			if err != nil {
				t.Fatal(err)
			}
			tt.spoil(t, ex, filepath.Join(ex.Dir, "rpms"))
			out := filepath.Join(t.TempDir(), "x.iso")
			res, err := Build(context.Background(), Options{SpecPath: ex.Spec, Output: out, Signer: ex.Signer, SourceDateEpoch: epoch})
			if len(tt.want) > 0 {
				for _, w := range tt.want {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Fatalf("got %v, want an error containing %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n := res.Repositories[0].Packages; n != 3 {
				t.Fatalf("%d packages in the bundle, want 3", n)
			}
			f, err := os.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			st, _ := f.Stat()
			im, err := iso.Open(f, st.Size())
			if err != nil {
				t.Fatal(err)
			}
			fi, err := im.Stat("packages/base/Packages/" + helloRPM)
			if err != nil || !fi.Mode.IsRegular() {
				t.Fatalf("%s on the ISO: %+v, %v; want a regular file", helloRPM, fi, err)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestOCIArchiveUnpacksInWorkDir: an oci-archive source is unpacked in
// the build's work directory, not in /var/tmp (containers/image's
// default) nor in TMPDIR: a build works with TMPDIR pointing nowhere,
// and leaves nothing behind.
func TestOCIArchiveUnpacksInWorkDir(t *testing.T) {
	ex, err := example.Write(filepath.Join(t.TempDir(), "in"), example.Options{})
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(ex.Dir, "images", "app.tar")
	out, err := exec.Command("skopeo", "copy", "--quiet", "oci:"+filepath.Join(ex.Dir, "images", "layout")+":app", "oci-archive:"+archive).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo: %v\n%s", err, out)
	}
	rewriteSpec(t, ex, "oci:images/layout:app", "oci-archive:images/app.tar")
	missing := filepath.Join(t.TempDir(), "no-such-tmp")
	t.Setenv("TMPDIR", missing)
	work := t.TempDir()
	opts := Options{SpecPath: ex.Spec, Output: filepath.Join(t.TempDir(), "x.iso"), Signer: ex.Signer, SourceDateEpoch: epoch, WorkDir: work}
	res, err := Build(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Images) != 2 || res.Images[0].Digest != ex.AppDigest {
		t.Fatalf("images %+v, want the app at %s", res.Images, ex.AppDigest)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Errorf("the build created TMPDIR %s", missing)
	}
	if _, err := os.Stat(filepath.Join(work, "tmp")); err == nil {
		t.Errorf("the build left %s", filepath.Join(work, "tmp"))
	}
}
