package access

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ferry-k8s/ferry/installer/cluster"
	"github.com/ferry-k8s/ferry/installer/layout"
	"github.com/ferry-k8s/ferry/installer/nodeconfig"
	"github.com/ferry-k8s/ferry/installer/pki"
)

// UserOptions configure `installer user kubeconfig`.
type UserOptions struct {
	// Name is a user of spec.authentication.staticUsers.
	Name string
	// Root prefixes every path (tests).
	Root string
	Now  func() time.Time
}

// UserKubeconfig issues a static user's client certificate (R17: CN the
// user, O its groups, from the kubernetes realm's intermediate, short-lived
// like every leaf) on a control-plane node and returns a kubeconfig that
// embeds it, with the time it expires. Only users listed in cluster.yaml
// get one: the list is the record of who may hold a certificate.
func UserKubeconfig(o UserOptions) ([]byte, time.Time, error) {
	if o.Root == "" {
		o.Root = "/"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	in := func(p string) string { return filepath.Join(o.Root, p) }
	c, err := cluster.Load(in(layout.ClusterConfig))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("this is not a bootstrapped control-plane node: %w", err)
	}
	c = c.Defaulted()
	var user *cluster.StaticUser
	var names []string
	for i, u := range c.Spec.Authentication.StaticUsers {
		names = append(names, u.Name)
		if u.Name == o.Name {
			user = &c.Spec.Authentication.StaticUsers[i]
		}
	}
	if user == nil {
		known := "none"
		if len(names) > 0 {
			known = strings.Join(names, ", ")
		}
		return nil, time.Time{}, fmt.Errorf("user %q is not in spec.authentication.staticUsers of %s (listed: %s): add it there first", o.Name, layout.ClusterConfig, known)
	}
	realm, err := pki.LoadRealm(in(filepath.Join(layout.PKIDir, pki.RealmKubernetes)), nil, pki.Options{Organization: c.Metadata.Name, Now: o.Now})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("realm %s: %w", pki.RealmKubernetes, err)
	}
	leaf, err := realm.IssueClient(user.Name, user.Groups...)
	if err != nil {
		return nil, time.Time{}, err
	}
	key, err := leaf.KeyPEM()
	if err != nil {
		return nil, time.Time{}, err
	}
	ca, err := os.ReadFile(in(layout.ClusterCA))
	if err != nil {
		return nil, time.Time{}, err
	}
	certPEM := leaf.CertPEM()
	blk, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, time.Time{}, err
	}
	kc := nodeconfig.Kubeconfig(c.Metadata.Name, c.Spec.ControlPlaneEndpoint, "", ca, user.Name, user.Name+"@"+c.Metadata.Name, nodeconfig.KubeconfigCreds{CertPEM: certPEM, KeyPEM: key})
	return []byte(kc), cert.NotAfter, nil
}
