package bundlefetch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/internal/fetch"
	"github.com/ferry-k8s/ferry/internal/testpki"
)

// service is a content service's /bundles/ over TLS: files by name,
// served with Range support, with a log of the requests.
type service struct {
	*httptest.Server
	mu       sync.Mutex
	files    map[string][]byte
	requests []string // "path range"
	sent     int
	cutAt    int // > 0: the next response of a whole file stops after cutAt bytes
}

func newService(t *testing.T, files map[string][]byte) *service {
	t.Helper()
	s := &service{files: files}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *service) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, strings.TrimSpace(r.URL.Path+" "+r.Header.Get("Range")))
	name, ok := strings.CutPrefix(r.URL.Path, "/bundles/")
	data, found := s.files[name]
	cut := s.cutAt
	s.cutAt = 0
	s.mu.Unlock()
	if !ok || !found {
		http.NotFound(w, r)
		return
	}
	if cut > 0 && r.Header.Get("Range") == "" {
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.WriteHeader(http.StatusOK)
		s.count(cut)
		w.Write(data[:cut])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	http.ServeContent(&countingWriter{ResponseWriter: w, s: s}, r, name, time.Time{}, bytes.NewReader(data))
}

func (s *service) count(n int) {
	s.mu.Lock()
	s.sent += n
	s.mu.Unlock()
}

// bytesSent are the body bytes the service wrote, counted before each
// write.
func (s *service) bytesSent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent
}

func (s *service) log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

type countingWriter struct {
	http.ResponseWriter
	s *service
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.s.count(len(p))
	return w.ResponseWriter.Write(p)
}

// addr is the service as a join file names it: host:port.
func (s *service) addr() string { return s.Listener.Addr().String() }

// caPEM is the test servers' certificate, their CA.
func caPEM(s *service) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
}

// otherService serves files with a certificate of another CA.
func otherService(t *testing.T, files map[string][]byte) *service {
	t.Helper()
	other, err := testpki.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := other.Issue("another service", nil, []net.IP{net.IPv4(127, 0, 0, 1)}, false)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	s := &service{files: files}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

// deadService is an address nothing listens on.
func deadService(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func iso(n int) ([]byte, string) {
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i*13 + i/241)
	}
	sum := sha256.Sum256(data)
	return data, hex.EncodeToString(sum[:])
}

func fetcher(t *testing.T, ca []byte, services ...string) *Fetcher {
	return &Fetcher{Services: services, CA: ca, Dir: filepath.Join(t.TempDir(), "downloads"), backoff: time.Millisecond}
}

func checkFile(t *testing.T, p string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes (%v), want the %d served", p, len(got), err, len(want))
	}
}

const file = "ferry-kubernetes-1.0.0.iso"

// The services are tried in order: one that does not have the bundle
// (404), one that is down, one whose certificate is not the content CA's,
// one that serves other bytes than the digest, then one that has it.
func TestFetchTriesEachService(t *testing.T) {
	data, sum := iso(64 << 10)
	bad := bytes.Clone(data)
	bad[100] ^= 1
	without := newService(t, map[string][]byte{})
	altered := newService(t, map[string][]byte{file: bad})
	stranger := otherService(t, map[string][]byte{file: data})
	good := newService(t, map[string][]byte{file: data})
	f := fetcher(t, caPEM(good), without.addr(), deadService(t), stranger.addr(), altered.addr(), good.addr())
	p, err := f.Fetch(context.Background(), Bundle{File: file, SHA256: sum, Size: int64(len(data))})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, p, data)
	if p != filepath.Join(f.Dir, "sha256", sum) {
		t.Errorf("fetched into %s", p)
	}
	for _, s := range []*service{without, altered, good} {
		if got := s.log(); len(got) != 1 || got[0] != "/bundles/"+file {
			t.Errorf("%s: requests %q, want one for the bundle (no retry on a 404 or a mismatch)", s.addr(), got)
		}
	}
	if got := stranger.log(); len(got) != 0 {
		t.Errorf("the service with another CA's certificate was asked: %q", got)
	}
	// Fetched already: no request.
	if p2, err := f.Fetch(context.Background(), Bundle{File: file, SHA256: sum, Size: int64(len(data))}); err != nil || p2 != p || len(good.log()) != 1 {
		t.Errorf("again: %s %v, %d requests", p2, err, len(good.log()))
	}
}

// No service has it: the error names the bundle and each service's
// failure, in order.
func TestFetchFails(t *testing.T) {
	data, sum := iso(1 << 10)
	without := newService(t, map[string][]byte{})
	bad := bytes.Clone(data)
	bad[0] ^= 1
	altered := newService(t, map[string][]byte{file: bad})
	dead := deadService(t)
	f := fetcher(t, caPEM(without), without.addr(), dead, altered.addr())
	_, err := f.Fetch(context.Background(), Bundle{File: file, SHA256: sum, Size: int64(len(data))})
	if err == nil {
		t.Fatal("fetched")
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "fetching bundle "+file+": ") || !errors.Is(err, fetch.ErrNotFound) || !errors.Is(err, fetch.ErrMismatch) {
		t.Errorf("error %q", msg)
	}
	i, j, k := strings.Index(msg, without.addr()), strings.Index(msg, dead), strings.Index(msg, altered.addr())
	if i < 0 || j < i || k < j {
		t.Errorf("error %q does not name the services in order", msg)
	}
	if _, err := f.Fetch(context.Background(), Bundle{File: "../../etc/passwd", SHA256: sum, Size: 1}); err == nil || !strings.Contains(err.Error(), "not a bundle file name") {
		t.Errorf("a path for a name: %v", err)
	}
	if _, err := fetcher(t, []byte("not PEM"), without.addr()).Fetch(context.Background(), Bundle{File: file}); err == nil || !strings.Contains(err.Error(), "the content CA holds no certificate") {
		t.Errorf("no CA: %v", err)
	}
	if _, err := fetcher(t, caPEM(without)).Fetch(context.Background(), Bundle{File: file}); err == nil || !strings.Contains(err.Error(), "no content service") {
		t.Errorf("no service: %v", err)
	}
}

