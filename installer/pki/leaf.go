package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/ferry-k8s/ferry/internal/atomicfile"
)

// Usage is what a leaf certificate is for.
type Usage int

// Usages; a peer (etcd) certificate has both.
const (
	ServerAuth Usage = 1 << iota
	ClientAuth
)

// LeafRequest asks for a leaf certificate.
type LeafRequest struct {
	// CommonName is the subject CN: a client's user name (Kubernetes and
	// etcd take the user from it). Default for a server: the first DNS name.
	CommonName string
	// Organizations are the subject O: a Kubernetes client's groups.
	Organizations []string
	// DNSNames are the subject alternative names: DNS names only, no IP
	// addresses (R29), no wildcards (a certificate is one host's, R23).
	// A server certificate needs at least one.
	DNSNames []string
	// APIServerIPs are R29's two exceptions to "no IP SANs", for the API
	// server's certificate only: the kubernetes service address (virtual;
	// client-go's in-cluster configuration dials KUBERNETES_SERVICE_HOST, an
	// IP, and checks the certificate against it) and the node's own API
	// address (kubeadm talks to its local API server only by its advertise
	// address, an IP: kubeconfig.PointKubeConfigToLocalAPIEndpoint). Every
	// endpoint Ferry configures is a name. Only a server certificate may
	// carry them.
	APIServerIPs []net.IP
	// Usage: ServerAuth, ClientAuth or both.
	Usage Usage
	// Validity is the lifetime (default Options.LeafValidity, at most
	// MaxLeafValidity); it never outlasts the intermediate CA.
	Validity time.Duration
	// PublicKey, when set, is certified instead of a new key's: the key
	// of a certificate signing request, whose private half stays with the
	// requester (the Leaf has no Key then). ECDSA P-256 or P-384 only.
	PublicKey crypto.PublicKey
}

// Leaf is an issued certificate with its key.
type Leaf struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	// Intermediate is the CA that signed it; CertPEM appends it so that a
	// peer trusting only the root can build the chain.
	Intermediate *x509.Certificate
}

// IssueServer issues a server certificate for dnsNames (CN the first).
func (r *Realm) IssueServer(dnsNames ...string) (*Leaf, error) {
	return r.Issue(LeafRequest{DNSNames: dnsNames, Usage: ServerAuth})
}

// IssueClient issues a client certificate for user cn in groups orgs.
func (r *Realm) IssueClient(cn string, orgs ...string) (*Leaf, error) {
	return r.Issue(LeafRequest{CommonName: cn, Organizations: orgs, Usage: ClientAuth})
}

// IssuePeer issues a certificate that is both server and client, such as
// an etcd member's peer certificate.
func (r *Realm) IssuePeer(cn string, dnsNames ...string) (*Leaf, error) {
	return r.Issue(LeafRequest{CommonName: cn, DNSNames: dnsNames, Usage: ServerAuth | ClientAuth})
}

