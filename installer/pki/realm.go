package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/ferry-k8s/ferry/internal/atomicfile"
	"github.com/ferry-k8s/ferry/internal/fileutil"
)

// The realms: one CA chain each, so that no certificate of one realm is
// accepted by another's servers (R23).
const (
	RealmKubernetes = "kubernetes"  // API server, kubelets, controllers, users; kubeadm's ca.crt/ca.key
	RealmEtcd       = "etcd"        // etcd servers, peers and clients; kubeadm's etcd/ca.*
	RealmFrontProxy = "front-proxy" // the aggregation layer; kubeadm's front-proxy-ca.*
	RealmContent    = "content"     // the content service (registry, yum repositories)
	RealmNodeDaemon = "node-daemon" // Ferry's node daemons
)

// Realms are all realm names, in a fixed order.
var Realms = []string{RealmKubernetes, RealmEtcd, RealmFrontProxy, RealmContent, RealmNodeDaemon}

// Default lifetimes.
const (
	DefaultRootValidity         = 10 * 365 * 24 * time.Hour
	DefaultIntermediateValidity = 365 * 24 * time.Hour
	DefaultLeafValidity         = 30 * 24 * time.Hour
	// MaxLeafValidity bounds a leaf's lifetime: leaves are short-lived (R24).
	MaxLeafValidity = 397 * 24 * time.Hour
	// backdate is how far before "now" certificates start, so that a node
	// whose clock is a little behind accepts them.
	backdate = 5 * time.Minute
)

// The files of a realm's directory.
const (
	// RootCertFile is the root CA certificate: the realm's trust anchor.
	RootCertFile = "root.crt"
	// RootKeyFile is the root CA's key, encrypted with a passphrase; it
	// belongs off the node (R25) and is needed only to renew the intermediate.
	RootKeyFile = "root.key"
	// CACertFile is the intermediate CA certificate followed by the root:
	// what kubeadm reads as its CA (the first certificate signs, the whole
	// file is the trust bundle the components get).
	CACertFile = "ca.crt"
	// CAKeyFile is the intermediate CA's key, unencrypted (kubeadm and the
	// controller-manager sign with it), mode 0600.
	CAKeyFile = "ca.key"
)

// maxPEMFile bounds the certificate and key files read.
const maxPEMFile = 64 << 10

// ErrRootKeyNotLoaded is wrapped by the error of an operation that needs
// the offline root key (renewing the intermediate) on a realm loaded
// without it: bring the key back and load with its passphrase.
var ErrRootKeyNotLoaded = errors.New("the root CA key is not loaded")

