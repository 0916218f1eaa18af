package bootstrap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/ferry-k8s/ferry/installer/cluster"
	"github.com/ferry-k8s/ferry/installer/nodeconfig"
	"github.com/ferry-k8s/ferry/installer/pki"
	"github.com/ferry-k8s/ferry/internal/fetch"
)

// KindJoinFile is the kind of a join file.
const KindJoinFile = "JoinFile"

// DefaultJoinTTL is how long a join file (and its bootstrap token) is good.
const DefaultJoinTTL = 2 * time.Hour

// MaxJoinFileSize bounds a join file read from disk.
const MaxJoinFileSize = 1 << 20

// JoinFile is what `installer token create` writes on a control-plane
// node and `installer join` reads on the new node: everything the node
// needs to install from the cluster's content services and join it, and
// nothing it can get elsewhere. It holds secrets (the bootstrap token,
// the node's private keys): it is written 0600, expires with its token,
// and is meant to be carried to the node once and removed.
type JoinFile struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Cluster is metadata.name; Node the node of cluster.yaml it is for.
	Cluster string    `json:"cluster"`
	Node    string    `json:"node"`
	Expires time.Time `json:"expires"`
	// ClusterConfig is cluster.yaml as the control plane has it.
	ClusterConfig string `json:"clusterConfig"`
	// Keyring is the armored keyring bundles must be signed by.
	Keyring string `json:"keyring"`
	// ContentCA is the content realm's CA (PEM): the content services'
	// certificates are verified with it and nothing else.
	ContentCA string `json:"contentCA"`
	// ContentServices are the control-plane nodes' content services
	// (host:port, DNS names), tried in order.
	ContentServices []string `json:"contentServices"`
	// Bundle is the file name of the installed bundle under the content
	// services' /bundles/.
	Bundle string `json:"bundle"`
	// BundleSHA256 and BundleSize are the ISO's: what is fetched is
	// checked against them before it is opened (then verified in full).
	BundleSHA256 string `json:"bundleSHA256"`
	BundleSize   int64  `json:"bundleSize"`
	// Discovery is the kubeconfig kubeadm join discovers the cluster from
	// (the cluster's CA, the endpoint, a bootstrap token).
	Discovery string `json:"discovery"`
	// Files are the node's own certificates and keys, issued for its
	// hostname by the control plane (R23: per host, DNS names only).
	Files []JoinFileEntry `json:"files"`
}

// JoinFileEntry is one file of a join file.
type JoinFileEntry struct {
	Path    string      `json:"path"`
	Mode    fs.FileMode `json:"mode"`
	Content []byte      `json:"content"`
}

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
func CreateJoinFile(ctx context.Context, o TokenOptions) (*JoinFile, error) {
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
	raw, err := os.ReadFile(in(ClusterConfig))
	if err != nil {
		return nil, fmt.Errorf("this is not a bootstrapped control-plane node: %w", err)
	}
	c, err := cluster.Load(in(ClusterConfig))
	if err != nil {
		return nil, err
	}
	c = c.Defaulted()
	n := c.Node(o.Node)
	if n == nil {
		return nil, fmt.Errorf("node %q is not in %s: add it there (and apply) first", o.Node, ClusterConfig)
	}
	if n.HasRole(cluster.RoleControlPlane) {
		return nil, fmt.Errorf("node %s is a control-plane node: joining control-plane nodes is not supported yet (workers only)", n.Name)
	}
	keyring, err := os.ReadFile(in(KeyringFile))
	if err != nil {
		return nil, err
	}
	contentCA, err := os.ReadFile(in(filepath.Join(PKIDir, pki.RealmContent, pki.CACertFile)))
	if err != nil {
		return nil, err
	}
	clusterCA, err := os.ReadFile(in(filepath.Join(KubernetesPKI, "ca.crt")))
	if err != nil {
		return nil, err
	}
	iso, err := importedISO(o.Root)
	if err != nil {
		return nil, err
	}
	sum, size, err := fileSHA256(iso)
	if err != nil {
		return nil, err
	}
	realm, err := pki.LoadRealm(in(filepath.Join(PKIDir, pki.RealmKubernetes)), nil, pki.Options{Organization: c.Metadata.Name, Now: o.Now})
	if err != nil {
		return nil, fmt.Errorf("realm %s: %w", pki.RealmKubernetes, err)
	}
	jf := &JoinFile{APIVersion: "ferry.dev/v1alpha1", Kind: KindJoinFile, Cluster: c.Metadata.Name, Node: n.Name,
		Expires: o.Now().Add(o.TTL).UTC().Truncate(time.Second), ClusterConfig: string(raw), Keyring: string(keyring),
		ContentCA: string(contentCA), Bundle: filepath.Base(iso), BundleSHA256: sum, BundleSize: size}
	for _, cp := range c.Spec.Nodes {
		if cp.HasRole(cluster.RoleControlPlane) {
			jf.ContentServices = append(jf.ContentServices, net.JoinHostPort(cp.Hostname, fmt.Sprint(ContentPort)))
		}
	}
	for _, l := range workerLeaves(n) {
		leaf, err := realm.Issue(l.req)
		if err != nil {
			return nil, fmt.Errorf("node %s: %s: %w", n.Name, l.cert, err)
		}
		key, err := leaf.KeyPEM()
		if err != nil {
			return nil, err
		}
		jf.Files = append(jf.Files, JoinFileEntry{Path: l.cert, Mode: 0o644, Content: leaf.CertPEM()}, JoinFileEntry{Path: l.key, Mode: 0o600, Content: key})
	}
	// The bootstrap token: kubeadm's own, for the join only.
	out, err := exec.CommandContext(ctx, "kubeadm", "token", "create", "--kubeconfig", in("/etc/kubernetes/admin.conf"),
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
	return jf, nil
}

var bootstrapToken = regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}$`)

// workerLeaves are a worker's own certificates: the kubelet's serving
// certificate (its hostname, R29) and kube-proxy's client certificate.
func workerLeaves(n *cluster.Node) []leafSpec {
	return []leafSpec{
		{nodeconfig.KubeletServingCert, nodeconfig.KubeletServingKey, pki.RealmKubernetes, pki.LeafRequest{CommonName: "system:node:" + n.Name, Organizations: []string{"system:nodes"}, DNSNames: []string{n.Hostname}, Usage: pki.ServerAuth}},
		{kubeProxyCert, kubeProxyKey, pki.RealmKubernetes, pki.LeafRequest{CommonName: "system:kube-proxy", Usage: pki.ClientAuth}},
	}
}

const (
	kubeProxyCert = "/etc/ferry/kube-proxy/client.crt"
	kubeProxyKey  = "/etc/ferry/kube-proxy/client.key"
)

func discoveryKubeconfig(c *cluster.Cluster, ca []byte, token string) string {
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: %[1]s
  cluster:
    server: https://%[2]s
    certificate-authority-data: %[3]s
users:
- name: tls-bootstrap-token-user
  user:
    token: %[4]s
contexts:
- name: join
  context: {cluster: %[1]s, user: tls-bootstrap-token-user}
current-context: join
`, c.Metadata.Name, c.Spec.ControlPlaneEndpoint, b64(ca), token)
}

