package nodeagent

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-k8s/ferry/installer/bootstrap"
	"github.com/ferry-k8s/ferry/installer/desired"
	"github.com/ferry-k8s/ferry/installer/layout"
	"github.com/ferry-k8s/ferry/internal/testutil"
)

// The daemon serves the node's status and runs apply on demand over its
// Unix socket (0700 directory); a failed apply answers 500 with the
// reason and shows in the status; it notifies systemd when ready and
// when stopping (with the real sd_notify, to a notification socket the
// test reads, as systemd gives a Type=notify unit).
func TestDaemonStatusAndApply(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, layout.StateDir), 0o700)
	os.WriteFile(filepath.Join(root, layout.Journal), []byte(`{"time":"2026-11-21T08:00:00Z","op":"write file /etc/x (missing)","status":"done"}`+"\n"), 0o600)
	sock := filepath.Join(t.TempDir(), "run", "node.sock")
	notes := testutil.ListenNotify(t)
	t.Setenv("WATCHDOG_USEC", "") // no watchdog: READY=1 and STOPPING=1 only
	d := New(Options{Socket: sock, Apply: bootstrap.Options{Root: root, Node: "node1"}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	notes.Wait(t, "READY=1", 1)
	if fi, err := os.Stat(filepath.Dir(sock)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("socket directory: %v %v", fi, err)
	}
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := c.Get("http://node/status")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		LastApply struct{ Status, Op string }
		Packages  map[string]string
	}
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if resp.StatusCode != 200 || st.LastApply.Status != "done" || len(st.Packages) != len(desired.NodePackages) {
		t.Fatalf("status %d: %+v", resp.StatusCode, st)
	}
	// No cluster.yaml under this root: the apply fails and says why.
	resp, err = c.Post("http://node/apply", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var fail struct{ Error string }
	json.NewDecoder(resp.Body).Decode(&fail)
	resp.Body.Close()
	if resp.StatusCode != 500 || !strings.Contains(fail.Error, "cluster.yaml") {
		t.Fatalf("apply: %d %q", resp.StatusCode, fail.Error)
	}
	resp, _ = c.Get("http://node/status")
	var st2 struct{ LastError string }
	json.NewDecoder(resp.Body).Decode(&st2)
	resp.Body.Close()
	if !strings.Contains(st2.LastError, "cluster.yaml") {
		t.Fatalf("status after the failed apply: %+v", st2)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	notes.Wait(t, "STOPPING=1", 1)
	if got := notes.All(); strings.Join(got, ",") != "READY=1,STOPPING=1" {
		t.Fatalf("notifications %q", got)
	}
}