// Options tune a realm. The zero value gives the defaults.
type Options struct {
	// Organization is the CAs' subject O, e.g. the cluster name ("ferry").
	Organization string
	// RootValidity is the root CA's lifetime (10 years).
	RootValidity time.Duration
	// IntermediateValidity is the intermediate CA's lifetime (1 year).
	IntermediateValidity time.Duration
	// LeafValidity is a leaf's lifetime when the request gives none (30 days).
	LeafValidity time.Duration
	// Now is the clock (time.Now). Randomness is crypto/rand; tests that
	// need it reproducible use testing/cryptotest.SetGlobalRandom.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Organization == "" {
		o.Organization = "ferry"
	}
	if o.RootValidity == 0 {
		o.RootValidity = DefaultRootValidity
	}
	if o.IntermediateValidity == 0 {
		o.IntermediateValidity = DefaultIntermediateValidity
	}
	if o.LeafValidity == 0 {
		o.LeafValidity = DefaultLeafValidity
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

func (o Options) check() error {
	switch {
	case o.RootValidity < 0 || o.IntermediateValidity < 0 || o.LeafValidity < 0:
		return errors.New("negative validity")
	case o.LeafValidity > MaxLeafValidity:
		return fmt.Errorf("leaf validity %v is longer than %v: leaves are short-lived (R24)", o.LeafValidity, MaxLeafValidity)
	case o.IntermediateValidity > o.RootValidity:
		return fmt.Errorf("intermediate validity %v outlives the root's %v", o.IntermediateValidity, o.RootValidity)
	}
	return nil
}

// Realm is one realm's CA chain: an offline root that signs only the
// intermediate, and the online intermediate that signs leaves.
type Realm struct {
	// Name is one of Realms.
	Name string
	// Root is the root CA certificate, the realm's trust anchor.
	Root *x509.Certificate
	// RootKey is nil when the realm was loaded without its root key.
	RootKey crypto.Signer
	// Intermediate is the online CA that signs leaves.
	Intermediate    *x509.Certificate
	IntermediateKey crypto.Signer

	opts Options
}

// NewRealm makes a realm: a new root CA (ECDSA P-256, self-signed, path
// length 1) and an intermediate signed by it (path length 0).
func NewRealm(name string, opts Options) (*Realm, error) {
	if !slices.Contains(Realms, name) {
		return nil, fmt.Errorf("unknown realm %q (want one of %v)", name, Realms)
	}
	opts = opts.withDefaults()
	if err := opts.check(); err != nil {
		return nil, fmt.Errorf("realm %s: %w", name, err)
	}
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("realm %s: generating root key: %w", name, err)
	}
	now := opts.Now()
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               caSubject(opts.Organization, name, "root CA"),
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(opts.RootValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, rootKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("realm %s: making root CA: %w", name, err)
	}
	root, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	r := &Realm{Name: name, Root: root, RootKey: rootKey, opts: opts}
	if err := r.Renew(true); err != nil {
		return nil, err
	}
	return r, nil
}

func caSubject(org, realm, what string) pkix.Name {
	return pkix.Name{
		CommonName:         org + " " + realm + " " + what,
		Organization:       []string{org},
		OrganizationalUnit: []string{realm},
	}
}

