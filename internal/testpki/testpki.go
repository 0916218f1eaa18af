package testpki

import (
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
	"net"
	"os"
	"path/filepath"
	"time"
)

// Validity is how long certificates made here are valid (from an hour ago,
// so that a slightly skewed clock does not matter).
const Validity = 24 * time.Hour

// CA is a certificate authority that can issue leaf certificates.
type CA struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
}

// NewCA makes a self-signed CA named name: ECDSA P-256, valid for a day,
// CA:true with path length 0 (it issues leaves only).
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Ferry test PKI"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(Validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// Leaf is what a leaf certificate says.
type Leaf struct {
	// CommonName is the subject CN: a client's user name.
	CommonName string
	// Organizations are the subject O: a Kubernetes client's groups.
	Organizations []string
	DNSNames      []string
	IPs           []net.IP
	// Server and Client are its extended key usages (serverAuth,
	// clientAuth); a peer certificate (etcd's) has both. A server
	// certificate needs at least one name or address.
	Server, Client bool
}

// Issue makes a leaf certificate and its key, both PEM: a server
// certificate for dnsNames and ips (ExtKeyUsage serverAuth), or, when client
// is true, a client certificate (clientAuth) whose subject is cn. A server
// certificate needs at least one name or address.
func (ca *CA) Issue(cn string, dnsNames []string, ips []net.IP, client bool) (certPEM, keyPEM []byte, err error) {
	return ca.IssueLeaf(Leaf{CommonName: cn, DNSNames: dnsNames, IPs: ips, Server: !client, Client: client})
}

// IssueClient makes a client certificate for user cn in groups orgs.
func (ca *CA) IssueClient(cn string, orgs ...string) (certPEM, keyPEM []byte, err error) {
	return ca.IssueLeaf(Leaf{CommonName: cn, Organizations: orgs, Client: true})
}

// IssueLeaf makes the leaf certificate l describes and its key, both PEM
// (the key PKCS #8), valid for Validity.
func (ca *CA) IssueLeaf(l Leaf) (certPEM, keyPEM []byte, err error) {
	if !l.Server && !l.Client {
		return nil, nil, errors.New("testpki: a leaf is a server, a client or both")
	}
	if l.Server && len(l.DNSNames) == 0 && len(l.IPs) == 0 {
		return nil, nil, errors.New("testpki: a server certificate needs a DNS name or an IP address")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, nil, err
	}
	var usage []x509.ExtKeyUsage
	if l.Server {
		usage = append(usage, x509.ExtKeyUsageServerAuth)
	}
	if l.Client {
		usage = append(usage, x509.ExtKeyUsageClientAuth)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: l.CommonName, Organization: l.Organizations},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(Validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           usage,
		BasicConstraintsValid: true,
		DNSNames:              l.DNSNames,
		IPAddresses:           l.IPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, nil, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), nil
}

// WriteFiles writes certPEM to dir/base.crt (0644) and keyPEM to
// dir/base.key (0600), creating dir, and returns both paths. Tools that
// want a whole chain can be given ca.CertPEM the same way (keyPEM nil
// writes no key and returns an empty keyPath).
func (ca *CA) WriteFiles(dir, base string, certPEM, keyPEM []byte) (certPath, keyPath string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	certPath = filepath.Join(dir, base+".crt")
	if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
		return "", "", err
	}
	if keyPEM == nil {
		return certPath, "", nil
	}
	keyPath = filepath.Join(dir, base+".key")
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}

// Pool returns a certificate pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

func serialNumber() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("testpki: serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}
