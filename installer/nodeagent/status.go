package nodeagent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ferry-k8s/ferry/bundle/validity"
	"github.com/ferry-k8s/ferry/installer/content"
	"github.com/ferry-k8s/ferry/installer/converge"
	"github.com/ferry-k8s/ferry/installer/desired"
	"github.com/ferry-k8s/ferry/installer/layout"
)

// Status is what `installer status` shows of a node.
type Status struct {
	// Packages maps the distribution's packages to their installed
	// version-release ("" when missing).
	Packages map[string]string `json:"packages"`
	// Bundles are the imported bundle ISOs, name and version from their
	// manifests (not verified here: `installer verify` does that).
	Bundles []StatusBundle `json:"bundles"`
	// LastApply is the journal's last record, and Failed says whether the
	// last run stopped at a failed step.
	LastApply *converge.Record `json:"lastApply,omitempty"`
	Failed    bool             `json:"failed"`
	// Initialized: kubeadm init has run on this node.
	Initialized bool `json:"initialized"`
	// Expiries are the dates on this node at which something ends, the
	// nearest first: the imported bundles' validity and every certificate
	// of Ferry's and kubeadm's PKI (docs/validity.md lists what renews
	// each).
	Expiries []Expiry `json:"expiries"`
}

// Expiry is one thing on the node that ends at a date.
type Expiry struct {
	// Kind is "bundle", "ca" or "certificate".
	Kind     string    `json:"kind"`
	Path     string    `json:"path"`
	NotAfter time.Time `json:"notAfter"`
	// Renewal says what renews it.
	Renewal string `json:"renewal"`
}

// StatusBundle is one imported bundle.
type StatusBundle struct {
	Path              string `json:"path"`
	Name              string `json:"name"`
	Version           string `json:"version"`
	KubernetesVersion string `json:"kubernetesVersion,omitempty"`
	// ValidUntil is the manifest's expires, or the expiry of the validity
	// statement beside the ISO (read, not verified, like the rest).
	ValidUntil time.Time `json:"validUntil,omitzero"`
}

// ReadStatus reads the node's status; it changes nothing.
func ReadStatus(ctx context.Context, root string) (*Status, error) {
	if root == "" {
		root = "/"
	}
	st := &Status{Packages: map[string]string{}, Bundles: []StatusBundle{}, Expiries: []Expiry{}}
	for _, p := range desired.NodePackages {
		st.Packages[p] = ""
	}
	if out, err := exec.CommandContext(ctx, "rpm", "--root", root, "-q", "--qf", "%{NAME} %{VERSION}-%{RELEASE}\n", "-a").Output(); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 2 {
				if _, ok := st.Packages[f[0]]; ok {
					st.Packages[f[0]] = f[1]
				}
			}
		}
	}
	isos, _ := filepath.Glob(filepath.Join(root, layout.BundlesDir, "*.iso"))
	for _, iso := range isos {
		b := StatusBundle{Path: strings.TrimPrefix(iso, filepath.Clean(root))}
		if m, err := content.ReadManifestUnverified(iso); err == nil {
			b.Name, b.Version, b.KubernetesVersion, b.ValidUntil = m.Name, m.Version, m.KubernetesVersion, m.Expires
			if data, err := validity.ReadFile(validity.Beside(iso)); err == nil {
				if v, err := validity.ParseUnverified(data); err == nil {
					b.ValidUntil = v.Expires
				}
			}
			st.Expiries = append(st.Expiries, Expiry{Kind: "bundle", Path: b.Path, NotAfter: b.ValidUntil,
				Renewal: "a newer bundle (installer upgrade) or a validity statement (builder extend, installer bundle extend); installed content is served after it"})
		}
		st.Bundles = append(st.Bundles, b)
	}
	st.Expiries = append(st.Expiries, certExpiries(root, layout.PKIDir, layout.KubernetesPKI)...)
	sort.SliceStable(st.Expiries, func(i, j int) bool { return st.Expiries[i].NotAfter.Before(st.Expiries[j].NotAfter) })
	if data, err := os.ReadFile(filepath.Join(root, layout.Journal)); err == nil {
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		var r converge.Record
		if len(lines) > 0 && json.Unmarshal([]byte(lines[len(lines)-1]), &r) == nil {
			st.LastApply = &r
			st.Failed = r.Status == "failed"
		}
	}
	_, err := os.Stat(filepath.Join(root, layout.AdminConf))
	st.Initialized = err == nil
	return st, nil
}

// certExpiries lists the certificates (*.crt, PEM) under dirs of root.
func certExpiries(root string, dirs ...string) []Expiry {
	var out []Expiry
	for _, d := range dirs {
		_ = filepath.WalkDir(filepath.Join(root, d), func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() || !strings.HasSuffix(p, ".crt") {
				return nil
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return nil
			}
			blk, _ := pem.Decode(data)
			if blk == nil || blk.Type != "CERTIFICATE" {
				return nil
			}
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil
			}
			ex := Expiry{Kind: "certificate", Path: strings.TrimPrefix(p, filepath.Clean(root)), NotAfter: c.NotAfter.UTC(),
				Renewal: "installer apply, hourly by ferry-node (control planes); workers through the CSR API"}
			if c.IsCA {
				ex.Kind, ex.Renewal = "ca", "installer pki renew-ca with the offline root keys, on every control plane (from month 8 of 12)"
			}
			out = append(out, ex)
			return nil
		})
	}
	return out
}
