package content

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestTimeoutListener: a read whose deadline passes is counted and logged
// once per connection; net/http's abort of its own read (a deadline set
// in the past) and a client that closes are not timeouts.
func TestTimeoutListener(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	l := &timeoutListener{Listener: raw, log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		timeouts: prometheus.NewCounter(prometheus.CounterOpts{Name: "t"})}
	defer l.Close()
	// accept returns the server's side of a new connection and the client's.
	accept := func() (net.Conn, net.Conn) {
		t.Helper()
		client, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { client.Close() })
		srv, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		return srv, client
	}
	buf := make([]byte, 8)

	// A deadline that passes: a timeout, counted once on its connection.
	srv, client := accept()
	for range 2 {
		srv.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if _, err := srv.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read: %v, want a deadline error", err)
		}
	}
	if got := metric(t, l.timeouts); got != 1 {
		t.Errorf("%v timeouts counted after two on one connection, want 1", got)
	}
	if !strings.Contains(logs.String(), "read timed out") || !strings.Contains(logs.String(), "remote="+client.LocalAddr().String()) {
		t.Errorf("the timeout is not logged with the client's address %s:\n%s", client.LocalAddr(), logs.String())
	}

	// net/http aborting its background read: a deadline in the past.
	srv, _ = accept()
	done := make(chan error, 1)
	go func() {
		_, err := srv.Read(buf)
		done <- err
	}()
	srv.SetReadDeadline(time.Unix(1, 0))
	if err := <-done; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("aborted read: %v, want a deadline error", err)
	}
	// Data read with the deadline cleared again, then the client closes.
	srv.SetReadDeadline(time.Time{})
	srv, client = accept()
	client.Write([]byte("x"))
	client.Close()
	if b, err := io.ReadAll(srv); err != nil || string(b) != "x" {
		t.Fatalf("read %q, %v", b, err)
	}
	if got := metric(t, l.timeouts); got != 1 {
		t.Errorf("%v timeouts counted, want 1: an abort or a close was counted", got)
	}
}