// Renew issues a new intermediate certificate from the root (which must be
// loaded). With rekey false it keeps the intermediate's key: every leaf,
// kubeconfig and pinned key hash (kubeadm's --discovery-token-ca-cert-hash)
// stays valid, and only the CA certificate files change. With rekey true
// the intermediate gets a new key, and every leaf must be reissued.
func (r *Realm) Renew(rekey bool) error {
	if r.RootKey == nil {
		return fmt.Errorf("realm %s: renewing the intermediate CA: %w", r.Name, ErrRootKeyNotLoaded)
	}
	now := r.opts.Now()
	if now.After(r.Root.NotAfter) {
		return fmt.Errorf("realm %s: the root CA expired at %s", r.Name, r.Root.NotAfter.UTC().Format(time.RFC3339))
	}
	key := r.IntermediateKey
	if rekey || key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return fmt.Errorf("realm %s: generating intermediate key: %w", r.Name, err)
		}
		key = k
	}
	serial, err := randomSerial()
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               caSubject(r.Root.Subject.Organization[0], r.Name, "CA"),
		NotBefore:             now.Add(-backdate),
		NotAfter:              minTime(now.Add(r.opts.IntermediateValidity), r.Root.NotAfter),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, r.Root, key.Public(), r.RootKey)
	if err != nil {
		return fmt.Errorf("realm %s: making intermediate CA: %w", r.Name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	r.Intermediate, r.IntermediateKey = cert, key
	return nil
}

// CACertPEM is the intermediate followed by the root (the content of ca.crt).
func (r *Realm) CACertPEM() []byte {
	return append(certPEM(r.Intermediate), certPEM(r.Root)...)
}

// RootCertPEM is the root CA certificate (the content of root.crt).
func (r *Realm) RootCertPEM() []byte { return certPEM(r.Root) }

// RootKeyPEM is the root key encrypted with pass (the content of root.key),
// for storage off the node.
func (r *Realm) RootKeyPEM(pass Passphrase) ([]byte, error) {
	if r.RootKey == nil {
		return nil, fmt.Errorf("realm %s: %w", r.Name, ErrRootKeyNotLoaded)
	}
	out, err := EncryptPrivateKey(r.RootKey, pass)
	if err != nil {
		return nil, fmt.Errorf("realm %s: root key: %w", r.Name, err)
	}
	return out, nil
}

// WriteFiles writes the realm into dir (made 0700 if missing), each file
// atomically: root.crt, ca.crt (0644), ca.key (0600) and, when the root
// key is loaded, root.key (0600, encrypted with pass). A realm loaded
// without its root key leaves root.key as it is. It refuses to write over
// a directory that holds another realm's root: a root CA is replaced
// deliberately (delete the directory), never by accident.
func (r *Realm) WriteFiles(dir string, pass Passphrase) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("realm %s: %w", r.Name, err)
	}
	if old, err := fileutil.ReadFile(filepath.Join(dir, RootCertFile), maxPEMFile); err == nil {
		if !bytes.Equal(old, r.RootCertPEM()) {
			return fmt.Errorf("realm %s: %s holds another root CA; refusing to replace it", r.Name, filepath.Join(dir, RootCertFile))
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("realm %s: %w", r.Name, err)
	}
	var rootKey []byte
	if r.RootKey != nil {
		k, err := r.RootKeyPEM(pass)
		if err != nil {
			return err
		}
		rootKey = k
	}
	caKey, err := keyPEM(r.IntermediateKey)
	if err != nil {
		return fmt.Errorf("realm %s: %w", r.Name, err)
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{RootCertFile, r.RootCertPEM(), 0o644},
		{RootKeyFile, rootKey, 0o600},
		// The key before the certificate: a crash between them leaves a
		// renewed (same key) or rekeyed (LoadRealm then says the key and
		// certificate differ) pair, never a certificate without its key.
		{CAKeyFile, caKey, 0o600},
		{CACertFile, r.CACertPEM(), 0o644},
	}
	for _, f := range files {
		if f.data == nil {
			continue
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return fmt.Errorf("realm %s: %w", r.Name, err)
		}
	}
	return nil
}

// LoadRealm reads a realm written by WriteFiles. With a nil pass it loads
// online only (no root key: it can issue leaves but not renew the
// intermediate); with a passphrase it decrypts root.key too. It checks
// that the files form one chain: the intermediate signed by the root, each
// key belonging to its certificate, key files not readable by others.
func LoadRealm(dir string, pass Passphrase, opts Options) (*Realm, error) {
	opts = opts.withDefaults()
	if err := opts.check(); err != nil {
		return nil, fmt.Errorf("realm %s: %w", dir, err)
	}
	fail := func(format string, args ...any) (*Realm, error) {
		return nil, fmt.Errorf("realm %s: "+format, append([]any{dir}, args...)...)
	}
	roots, err := readCerts(filepath.Join(dir, RootCertFile))
	if err != nil {
		return fail("%w", err)
	}
	if len(roots) != 1 {
		return fail("%s: want one certificate, found %d", RootCertFile, len(roots))
	}
	root := roots[0]
	chain, err := readCerts(filepath.Join(dir, CACertFile))
	if err != nil {
		return fail("%w", err)
	}
	if len(chain) != 2 || !chain[1].Equal(root) {
		return fail("%s: want the intermediate CA followed by the root of %s", CACertFile, RootCertFile)
	}
	inter := chain[0]
	if !root.IsCA || root.CheckSignatureFrom(root) != nil {
		return fail("%s: not a self-signed CA certificate", RootCertFile)
	}
	if !inter.IsCA || inter.CheckSignatureFrom(root) != nil {
		return fail("%s: the intermediate is not a CA signed by the root", CACertFile)
	}
	name := ""
	if len(inter.Subject.OrganizationalUnit) == 1 && len(root.Subject.OrganizationalUnit) == 1 &&
		inter.Subject.OrganizationalUnit[0] == root.Subject.OrganizationalUnit[0] && len(root.Subject.Organization) == 1 {
		name = root.Subject.OrganizationalUnit[0]
	}
	if !slices.Contains(Realms, name) {
		return fail("the CA certificates name no known realm (subject OU %q)", root.Subject.OrganizationalUnit)
	}
	interKey, err := readKey(filepath.Join(dir, CAKeyFile), nil)
	if err != nil {
		return fail("%w", err)
	}
	if !publicKeyEqual(interKey, inter) {
		return fail("%s does not belong to the intermediate CA of %s", CAKeyFile, CACertFile)
	}
	r := &Realm{Name: name, Root: root, Intermediate: inter, IntermediateKey: interKey, opts: opts}
	if pass != nil {
		rootKey, err := readKey(filepath.Join(dir, RootKeyFile), pass)
		if err != nil {
			return fail("%w", err)
		}
		if !publicKeyEqual(rootKey, root) {
			return fail("%s does not belong to the root CA of %s", RootKeyFile, RootCertFile)
		}
		r.RootKey = rootKey
	}
	return r, nil
}

