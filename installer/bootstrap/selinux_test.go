package bootstrap

import (
	"strings"
	"testing"

	"github.com/ferry-k8s/ferry/installer/cluster"
)

func TestSELinuxFile(t *testing.T) {
	site := "# This file controls the state of SELinux on the system.\nSELINUX=permissive\nSELINUXTYPE=targeted\n"
	n := &cluster.Node{Name: "n1", SELinux: cluster.SELinuxEnforcing}
	if f := selinuxFile(n, nil, nil); f != nil {
		t.Errorf("a host without SELinux gets %v", f)
	}
	f := selinuxFile(n, &selinuxState{config: []byte(site), enabled: true}, nil)
	if want := strings.Replace(site, "SELINUX=permissive", "SELINUX=enforcing", 1); string(f.Content) != want || strings.Join(f.After, ";") != "setenforce 1" {
		t.Errorf("enforcing: %q after %v", f.Content, f.After)
	}
	// Converged: the same content, nothing to run.
	f = selinuxFile(n, &selinuxState{config: f.Content, enabled: true}, nil)
	if f.After != nil {
		t.Errorf("converged file runs %v", f.After)
	}
	n.SELinux = cluster.SELinuxPermissive
	f = selinuxFile(n, &selinuxState{config: []byte("SELINUXTYPE=targeted\nSELINUX=enforcing\nSELINUX=disabled\n"), enabled: true}, nil)
	if string(f.Content) != "SELINUXTYPE=targeted\nSELINUX=permissive\n" || strings.Join(f.After, ";") != "setenforce 0" {
		t.Errorf("permissive: %q after %v", f.Content, f.After)
	}
	n.SELinux = cluster.SELinuxEnforcing
	f = selinuxFile(n, &selinuxState{config: []byte("SELINUXTYPE=targeted\n"), enabled: false}, nil)
	if string(f.Content) != "SELINUXTYPE=targeted\nSELINUX=enforcing\n" || f.After != nil {
		t.Errorf("not running SELinux: %q after %v (setenforce cannot work before a reboot)", f.Content, f.After)
	}
}
