package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/images/imagetest"
	"github.com/ferry-k8s/ferry/internal/example"
	"github.com/ferry-k8s/ferry/internal/testpki"
	"github.com/ferry-k8s/ferry/repo/rpmtest"
	"github.com/ferry-k8s/ferry/signing"
)

const usage = `usage:
  mkupstream input -dir D [-rpms 200] [-scale 1]
  mkupstream pki -dir D
  mkupstream lockinfo -lock bundle.lock`

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mkupstream:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet("mkupstream "+args[0], flag.ContinueOnError)
	dir := fs.String("dir", "", "output directory")
	rpms := fs.Int("rpms", 200, "RPMs in the repository")
	scale := fs.Float64("scale", 1, "multiplies every RPM payload and image layer size")
	lock := fs.String("lock", "", "lock file (lockinfo)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch args[0] {
	case "input":
		if *dir == "" {
			return errors.New("input: -dir is required")
		}
		return writeInput(*dir, *rpms, *scale)
	case "pki":
		if *dir == "" {
			return errors.New("pki: -dir is required")
		}
		return writePKI(*dir)
	case "lockinfo":
		if *lock == "" {
			return errors.New("lockinfo: -lock is required")
		}
		return lockInfo(*lock, stdout)
	}
	return fmt.Errorf("unknown command %q\n%s", args[0], usage)
}