// readCerts reads a PEM file of certificates only.
func readCerts(file string) ([]*x509.Certificate, error) {
	data, err := fileutil.ReadFile(file, maxPEMFile)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s: PEM block %q is not a CERTIFICATE", file, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		out = append(out, c)
	}
	if len(bytes.TrimSpace(data)) != 0 {
		return nil, fmt.Errorf("%s: data that is not PEM", file)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no certificate", file)
	}
	return out, nil
}

// readKey reads a private key file that only its owner may read: PKCS#8,
// encrypted (pass given) or not.
func readKey(file string, pass Passphrase) (crypto.Signer, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return nil, err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s: mode %04o lets others read the key; want 0600", file, perm)
	}
	data, err := fileutil.ReadFile(file, maxPEMFile)
	if err != nil {
		return nil, err
	}
	if pass != nil {
		k, err := DecryptPrivateKey(data, pass)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		return k, nil
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%s: want one PEM PRIVATE KEY (PKCS#8)", file)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: unsupported key type %T", file, k)
	}
	return signer, nil
}

func publicKeyEqual(key crypto.Signer, cert *x509.Certificate) bool {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(cert.PublicKey)
}

// randomSerial is a random positive 128-bit serial number.
func randomSerial() (*big.Int, error) {
	b := make([]byte, 16)
	for {
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("making serial number: %w", err)
		}
		if n := new(big.Int).SetBytes(b); n.Sign() > 0 {
			return n, nil
		}
	}
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func keyPEM(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// UnlockRoot loads the realm's root key from file (encrypted with pass):
// a copy kept off the node (R25), for Renew. It checks the key belongs to
// the realm's root certificate.
func (r *Realm) UnlockRoot(file string, pass Passphrase) error {
	key, err := readKey(file, pass)
	if err != nil {
		return fmt.Errorf("realm %s: root key: %w", r.Name, err)
	}
	if !publicKeyEqual(key, r.Root) {
		return fmt.Errorf("realm %s: %s does not belong to the root CA (%s)", r.Name, file, r.Root.Subject.CommonName)
	}
	r.RootKey = key
	return nil
}

// WriteCACert writes ca.crt alone into dir (atomically): after Renew
// without a new key, nothing else of the realm changes, and a root key
// unlocked from elsewhere is not written to the node.
func (r *Realm) WriteCACert(dir string) error {
	cur, err := LoadRealm(dir, nil, r.opts)
	if err != nil {
		return err
	}
	if !cur.Root.Equal(r.Root) || !publicKeyEqual(cur.IntermediateKey, r.Intermediate) {
		return fmt.Errorf("realm %s: %s holds another root or intermediate key: write the whole realm instead", r.Name, dir)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, CACertFile), r.CACertPEM(), 0o644); err != nil {
		return fmt.Errorf("realm %s: %w", r.Name, err)
	}
	return nil
}
