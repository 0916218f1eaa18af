package certrenew

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	certv1 "k8s.io/api/certificates/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ferry-k8s/ferry/internal/atomicfile"
	"github.com/ferry-k8s/ferry/internal/fileutil"
)

// Ferry's signers.
const (
	SignerKubeletServing = "ferry.dev/kubelet-serving"
	SignerKubeProxy      = "ferry.dev/kube-proxy-client"
)

// KubeProxyUser is the identity of kube-proxy's client certificate.
const KubeProxyUser = "system:kube-proxy"

// maxPEM bounds the certificate and key files read.
const maxPEM = 1 << 20

// Request is one of a node's certificates, to renew through the API.
type Request struct {
	// Signer is SignerKubeletServing or SignerKubeProxy.
	Signer string
	// Node is the node's name (the CSR's name and the policy's key).
	Node string
	// Hostname is the node's DNS name (the kubelet's serving certificate
	// carries it, and only it).
	Hostname string
	// CertFile and KeyFile are the pair in use, replaced on renewal.
	CertFile, KeyFile string
	// CAFile is the cluster's CA: the new certificate must chain to it.
	CAFile string
	// Now is the clock (tests); nil: time.Now.
	Now func() time.Time
}

// subject is what the policy allows a node for a signer.
func subject(signer, node, hostname string) (cn string, orgs, dns []string, usage certv1.KeyUsage, err error) {
	switch signer {
	case SignerKubeletServing:
		return "system:node:" + node, []string{"system:nodes"}, []string{hostname}, certv1.UsageServerAuth, nil
	case SignerKubeProxy:
		return KubeProxyUser, nil, nil, certv1.UsageClientAuth, nil
	}
	return "", nil, nil, "", fmt.Errorf("unknown signer %q", signer)
}

// csrName names the request for a key: one request per key, so that
// creating it again finds the same one.
func csrName(signer, node string, pub *ecdsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	kind := strings.TrimPrefix(signer, "ferry.dev/")
	return fmt.Sprintf("ferry-%s-%s-%s", kind, node, hex.EncodeToString(sum[:])[:12]), nil
}

// Due says whether the certificate in file has a third of its life or
// less left at now.
func Due(file string, now time.Time) (bool, *x509.Certificate, error) {
	cert, err := readCert(file)
	if err != nil {
		return false, nil, err
	}
	life := cert.NotAfter.Sub(cert.NotBefore)
	return cert.NotAfter.Sub(now) <= life/3, cert, nil
}

