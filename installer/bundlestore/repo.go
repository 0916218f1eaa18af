package bundlestore

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ferry-k8s/ferry/bundle/verify"
	"github.com/ferry-k8s/ferry/signing"
)

// RepoID is the dnf repository id of the distribution's repository.
func (f *Facts) RepoID() string { return "ferry-" + f.Repo }

// DNFArgs confine dnf to Ferry's repository: an air-gapped node must not
// try any other.
func (f *Facts) DNFArgs() []string {
	return []string{"--disablerepo=*", "--enablerepo=" + f.RepoID(), "--releasever=1", "--setopt=" + f.RepoID() + ".skip_if_unavailable=False"}
}

// ExtractRepo copies the distribution's repository out of the verified ISO
// (each chunk checked as it is read) for the first install, which cannot
// use the content service: it runs from these very packages.
func ExtractRepo(ctx context.Context, isoPath string, ring *signing.Keyring, f *Facts, opts verify.Options) (string, func(), error) {
	b, _, err := verify.OpenVerified(ctx, isoPath, ring, opts)
	if err != nil {
		return "", nil, err
	}
	defer b.Close()
	dir, err := os.MkdirTemp("", "ferry-repo-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	prefix := "packages/" + f.Repo + "/"
	fsys := b.FS()
	for _, file := range b.Manifest.Files {
		if !strings.HasPrefix(file.Path, prefix) {
			continue
		}
		dst := filepath.Join(dir, strings.TrimPrefix(file.Path, prefix))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			cleanup()
			return "", nil, err
		}
		if err := copyVerified(fsys, file.Path, dst); err != nil {
			cleanup()
			return "", nil, err
		}
	}
	return dir, cleanup, nil
}

func copyVerified(fsys fs.FS, name, dst string) error {
	in, err := fsys.Open(name)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("%s: %w", name, err)
	}
	return out.Close()
}
