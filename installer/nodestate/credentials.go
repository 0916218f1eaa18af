package nodestate

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ferry-k8s/ferry/installer/converge"
	"github.com/ferry-k8s/ferry/installer/desired"
	"github.com/ferry-k8s/ferry/installer/layout"
	"github.com/ferry-k8s/ferry/installer/pki"
)

// CredentialOptions say where the realms are and how to unlock them.
type CredentialOptions struct {
	// Root prefixes every path (tests).
	Root string
	// Passphrase protects new root keys (R25). Required to create realms.
	Passphrase pki.Passphrase
	Now        func() time.Time
	// Organization is the CAs' subject O (the cluster name).
	Organization string
}

// Credentials returns the desired PKI files of a control-plane node: the
// realms (made once; their files as they are on disk afterwards), kubeadm's
// CA files, and every leaf — kept while it is valid for its names and not
// due for rotation (R24), issued anew otherwise. Re-running it on a
// converged node returns the files the node already has.
func Credentials(o CredentialOptions, leaves []desired.Leaf, realmsWanted []string) ([]converge.File, error) {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	var files []converge.File
	realms := map[string]*pki.Realm{}
	for _, name := range realmsWanted {
		dir := filepath.Join(layout.PKIDir, name)
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
		key, err := os.ReadFile(filepath.Join(o.Root, layout.PKIDir, name, pki.CAKeyFile))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if key == nil {
			// A new realm: its key is among the files to write.
			for _, f := range files {
				if f.Path == filepath.Join(layout.PKIDir, name, pki.CAKeyFile) {
					key = f.Content
				}
			}
		}
		if name == pki.RealmKubernetes {
			files = append(files, converge.File{Path: filepath.Join(layout.KubernetesPKI, "ca-signer.crt"), Mode: 0o644, Content: pemOf(r.Intermediate)})
		}
		files = append(files,
			converge.File{Path: filepath.Join(layout.KubernetesPKI, base+".crt"), Mode: 0o644, Content: r.CACertPEM()},
			converge.File{Path: filepath.Join(layout.KubernetesPKI, base+".key"), Mode: 0o600, Content: key, Secret: true})
	}
	for _, l := range leaves {
		r := realms[l.Realm]
		if r == nil {
			return nil, fmt.Errorf("certificate %s: realm %s not loaded", l.Cert, l.Realm)
		}
		certPEM, keyPEM, err := currentLeaf(o.Root, l, r, now())
		if err != nil {
			return nil, err
		}
		if certPEM == nil {
			leaf, err := r.Issue(l.Req)
			if err != nil {
				return nil, err
			}
			certPEM = leaf.CertPEM()
			if keyPEM, err = leaf.KeyPEM(); err != nil {
				return nil, err
			}
		}
		files = append(files,
			converge.File{Path: l.Cert, Mode: 0o644, Content: certPEM},
			converge.File{Path: l.Key, Mode: 0o600, Content: keyPEM, Secret: true})
	}
	return files, nil
}

// loadOrCreateRealm loads a realm's online part from the node, or makes a
// new realm and returns its files to write.
func loadOrCreateRealm(o CredentialOptions, name, dir string, now func() time.Time) (*pki.Realm, []converge.File, error) {
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
func currentLeaf(root string, l desired.Leaf, r *pki.Realm, now time.Time) (certPEM, keyPEM []byte, err error) {
	certPEM, err = os.ReadFile(filepath.Join(root, l.Cert))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = os.ReadFile(filepath.Join(root, l.Key))
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
		!slices.Equal(cert.DNSNames, l.Req.DNSNames) || len(cert.IPAddresses) != len(l.Req.APIServerIPs) ||
		(l.Req.CommonName != "" && cert.Subject.CommonName != l.Req.CommonName) ||
		!bytes.Contains(certPEM, pemOf(r.Intermediate)) {
		return nil, nil, nil
	}
	for i, ip := range l.Req.APIServerIPs {
		if !cert.IPAddresses[i].Equal(ip) {
			return nil, nil, nil
		}
	}
	return certPEM, keyPEM, nil
}

func pemOf(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}
