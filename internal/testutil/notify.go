package testutil

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// notifyWaitLimit bounds Notifications.Wait: a notification not there by
// then fails the test. It is a deadline, not a timing assertion.
const notifyWaitLimit = 60 * time.Second

// Notifications is a systemd notification socket for a test, as systemd
// gives a Type=notify service: a unixgram socket that $NOTIFY_SOCKET
// names. The code under test notifies it with the real sd_notify
// (go-systemd's daemon.SdNotify, no Notify hook), and the test reads what
// arrived, one datagram a notification, in order.
type Notifications struct {
	// Path is the socket's path ($NOTIFY_SOCKET).
	Path string

	conn *net.UnixConn
	mu   sync.Mutex
	all  []string
	more chan struct{} // closed, and replaced, when a datagram arrives
}

// ListenNotify makes the socket and sets $NOTIFY_SOCKET to it for the
// test (t.Setenv: the test cannot be parallel); both go when the test
// ends.
func ListenNotify(t testing.TB) *Notifications {
	t.Helper()
	// A unix socket path is limited to 108 bytes: a short directory, not
	// t.TempDir() (which carries the test's name).
	dir, err := os.MkdirTemp("", "sdnotify")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	n := &Notifications{Path: filepath.Join(dir, "notify"), more: make(chan struct{})}
	n.conn, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.Path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("NOTIFY_SOCKET", n.Path)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			m, err := n.conn.Read(buf)
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("reading the notification socket: %v", err)
				}
				return
			}
			n.mu.Lock()
			n.all = append(n.all, string(buf[:m]))
			close(n.more)
			n.more = make(chan struct{})
			n.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		n.conn.Close()
		<-done
	})
	return n
}

// All returns the notifications received so far, in order.
func (n *Notifications) All() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.all)
}

// Count returns how many notifications received so far are msg exactly.
func (n *Notifications) Count(msg string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, m := range n.all {
		if m == msg {
			c++
		}
	}
	return c
}

// Wait waits until at least count notifications msg have arrived; it
// fails the test if they have not after a minute.
func (n *Notifications) Wait(t testing.TB, msg string, count int) {
	t.Helper()
	deadline := time.After(notifyWaitLimit)
	for {
		n.mu.Lock()
		c := 0
		for _, m := range n.all {
			if m == msg {
				c++
			}
		}
		more := n.more
		n.mu.Unlock()
		if c >= count {
			return
		}
		select {
		case <-more:
		case <-deadline:
			t.Fatalf("waited %v for %d notification(s) %q; got %q", notifyWaitLimit, count, msg, n.All())
		}
	}
}