// Marshal is the join file's bytes.
func (j *JoinFile) Marshal() ([]byte, error) {
	return json.MarshalIndent(j, "", "  ")
}

// ReadJoinFile reads and checks a join file: its kind, that it has not
// expired, and that its files stay where a join file may write.
func ReadJoinFile(p string, now time.Time) (*JoinFile, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseJoinFile(io.LimitReader(f, MaxJoinFileSize+1), p, now)
}

// ParseJoinFile parses a join file read from r (name is for errors).
func ParseJoinFile(r io.Reader, name string, now time.Time) (*JoinFile, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if len(data) > MaxJoinFileSize {
		return nil, fmt.Errorf("join file %s: larger than %d bytes", name, MaxJoinFileSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var j JoinFile
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("join file %s: %w", name, err)
	}
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if j.APIVersion != "ferry.dev/v1alpha1" || j.Kind != KindJoinFile {
		bad("apiVersion/kind", "want ferry.dev/v1alpha1 %s, got %q %q", KindJoinFile, j.APIVersion, j.Kind)
	}
	if j.Expires.IsZero() {
		bad("expires", "missing")
	} else if now.After(j.Expires) {
		bad("expires", "the join file expired at %s: make a new one with installer token create", j.Expires.Format(time.RFC3339))
	}
	for field, v := range map[string]string{"node": j.Node, "clusterConfig": j.ClusterConfig, "keyring": j.Keyring, "contentCA": j.ContentCA, "discovery": j.Discovery} {
		if strings.TrimSpace(v) == "" {
			bad(field, "missing")
		}
	}
	if len(j.ContentServices) == 0 {
		bad("contentServices", "none")
	}
	for i, s := range j.ContentServices {
		if _, _, err := net.SplitHostPort(s); err != nil {
			bad(fmt.Sprintf("contentServices[%d]", i), "%v", err)
		}
	}
	if j.Bundle == "" || j.Bundle != filepath.Base(j.Bundle) || !strings.HasSuffix(j.Bundle, ".iso") || strings.HasPrefix(j.Bundle, ".") {
		bad("bundle", "want a file name ending in .iso, got %q", j.Bundle)
	}
	if j.BundleSHA256 != "" && (len(j.BundleSHA256) != 64 || strings.Trim(j.BundleSHA256, "0123456789abcdef") != "" || j.BundleSize <= 0) {
		bad("bundleSHA256", "want 64 lowercase hex digits and a positive bundleSize")
	}
	allowed := map[string]bool{nodeconfig.KubeletServingCert: true, nodeconfig.KubeletServingKey: true, kubeProxyCert: true, kubeProxyKey: true}
	for i, f := range j.Files {
		if !allowed[f.Path] {
			bad(fmt.Sprintf("files[%d].path", i), "%q is not a file a join file may carry", f.Path)
		}
		if f.Mode&^0o644 != 0 {
			bad(fmt.Sprintf("files[%d].mode", i), "%04o: want 0644 or stricter", f.Mode)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("join file %s: %w", name, errors.Join(errs...))
	}
	return &j, nil
}

func fileSHA256(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("hashing %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// fetchBundle downloads the join file's bundle from the first content
// service that has it, over TLS verified with the content realm's CA
// only, resumably, into dir; the bytes are checked against the join
// file's digest (and the bundle is then verified in full, like any).
func fetchBundle(ctx context.Context, jf *JoinFile, dir string, log *slog.Logger) (string, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(jf.ContentCA)) {
		return "", errors.New("join file: contentCA holds no certificate")
	}
	c, err := fetch.New(fetch.Options{CacheDir: dir, RootCAs: pool, Log: log})
	if err != nil {
		return "", err
	}
	defer c.Close()
	var errs []error
	for _, s := range jf.ContentServices {
		u := "https://" + s + "/bundles/" + jf.Bundle
		log.Info("fetching the bundle", slog.String("url", u), slog.Int64("bytes", jf.BundleSize))
		p, err := c.Fetch(ctx, fetch.Item{URL: u, SHA256: jf.BundleSHA256, Size: jf.BundleSize})
		if err == nil {
			return p, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", u, err))
	}
	return "", fmt.Errorf("fetching bundle %s: %w", jf.Bundle, errors.Join(errs...))
}