// writeInput makes everything upstream of the builder (see doc.go).
func writeInput(dir string, nRPMs int, scale float64) error {
	pkgs, err := plan(nRPMs, scale)
	if err != nil {
		return err
	}
	want, err := closure(pkgs)
	if err != nil {
		return fmt.Errorf("planning the repository: %w", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	repoDir := filepath.Join(dir, "repo")
	if err := os.MkdirAll(repoDir, 0o755); err != nil {
		return err
	}
	key, err := newGPGKey("Ferry Upstream Bench <upstream@ferry.invalid>")
	if err != nil {
		return err
	}
	defer key.close()
	if err := key.export(filepath.Join(dir, "RPM-GPG-KEY")); err != nil {
		return err
	}
	if err := buildRPMs(repoDir, pkgs, key.signRPM); err != nil {
		return err
	}
	if out, err := exec.Command("createrepo_c", "--quiet", "--no-database", repoDir).CombinedOutput(); err != nil {
		return fmt.Errorf("createrepo_c %s (Debian package createrepo-c): %w: %s", repoDir, err, out)
	}
	if err := key.signFile(filepath.Join(repoDir, "repodata", "repomd.xml")); err != nil {
		return err
	}

	var refs []string
	for _, im := range images(scale) {
		ref := "bench/" + im.Repo + ":" + im.Tag
		if _, err := imagetest.WriteImage(filepath.Join(dir, "layout"), ref, im.Seed, im.Layers); err != nil {
			return fmt.Errorf("writing image %s: %w", ref, err)
		}
		refs = append(refs, im.Repo+":"+im.Tag)
	}
	var names []string
	for _, p := range pkgs {
		if p.Tool {
			names = append(names, p.Spec.Name)
		}
	}
	sec, pub, err := signing.GenerateKey(signing.KeyOptions{Name: "Bench Release", Email: "release@ferry.invalid", Created: example.Epoch})
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{
		"images":          lines(refs),
		"names":           lines(names),
		"closure":         lines(want),
		"release.key.asc": sec,
		"release.pub.asc": pub,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func lines(s []string) []byte { return []byte(strings.Join(s, "\n") + "\n") }

// buildRPMs writes every planned package to repoDir/Packages/<first
// letter>/, as EL repositories lay them out, one per CPU at a time.
func buildRPMs(repoDir string, pkgs []plannedRPM, sign func([]byte) ([]byte, error)) error {
	sem := make(chan struct{}, runtime.NumCPU())
	var wg sync.WaitGroup
	errs := make([]error, len(pkgs))
	for i, p := range pkgs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			s := p.Spec
			files := make(map[string][]byte, len(s.Files))
			for path, data := range s.Files {
				if data == nil {
					data = rpmtest.Content(s.Name+"-"+s.Version+path, p.Size)
				}
				files[path] = data
			}
			s.Files = files
			sub := filepath.Join(repoDir, "Packages", s.Name[:1])
			if err := os.MkdirAll(sub, 0o755); err != nil {
				errs[i] = err
				return
			}
			if _, err := rpmtest.Build(sub, s, sign); err != nil {
				errs[i] = fmt.Errorf("building %s: %w", rpmtest.FileName(s), err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// gpgKey is a throwaway RSA key in its own GNUPGHOME, used through the real
// gpg as a distribution signs its packages.
type gpgKey struct{ home string }

func newGPGKey(uid string) (*gpgKey, error) {
	if _, err := exec.LookPath("gpg"); err != nil {
		return nil, fmt.Errorf("gpg is needed (Debian package gnupg): %w", err)
	}
	home, err := os.MkdirTemp("", "ferry-up-gpg-") // short: gpg-agent's socket path
	if err != nil {
		return nil, err
	}
	k := &gpgKey{home: home}
	if err := os.Chmod(home, 0o700); err != nil {
		k.close()
		return nil, err
	}
	if _, err := k.gpg(nil, "--quick-gen-key", uid, "rsa4096", "sign", "never"); err != nil {
		k.close()
		return nil, err
	}
	return k, nil
}

// close stops the key's gpg-agent and removes its home.
func (k *gpgKey) close() {
	_ = exec.Command("gpgconf", "--homedir", k.home, "--kill", "gpg-agent").Run()
	_ = os.RemoveAll(k.home)
}

func (k *gpgKey) gpg(stdin []byte, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	base := []string{"--homedir", k.home, "--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase", ""}
	cmd := exec.CommandContext(ctx, "gpg", append(base, args...)...)
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stderr = bytes.NewReader(stdin), &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("gpg %s: %w: %s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out, nil
}

func (k *gpgKey) export(path string) error {
	_, err := k.gpg(nil, "--armor", "--output", path, "--export")
	return err
}

// signRPM is rpmtest's signer: a binary detached signature (SHA-256).
func (k *gpgKey) signRPM(data []byte) ([]byte, error) {
	return k.gpg(data, "--digest-algo", "SHA256", "--detach-sign", "--output", "-")
}

// signFile writes path.asc, as repositories sign repomd.xml.
func (k *gpgKey) signFile(path string) error {
	_, err := k.gpg(nil, "--digest-algo", "SHA256", "--armor", "--detach-sign", "--output", path+".asc", path)
	return err
}

// writePKI writes a CA and a loopback server certificate.
func writePKI(dir string) error {
	ca, err := testpki.NewCA("Ferry upstream benchmark CA")
	if err != nil {
		return err
	}
	cert, key, err := ca.Issue("upstream bench server", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, false)
	if err != nil {
		return err
	}
	if _, _, err := ca.WriteFiles(dir, "ca", ca.CertPEM, nil); err != nil {
		return err
	}
	_, _, err = ca.WriteFiles(dir, "server", cert, key)
	return err
}

// lockInfo prints what a lock pins, for the pipeline (see doc.go).
func lockInfo(path string, w io.Writer) error {
	lock, err := bundle.LoadLock(path)
	if err != nil {
		return err
	}
	for _, im := range lock.Images {
		ref, err := pinned(im.Source, im.Digest)
		if err != nil {
			return fmt.Errorf("lock %s: image %s: %w", path, im.Name, err)
		}
		fmt.Fprintf(w, "image %s %s\n", ref, im.Name)
	}
	for _, p := range lock.Packages {
		fmt.Fprintf(w, "rpm %s  %s\n", p.SHA256, p.FileName())
	}
	return nil
}

// pinned turns docker://host/repo:tag and a digest into
// docker://host/repo@digest.
func pinned(source, digest string) (string, error) {
	ref, ok := strings.CutPrefix(source, "docker://")
	if !ok {
		return "", fmt.Errorf("source %q is not docker://", source)
	}
	if !strings.HasPrefix(digest, "sha256:") || len(digest) != len("sha256:")+64 {
		return "", fmt.Errorf("digest %q is not sha256:<64 hex>", digest)
	}
	slash := strings.LastIndex(ref, "/")
	if slash < 0 {
		return "", fmt.Errorf("source %q has no registry host", source)
	}
	if at := strings.Index(ref, "@"); at >= 0 {
		ref = ref[:at]
	} else if colon := strings.LastIndex(ref, ":"); colon > slash {
		ref = ref[:colon]
	}
	return "docker://" + ref + "@" + digest, nil
}
