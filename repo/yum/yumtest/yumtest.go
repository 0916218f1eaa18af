package yumtest

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/repo/rpmtest"
)

// debianPackage names the package that provides each program run here.
var debianPackage = map[string]string{"gpg": "gnupg", "gpgconf": "gnupg", "createrepo_c": "createrepo-c"}

// run runs a program and fails the test if it is missing or fails.
func run(t testing.TB, env []string, name string, args ...string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is required by this test (Debian package %s): %v", name, debianPackage[name], err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, p, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Key is a throwaway RSA signing key in its own GNUPGHOME.
type Key struct {
	t    testing.TB
	home string
	env  []string
	// PublicKey is the armored public key file (a spec's gpgkey).
	PublicKey string
}

// NewKey makes a key for uid ("Name <mail@example.invalid>"); its
// gpg-agent is stopped when the test ends.
func NewKey(t testing.TB, uid string) *Key {
	t.Helper()
	home, err := os.MkdirTemp("", "ferry-gpg-") // short: gpg-agent's socket path
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	k := &Key{t: t, home: home, env: []string{"GNUPGHOME=" + home}}
	t.Cleanup(func() {
		if p, err := exec.LookPath("gpgconf"); err == nil {
			_ = exec.Command(p, "--homedir", home, "--kill", "gpg-agent").Run()
		}
		os.RemoveAll(home)
	})
	k.gpg("--quick-gen-key", uid, "rsa2048", "sign", "never")
	k.PublicKey = filepath.Join(t.TempDir(), "RPM-GPG-KEY")
	k.gpg("--armor", "--output", k.PublicKey, "--export")
	return k
}

func (k *Key) gpg(args ...string) string {
	k.t.Helper()
	base := []string{"--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase", ""}
	return run(k.t, k.env, "gpg", append(base, args...)...)
}

// SignRPM is an rpmtest signer: a binary detached signature made by gpg.
func (k *Key) SignRPM(data []byte) ([]byte, error) {
	dir, err := os.MkdirTemp(k.home, "sign-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	in := filepath.Join(dir, "data")
	if err := os.WriteFile(in, data, 0o600); err != nil {
		return nil, err
	}
	k.gpg("--digest-algo", "SHA256", "--detach-sign", "-o", in+".sig", in)
	return os.ReadFile(in + ".sig")
}

// SignFile writes an armored detached signature of path to path.asc.
func (k *Key) SignFile(path string) {
	k.t.Helper()
	k.gpg("--digest-algo", "SHA256", "--armor", "--detach-sign", "--output", path+".asc", path)
}

// Repo is a repository directory made by BuildRepo.
type Repo struct {
	Dir string
	// Files maps each package's file name to its path.
	Files map[string]string
}

// BuildRepo builds specs (signed by key when it is not nil) into
// dir/Packages/<first letter>/, runs createrepo_c on dir and, when
// signRepomd, signs repodata/repomd.xml with key.
func BuildRepo(t testing.TB, dir string, specs []rpmtest.Spec, key *Key, signRepomd bool) *Repo {
	t.Helper()
	r := &Repo{Dir: dir, Files: map[string]string{}}
	var sign func([]byte) ([]byte, error)
	if key != nil {
		sign = key.SignRPM
	}
	for _, s := range specs {
		sub := filepath.Join(dir, "Packages", s.Name[:1])
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		p, err := rpmtest.Build(sub, s, sign)
		if err != nil {
			t.Fatal(err)
		}
		r.Files[filepath.Base(p)] = p
	}
	run(t, nil, "createrepo_c", "--quiet", "--no-database", dir)
	if signRepomd {
		key.SignFile(filepath.Join(dir, "repodata", "repomd.xml"))
	}
	return r
}

// Server serves a directory over TLS and counts requests by path.
type Server struct {
	*httptest.Server
	// CAFile holds the server's certificate (PEM): a spec's caFile.
	CAFile string

	mu       sync.Mutex
	requests map[string]int
	replace  map[string][]byte
}

// NewServer serves root at https://127.0.0.1:PORT/.
func NewServer(t testing.TB, root string) *Server {
	t.Helper()
	s := &Server{requests: map[string]int{}, replace: map[string][]byte{}}
	files := http.FileServer(http.Dir(root))
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests[r.URL.Path]++
		data, replaced := s.replace[r.URL.Path]
		s.mu.Unlock()
		if replaced {
			http.ServeContent(w, r, r.URL.Path, time.Time{}, bytes.NewReader(data))
			return
		}
		files.ServeHTTP(w, r)
	}))
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.StartTLS()
	t.Cleanup(s.Close)
	s.CAFile = filepath.Join(t.TempDir(), "ca.pem")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
	if err := os.WriteFile(s.CAFile, ca, 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// Requests counts the requests whose path ends with suffix ("" for all).
func (s *Server) Requests(suffix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for p, c := range s.requests {
		if strings.HasSuffix(p, suffix) {
			n += c
		}
	}
	return n
}

// Replace serves data at path (as requested, "/Packages/a/a-1-1.noarch.rpm")
// instead of the file.
func (s *Server) Replace(path string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replace[path] = data
}

// URL of a path below the root.
func (s *Server) URLOf(path string) string {
	return fmt.Sprintf("%s/%s", s.Server.URL, strings.TrimPrefix(path, "/"))
}
