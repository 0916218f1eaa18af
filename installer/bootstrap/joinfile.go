package bootstrap

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
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
	"github.com/ferry-k8s/ferry/installer/desired"
	"github.com/ferry-k8s/ferry/installer/nodeconfig"
	"github.com/ferry-k8s/ferry/installer/nodestate"
	"github.com/ferry-k8s/ferry/installer/pki"
	"github.com/ferry-k8s/ferry/internal/atomicfile"
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
//
// Every field is authenticated: MAC is an HMAC-SHA256 over all the others
// under a key derived from the certificate key token create prints, which
// travels apart from the file (as kubeadm's --certificate-key does). A
// file is not used before its MAC checks out (ParseJoinFile).
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
	Files []JoinFileEntry `json:"files,omitempty"`
	// Secrets, for a control-plane node, are the realms' online CAs
	// (intermediate certificates and keys, never a root key: R25), the
	// service-account key pair and the encryption-at-rest key, sealed
	// with AES-256-GCM under a key derived from the certificate key.
	Secrets []byte `json:"secrets,omitempty"`
	// MAC is the HMAC-SHA256 (hex) of every other field (macInput) under
	// a key derived from the certificate key.
	MAC string `json:"mac"`

	// CertificateKey is the file's key, hex (CertificateKeySize bytes):
	// it authenticates the file and opens its secrets. Set by
	// CreateJoinFile, never written into the file.
	CertificateKey string `json:"-"`
}

// CertificateKeySize is the size of a join file's key (hex-encoded on the
// command line): every join file has its own.
const CertificateKeySize = 32

// ParseCertificateKey decodes a join file's key as token create printed
// it (64 hex digits).
func ParseCertificateKey(hexKey string) ([]byte, error) {
	key, err := hex.DecodeString(strings.TrimSpace(hexKey))
	if err != nil {
		return nil, fmt.Errorf("the certificate key is not hex: %w", err)
	}
	if len(key) != CertificateKeySize {
		return nil, fmt.Errorf("the certificate key has %d bytes, want %d (64 hex digits)", len(key), CertificateKeySize)
	}
	return key, nil
}

// The keys derived from a join file's key, one per use (HKDF-SHA256).
const (
	macKeyInfo    = "ferry.dev/v1alpha1 JoinFile mac"
	secretKeyInfo = "ferry.dev/v1alpha1 JoinFile secrets"
)

func deriveKey(key []byte, info string) ([]byte, error) {
	if len(key) != CertificateKeySize {
		return nil, fmt.Errorf("the certificate key has %d bytes, want %d (64 hex digits)", len(key), CertificateKeySize)
	}
	return hkdf.Key(sha256.New, key, nil, info, 32)
}

// controlPlaneSecrets are the files a control-plane node shares with the
// others: each realm's online CA, the service-account keys, the
// encryption-at-rest key.
func controlPlaneSecrets() []string {
	var ps []string
	for _, r := range []string{pki.RealmKubernetes, pki.RealmEtcd, pki.RealmFrontProxy, pki.RealmContent} {
		for _, f := range []string{pki.RootCertFile, pki.CACertFile, pki.CAKeyFile} {
			ps = append(ps, filepath.Join(PKIDir, r, f))
		}
	}
	return append(ps, filepath.Join(KubernetesPKI, "sa.key"), filepath.Join(KubernetesPKI, "sa.pub"), EncryptionKey)
}

// macInput is the canonical encoding of every field but MAC: a version
// tag, then each field in declaration order, strings and bytes prefixed
// with their length, lists with their count (so no two files share an
// encoding). A field added to JoinFile must be added here
// (TestJoinFileMACCoversEveryField fails otherwise).
func (j *JoinFile) macInput() []byte {
	b := []byte{}
	num := func(n uint64) { b = binary.BigEndian.AppendUint64(b, n) }
	str := func(s string) { num(uint64(len(s))); b = append(b, s...) }
	str("ferry.dev/v1alpha1 JoinFile mac input")
	str(j.APIVersion)
	str(j.Kind)
	str(j.Cluster)
	str(j.Node)
	str(j.Expires.UTC().Format(time.RFC3339Nano))
	str(j.ClusterConfig)
	str(j.Keyring)
	str(j.ContentCA)
	num(uint64(len(j.ContentServices)))
	for _, s := range j.ContentServices {
		str(s)
	}
	str(j.Bundle)
	str(j.BundleSHA256)
	num(uint64(j.BundleSize))
	str(j.Discovery)
	num(uint64(len(j.Files)))
	for _, f := range j.Files {
		str(f.Path)
		num(uint64(f.Mode))
		str(string(f.Content))
	}
	str(string(j.Secrets))
	return b
}

