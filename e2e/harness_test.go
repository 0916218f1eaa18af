//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHarnessBootsIsolatedNodes checks the harness itself on two nodes: each
// runs its own systemd with its own identity and writable cgroups; the nodes
// reach each other and the host over the bridge; a node powers off cleanly.
func TestHarnessBootsIsolatedNodes(t *testing.T) {
	start := time.Now()
	c := NewCluster(t, NodeSpec{Name: "alpha"}, NodeSpec{Name: "beta"})
	t.Logf("two nodes booted in %s", time.Since(start).Round(100*time.Millisecond))
	br := c.Bridge()

	ids := map[string]string{}
	for _, n := range c.Nodes {
		if got := strings.TrimSpace(n.MustExec(t, "hostname")); got != n.Name {
			t.Errorf("%s: hostname %q", n.Name, got)
		}
		if got := strings.TrimSpace(n.MustExec(t, "cat", "/proc/1/comm")); got != "systemd" {
			t.Errorf("%s: PID 1 is %q, want systemd", n.Name, got)
		}
		id := strings.TrimSpace(n.MustExec(t, "cat", "/etc/machine-id"))
		if len(id) != 32 || ids[id] != "" {
			t.Errorf("%s: machine-id %q (also on %q)", n.Name, id, ids[id])
		}
		ids[id] = n.Name
		if out := n.MustExec(t, "ip", "-4", "addr", "show", "host0"); !strings.Contains(out, n.IP.String()+"/24") {
			t.Errorf("%s: host0 lacks %s:\n%s", n.Name, n.IP, out)
		}
		// The ferry-e2e-cgroups unit made the v1 hierarchies writable.
		if out, err := n.Shell("mkdir /sys/fs/cgroup/memory/ferry-e2e-probe && rmdir /sys/fs/cgroup/memory/ferry-e2e-probe"); err != nil {
			t.Errorf("%s: memory cgroup not writable: %v %s", n.Name, err, out)
		}
	}

	// Node to node, and node to host, over the bridge.
	alpha, beta := c.Node("alpha"), c.Node("beta")
	beta.MustExec(t, "systemd-run", "--unit=probe-http", "python3", "-m", "http.server", "8080", "--bind", beta.IP.String(), "--directory", "/etc")
	url := fmt.Sprintf("http://%s:8080/hostname", beta.IP)
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := alpha.Exec("curl", "-fsS", "--max-time", "5", url)
		if err == nil {
			if strings.TrimSpace(out) != "beta" {
				t.Errorf("alpha got %q from beta", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alpha cannot reach %s: %v %s", url, err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(br.HostIP.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "host") })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	if out := alpha.MustExec(t, "curl", "-fsS", "--max-time", "5", "http://"+ln.Addr().String()+"/"); out != "host" {
		t.Errorf("alpha got %q from the host", out)
	}
	c.AssertNoForwarding(t)

	start = time.Now()
	if !beta.PowerOff(30 * time.Second) {
		t.Errorf("beta did not power off by itself within 30 s")
	}
	t.Logf("beta powered off in %s", time.Since(start).Round(100*time.Millisecond))
}
