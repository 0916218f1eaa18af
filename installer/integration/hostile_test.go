package integration

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHostileRequests sends what a hostile or broken client sends: path
// traversal, plain and encoded; unknown digests; malformed names and
// references; write methods. Each must get a 4xx or a closed connection,
// and no byte of a file outside the bundle: a canary file next to the ISO,
// /etc/passwd.
func TestHostileRequests(t *testing.T) {
	dir := t.TempDir()
	isoPath := filepath.Join(dir, "example.iso")
	if err := os.Link(shared.iso, isoPath); err != nil {
		data, _ := os.ReadFile(shared.iso)
		if err := os.WriteFile(isoPath, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const canary = "FERRY-CANARY-7c1e0f"
	if err := os.WriteFile(filepath.Join(dir, "canary.txt"), []byte(canary+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, serveOptions{isos: []string{isoPath}})
	m := appManifest(t, isoPath)
	zeros := "sha256:" + strings.Repeat("0", 64)
	app := "/v2/registry.example.com/ferry/app"
	// A blob of the multi image, which the app repository does not reach.
	multiIdx, _ := bundleFile(t, isoPath, blobPath(shared.ex.IndexAmd64))
	var multi ociManifest
	if err := json.Unmarshal(multiIdx, &multi); err != nil {
		t.Fatal(err)
	}

	type req struct{ method, target string }
	reqs := []req{
		// Traversal, plain (sent as is: Go's client would not clean it either).
		{"GET", "/repos/1.0.0/base/../../../etc/passwd"},
		{"GET", "/repos/1.0.0/base/../../../../canary.txt"},
		{"GET", "/repos/1.0.0/../../canary.txt"},
		{"GET", "/repos/../../../etc/passwd"},
		{"GET", "/keys/../../etc/passwd"},
		{"GET", "/./repos/1.0.0/ferry.repo"},
		{"GET", "//etc/passwd"},
		{"GET", "/repos/1.0.0/base//../../canary.txt"},
		{"GET", app + "/../../../../etc/passwd"},
		{"GET", "/v2/registry.example.com/ferry/../../../etc/passwd/manifests/1.0"},
		{"GET", app + "/blobs/sha256:../../../../etc/passwd"},
		// Encoded dots and slashes, and mixed case, and backslashes.
		{"GET", "/repos/1.0.0/base/%2e%2e/%2e%2e/%2e%2e/etc/passwd"},
		{"GET", "/repos/1.0.0/base/%2E%2E/%2E%2E/%2E%2E/%2E%2E/canary.txt"},
		{"GET", "/repos/1.0.0/base/..%2f..%2f..%2fetc%2fpasswd"},
		{"GET", "/repos/1.0.0/base/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fcanary.txt"},
		{"GET", "/repos/1.0.0/base/..%2F..%2F..%2F..%2Fcanary.txt"},
		{"GET", "/repos/%2e%2e/%2e%2e/etc/passwd"},
		{"GET", "/repos/1.0.0/base/..%5c..%5c..%5cetc%5cpasswd"},
		{"GET", "/repos/1.0.0/base/repodata/%00"},
		{"GET", "/repos/1.0.0/base/repodata/repomd.xml%00.asc"},
		{"GET", "/repos/1.0.0/base/%252e%252e/%252e%252e/etc/passwd"},
		{"GET", app + "/manifests/..%2f..%2f..%2fetc%2fpasswd"},
		{"GET", app + "/blobs/%2e%2e%2f%2e%2e%2fetc%2fpasswd"},
		{"GET", "/v2/registry.example.com%2f..%2f..%2fetc/passwd/manifests/1.0"},
		{"GET", "/v2/ferry/app/manifests/1.0?ns=..%2f..%2fetc"},
		{"GET", "/v2/ferry/app/manifests/1.0?ns=registry.example.com/../../etc"},
		{"GET", "/v2/passwd/manifests/1.0?ns=..%2f..%2f..%2fetc"},
		// Absolute-form and asterisk request targets.
		{"GET", "https://127.0.0.1/../../etc/passwd"},
		{"GET", "*"},
		{"GET", "../../etc/passwd"},
		// Unknown digests, and a blob of another repository.
		{"GET", app + "/blobs/" + zeros},
		{"HEAD", app + "/blobs/" + zeros},
		{"GET", app + "/manifests/" + zeros},
		{"GET", app + "/blobs/" + multi.Config.Digest},
		{"GET", "/v2/registry.example.com/ferry/multi/blobs/" + m.Layers[0].Digest},
		{"GET", "/v2/registry.example.com/ferry/absent/manifests/1.0"},
		{"GET", "/v2/registry.example.com/ferry/absent/blobs/" + m.Layers[0].Digest},
		{"GET", "/repos/9.9.9/base/repodata/repomd.xml"},
		{"GET", "/repos/1.0.0/absent/repodata/repomd.xml"},
		{"GET", "/repos/9.9.9/ferry.repo"},
		// Malformed references and names.
		{"GET", app + "/manifests/sha256:zz"},
		{"GET", app + "/manifests/sha256:" + strings.Repeat("a", 63)},
		{"GET", app + "/manifests/sha256:" + strings.Repeat("A", 64)},
		{"GET", app + "/blobs/md5:d41d8cd98f00b204e9800998ecf8427e"},
		{"GET", app + "/blobs/sha512:" + strings.Repeat("0", 128)},
		{"GET", app + "/blobs/notadigest"},
		{"GET", app + "/blobs/"},
		{"GET", app + "/manifests/"},
		{"GET", app + "/manifests/" + strings.Repeat("t", 200)},
		{"GET", app + "/manifests/-bad"},
		{"GET", app + "/manifests/bad%20tag"},
		{"GET", app + "/manifests/1.0%3b"},
		{"GET", "/v2/REGISTRY.EXAMPLE.COM/ferry/app/manifests/1.0"},
		{"GET", "/v2/registry.example.com/ferry/app_/manifests/1.0"},
		{"GET", "/v2/" + strings.Repeat("a/", 200) + "manifests/1.0"},
		{"GET", "/v2/registry.example.com/ferry/app/tags/list?n=-1"},
		{"GET", "/v2/registry.example.com/ferry/app/tags/list?n=abc"},
		// Writes: the service is pull-only.
		{"PUT", app + "/manifests/1.0"},
		{"DELETE", app + "/manifests/1.0"},
		{"POST", app + "/blobs/uploads/"},
		{"PATCH", app + "/blobs/uploads/x"},
		{"DELETE", app + "/blobs/" + m.Layers[0].Digest},
		{"PUT", "/repos/1.0.0/base/repodata/repomd.xml"},
		{"POST", "/keys/ferry.pub.asc"},
	}
	for _, r := range reqs {
		raw := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nAccept: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", r.method, r.target, s.addr)
		code, head, body, err := rawResponse(t, s, raw)
		switch {
		case errors.Is(err, errClosed):
			t.Logf("%s %s: connection closed", r.method, r.target)
		case err != nil:
			t.Errorf("%s %s: %v", r.method, r.target, err)
		case code < 400 || code > 499:
			t.Errorf("%s %s: status %d, want 4xx\n%s\n%.300s", r.method, r.target, code, head, body)
		default:
			t.Logf("%s %s: %d", r.method, r.target, code)
		}
		if strings.Contains(body, canary) || strings.Contains(body, "root:x:0:0") || strings.Contains(head, canary) {
			t.Errorf("%s %s: served a file outside the bundle:\n%.300s", r.method, r.target, body)
		}
	}
	// The service is still well.
	c := s.client(t, false)
	if code, body, err := s.get(t, c, app+"/manifests/1.0", "Accept", "application/vnd.oci.image.manifest.v1+json"); err != nil || code != 200 || sha256Digest(body) != shared.ex.AppDigest {
		t.Errorf("after the hostile requests: %d %v", code, err)
	}
}

// TestOversizedHeader: a request header block over 1 MiB gets 431 or a
// closed connection, and the service keeps serving.
func TestOversizedHeader(t *testing.T) {
	s := startServer(t, serveOptions{})
	for name, hdr := range map[string]string{
		"one 2 MiB header":  "X-Big: " + strings.Repeat("a", 2<<20) + "\r\n",
		"20000 headers":     strings.Repeat("X-Many: "+strings.Repeat("b", 100)+"\r\n", 20000),
		"2 MiB request URI": "",
	} {
		target := "/healthz"
		if hdr == "" {
			target = "/v2/" + strings.Repeat("c", 2<<20) + "/manifests/1.0"
		}
		raw := "GET " + target + " HTTP/1.1\r\nHost: " + s.addr + "\r\n" + hdr + "\r\n"
		code, _, body, err := rawResponse(t, s, raw)
		switch {
		case err != nil:
			t.Logf("%s: %v", name, err) // closed or write refused: fine
		case code != http.StatusRequestHeaderFieldsTooLarge && (code < 400 || code > 499):
			t.Errorf("%s: status %d %.200s", name, code, body)
		default:
			t.Logf("%s: %d", name, code)
		}
	}
	if code, _, err := s.get(t, s.client(t, false), "/healthz"); err != nil || code != 200 {
		t.Errorf("after oversized headers: %d %v", code, err)
	}
}

// TestSlowloris opens TLS connections that send their request header one
// byte a second: the service must drop them (its header timeout is 10 s,
// ReadHeaderTimeout in installer/content), and meanwhile serve others.
// Each connection must be closed by the server (the client's read ends
// with EOF or a reset; the client never closes first), before the whole
// header was sent, without a response or with a 400 or 408 (Go's server
// answers 400 to a request line cut short by its timeout). The header
// would take 5 minutes to send; a connection still open at the test's
// deadline, 2 minutes, fails the test. Durations are logged, not asserted.
// The server says why: ferry_content_connection_timeouts_total counts one
// timeout per slow connection, and its log names each one's address.
func TestSlowloris(t *testing.T) {
	s := startServer(t, serveOptions{})
	const conns = 8
	const timeouts = "ferry_content_connection_timeouts_total"
	before := s.metric(t, timeouts)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	msg := "GET /healthz HTTP/1.1\r\nHost: " + s.addr + "\r\nX-Slow: " + strings.Repeat("z", 300)
	type result struct {
		addr     string // the client's end
		after    time.Duration
		sent     int
		answer   []byte // what the server sent before closing
		readErr  error  // how the client's read ended: nil is EOF
		writeErr error  // the write that failed, if the close was seen so
		err      error
	}
	results := make(chan result, conns)
	for range conns {
		go func() {
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}, "tcp", s.addr, &tls.Config{RootCAs: shared.roots})
			if err != nil {
				results <- result{err: err}
				return
			}
			defer conn.Close()
			t0 := time.Now()
			var answer []byte
			var readErr error
			closed := make(chan struct{})
			go func() {
				// Reads until the server closes: EOF (readErr nil) or a reset.
				answer, readErr = io.ReadAll(conn)
				close(closed)
			}()
			r := result{addr: conn.LocalAddr().String()}
			for r.sent < len(msg) {
				select {
				case <-closed:
				case <-ctx.Done():
					results <- result{after: time.Since(t0), sent: r.sent, err: errors.New("still open at the test's deadline")}
					return
				case <-time.After(time.Second):
					conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
					if _, err := conn.Write([]byte{msg[r.sent]}); err != nil {
						r.writeErr = err
					} else {
						r.sent++
						continue
					}
				}
				break
			}
			if r.sent == len(msg) {
				results <- result{after: time.Since(t0), sent: r.sent, err: errors.New("the whole slow header was accepted")}
				return
			}
			// The server closed (a read or a write saw it): the read ends.
			select {
			case <-closed:
			case <-ctx.Done():
				results <- result{after: time.Since(t0), sent: r.sent, writeErr: r.writeErr, err: errors.New("a write failed but the connection is still open at the test's deadline")}
				return
			}
			r.after, r.answer, r.readErr = time.Since(t0), answer, readErr
			results <- r
		}()
	}
	// Meanwhile the service answers others.
	time.Sleep(time.Second)
	if code, _, err := s.get(t, s.client(t, false), "/healthz"); err != nil || code != 200 {
		t.Errorf("during the slowloris: %d %v", code, err)
	}
	var closed []string
	for range conns {
		r := <-results
		switch {
		case r.err != nil:
			t.Errorf("slow connection: %v (after %v, %d bytes sent, write error %v)", r.err, r.after.Round(time.Millisecond), r.sent, r.writeErr)
		case r.readErr != nil && !errors.Is(r.readErr, syscall.ECONNRESET):
			t.Errorf("slow connection: the read ended with %v, not EOF or a reset from the server (%d bytes sent)", r.readErr, r.sent)
		case len(r.answer) > 0 && !strings.HasPrefix(string(r.answer), "HTTP/1.1 400 ") && !strings.HasPrefix(string(r.answer), "HTTP/1.1 408 "):
			t.Errorf("slow connection: answered %.200q, want no answer, a 400 or a 408 (%d bytes sent)", r.answer, r.sent)
		default:
			closed = append(closed, r.addr)
			t.Logf("slow connection closed by the server after %v, %d bytes sent, read ended with %v, write error %v, answer %.40q",
				r.after.Round(time.Millisecond), r.sent, r.readErr, r.writeErr, r.answer)
		}
	}
	if code, _, err := s.get(t, s.client(t, false), "/healthz"); err != nil || code != 200 {
		t.Errorf("after the slowloris: %d %v", code, err)
	}
	// The server closed them for their timeout (no other connection of
	// the test is slow or idle long enough to time out).
	if got := s.metric(t, timeouts) - before; got != conns {
		t.Errorf("%s grew by %v, want %d", timeouts, got, conns)
	}
	var logged []string
	for line := range strings.SplitSeq(s.log.String(), "\n") {
		if strings.Contains(line, "read timed out") {
			logged = append(logged, line)
		}
	}
	for _, addr := range closed {
		if !slices.ContainsFunc(logged, func(l string) bool { return strings.Contains(l, addr) }) {
			t.Errorf("the server logged no timeout for %s: %q", addr, logged)
		}
	}
}
