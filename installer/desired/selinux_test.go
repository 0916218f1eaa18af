package desired

import (
	"strings"
	"testing"

	"github.com/ferry-k8s/ferry/installer/cluster"
)

func TestSELinuxFile(t *testing.T) {
	site := "# This file controls the state of SELinux on the system.\nSELINUX=permissive\nSELINUXTYPE=targeted\n"
	n := &cluster.Node{Name: "n1", SELinux: cluster.SELinuxEnforcing}
	if f, _ := selinuxFile(n, nil); f != nil {
		t.Errorf("a host without SELinux gets %v", f)
	}
	f, _ := selinuxFile(n, &SELinux{Config: []byte(site), Enabled: true})
	if want := strings.Replace(site, "SELINUX=permissive", "SELINUX=enforcing", 1); string(f.Content) != want || strings.Join(f.After, ";") != "setenforce 1" {
		t.Errorf("enforcing: %q after %v", f.Content, f.After)
	}
	// Converged: the same content, nothing to run.
	f, warning := selinuxFile(n, &SELinux{Config: f.Content, Enabled: true})
	if f.After != nil || warning != "" {
		t.Errorf("converged file runs %v, warns %q", f.After, warning)
	}
	n.SELinux = cluster.SELinuxPermissive
	f, _ = selinuxFile(n, &SELinux{Config: []byte("SELINUXTYPE=targeted\nSELINUX=enforcing\nSELINUX=disabled\n"), Enabled: true})
	if string(f.Content) != "SELINUXTYPE=targeted\nSELINUX=permissive\n" || strings.Join(f.After, ";") != "setenforce 0" {
		t.Errorf("permissive: %q after %v", f.Content, f.After)
	}
	n.SELinux = cluster.SELinuxEnforcing
	f, warning = selinuxFile(n, &SELinux{Config: []byte("SELINUXTYPE=targeted\n"), Enabled: false})
	if string(f.Content) != "SELINUXTYPE=targeted\nSELINUX=enforcing\n" || f.After != nil {
		t.Errorf("not running SELinux: %q after %v (setenforce cannot work before a reboot)", f.Content, f.After)
	}
	if !strings.Contains(warning, "reboot") {
		t.Errorf("not running SELinux: warning %q, want one that says a reboot is needed", warning)
	}
}
