package certrenew

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ferry-k8s/ferry/installer/pki"
)

// Signer approves and signs the renewal requests of the nodes it knows,
// and denies every other request for Ferry's signers.
type Signer struct {
	// Realm loads the cluster's realm with its online CA, once, when a
	// request is to be signed (most rounds have none).
	Realm func() (*pki.Realm, error)
	// Nodes maps each node allowed to renew to its hostname (the workers
	// of cluster.yaml).
	Nodes map[string]string
	Log   *slog.Logger
}

// Result counts what a Process call did.
type Result struct{ Signed, Denied int }

// Process handles every request for Ferry's signers that is not answered
// yet: a request the policy allows is approved and signed, any other is
// denied with the reason.
func (s *Signer) Process(ctx context.Context, client kubernetes.Interface) (Result, error) {
	var res Result
	var pending []certv1.CertificateSigningRequest
	for _, signer := range []string{SignerKubeletServing, SignerKubeProxy} {
		list, err := client.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{FieldSelector: "spec.signerName=" + signer})
		if err != nil {
			return res, fmt.Errorf("listing certificate requests for %s: %w", signer, err)
		}
		for _, csr := range list.Items {
			if !answered(&csr) {
				pending = append(pending, csr)
			}
		}
	}
	var realm *pki.Realm
	var errs []error
	for i := range pending {
		csr := &pending[i]
		leaf, reason := s.check(csr)
		if reason != "" {
			if err := s.answer(ctx, client, csr, certv1.CertificateDenied, "FerryPolicy", reason); err != nil {
				errs = append(errs, err)
				continue
			}
			s.log().Warn("certificate request denied", "name", csr.Name, "requester", csr.Spec.Username, "reason", reason)
			res.Denied++
			continue
		}
		if realm == nil {
			r, err := s.Realm()
			if err != nil {
				return res, errors.Join(append(errs, fmt.Errorf("the signing CA: %w", err))...)
			}
			realm = r
		}
		if err := s.sign(ctx, client, realm, csr, leaf); err != nil {
			errs = append(errs, err)
			continue
		}
		s.log().Info("certificate request signed", "name", csr.Name, "requester", csr.Spec.Username, "signer", csr.Spec.SignerName)
		res.Signed++
	}
	return res, errors.Join(errs...)
}

func (s *Signer) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// answered: denied, failed, or issued.
func answered(csr *certv1.CertificateSigningRequest) bool {
	if len(csr.Status.Certificate) > 0 {
		return true
	}
	return slices.ContainsFunc(csr.Status.Conditions, func(c certv1.CertificateSigningRequestCondition) bool {
		return c.Type == certv1.CertificateDenied || c.Type == certv1.CertificateFailed
	})
}

// check applies the policy: the requester is a known node, and the
// request asks for exactly what the node holds already.
func (s *Signer) check(csr *certv1.CertificateSigningRequest) (pki.LeafRequest, string) {
	node, ok := strings.CutPrefix(csr.Spec.Username, "system:node:")
	if !ok || !slices.Contains(csr.Spec.Groups, "system:nodes") {
		return pki.LeafRequest{}, fmt.Sprintf("requested by %s, not by a node", csr.Spec.Username)
	}
	hostname, ok := s.Nodes[node]
	if !ok {
		return pki.LeafRequest{}, fmt.Sprintf("node %s is not a worker of the cluster's configuration", node)
	}
	cn, orgs, dns, usage, err := subject(csr.Spec.SignerName, node, hostname)
	if err != nil {
		return pki.LeafRequest{}, err.Error()
	}
	b, _ := pem.Decode(csr.Spec.Request)
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		return pki.LeafRequest{}, "the request holds no PEM CERTIFICATE REQUEST"
	}
	req, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return pki.LeafRequest{}, fmt.Sprintf("the request does not parse: %v", err)
	}
	if err := req.CheckSignature(); err != nil {
		return pki.LeafRequest{}, fmt.Sprintf("the request's signature: %v", err)
	}
	if req.Subject.CommonName != cn || !slices.Equal(req.Subject.Organization, orgs) {
		return pki.LeafRequest{}, fmt.Sprintf("subject CN=%q O=%v: node %s may ask for CN=%q O=%v only", req.Subject.CommonName, req.Subject.Organization, node, cn, orgs)
	}
	if !slices.Equal(req.DNSNames, dns) || len(req.IPAddresses) > 0 || len(req.EmailAddresses) > 0 || len(req.URIs) > 0 {
		return pki.LeafRequest{}, fmt.Sprintf("names %v %v %v %v: node %s may ask for DNS %v only (no IP addresses, R29)", req.DNSNames, req.IPAddresses, req.EmailAddresses, req.URIs, node, dns)
	}
	for _, u := range csr.Spec.Usages {
		if u != usage && u != certv1.UsageDigitalSignature && u != certv1.UsageKeyEncipherment {
			return pki.LeafRequest{}, fmt.Sprintf("usage %q: %s certificates are for %q", u, csr.Spec.SignerName, usage)
		}
	}
	if !slices.Contains(csr.Spec.Usages, usage) {
		return pki.LeafRequest{}, fmt.Sprintf("usages %v lack %q", csr.Spec.Usages, usage)
	}
	lr := pki.LeafRequest{CommonName: cn, Organizations: orgs, DNSNames: dns, Usage: pki.ClientAuth, PublicKey: req.PublicKey}
	if usage == certv1.UsageServerAuth {
		lr.Usage = pki.ServerAuth
	}
	if e := csr.Spec.ExpirationSeconds; e != nil {
		lr.Validity = time.Duration(*e) * time.Second
	}
	return lr, ""
}

// sign approves the request and writes the certificate (leaf and CA).
func (s *Signer) sign(ctx context.Context, client kubernetes.Interface, realm *pki.Realm, csr *certv1.CertificateSigningRequest, lr pki.LeafRequest) error {
	if lr.Validity > 0 && lr.Validity < 10*time.Minute {
		lr.Validity = 10 * time.Minute // the API's own floor for expirationSeconds
	}
	leaf, err := realm.Issue(lr)
	if err != nil {
		return fmt.Errorf("certificate request %s: %w", csr.Name, err)
	}
	if !slices.ContainsFunc(csr.Status.Conditions, func(c certv1.CertificateSigningRequestCondition) bool { return c.Type == certv1.CertificateApproved }) {
		if err := s.answer(ctx, client, csr, certv1.CertificateApproved, "FerryPolicy", "a node of the cluster renews the certificate it holds"); err != nil {
			return err
		}
		var err error
		if csr, err = client.CertificatesV1().CertificateSigningRequests().Get(ctx, csr.Name, metav1.GetOptions{}); err != nil {
			return fmt.Errorf("certificate request %s: %w", csr.Name, err)
		}
	}
	csr.Status.Certificate = leaf.CertPEM()
	if _, err := client.CertificatesV1().CertificateSigningRequests().UpdateStatus(ctx, csr, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("certificate request %s: writing the certificate: %w", csr.Name, err)
	}
	return nil
}

func (s *Signer) answer(ctx context.Context, client kubernetes.Interface, csr *certv1.CertificateSigningRequest, typ certv1.RequestConditionType, reason, message string) error {
	c := csr.DeepCopy()
	c.Status.Conditions = append(c.Status.Conditions, certv1.CertificateSigningRequestCondition{
		Type: typ, Status: corev1.ConditionTrue, Reason: reason, Message: message, LastUpdateTime: metav1.Now()})
	if _, err := client.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, c.Name, c, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("certificate request %s: %s: %w", c.Name, strings.ToLower(string(typ)), err)
	}
	return nil
}
