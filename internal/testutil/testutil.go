package testutil

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SyncBuffer is a bytes.Buffer safe for concurrent writers and readers: a
// server goroutine or a child process writing logs while the test reads
// them.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// FreePorts returns n TCP ports free on 127.0.0.1 a moment ago (for
// programs that take a port, not a listener).
func FreePorts(t testing.TB, n int) []string {
	t.Helper()
	var ports []string
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		_, p, _ := net.SplitHostPort(l.Addr().String())
		ports = append(ports, p)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// StartProcess runs bin with args (and env added to the test's) until the
// test ends: SIGTERM, then after 15 s SIGKILL to its process group. The
// returned channel is closed when it exits. Its output is logged if the
// test failed.
func StartProcess(t testing.TB, name string, env []string, bin string, args ...string) <-chan struct{} {
	t.Helper()
	logs := &SyncBuffer{}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			out := logs.String()
			if len(out) > 8000 {
				out = "…" + out[len(out)-8000:]
			}
			t.Logf("%s %s\n%s", name, strings.Join(args, " "), out)
		}
	})
	return done
}

// Need returns the path of prog, from PATH. A missing program fails the
// test, never skips it: these tests are the proof that real tools accept
// Ferry's output, and a skipped one proves nothing. `make deps` installs
// them all.
func Need(t testing.TB, prog string) string {
	t.Helper()
	p, err := exec.LookPath(prog)
	if err != nil {
		t.Fatalf("%s is required by this test (make deps installs it): %v", prog, err)
	}
	return p
}

// MustRun runs prog (from PATH) and returns its standard output; a missing
// program or a failure fails the test, with the program's standard error.
func MustRun(t testing.TB, prog string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(Need(t, prog), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// StopDNFKeyringAgents stops, when the test ends, the gpg-agents that
// librepo starts for the repo_gpgcheck keyrings it keeps in dnf's cache
// directory (cache/<repository>/pubring): they would outlive the test.
func StopDNFKeyringAgents(t testing.TB, cache string) {
	t.Cleanup(func() {
		rings, _ := filepath.Glob(filepath.Join(cache, "*", "pubring"))
		for _, r := range rings {
			_ = exec.Command("gpgconf", "--homedir", r, "--kill", "gpg-agent").Run()
		}
	})
}

// GPGHome makes an empty GNUPGHOME (mode 0700) for a test's gpg, in a
// short directory under the system's temporary directory: gpg-agent's
// socket lives there and a unix socket path is limited to 108 bytes. When
// the test ends, the agents of that home are stopped and it is removed.
func GPGHome(t testing.TB) string {
	t.Helper()
	home, err := os.MkdirTemp("", "ferry-gpg-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		os.RemoveAll(home)
	})
	return home
}
