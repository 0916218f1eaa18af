package nodeconfig

import (
	"fmt"
	"io/fs"
	"strings"
)

// SystemUser is a system account a control-plane component runs as (R12):
// its static Pod runs with runAsUser and runAsGroup = ID, and the files it
// must read or write belong to it (ControlPlaneOwnership). The account's
// primary group has its name and the same ID.
type SystemUser struct {
	Name    string
	ID      int
	Comment string
	// Home is its home directory ("/" when it has none).
	Home string
	// Groups are supplementary groups (by name).
	Groups []string
}

// SystemGroup is a group of the control plane's accounts.
type SystemGroup struct {
	Name string
	ID   int
}

// The control plane's IDs are fixed (64010–64014, outside the ranges
// useradd hands out), because the static Pods name them by number. The
// apply step must find each account with exactly its ID, or create it
// (SysusersFile does with systemd-sysusers); a name taken with another ID
// is a conflict to report, not to paper over.
var (
	// ServiceAccountKeyGroup may read the service-account signing key
	// (the API server signs tokens with it, the controller-manager too).
	ServiceAccountKeyGroup = SystemGroup{Name: "kube-sa-key", ID: 64014}

	EtcdUser                  = SystemUser{Name: "etcd", ID: 64010, Comment: "etcd (Ferry)", Home: EtcdDataDir}
	KubeAPIServerUser         = SystemUser{Name: "kube-apiserver", ID: 64011, Comment: "kube-apiserver (Ferry)", Home: "/", Groups: []string{ServiceAccountKeyGroup.Name}}
	KubeControllerManagerUser = SystemUser{Name: "kube-controller-manager", ID: 64012, Comment: "kube-controller-manager (Ferry)", Home: "/", Groups: []string{ServiceAccountKeyGroup.Name}}
	KubeSchedulerUser         = SystemUser{Name: "kube-scheduler", ID: 64013, Comment: "kube-scheduler (Ferry)", Home: "/"}
)

// Users are the control plane's accounts.
func Users() []SystemUser {
	return []SystemUser{EtcdUser, KubeAPIServerUser, KubeControllerManagerUser, KubeSchedulerUser}
}

// Ownership is the owner and mode a path on a control-plane node must
// have for its component to run as its own user.
type Ownership struct {
	Path         string
	Owner, Group string
	Mode         fs.FileMode
	// Dir: a directory, created when missing. Otherwise a file, adjusted
	// when it exists (kubeadm or Ferry writes it).
	Dir bool
}

// ControlPlaneOwnership lists what the apply step must own and chmod
// before the control plane's static Pods can start as their users (the
// files kubeadm's RootlessControlPlane changes, read in v1.36.3
// cmd/kubeadm/app/util/staticpod/utils_linux.go, and Ferry's own): etcd's
// data directory and keys, each component's keys and kubeconfig, and the
// API server's encryption configuration (R9, mode 0600). Certificates and
// other public files stay root's, mode 0644. On systemd hosts TmpfilesFile
// declares the same.
func ControlPlaneOwnership() []Ownership {
	pki := func(name string) string { return CertificatesDir + "/" + name }
	own := func(p string, u SystemUser, mode fs.FileMode) Ownership {
		return Ownership{Path: p, Owner: u.Name, Group: u.Name, Mode: mode}
	}
	return []Ownership{
		{Path: EtcdDataDir, Owner: EtcdUser.Name, Group: EtcdUser.Name, Mode: 0o700, Dir: true},
		own(pki("etcd/server.key"), EtcdUser, 0o600),
		own(pki("etcd/peer.key"), EtcdUser, 0o600),
		own(pki("apiserver.key"), KubeAPIServerUser, 0o600),
		own(pki("apiserver-kubelet-client.key"), KubeAPIServerUser, 0o600),
		own(pki("apiserver-etcd-client.key"), KubeAPIServerUser, 0o600),
		own(pki("front-proxy-client.key"), KubeAPIServerUser, 0o600),
		own(pki("sa.pub"), KubeAPIServerUser, 0o600),
		{Path: pki("sa.key"), Owner: "root", Group: ServiceAccountKeyGroup.Name, Mode: 0o640},
		own(EncryptionConfigFile, KubeAPIServerUser, 0o600),
		// The controller-manager signs the kubelets' client certificates.
		own(pki("ca.key"), KubeControllerManagerUser, 0o600),
		own("/etc/kubernetes/controller-manager.conf", KubeControllerManagerUser, 0o600),
		own("/etc/kubernetes/scheduler.conf", KubeSchedulerUser, 0o600),
	}
}

// sysusers is SysusersFile: the accounts for systemd-sysusers.
func (r *renderer) sysusers() (File, error) {
	var b strings.Builder
	b.WriteString("# The control plane's accounts (R12); static Pods run as these IDs.\n")
	fmt.Fprintf(&b, "g %s %d\n", ServiceAccountKeyGroup.Name, ServiceAccountKeyGroup.ID)
	for _, u := range Users() {
		fmt.Fprintf(&b, "g %s %d\n", u.Name, u.ID)
		fmt.Fprintf(&b, "u %s %d:%s %q %s /usr/sbin/nologin\n", u.Name, u.ID, u.Name, u.Comment, u.Home)
		for _, g := range u.Groups {
			fmt.Fprintf(&b, "m %s %s\n", u.Name, g)
		}
	}
	return r.rootFile(0o644, []byte(b.String())), nil
}

// tmpfiles is TmpfilesFile: ControlPlaneOwnership for systemd-tmpfiles
// (d: create the directory; z: adjust an existing file).
func (r *renderer) tmpfiles() (File, error) {
	var b strings.Builder
	b.WriteString("# Ownership of the control plane's files (R12): systemd-tmpfiles --create.\n")
	for _, o := range ControlPlaneOwnership() {
		t := "z"
		if o.Dir {
			t = "d"
		}
		fmt.Fprintf(&b, "%s %s %04o %s %s -\n", t, o.Path, o.Mode.Perm(), o.Owner, o.Group)
	}
	return r.rootFile(0o644, []byte(b.String())), nil
}