// A download cut off is resumed from the bytes received, with or without a
// digest, within a run and from a partial file an earlier run left.
func TestFetchResumes(t *testing.T) {
	data, sum := iso(256 << 10)
	const at = 100 << 10
	for _, tc := range []struct {
		name string
		b    Bundle
		// partial is where an interrupted run leaves its bytes.
		partial func(f *Fetcher) string
	}{
		{"digest", Bundle{File: file, SHA256: sum, Size: int64(len(data))}, func(f *Fetcher) string { return filepath.Join(f.Dir, "sha256", sum+".partial") }},
		{"no digest", Bundle{File: file}, func(f *Fetcher) string { return filepath.Join(f.Dir, file+".download.partial") }},
	} {
		t.Run(tc.name+"/within a run", func(t *testing.T) {
			s := newService(t, map[string][]byte{file: data})
			s.cutAt = at
			f := fetcher(t, caPEM(s), s.addr())
			p, err := f.Fetch(context.Background(), tc.b)
			if err != nil {
				t.Fatal(err)
			}
			checkFile(t, p, data)
			if got, want := s.log(), []string{"/bundles/" + file, fmt.Sprintf("/bundles/%s bytes=%d-", file, at)}; !equal(got, want) {
				t.Errorf("requests %q, want %q", got, want)
			}
			if n := s.bytesSent(); n != len(data) {
				t.Errorf("%d bytes sent for %d", n, len(data))
			}
		})
		t.Run(tc.name+"/across runs", func(t *testing.T) {
			s := newService(t, map[string][]byte{file: data})
			f := fetcher(t, caPEM(s), s.addr())
			part := tc.partial(f)
			if err := os.MkdirAll(filepath.Dir(part), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(part, data[:at], 0o644); err != nil {
				t.Fatal(err)
			}
			p, err := f.Fetch(context.Background(), tc.b)
			if err != nil {
				t.Fatal(err)
			}
			checkFile(t, p, data)
			if n := s.bytesSent(); n != len(data)-at {
				t.Errorf("%d bytes sent, want the missing %d", n, len(data)-at)
			}
		})
	}
}

// Without a digest (a roll-out's bundle, by name), the bundle lands in
// Dir/<file>.download for the caller to verify.
func TestFetchWithoutDigest(t *testing.T) {
	data, _ := iso(32 << 10)
	without := newService(t, map[string][]byte{})
	s := newService(t, map[string][]byte{file: data})
	f := fetcher(t, caPEM(s), without.addr(), s.addr())
	p, err := f.Fetch(context.Background(), Bundle{File: file})
	if err != nil {
		t.Fatal(err)
	}
	if p != filepath.Join(f.Dir, file+".download") {
		t.Errorf("fetched into %s", p)
	}
	checkFile(t, p, data)
}

// The validity statement is optional: from the first service that has
// one; none (404 everywhere, or services that fail) is "" and no error.
func TestValidity(t *testing.T) {
	statement := []byte("-----BEGIN PGP SIGNED MESSAGE-----\nthe statement\n")
	name := "ferry-kubernetes-1.0.0.validity"
	without := newService(t, map[string][]byte{})
	stranger := otherService(t, map[string][]byte{name: []byte("another CA's")})
	huge := newService(t, map[string][]byte{name: bytes.Repeat([]byte("x"), 1<<20)})
	has := newService(t, map[string][]byte{name: statement})
	ca := caPEM(has)

	f := fetcher(t, ca, without.addr(), deadService(t), stranger.addr(), huge.addr(), has.addr())
	p, err := f.Validity(context.Background(), file)
	if err != nil {
		t.Fatal(err)
	}
	if p != filepath.Join(f.Dir, name) {
		t.Errorf("fetched into %s", p)
	}
	checkFile(t, p, statement)
	if got := without.log(); !equal(got, []string{"/bundles/" + name}) {
		t.Errorf("requests %q", got)
	}

	for _, services := range [][]string{{without.addr()}, {without.addr(), deadService(t), huge.addr()}, nil} {
		f := fetcher(t, ca, services...)
		if p, err := f.Validity(context.Background(), file); p != "" || err != nil {
			t.Errorf("%q: %q %v, want none and no error", services, p, err)
		}
		if _, err := os.Stat(f.Dir); err == nil {
			t.Errorf("%q: the download directory was made for nothing", services)
		}
	}
	if _, err := fetcher(t, []byte("not PEM"), has.addr()).Validity(context.Background(), file); err == nil {
		t.Error("no CA: no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := fetcher(t, ca, has.addr()).Validity(ctx, file); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func equal(a, b []string) bool {
	return strings.Join(a, "\n") == strings.Join(b, "\n")
}