// Renew renews r's certificate when it is due: it makes the key and the
// request, and once a control plane signed it, installs the new pair. It
// reports whether the pair was replaced (the caller restarts the program
// that reads it); false and no error: not due, or waiting for the
// signature (call again later).
func Renew(ctx context.Context, client kubernetes.Interface, r Request) (bool, error) {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	cn, orgs, dns, usage, err := subject(r.Signer, r.Node, r.Hostname)
	if err != nil {
		return false, err
	}
	nextKey, nextCert := r.KeyFile+".next", r.CertFile+".next"
	// A renewal stopped between its renames: the key is new, the
	// certificate still waits beside it.
	if done, err := finish(nextCert, r.CertFile, r.KeyFile); err != nil || done {
		return done, err
	}
	due, _, err := Due(r.CertFile, now())
	if err != nil || !due {
		return false, err
	}
	key, err := loadOrCreateKey(nextKey)
	if err != nil {
		return false, err
	}
	name, err := csrName(r.Signer, r.Node, &key.PublicKey)
	if err != nil {
		return false, err
	}
	csrs := client.CertificatesV1().CertificateSigningRequests()
	csr, err := csrs.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
			Subject: pkix.Name{CommonName: cn, Organization: orgs}, DNSNames: dns}, key)
		if err != nil {
			return false, fmt.Errorf("certificate request %s: %w", name, err)
		}
		_, err = csrs.Create(ctx, &certv1.CertificateSigningRequest{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"ferry.dev/node": r.Node}},
			Spec: certv1.CertificateSigningRequestSpec{
				Request:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
				SignerName: r.Signer,
				Usages:     []certv1.KeyUsage{certv1.UsageDigitalSignature, usage},
			}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return false, fmt.Errorf("creating certificate request %s: %w", name, err)
		}
		return false, nil // a control plane signs it; the next call picks it up
	}
	if err != nil {
		return false, fmt.Errorf("reading certificate request %s: %w", name, err)
	}
	for _, c := range csr.Status.Conditions {
		if c.Type == certv1.CertificateDenied || c.Type == certv1.CertificateFailed {
			// Start over with another key (another request) next time.
			_ = os.Remove(nextKey)
			return false, fmt.Errorf("certificate request %s %s: %s: %s", name, strings.ToLower(string(c.Type)), c.Reason, c.Message)
		}
	}
	if len(csr.Status.Certificate) == 0 {
		return false, nil
	}
	if err := verify(csr.Status.Certificate, key, r.CAFile, cn, orgs, dns, usage, now()); err != nil {
		_ = os.Remove(nextKey)
		return false, fmt.Errorf("certificate request %s: the issued certificate: %w", name, err)
	}
	mode := fs.FileMode(0o644)
	if fi, err := os.Stat(r.CertFile); err == nil {
		mode = fi.Mode().Perm()
	}
	if err := atomicfile.WriteFile(nextCert, csr.Status.Certificate, mode); err != nil {
		return false, err
	}
	if err := os.Rename(nextKey, r.KeyFile); err != nil {
		return false, err
	}
	if _, err := finish(nextCert, r.CertFile, r.KeyFile); err != nil {
		return false, err
	}
	// The request stays: nodes may not delete requests; the
	// controller-manager's cleaner removes answered ones after an hour.
	return true, nil
}

// finish renames a waiting certificate over the one in use when it
// belongs to the key in use.
func finish(nextCert, certFile, keyFile string) (bool, error) {
	next, err := readCert(nextCert)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	key, err := readKey(keyFile)
	if err != nil {
		return false, err
	}
	if !key.PublicKey.Equal(next.PublicKey) {
		// The key was not renamed yet: the renewal goes on from its
		// request.
		return false, nil
	}
	return true, os.Rename(nextCert, certFile)
}

// verify checks an issued chain: its leaf certifies key, chains to the CA
// in caFile for usage, is valid now, and says exactly what was asked.
func verify(chainPEM []byte, key *ecdsa.PrivateKey, caFile, cn string, orgs, dns []string, usage certv1.KeyUsage, now time.Time) error {
	certs, err := parseCerts(chainPEM)
	if err != nil {
		return err
	}
	leaf := certs[0]
	if !key.PublicKey.Equal(leaf.PublicKey) {
		return errors.New("it certifies another key")
	}
	caPEM, err := fileutil.ReadFile(caFile, maxPEM)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("%s holds no certificate", caFile)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	eku := x509.ExtKeyUsageServerAuth
	if usage == certv1.UsageClientAuth {
		eku = x509.ExtKeyUsageClientAuth
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{eku}}); err != nil {
		return err
	}
	if leaf.Subject.CommonName != cn || !slices.Equal(leaf.Subject.Organization, orgs) || !slices.Equal(leaf.DNSNames, dns) || len(leaf.IPAddresses) > 0 {
		return fmt.Errorf("it names %q %v %v %v, not what was asked", leaf.Subject.CommonName, leaf.Subject.Organization, leaf.DNSNames, leaf.IPAddresses)
	}
	return nil
}

func loadOrCreateKey(file string) (*ecdsa.PrivateKey, error) {
	k, err := readKey(file)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	return k, nil
}

func readKey(file string) (*ecdsa.PrivateKey, error) {
	data, err := fileutil.ReadFile(file, maxPEM)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("%s: no PEM key", file)
	}
	var k any
	switch b.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("%s: a %s, want an ECDSA private key", file, b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: a %T, want an ECDSA private key", file, k)
	}
	return ek, nil
}

func readCert(file string) (*x509.Certificate, error) {
	data, err := fileutil.ReadFile(file, maxPEM)
	if err != nil {
		return nil, err
	}
	certs, err := parseCerts(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return certs[0], nil
}

func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return out, nil
}
