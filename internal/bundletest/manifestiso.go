package bundletest

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/iso"
)

// ManifestISO writes, in dir, the ISO of a ferry-kubernetes bundle that
// holds only its manifest (unsigned), with version, Kubernetes version kube
// and minUpgradeFrom, and returns its file name
// (ferry-kubernetes-VERSION.iso): what a reader of a stored bundle's
// manifest sees (a node's bundles were verified when they were stored).
func ManifestISO(t testing.TB, dir, version, kube, minUpgradeFrom string) string {
	t.Helper()
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := &bundle.Manifest{SchemaVersion: bundle.ManifestSchemaVersion, Product: bundle.Product, Name: "ferry-kubernetes", Version: version,
		KubernetesVersion: kube, MinUpgradeFrom: minUpgradeFrom, Created: created, Expires: created.Add(bundle.DefaultExpiresAfter),
		Files: []bundle.File{{Path: "SHA256SUMS", Size: 10, SHA256: strings.Repeat("c", 64)}}}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "manifest.json")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := iso.Write(&out, []iso.Entry{{Path: bundle.ManifestPath, Source: src, Size: int64(len(data))}}, iso.WriteOptions{VolumeID: "FERRY"}); err != nil {
		t.Fatal(err)
	}
	file := "ferry-kubernetes-" + version + ".iso"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, file), out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}