// Issue issues a leaf certificate from the intermediate CA: a new ECDSA
// P-256 key, a random 128-bit serial, key usage digitalSignature and the
// extended key usages of req.Usage.
func (r *Realm) Issue(req LeafRequest) (*Leaf, error) {
	fail := func(format string, args ...any) (*Leaf, error) {
		return nil, fmt.Errorf("realm %s: issuing %s: "+format, append([]any{r.Name, req.describe()}, args...)...)
	}
	if r.Intermediate == nil || r.IntermediateKey == nil {
		return fail("the intermediate CA is not loaded")
	}
	if req.Usage == 0 || req.Usage&^(ServerAuth|ClientAuth) != 0 {
		return fail("usage must be ServerAuth, ClientAuth or both")
	}
	if err := checkDNSNames(req.DNSNames); err != nil {
		return fail("%w", err)
	}
	if req.Usage&ServerAuth != 0 && len(req.DNSNames) == 0 {
		return fail("a server certificate needs a DNS name")
	}
	if len(req.APIServerIPs) > 0 && req.Usage&ServerAuth == 0 {
		return fail("IP addresses go only in an API server certificate")
	}
	for _, ip := range req.APIServerIPs {
		if ip == nil || ip.IsLoopback() || ip.IsUnspecified() {
			return fail("%v is not an address clients dial", ip)
		}
	}
	cn := req.CommonName
	if cn == "" && len(req.DNSNames) > 0 {
		cn = req.DNSNames[0]
	}
	if err := checkSubjectName("common name", cn); err != nil {
		return fail("%w", err)
	}
	for _, o := range req.Organizations {
		if err := checkSubjectName("organization", o); err != nil {
			return fail("%w", err)
		}
	}
	validity := req.Validity
	if validity == 0 {
		validity = r.opts.LeafValidity
	}
	if validity < 0 || validity > MaxLeafValidity {
		return fail("validity %v: want up to %v (R24: short-lived)", validity, MaxLeafValidity)
	}
	now := r.opts.Now()
	if now.Before(r.Intermediate.NotBefore) || now.After(r.Intermediate.NotAfter) {
		return fail("the intermediate CA is not valid now (%s to %s): renew it",
			r.Intermediate.NotBefore.UTC().Format(time.RFC3339), r.Intermediate.NotAfter.UTC().Format(time.RFC3339))
	}
	var key *ecdsa.PrivateKey
	pub := req.PublicKey
	if pub == nil {
		var err error
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return fail("generating key: %w", err)
		}
		pub = key.Public()
	} else if k, ok := pub.(*ecdsa.PublicKey); !ok || (k.Curve != elliptic.P256() && k.Curve != elliptic.P384()) {
		return fail("the public key is a %T: want ECDSA P-256 or P-384", pub)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	var eku []x509.ExtKeyUsage
	if req.Usage&ServerAuth != 0 {
		eku = append(eku, x509.ExtKeyUsageServerAuth)
	}
	if req.Usage&ClientAuth != 0 {
		eku = append(eku, x509.ExtKeyUsageClientAuth)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: slices.Clone(req.Organizations)},
		DNSNames:              slices.Clone(req.DNSNames),
		IPAddresses:           slices.Clone(req.APIServerIPs),
		NotBefore:             now.Add(-backdate),
		NotAfter:              minTime(now.Add(validity), r.Intermediate.NotAfter),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           eku,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, r.Intermediate, pub, r.IntermediateKey)
	if err != nil {
		return fail("%w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Leaf{Cert: cert, Key: key, Intermediate: r.Intermediate}, nil
}

func (req LeafRequest) describe() string {
	switch {
	case req.CommonName != "":
		return fmt.Sprintf("certificate %q", req.CommonName)
	case len(req.DNSNames) > 0:
		return fmt.Sprintf("certificate %q", req.DNSNames[0])
	}
	return "certificate"
}

// CertPEM is the leaf followed by its intermediate CA.
func (l *Leaf) CertPEM() []byte {
	return append(certPEM(l.Cert), certPEM(l.Intermediate)...)
}

// KeyPEM is the key, PKCS#8 PEM ("PRIVATE KEY"), unencrypted.
func (l *Leaf) KeyPEM() ([]byte, error) {
	if l.Key == nil {
		return nil, errors.New("the leaf certifies a requester's key: its private key is not here")
	}
	return keyPEM(l.Key)
}

// WriteFiles writes the key (0600) then the certificate chain (0644), each
// atomically.
func (l *Leaf) WriteFiles(certFile, keyFile string) error {
	k, err := l.KeyPEM()
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(keyFile, k, 0o600); err != nil {
		return err
	}
	return atomicfile.WriteFile(certFile, l.CertPEM(), 0o644)
}

// checkDNSNames: each a DNS name, not an IP address, not a wildcard, once.
func checkDNSNames(names []string) error {
	for i, n := range names {
		if _, err := netip.ParseAddr(strings.Trim(n, "[]")); err == nil {
			return fmt.Errorf("%q is an IP address: certificates carry DNS names only (R29)", n)
		}
		if strings.Contains(n, "*") {
			return fmt.Errorf("%q: no wildcard names (a certificate is one host's, R23)", n)
		}
		if !validDNSName(n) {
			return fmt.Errorf("%q is not a DNS name", n)
		}
		if slices.Index(names, n) < i {
			return fmt.Errorf("%q is listed twice", n)
		}
	}
	return nil
}

// validDNSName: labels of letters, digits and '-' (not at either end),
// at most 63 each and 253 in all, no trailing dot.
func validDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// checkSubjectName: non-empty, at most 64 characters (X.509's upper
// bound), no control characters.
func checkSubjectName(what, s string) error {
	if s == "" || len(s) > 64 || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("%s %q: want 1–64 characters, no control characters", what, s)
	}
	return nil
}
