package nodestate

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ferry-k8s/ferry/installer/cluster"
	"github.com/ferry-k8s/ferry/installer/converge"
	"github.com/ferry-k8s/ferry/installer/desired"
	"github.com/ferry-k8s/ferry/installer/layout"
	"github.com/ferry-k8s/ferry/installer/nodeconfig"
	"github.com/ferry-k8s/ferry/installer/pki"
	"github.com/ferry-k8s/ferry/repo/rpmbuild"
	"github.com/ferry-k8s/ferry/signing"
)

// Options say which node to observe, and what the command brings to it.
type Options struct {
	// Root prefixes every path (tests); "/" on a node.
	Root    string
	Cluster *cluster.Cluster
	Node    *cluster.Node
	// ClusterConfig and Keyring are the files the node keeps
	// (cluster.yaml as written, the keyring whose public keys it keeps).
	ClusterConfig, Keyring string
	Bundle                 desired.Bundle
	// Mode is desired.ModeBootstrap or desired.ModeJoin.
	Mode string
	// Imported is the target bundle's path on the node (under
	// layout.BundlesDir).
	Imported string
	// Join is what a join file brings (nil without one).
	Join                  *Join
	IgnorePreflightErrors []string
	// Passphrase protects new root CA keys (R25); Now is the clock leaves
	// are checked and issued by.
	Passphrase pki.Passphrase
	Now        func() time.Time
	Version    string
}

// Join is what a join file brings a node: its own certificates (a
// worker), the content realm's CA and the discovery kubeconfig.
type Join struct {
	Files     []converge.File
	ContentCA []byte
	Discovery []byte
}

// Observe reads the node into the desired node's input (and makes what is
// made once: keys, certificates, the host-provides package).
func Observe(ctx context.Context, o Options) (desired.Input, error) {
	c, n := o.Cluster, o.Node
	in := desired.Input{Cluster: c, Node: n, Bundle: o.Bundle, Mode: o.Mode, IgnorePreflightErrors: o.IgnorePreflightErrors, Version: o.Version}
	var err error
	if in.Host, err = Host(ctx, o.Root, c, n, o.Version); err != nil {
		return in, err
	}
	if in.Keyring, err = PublicKeyring(o.Keyring); err != nil {
		return in, err
	}
	if in.ClusterConfig, err = os.ReadFile(o.ClusterConfig); err != nil {
		return in, fmt.Errorf("cluster configuration: %w", err)
	}
	if !HasShell(o.Root) {
		if in.HostProvidesRPM, err = HostProvides(o.Root); err != nil {
			return in, err
		}
	}
	if o.Join != nil {
		in.Discovery = o.Join.Discovery
	}
	if !n.HasRole(cluster.RoleControlPlane) {
		if in.PKI, err = WorkerFiles(o.Root, n, o.Join); err != nil {
			return in, err
		}
		in.ClusterCA, in.ContentCA, err = WorkerCAs(o.Root, o.Join)
		return in, err
	}
	if in.OIDCCA, err = OIDCCA(c); err != nil {
		return in, err
	}
	if in.EncryptionKey, err = EncryptionKey(o.Root); err != nil {
		return in, err
	}
	if o.Mode == desired.ModeJoin {
		in.EtcdInitialCluster = EtcdInitialCluster(o.Root)
	}
	in.ServedISOs = ServedISOs(o.Root, o.Imported)
	leaves, err := desired.ControlPlaneLeaves(c, n, in.Host.IPs[nodeconfig.PlaneControlPlane])
	if err != nil {
		return in, err
	}
	in.PKI, err = Credentials(CredentialOptions{Root: o.Root, Passphrase: o.Passphrase, Now: o.Now, Organization: c.Metadata.Name}, leaves, desired.ControlPlaneRealms)
	return in, err
}

// OIDCCA is the content of spec.authentication.oidc.caFile (relative to
// cluster.yaml's directory), nil when none is configured.
func OIDCCA(c *cluster.Cluster) ([]byte, error) {
	o := c.Spec.Authentication.OIDC
	if o == nil || o.CAFile == "" {
		return nil, nil
	}
	p := o.CAFile
	if !filepath.IsAbs(p) {
		p = filepath.Join(c.Dir, p)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("spec.authentication.oidc.caFile: %w", err)
	}
	return data, nil
}

// PublicKeyring is the keyring file at p as Ferry writes it to nodes and
// join files: its public keys only, armored, whatever else the file held
// (signing.ReadKeyring refuses secret key material).
func PublicKeyring(p string) ([]byte, error) {
	ring, err := signing.LoadKeyringFile(p)
	if err != nil {
		return nil, err
	}
	return ring.Armored()
}