func (j *JoinFile) mac(key []byte) ([]byte, error) {
	mk, err := deriveKey(key, macKeyInfo)
	if err != nil {
		return nil, err
	}
	h := hmac.New(sha256.New, mk)
	h.Write(j.macInput())
	return h.Sum(nil), nil
}

// sign sets MAC: the last step of making a join file.
func (j *JoinFile) sign(key []byte) error {
	sum, err := j.mac(key)
	if err != nil {
		return err
	}
	j.MAC = hex.EncodeToString(sum)
	return nil
}

// verify checks MAC against key, in constant time.
func (j *JoinFile) verify(key []byte) error {
	if j.MAC == "" {
		return errors.New("it carries no MAC (made by an older installer, or altered): make a new one with installer token create")
	}
	got, err := hex.DecodeString(j.MAC)
	if err != nil || len(got) != sha256.Size {
		return errors.New("mac: want 64 hex digits (the file was altered)")
	}
	want, err := j.mac(key)
	if err != nil {
		return err
	}
	if !hmac.Equal(got, want) {
		return errors.New("the file was altered, or the certificate key is not the one installer token create printed with it (its MAC does not match)")
	}
	return nil
}

// sealAAD binds sealed secrets to the file's cluster and node (the MAC
// binds them to the whole file as well).
func (j *JoinFile) sealAAD() []byte {
	return []byte("ferry join secrets\x00" + j.Cluster + "\x00" + j.Node)
}

