package systemd

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ferry-k8s/ferry/internal/testutil"
)

// directives parses a unit file into key → values (in order).
func directives(t *testing.T, unit []byte) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(unit))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("unit line without '=': %q", line)
		}
		out[k] = append(out[k], v)
	}
	return out
}

func TestContentUnitDirectives(t *testing.T) {
	d := directives(t, ContentUnit)
	for k, want := range map[string]string{
		"Type":                    "notify",
		"ExecStart":               "/usr/bin/installer serve --config /etc/ferry/serve.yaml",
		"ExecReload":              "/bin/kill -HUP $MAINPID",
		"WatchdogSec":             "30",
		"User":                    "ferry",
		"RuntimeDirectory":        "ferry",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"NoNewPrivileges":         "yes",
		"PrivateTmp":              "yes",
		"CapabilityBoundingSet":   "",
		"AmbientCapabilities":     "",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"ReadOnlyPaths":           "/",
	} {
		if got := d[k]; len(got) != 1 || got[0] != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
	if got := d["SystemCallFilter"]; len(got) == 0 || got[0] != "@system-service" {
		t.Errorf("SystemCallFilter=%q, want @system-service first", got)
	}
	// The pid file the unit makes room for is the one serve writes by default.
	if !strings.Contains(string(ContentUnit), "/run/ferry/content.pid") || d["ReadWritePaths"][0] != "/run/ferry" {
		t.Errorf("the unit does not make /run/ferry writable for the pid file")
	}
	// The start timeout covers verification; the stop timeout the
	// server's default shutdownTimeout (5m).
	if d["TimeoutStopSec"][0] != "6min" {
		t.Errorf("TimeoutStopSec=%v", d["TimeoutStopSec"])
	}
}

// verifyRoot makes a root directory in which systemd-analyze can load the
// unit: the host's unit directory (for the targets it depends on) and
// stand-ins for the programs its Exec lines run (the real ones are
// installed by the RPM).
func verifyRoot(t *testing.T) (string, string) {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"usr/bin", "etc/systemd/system", "usr/lib/systemd"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("usr/bin", filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", "/usr/lib/systemd/system", filepath.Join(root, "usr/lib/systemd/")).CombinedOutput(); err != nil {
		t.Fatalf("copying the host's units: %v\n%s", err, out)
	}
	for _, prog := range []string{"usr/bin/installer", "usr/bin/kill"} {
		if err := os.WriteFile(filepath.Join(root, prog), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	unit := "/etc/systemd/system/ferry-content.service"
	if err := os.WriteFile(filepath.Join(root, unit), ContentUnit, 0o644); err != nil {
		t.Fatal(err)
	}
	return root, unit
}

func TestContentUnitVerifies(t *testing.T) {
	sa := testutil.Need(t, "systemd-analyze")
	root, unit := verifyRoot(t)
	out, err := exec.Command(sa, "verify", "--man=no", "--root="+root, unit).CombinedOutput()
	// verify exits 0 for some warnings (unknown keys, bad values): any output fails.
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// A broken unit does fail, so the check above means something.
	bad := bytes.Replace(ContentUnit, []byte("ProtectHome=yes"), []byte("ProtectHome=perhaps\nNoSuchDirective=1"), 1)
	if err := os.WriteFile(filepath.Join(root, unit), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command(sa, "verify", "--man=no", "--root="+root, unit).CombinedOutput(); !bytes.Contains(out, []byte("NoSuchDirective")) {
		t.Errorf("systemd-analyze verify did not notice a broken unit:\n%s", out)
	}
}

func TestContentUnitExposure(t *testing.T) {
	sa := testutil.Need(t, "systemd-analyze")
	root, unit := verifyRoot(t)
	out, err := exec.Command(sa, "security", "--offline=yes", "--no-pager", "--root="+root, unit).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for ferry-content\.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	// 0 is best, 10 worst; systemd calls < 2 "OK". Keep it there.
	if level, _ := strconv.ParseFloat(string(m[1]), 64); level >= 2 {
		t.Errorf("exposure level %s, want < 2:\n%s", m[1], out)
	}
}

func TestSysusersCreatesTheUsers(t *testing.T) {
	su := testutil.Need(t, "systemd-sysusers")
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "ferry.conf")
	if err := os.WriteFile(conf, Sysusers, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(su, "--root="+root, conf).CombinedOutput(); err != nil {
		t.Fatalf("systemd-sysusers: %v\n%s", err, out)
	}
	passwd, _ := os.ReadFile(filepath.Join(root, "etc/passwd"))
	group, _ := os.ReadFile(filepath.Join(root, "etc/group"))
	lines := strings.Split(strings.TrimSpace(string(passwd)), "\n")
	if len(lines) != 2 || !strings.Contains(string(group), "\nferry-apiproxy:") || !strings.HasPrefix(string(group), "ferry:") {
		t.Fatalf("passwd %q, group %q: want ferry and ferry-apiproxy", passwd, group)
	}
	for i, name := range []string{"ferry", "ferry-apiproxy"} {
		fields := strings.Split(lines[i], ":")
		if len(fields) != 7 || fields[0] != name || fields[6] != "/usr/sbin/nologin" {
			t.Errorf("passwd line %q, want user %s without a shell", lines[i], name)
			continue
		}
		if uid, _ := strconv.Atoi(fields[2]); uid == 0 || uid >= 1000 {
			t.Errorf("%s: uid %d is not a system uid", name, uid)
		}
	}
}

// The node daemon's unit verifies and is what `installer daemon` expects:
// Type=notify with a watchdog, the socket's runtime directory root-only.
func TestNodeUnitVerifies(t *testing.T) {
	sa := testutil.Need(t, "systemd-analyze")
	root, _ := verifyRoot(t)
	unit := "/etc/systemd/system/ferry-node.service"
	if err := os.WriteFile(filepath.Join(root, unit), NodeUnit, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", "--man=no", "--root="+root, unit).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	d := directives(t, NodeUnit)
	for k, want := range map[string]string{"Type": "notify", "ExecStart": "/usr/bin/installer daemon", "RuntimeDirectory": "ferry/node", "RuntimeDirectoryMode": "0700"} {
		if len(d[k]) != 1 || d[k][0] != want {
			t.Errorf("%s = %v, want %s", k, d[k], want)
		}
	}
}
