package access

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/ferry-k8s/ferry/installer/bundlestore"
	"github.com/ferry-k8s/ferry/installer/cluster"
	"github.com/ferry-k8s/ferry/installer/desired"
	"github.com/ferry-k8s/ferry/installer/joinfile"
	"github.com/ferry-k8s/ferry/installer/layout"
	"github.com/ferry-k8s/ferry/installer/nodeconfig"
	"github.com/ferry-k8s/ferry/installer/nodestate"
	"github.com/ferry-k8s/ferry/installer/pki"
	"github.com/ferry-k8s/ferry/internal/fileutil"
)

// DefaultJoinTTL is how long a join file (and its bootstrap token) is good.
const DefaultJoinTTL = 2 * time.Hour

// TokenOptions configure `installer token create`.
type TokenOptions struct {
	// Node is the cluster.yaml node the join file is for.
	Node string
	// TTL is how long the file and its token are good (DefaultJoinTTL).
	TTL time.Duration
	// Root prefixes every path (tests).
	Root string
	Now  func() time.Time
}

// CreateJoinFile makes a join file for a worker node on this control-plane
// node: a bootstrap token from kubeadm, the node's kubelet serving and
// kube-proxy client certificates from the kubernetes realm's intermediate,
// and the cluster's configuration, keyring and content CA.
func CreateJoinFile(ctx context.Context, o TokenOptions) (*joinfile.File, error) {
	if o.Root == "" {
		o.Root = "/"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.TTL <= 0 {
		o.TTL = DefaultJoinTTL
	}
	in := func(p string) string { return filepath.Join(o.Root, p) }
	raw, err := os.ReadFile(in(layout.ClusterConfig))
	if err != nil {
		return nil, fmt.Errorf("this is not a bootstrapped control-plane node: %w", err)
	}
	c, err := cluster.Load(in(layout.ClusterConfig))
	if err != nil {
		return nil, err
	}
	c = c.Defaulted()
	n := c.Node(o.Node)
	if n == nil {
		return nil, fmt.Errorf("node %q is not in %s: add it there (and apply) first", o.Node, layout.ClusterConfig)
	}
	keyring, err := nodestate.PublicKeyring(in(layout.KeyringFile))
	if err != nil {
		return nil, err
	}
	contentCA, err := os.ReadFile(in(filepath.Join(layout.PKIDir, pki.RealmContent, pki.CACertFile)))
	if err != nil {
		return nil, err
	}
	clusterCA, err := os.ReadFile(in(layout.ClusterCA))
	if err != nil {
		return nil, err
	}
	iso, err := bundlestore.Imported(o.Root)
	if err != nil {
		return nil, err
	}
	sum, size, err := fileutil.SHA256(iso)
	if err != nil {
		return nil, err
	}
	realm, err := pki.LoadRealm(in(filepath.Join(layout.PKIDir, pki.RealmKubernetes)), nil, pki.Options{Organization: c.Metadata.Name, Now: o.Now})
	if err != nil {
		return nil, fmt.Errorf("realm %s: %w", pki.RealmKubernetes, err)
	}
	jf := &joinfile.File{APIVersion: joinfile.APIVersion, Kind: joinfile.Kind, Cluster: c.Metadata.Name, Node: n.Name,
		Expires: o.Now().Add(o.TTL).UTC().Truncate(time.Second), ClusterConfig: string(raw), Keyring: string(keyring),
		ContentCA: string(contentCA), Bundle: filepath.Base(iso), BundleSHA256: sum, BundleSize: size}
	jf.ContentServices = c.ContentServices()
	// The file's own key: it authenticates every field and opens the
	// secrets; printed by token create, never written into the file.
	key, err := joinfile.NewCertificateKey()
	if err != nil {
		return nil, err
	}
	if n.HasRole(cluster.RoleControlPlane) {
		// The node issues its own leaves from the shared online CAs.
		var secrets []joinfile.Entry
		for _, p := range joinfile.ControlPlaneSecrets() {
			data, err := os.ReadFile(in(p))
			if err != nil {
				return nil, fmt.Errorf("control-plane secrets: %w", err)
			}
			mode := fs.FileMode(0o644)
			if strings.HasSuffix(p, ".key") {
				mode = 0o600
			}
			secrets = append(secrets, joinfile.Entry{Path: p, Mode: mode, Content: data})
		}
		if err := jf.Seal(key, secrets); err != nil {
			return nil, err
		}
	}
	var leaves []desired.Leaf
	if !n.HasRole(cluster.RoleControlPlane) {
		leaves = desired.WorkerLeaves(n)
	}
	for _, l := range leaves {
		leaf, err := realm.Issue(l.Req)
		if err != nil {
			return nil, fmt.Errorf("node %s: %s: %w", n.Name, l.Cert, err)
		}
		key, err := leaf.KeyPEM()
		if err != nil {
			return nil, err
		}
		jf.Files = append(jf.Files, joinfile.Entry{Path: l.Cert, Mode: 0o644, Content: leaf.CertPEM()}, joinfile.Entry{Path: l.Key, Mode: 0o600, Content: key})
	}
	// The bootstrap token: kubeadm's own, for the join only.
	// Through the node-local proxy (R32): a token can be made on any
	// control plane while any API server runs.
	admin, cleanup, err := proxiedKubeconfig(o.Root, in(layout.AdminConf), c.APIServerName())
	if err != nil {
		return nil, err
	}
	defer cleanup()
	out, err := exec.CommandContext(ctx, "kubeadm", "token", "create", "--kubeconfig", admin,
		"--ttl", o.TTL.String(), "--description", "ferry join "+n.Name).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("kubeadm token create: %w: %s", err, bytes.TrimSpace(out))
	}
	token := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(token, '\n'); i >= 0 {
		token = strings.TrimSpace(token[i+1:])
	}
	if !bootstrapToken.MatchString(token) {
		return nil, fmt.Errorf("kubeadm token create printed no token (%d bytes of output)", len(out))
	}
	jf.Discovery = discoveryKubeconfig(c, clusterCA, token)
	if err := jf.Sign(key); err != nil {
		return nil, err
	}
	jf.CertificateKey = hex.EncodeToString(key)
	return jf, nil
}

var bootstrapToken = regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}$`)

func discoveryKubeconfig(c *cluster.Cluster, ca []byte, token string) string {
	return nodeconfig.Kubeconfig(c.Metadata.Name, c.Spec.ControlPlaneEndpoint, "", ca, "tls-bootstrap-token-user", "join", nodeconfig.KubeconfigCreds{Token: token})
}