func secretsCipher(key []byte) (cipher.AEAD, error) {
	sk, err := deriveKey(key, secretKeyInfo)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(sk)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// seal encrypts entries into j.Secrets with a key derived from key, under
// a random nonce.
func (j *JoinFile) seal(key []byte, entries []JoinFileEntry) error {
	nonce := make([]byte, 12) // GCM's standard nonce
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	return j.sealWithNonce(key, entries, nonce)
}

func (j *JoinFile) sealWithNonce(key []byte, entries []JoinFileEntry, nonce []byte) error {
	aead, err := secretsCipher(key)
	if err != nil {
		return err
	}
	if len(nonce) != aead.NonceSize() {
		return fmt.Errorf("sealing secrets: a nonce of %d bytes, want %d", len(nonce), aead.NonceSize())
	}
	plain, err := json.Marshal(entries)
	if err != nil {
		return err
	}
	j.Secrets = aead.Seal(nonce, nonce, plain, j.sealAAD())
	return nil
}

// OpenSecrets decrypts a control-plane join file's secrets with its key
// (ParseCertificateKey; the file's MAC checked already by ParseJoinFile)
// and checks that each is a file a control-plane node shares.
func (j *JoinFile) OpenSecrets(key []byte) ([]JoinFileEntry, error) {
	aead, err := secretsCipher(key)
	if err != nil {
		return nil, err
	}
	if len(j.Secrets) < aead.NonceSize() {
		return nil, errors.New("join file: secrets: none, or too short (is the node a control plane in the cluster.yaml the file was made from?)")
	}
	plain, err := aead.Open(nil, j.Secrets[:aead.NonceSize()], j.Secrets[aead.NonceSize():], j.sealAAD())
	if err != nil {
		return nil, errors.New("join file: secrets do not open with this certificate key (wrong key, or the file was altered)")
	}
	var entries []JoinFileEntry
	if err := json.Unmarshal(plain, &entries); err != nil {
		return nil, fmt.Errorf("join file: secrets: %w", err)
	}
	allowed := map[string]bool{}
	for _, p := range controlPlaneSecrets() {
		allowed[p] = true
	}
	for i, e := range entries {
		if !allowed[e.Path] {
			return nil, fmt.Errorf("join file: secrets[%d]: %q is not a file a control-plane join shares", i, e.Path)
		}
		if e.Mode&^0o644 != 0 {
			return nil, fmt.Errorf("join file: secrets[%d]: mode %04o: want 0644 or stricter", i, e.Mode)
		}
	}
	return entries, nil
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
	keyring, err := nodestate.PublicKeyring(in(KeyringFile))
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
	// The file's own key: it authenticates every field and opens the
	// secrets; printed by token create, never written into the file.
	key := make([]byte, CertificateKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if n.HasRole(cluster.RoleControlPlane) {
		// The node issues its own leaves from the shared online CAs.
		var secrets []JoinFileEntry
		for _, p := range controlPlaneSecrets() {
			data, err := os.ReadFile(in(p))
			if err != nil {
				return nil, fmt.Errorf("control-plane secrets: %w", err)
			}
			mode := fs.FileMode(0o644)
			if strings.HasSuffix(p, ".key") {
				mode = 0o600
			}
			secrets = append(secrets, JoinFileEntry{Path: p, Mode: mode, Content: data})
		}
		if err := jf.seal(key, secrets); err != nil {
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
		jf.Files = append(jf.Files, JoinFileEntry{Path: l.Cert, Mode: 0o644, Content: leaf.CertPEM()}, JoinFileEntry{Path: l.Key, Mode: 0o600, Content: key})
	}
	// The bootstrap token: kubeadm's own, for the join only.
	// Through the node-local proxy (R32): a token can be made on any
	// control plane while any API server runs.
	admin, cleanup, err := proxiedKubeconfig(o.Root, in("/etc/kubernetes/admin.conf"), c.APIServerName())
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
	if err := jf.sign(key); err != nil {
		return nil, err
	}
	jf.CertificateKey = hex.EncodeToString(key)
	return jf, nil
}

var bootstrapToken = regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}$`)

func discoveryKubeconfig(c *cluster.Cluster, ca []byte, token string) string {
	return nodeconfig.Kubeconfig(c.Metadata.Name, c.Spec.ControlPlaneEndpoint, "", ca, "tls-bootstrap-token-user", "join", nodeconfig.KubeconfigCreds{Token: token})
}

// Marshal is the join file's bytes.
func (j *JoinFile) Marshal() ([]byte, error) {
	return json.MarshalIndent(j, "", "  ")
}

// WriteJoinFile writes j (made by CreateJoinFile) to p, mode 0600 whatever
// is there already: through a temporary file in the same directory,
// renamed over p, so that an existing file keeps neither its content nor
// its mode. A symbolic link at p is refused rather than replaced or
// followed. The bytes are checked first to open with j's key.
func WriteJoinFile(p string, j *JoinFile) error {
	key, err := ParseCertificateKey(j.CertificateKey)
	if err != nil {
		return err
	}
	data, err := j.Marshal()
	if err != nil {
		return err
	}
	data = append(data, '\n')
	// What is written must open on the node: the MAC of the parsed bytes.
	back, err := decodeJoinFile(data, p)
	if err != nil {
		return err
	}
	if err := back.verify(key); err != nil {
		return fmt.Errorf("join file %s: %w", p, err)
	}
	if err := CheckJoinFileOut(p); err != nil {
		return err
	}
	return atomicfile.WriteFile(p, data, 0o600)
}

// CheckJoinFileOut says whether a join file may be written at p: nothing
// there, or a regular file (replaced); not a symbolic link.
func CheckJoinFileOut(p string) error { return checkSecretOut("join file", p) }

// checkSecretOut refuses to write a file holding secrets (what) at p
// through a symbolic link or over something that is not a regular file.
func checkSecretOut(what, p string) error {
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("writing %s %s: %w", what, p, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("writing %s %s: it is a symbolic link: give the path of the file itself, or remove the link", what, p)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("writing %s %s: it exists and is not a regular file", what, p)
	}
	return nil
}

// WriteSecretFile writes data, which holds secrets (what: for errors),
// to p with mode 0600 through a temporary file renamed into place: an
// existing file at p gets the new mode too, and a symbolic link at p is
// refused rather than followed or replaced.
func WriteSecretFile(what, p string, data []byte) error {
	if err := checkSecretOut(what, p); err != nil {
		return err
	}
	return atomicfile.WriteFile(p, data, 0o600)
}

// ReadJoinFile reads and checks a join file (ParseJoinFile).
func ReadJoinFile(p string, now time.Time, key []byte) (*JoinFile, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseJoinFile(io.LimitReader(f, MaxJoinFileSize+1), p, now, key)
}

// ParseJoinFile parses a join file read from r (name is for errors) and
// checks it: strict JSON (no unknown or repeated key, nothing after the
// object), then its MAC under key (the certificate key, ParseCertificateKey)
// before any field is looked at, then its kind, that it has not expired,
// and that its files stay where a join file may write.
func ParseJoinFile(r io.Reader, name string, now time.Time, key []byte) (*JoinFile, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	j, err := decodeJoinFile(data, name)
	if err != nil {
		return nil, err
	}
	if err := j.verify(key); err != nil {
		return nil, fmt.Errorf("join file %s: %w", name, err)
	}
	if err := j.validate(now); err != nil {
		return nil, fmt.Errorf("join file %s: %w", name, err)
	}
	return j, nil
}

// decodeJoinFile decodes a join file's bytes strictly; nothing is checked
// but its syntax.
func decodeJoinFile(data []byte, name string) (*JoinFile, error) {
	if len(data) > MaxJoinFileSize {
		return nil, fmt.Errorf("join file %s: larger than %d bytes", name, MaxJoinFileSize)
	}
	var j JoinFile
	if err := decodeStrictJSON(data, &j); err != nil {
		return nil, fmt.Errorf("join file %s: %w", name, err)
	}
	return &j, nil
}

// validate checks an authenticated join file's fields.
func (j *JoinFile) validate(now time.Time) error {
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
	return errors.Join(errs...)
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
