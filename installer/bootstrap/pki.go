package bootstrap

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ferry-k8s/ferry/installer/cluster"
	"github.com/ferry-k8s/ferry/installer/converge"
	"github.com/ferry-k8s/ferry/installer/pki"
)

// Where the realms and kubeadm's PKI live on a node.
const (
	PKIDir        = "/etc/ferry/pki"
	KubernetesPKI = "/etc/kubernetes/pki"
)

// leafSpec is one certificate kubeadm (or the content service) uses, made
// by Ferry so that it carries DNS names only (R29).
type leafSpec struct {
	cert, key string
	realm     string
	req       pki.LeafRequest
}

// kubeadmLeaves are the certificates of a control-plane node, as kubeadm
// names them. kubeadm takes leaves it finds on disk when they chain to the
// CA (see the pki package's doc), and writes only the kubeconfigs and the
// service-account key itself.
func kubeadmLeaves(c *cluster.Cluster, n *cluster.Node, advertise string) ([]leafSpec, error) {
	endpoint, _, err := net.SplitHostPort(c.Spec.ControlPlaneEndpoint)
	if err != nil {
		endpoint = c.Spec.ControlPlaneEndpoint
	}
	domain := c.Spec.Kubernetes.ClusterDomain
	svcIP, err := firstServiceIP(c.Spec.Kubernetes.ServiceSubnet)
	if err != nil {
		return nil, err
	}
	apiIPs := []net.IP{svcIP}
	if ip := net.ParseIP(advertise); ip != nil {
		apiIPs = append(apiIPs, ip)
	}
	apiNames := dedupe([]string{endpoint, n.Hostname, "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + domain})
	etcdNames := dedupe([]string{n.Hostname, "localhost"})
	p := func(rel string) string { return filepath.Join(KubernetesPKI, rel) }
	return []leafSpec{
		{p("apiserver.crt"), p("apiserver.key"), pki.RealmKubernetes, pki.LeafRequest{CommonName: "kube-apiserver", DNSNames: apiNames, APIServerIPs: apiIPs, Usage: pki.ServerAuth}},
		{p("apiserver-kubelet-client.crt"), p("apiserver-kubelet-client.key"), pki.RealmKubernetes, pki.LeafRequest{CommonName: "kube-apiserver-kubelet-client", Organizations: []string{"kubeadm:cluster-admins"}, Usage: pki.ClientAuth}},
		{p("apiserver-etcd-client.crt"), p("apiserver-etcd-client.key"), pki.RealmEtcd, pki.LeafRequest{CommonName: "kube-apiserver-etcd-client", Usage: pki.ClientAuth}},
		{p("front-proxy-client.crt"), p("front-proxy-client.key"), pki.RealmFrontProxy, pki.LeafRequest{CommonName: "front-proxy-client", Usage: pki.ClientAuth}},
		{p("etcd/server.crt"), p("etcd/server.key"), pki.RealmEtcd, pki.LeafRequest{CommonName: n.Hostname, DNSNames: etcdNames, Usage: pki.ServerAuth | pki.ClientAuth}},
		{p("etcd/peer.crt"), p("etcd/peer.key"), pki.RealmEtcd, pki.LeafRequest{CommonName: n.Hostname, DNSNames: []string{n.Hostname}, Usage: pki.ServerAuth | pki.ClientAuth}},
		{p("etcd/healthcheck-client.crt"), p("etcd/healthcheck-client.key"), pki.RealmEtcd, pki.LeafRequest{CommonName: "kube-etcd-healthcheck-client", Usage: pki.ClientAuth}},
	}, nil
}

// contentLeaf is the content service's server certificate.
func contentLeaf(n *cluster.Node) leafSpec {
	return leafSpec{"/etc/ferry/tls/content.crt", "/etc/ferry/tls/content.key", pki.RealmContent,
		pki.LeafRequest{DNSNames: []string{n.Hostname}, Usage: pki.ServerAuth}}
}

func firstServiceIP(cidr string) (net.IP, error) {
	pfx, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, fmt.Errorf("spec.kubernetes.serviceSubnet %q: %w", cidr, err)
	}
	return net.IP(pfx.Masked().Addr().Next().AsSlice()), nil
}

func dedupe(s []string) []string {
	var out []string
	for _, v := range s {
		if v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// PKIOptions say where the realms are and how to unlock them.
type PKIOptions struct {
	// Root prefixes every path (tests).
	Root string
	// Passphrase protects new root keys (R25). Required to create realms.
	Passphrase pki.Passphrase
	Now        func() time.Time
	// Organization is the CAs' subject O (the cluster name).
	Organization string
}

// pkiFiles returns the desired PKI files of a control-plane node: the
// realms (made once; their files as they are on disk afterwards), kubeadm's
// CA files, and every leaf — kept while it is valid for its names and not
// due for rotation (R24), issued anew otherwise. Re-running it on a
// converged node returns the files the node already has.
func pkiFiles(o PKIOptions, leaves []leafSpec, realmsWanted []string) ([]converge.File, error) {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	var files []converge.File
	realms := map[string]*pki.Realm{}
	for _, name := range realmsWanted {
		dir := filepath.Join(PKIDir, name)
		r, rf, err := loadOrCreateRealm(o, name, dir, now)
		if err != nil {
			return nil, err
		}
		realms[name] = r
		files = append(files, rf...)
	}
	kubeadmCA := map[string]string{pki.RealmKubernetes: "ca", pki.RealmEtcd: "etcd/ca", pki.RealmFrontProxy: "front-proxy-ca"}
	for _, name := range realmsWanted {
		base, ok := kubeadmCA[name]
		if !ok {
			continue
		}
		r := realms[name]
		key, err := os.ReadFile(filepath.Join(o.Root, PKIDir, name, pki.CAKeyFile))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if key == nil {
			// A new realm: its key is among the files to write.
			for _, f := range files {
				if f.Path == filepath.Join(PKIDir, name, pki.CAKeyFile) {
					key = f.Content
				}
			}
		}
		if name == pki.RealmKubernetes {
			files = append(files, converge.File{Path: filepath.Join(KubernetesPKI, "ca-signer.crt"), Mode: 0o644, Content: pemOf(r.Intermediate)})
		}
		files = append(files,
			converge.File{Path: filepath.Join(KubernetesPKI, base+".crt"), Mode: 0o644, Content: r.CACertPEM()},
			converge.File{Path: filepath.Join(KubernetesPKI, base+".key"), Mode: 0o600, Content: key, Secret: true})
	}
	for _, l := range leaves {
		r := realms[l.realm]
		if r == nil {
			return nil, fmt.Errorf("certificate %s: realm %s not loaded", l.cert, l.realm)
		}
		certPEM, keyPEM, err := currentLeaf(o.Root, l, r, now())
		if err != nil {
			return nil, err
		}
		if certPEM == nil {
			leaf, err := r.Issue(l.req)
			if err != nil {
				return nil, err
			}
			certPEM = leaf.CertPEM()
			if keyPEM, err = leaf.KeyPEM(); err != nil {
				return nil, err
			}
		}
		files = append(files,
			converge.File{Path: l.cert, Mode: 0o644, Content: certPEM},
			converge.File{Path: l.key, Mode: 0o600, Content: keyPEM, Secret: true})
	}
	return files, nil
}

// loadOrCreateRealm loads a realm's online part from the node, or makes a
// new realm and returns its files to write.
func loadOrCreateRealm(o PKIOptions, name, dir string, now func() time.Time) (*pki.Realm, []converge.File, error) {
	onDisk := filepath.Join(o.Root, dir)
	opts := pki.Options{Organization: o.Organization, Now: now}
	if _, err := os.Stat(filepath.Join(onDisk, pki.CACertFile)); err == nil {
		r, err := pki.LoadRealm(onDisk, nil, opts)
		if err != nil {
			return nil, nil, fmt.Errorf("realm %s: %w", name, err)
		}
		var files []converge.File
		for _, f := range []struct {
			name string
			mode fs.FileMode
		}{{pki.RootCertFile, 0o644}, {pki.RootKeyFile, 0o600}, {pki.CACertFile, 0o644}, {pki.CAKeyFile, 0o600}} {
			data, err := os.ReadFile(filepath.Join(onDisk, f.name))
			if errors.Is(err, fs.ErrNotExist) && f.name == pki.RootKeyFile {
				continue // moved off the node, as it should be (R25)
			}
			if err != nil {
				return nil, nil, err
			}
			files = append(files, converge.File{Path: filepath.Join(dir, f.name), Mode: f.mode, Content: data, Secret: f.mode == 0o600})
		}
		return r, files, nil
	}
	if len(o.Passphrase) == 0 {
		return nil, nil, fmt.Errorf("realm %s does not exist yet: creating it needs a passphrase for its root key (--root-passphrase-file)", name)
	}
	r, err := pki.NewRealm(name, opts)
	if err != nil {
		return nil, nil, err
	}
	tmp, err := os.MkdirTemp("", "ferry-realm-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(tmp)
	if err := r.WriteFiles(tmp, o.Passphrase); err != nil {
		return nil, nil, err
	}
	var files []converge.File
	for _, f := range []string{pki.RootCertFile, pki.RootKeyFile, pki.CACertFile, pki.CAKeyFile} {
		data, err := os.ReadFile(filepath.Join(tmp, f))
		if err != nil {
			return nil, nil, err
		}
		mode := fs.FileMode(0o644)
		if strings.HasSuffix(f, ".key") {
			mode = 0o600
		}
		files = append(files, converge.File{Path: filepath.Join(dir, f), Mode: mode, Content: data, Secret: mode == 0o600})
	}
	return r, files, nil
}

// currentLeaf returns the leaf on disk when it is still good: signed by the
// realm's intermediate, for the requested names, usable now and not due
// for rotation. nil when it must be issued.
func currentLeaf(root string, l leafSpec, r *pki.Realm, now time.Time) (certPEM, keyPEM []byte, err error) {
	certPEM, err = os.ReadFile(filepath.Join(root, l.cert))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = os.ReadFile(filepath.Join(root, l.key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return nil, nil, nil
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, nil
	}
	if cert.CheckSignatureFrom(r.Intermediate) != nil || pki.NeedsRotation(cert, now, pki.DefaultRotationThreshold) ||
		!slices.Equal(cert.DNSNames, l.req.DNSNames) || len(cert.IPAddresses) != len(l.req.APIServerIPs) ||
		(l.req.CommonName != "" && cert.Subject.CommonName != l.req.CommonName) ||
		!bytes.Contains(certPEM, pemOf(r.Intermediate)) {
		return nil, nil, nil
	}
	for i, ip := range l.req.APIServerIPs {
		if !cert.IPAddresses[i].Equal(ip) {
			return nil, nil, nil
		}
	}
	return certPEM, keyPEM, nil
}

func pemOf(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}
