package bootstrap

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/installer/joinfile"
	"github.com/ferry-k8s/ferry/installer/layout"
	"github.com/ferry-k8s/ferry/installer/nodeconfig"
)

var testJoinKey = bytes.Repeat([]byte{7}, joinfile.CertificateKeySize)

// signedJoinFile is a worker's join file as token create writes it,
// signed with key.
func signedJoinFile(t *testing.T, now time.Time, key []byte) []byte {
	t.Helper()
	j := &joinfile.File{APIVersion: joinfile.APIVersion, Kind: joinfile.Kind, Cluster: "c", Node: "w1", Expires: now.Add(time.Hour),
		ClusterConfig: "apiVersion: ferry.dev/v1alpha1\n", Keyring: "-----BEGIN PGP PUBLIC KEY BLOCK-----", ContentCA: "-----BEGIN CERTIFICATE-----",
		ContentServices: []string{"cp1.example.com:5443"}, Bundle: "ferry-kubernetes-1.0.0.iso", BundleSHA256: strings.Repeat("ab", 32), BundleSize: 1 << 20,
		Discovery: "apiVersion: v1\n", Files: []joinfile.Entry{{Path: nodeconfig.KubeletServingKey, Mode: 0o600, Content: []byte("k")}}}
	if err := j.Sign(key); err != nil {
		t.Fatal(err)
	}
	data, err := j.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return append(data, '\n')
}

// installer join without the file's key, or with another, stops before
// the node changes: the error names the flag.
func TestJoinNeedsTheKey(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	p := filepath.Join(t.TempDir(), "w1.join")
	if err := os.WriteFile(p, signedJoinFile(t, now, testJoinKey), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ key, want string }{
		{"", "join file " + p + ": give --certificate-key, the key installer token create printed with the file"},
		{"07", "--certificate-key: the certificate key has 1 bytes, want 32"},
		{strings.Repeat("08", 32), "the file was altered, or the certificate key is not the one installer token create printed with it"},
	} {
		root := t.TempDir()
		_, err := Run(context.Background(), Options{JoinFile: p, CertificateKey: tc.key, Root: root, Now: func() time.Time { return now }})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("key %q: want an error with %q, got %v", tc.key, tc.want, err)
		}
		if entries, _ := os.ReadDir(root); len(entries) != 0 {
			t.Errorf("key %q: the node changed: %v", tc.key, entries)
		}
	}
}

func TestNodeMode(t *testing.T) {
	root := t.TempDir()
	if _, err := nodeMode(root, false, false); err == nil || !strings.Contains(err.Error(), "neither bootstrapped nor joined") {
		t.Errorf("apply on a new node: %v", err)
	}
	if m, err := nodeMode(root, true, true); err != nil || m != "join" {
		t.Errorf("join: %q %v", m, err)
	}
	if err := recordMode(root, "join"); err != nil {
		t.Fatal(err)
	}
	if m, err := nodeMode(root, false, false); err != nil || m != "join" {
		t.Errorf("apply on a joined node: %q %v", m, err)
	}
	if _, err := nodeMode(root, true, false); err == nil || !strings.Contains(err.Error(), "made by installer join: it cannot be made again by installer bootstrap") {
		t.Errorf("bootstrap on a joined node: %v", err)
	}
}

func TestInstallSecrets(t *testing.T) {
	root := t.TempDir()
	e := []joinfile.Entry{{Path: layout.EncryptionKey, Mode: 0o600, Content: []byte("k1")}}
	if n, err := installSecrets(root, e); err != nil || n != 1 {
		t.Fatalf("first: %d %v", n, err)
	}
	if n, err := installSecrets(root, e); err != nil || n != 0 {
		t.Errorf("again: %d %v", n, err)
	}
	e[0].Content = []byte("k2")
	if _, err := installSecrets(root, e); err == nil || !strings.Contains(err.Error(), "another cluster's PKI") {
		t.Errorf("a different key on the node: %v", err)
	}
}
