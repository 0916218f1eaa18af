package access

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/ferry-k8s/ferry/installer/cluster"
	"github.com/ferry-k8s/ferry/installer/desired"
	"github.com/ferry-k8s/ferry/installer/joinfile"
	"github.com/ferry-k8s/ferry/installer/layout"
	"github.com/ferry-k8s/ferry/installer/pki"
)

// The files a join file may carry (package joinfile) are where the
// node puts them: what token create issues or seals is what
// join accepts.
func TestJoinFilePathsAreTheNodes(t *testing.T) {
	n := &cluster.Node{Name: "w1", Hostname: "w1.example.com"}
	for _, l := range desired.WorkerLeaves(n) {
		for _, p := range []string{l.Cert, l.Key} {
			if !slices.Contains(joinfile.WorkerFiles(), p) {
				t.Errorf("token create issues %s, which a join file may not carry", p)
			}
		}
	}
	if len(joinfile.WorkerFiles()) != 2*len(desired.WorkerLeaves(n)) {
		t.Errorf("a join file may carry %q, token create issues %d files", joinfile.WorkerFiles(), 2*len(desired.WorkerLeaves(n)))
	}
	var want []string
	for _, r := range []string{pki.RealmKubernetes, pki.RealmEtcd, pki.RealmFrontProxy, pki.RealmContent} {
		for _, f := range []string{pki.RootCertFile, pki.CACertFile, pki.CAKeyFile} {
			want = append(want, filepath.Join(layout.PKIDir, r, f))
		}
	}
	want = append(want, filepath.Join(layout.KubernetesPKI, "sa.key"), filepath.Join(layout.KubernetesPKI, "sa.pub"), layout.EncryptionKey)
	if got := joinfile.ControlPlaneSecrets(); !slices.Equal(got, want) {
		t.Errorf("a control-plane join file's secrets:\n%q\nthe files a control plane shares here:\n%q", got, want)
	}
}
