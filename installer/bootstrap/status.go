package bootstrap

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/ferry-k8s/ferry/installer/content"
	"github.com/ferry-k8s/ferry/installer/converge"
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
}

// StatusBundle is one imported bundle.
type StatusBundle struct {
	Path              string `json:"path"`
	Name              string `json:"name"`
	Version           string `json:"version"`
	KubernetesVersion string `json:"kubernetesVersion,omitempty"`
}

// ReadStatus reads the node's status; it changes nothing.
func ReadStatus(ctx context.Context, root string) (*Status, error) {
	if root == "" {
		root = "/"
	}
	st := &Status{Packages: map[string]string{}}
	for _, p := range NodePackages {
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
	isos, _ := filepath.Glob(filepath.Join(root, BundlesDir, "*.iso"))
	for _, iso := range isos {
		b := StatusBundle{Path: strings.TrimPrefix(iso, filepath.Clean(root))}
		if m, err := content.ReadManifestUnverified(iso); err == nil {
			b.Name, b.Version, b.KubernetesVersion = m.Name, m.Version, m.KubernetesVersion
		}
		st.Bundles = append(st.Bundles, b)
	}
	if data, err := os.ReadFile(filepath.Join(root, StateDir, "journal.jsonl")); err == nil {
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		var r converge.Record
		if len(lines) > 0 && json.Unmarshal([]byte(lines[len(lines)-1]), &r) == nil {
			st.LastApply = &r
			st.Failed = r.Status == "failed"
		}
	}
	_, err := os.Stat(filepath.Join(root, "/etc/kubernetes/admin.conf"))
	st.Initialized = err == nil
	return st, nil
}
