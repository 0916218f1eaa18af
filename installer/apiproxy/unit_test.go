package apiproxy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// unitFile is the proxy's systemd unit. It lives with the other units in
// internal/systemd; it is checked here, next to the program it runs, until
// that package embeds it.
const unitFile = "../../internal/systemd/ferry-apiproxy.service"

// unitRoot makes a root directory in which systemd-analyze can load the
// unit: the host's units (for the targets it names) and a stand-in for
// /usr/bin/installer (the RPM installs the real one).
func unitRoot(t *testing.T) (root, unit string) {
	t.Helper()
	data, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	root = t.TempDir()
	for _, d := range []string{"usr/bin", "etc/systemd/system", "usr/lib/systemd"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("cp", "-a", "/usr/lib/systemd/system", filepath.Join(root, "usr/lib/systemd/")).CombinedOutput(); err != nil {
		t.Fatalf("copying the host's units: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(root, "usr/bin/installer"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	unit = "/etc/systemd/system/ferry-apiproxy.service"
	if err := os.WriteFile(filepath.Join(root, unit), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return root, unit
}

func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze is required for this test (apt-get install systemd): %v", err)
	}
	return p
}

// The unit verifies, runs the command with the default configuration
// path, is Type=notify, and is hardened to systemd's "OK" exposure.
func TestUnitFile(t *testing.T) {
	sa := systemdAnalyze(t)
	root, unit := unitRoot(t)
	out, err := exec.Command(sa, "verify", "--man=no", "--root="+root, unit).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 { // verify exits 0 on some warnings
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	data, _ := os.ReadFile(filepath.Join(root, unit))
	for _, want := range []string{
		"\nType=notify\n",
		"\nExecStart=/usr/bin/installer apiproxy --config " + DefaultConfigPath + "\n",
		"\nUser=ferry-apiproxy\n",
		"\nRestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX\n",
	} {
		if !strings.Contains(string(data), want) {
			t.Errorf("the unit lacks %q", strings.TrimSpace(want))
		}
	}

	out, err = exec.Command(sa, "security", "--offline=yes", "--no-pager", "--root="+root, unit).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for ferry-apiproxy\.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	if level, _ := strconv.ParseFloat(string(m[1]), 64); level >= 2 {
		t.Errorf("exposure level %s, want < 2 (0 best, 10 worst):\n%s", m[1], out)
	}
}