// EncryptionKey is the encryption-at-rest key (R9): the node's, or a new
// one (written by the apply, kept 0600).
func EncryptionKey(root string) ([]byte, error) {
	p := filepath.Join(root, layout.EncryptionKey)
	data, err := os.ReadFile(p)
	if err == nil && len(data) == nodeconfig.EncryptionKeySize {
		return data, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	key := make([]byte, nodeconfig.EncryptionKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return key, nil
}

// EtcdInitialCluster is the membership recorded when Ferry added this
// node's etcd member ("" before the member exists).
func EtcdInitialCluster(root string) string {
	data, err := os.ReadFile(filepath.Join(root, layout.EtcdStateFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

// ServedISOs are the bundles the node's content service serves: every
// imported one (during a roll-out the old and the new), sorted.
func ServedISOs(root, imported string) []string {
	entries, _ := filepath.Glob(filepath.Join(root, layout.BundlesDir, "*.iso"))
	out := []string{imported}
	for _, e := range entries {
		rel := filepath.Join(layout.BundlesDir, filepath.Base(e))
		if !slices.Contains(out, rel) {
			out = append(out, rel)
		}
	}
	slices.Sort(out)
	return out
}

// HostProvides is an RPM that declares what a host not managed by rpm
// (Debian, as the test machines) already has: /bin/sh, which the
// scriptlets of the distribution's packages require. It has no files. It
// is made once; its path on the node is returned.
func HostProvides(root string) (string, error) {
	p := filepath.Join(root, layout.HostProvidesRPM)
	if _, err := os.Stat(p); err == nil {
		return layout.HostProvidesRPM, nil
	}
	pkg := rpmbuild.Package{Name: layout.HostProvidesName, Version: "1", Release: "1", Arch: "noarch",
		Summary: "What this host provides outside rpm's database (made by the Ferry installer)", License: "Apache-2.0",
		BuildTime: time.Unix(0, 0).UTC(), Provides: []rpmbuild.Relation{{Name: "/bin/sh"}}}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", err
	}
	return layout.HostProvidesRPM, rpmbuild.WriteFile(p, pkg, rpmbuild.Options{})
}

// WorkerFiles are a worker's own certificates and keys: from its join
// file when joining, as they are on the node afterwards.
func WorkerFiles(root string, n *cluster.Node, join *Join) ([]converge.File, error) {
	own := map[string]converge.File{}
	if join != nil {
		for _, f := range join.Files {
			own[f.Path] = f
		}
	}
	var out []converge.File
	for _, l := range desired.WorkerLeaves(n) {
		for _, p := range []string{l.Cert, l.Key} {
			f, ok := own[p]
			if !ok {
				data, err := os.ReadFile(filepath.Join(root, p))
				if errors.Is(err, fs.ErrNotExist) {
					return nil, fmt.Errorf("node %s has no %s: join it with a join file (installer token create --node %s on a control-plane node, then installer join)", n.Name, p, n.Name)
				}
				if err != nil {
					return nil, err
				}
				f = converge.File{Path: p, Mode: 0o644, Content: data}
				if strings.HasSuffix(p, ".key") {
					f.Mode = 0o600
				}
			}
			out = append(out, converge.File{Path: f.Path, Mode: f.Mode, Content: f.Content, Secret: strings.HasSuffix(p, ".key")})
		}
	}
	return out, nil
}

// WorkerCAs are the cluster's CA (kube-proxy's kubeconfig) and the content
// realm's (the content services' certificates): from the join file, then
// from the node.
func WorkerCAs(root string, join *Join) (clusterCA, contentCA []byte, err error) {
	if join != nil {
		if clusterCA, err = DiscoveryCA(join.Discovery); err != nil {
			return nil, nil, fmt.Errorf("join file: discovery: %w", err)
		}
		return clusterCA, join.ContentCA, nil
	}
	if contentCA, err = os.ReadFile(filepath.Join(root, desired.ContentCAFile)); err != nil {
		return nil, nil, err
	}
	if clusterCA, err = os.ReadFile(filepath.Join(root, layout.ClusterCA)); err != nil {
		return nil, nil, err
	}
	return clusterCA, contentCA, nil
}

// DiscoveryCA is the certificate-authority-data of a discovery kubeconfig.
func DiscoveryCA(kubeconfig []byte) ([]byte, error) {
	for _, line := range strings.Split(string(kubeconfig), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "certificate-authority-data: "); ok {
			return base64.StdEncoding.DecodeString(v)
		}
	}
	return nil, errors.New("no certificate-authority-data")
}
