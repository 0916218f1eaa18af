package bootstrap

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/installer/nodeconfig"
)

func validJoinFile(now time.Time) *JoinFile {
	return &JoinFile{APIVersion: "ferry.dev/v1alpha1", Kind: KindJoinFile, Cluster: "c", Node: "w1", Expires: now.Add(time.Hour),
		ClusterConfig: "apiVersion: ferry.dev/v1alpha1\n", Keyring: "-----BEGIN PGP PUBLIC KEY BLOCK-----", ContentCA: "-----BEGIN CERTIFICATE-----",
		ContentServices: []string{"cp1.example.com:5443"}, Bundle: "ferry-kubernetes-1.0.0.iso", BundleSHA256: strings.Repeat("ab", 32), BundleSize: 1 << 20,
		Discovery: "apiVersion: v1\n", Files: []JoinFileEntry{{Path: nodeconfig.KubeletServingKey, Mode: 0o600, Content: []byte("k")}}}
}

func TestParseJoinFile(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		edit func(j *JoinFile)
		want []string
	}{
		{"valid", func(*JoinFile) {}, nil},
		{"expired", func(j *JoinFile) { j.Expires = now.Add(-time.Minute) }, []string{"expires: the join file expired at 2026-11-21T11:59:00Z"}},
		{"kind", func(j *JoinFile) { j.Kind = "Cluster" }, []string{`apiVersion/kind: want ferry.dev/v1alpha1 JoinFile, got "ferry.dev/v1alpha1" "Cluster"`}},
		{"missing", func(j *JoinFile) { j.Discovery, j.ContentServices = "", nil }, []string{"discovery: missing", "contentServices: none"}},
		{"service", func(j *JoinFile) { j.ContentServices = []string{"cp1"} }, []string{"contentServices[0]: address cp1: missing port"}},
		{"bundle traversal", func(j *JoinFile) { j.Bundle = "../../etc/passwd.iso" }, []string{`bundle: want a file name ending in .iso, got "../../etc/passwd.iso"`}},
		{"digest", func(j *JoinFile) { j.BundleSHA256 = "ABC" }, []string{"bundleSHA256: want 64 lowercase hex digits"}},
		{"file elsewhere", func(j *JoinFile) { j.Files[0].Path = "/etc/kubernetes/pki/ca.key" }, []string{`files[0].path: "/etc/kubernetes/pki/ca.key" is not a file a join file may carry`}},
		{"file mode", func(j *JoinFile) { j.Files[0].Mode = 0o4755 }, []string{"files[0].mode: 4755: want 0644 or stricter"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := validJoinFile(now)
			tc.edit(j)
			data, _ := j.Marshal()
			got, err := ParseJoinFile(bytes.NewReader(data), "w1.join", now)
			if tc.want == nil {
				if err != nil || got.Node != "w1" || got.Files[0].Mode != 0o600 {
					t.Fatalf("valid join file: %v %+v", err, got)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) || !strings.Contains(err.Error(), "join file w1.join") {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	if _, err := ParseJoinFile(strings.NewReader(`{"kind": "JoinFile", "extra": 1}`), "x", now); err == nil || !strings.Contains(err.Error(), `unknown field "extra"`) {
		t.Errorf("unknown field: %v", err)
	}
	big := strings.Repeat(" ", MaxJoinFileSize+1)
	if _, err := ParseJoinFile(strings.NewReader(big), "x", now); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized: %v", err)
	}
}

func FuzzParseJoinFile(f *testing.F) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	data, _ := validJoinFile(now).Marshal()
	f.Add(data)
	f.Add([]byte(`{"files":[{"path":"/x","mode":-1,"content":"!!"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		j, err := ParseJoinFile(bytes.NewReader(b), "fuzz", now)
		if err != nil {
			return
		}
		if j.Bundle == "" || strings.Contains(j.Bundle, "/") || now.After(j.Expires) {
			t.Fatalf("accepted %+v", j)
		}
		for _, e := range j.Files {
			if e.Mode&^0o644 != 0 {
				t.Fatalf("accepted mode %o", e.Mode)
			}
		}
	})
}

// A control-plane join file's secrets open only with its certificate key,
// only for its node, and only into the files a control plane shares.
func TestJoinFileSecrets(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	j := validJoinFile(now)
	key := bytes.Repeat([]byte{7}, CertificateKeySize)
	entries := []JoinFileEntry{{Path: EncryptionKey, Mode: 0o600, Content: []byte("k")}}
	if err := j.seal(key, entries); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(j.Secrets, []byte(EncryptionKey)) {
		t.Fatal("sealed secrets show their paths")
	}
	got, err := j.OpenSecrets(strings.Repeat("07", CertificateKeySize))
	if err != nil || len(got) != 1 || got[0].Path != EncryptionKey || string(got[0].Content) != "k" {
		t.Fatalf("open: %v %+v", err, got)
	}
	if _, err := j.OpenSecrets(strings.Repeat("08", CertificateKeySize)); err == nil || !strings.Contains(err.Error(), "do not open with this certificate key") {
		t.Errorf("wrong key: %v", err)
	}
	if _, err := j.OpenSecrets("07"); err == nil || !strings.Contains(err.Error(), "want 32") {
		t.Errorf("short key: %v", err)
	}
	other := *j
	other.Node = "w2"
	if _, err := other.OpenSecrets(strings.Repeat("07", CertificateKeySize)); err == nil {
		t.Error("secrets sealed for w1 open for w2")
	}
	j.seal(key, []JoinFileEntry{{Path: "/etc/shadow", Mode: 0o600, Content: []byte("x")}})
	if _, err := j.OpenSecrets(strings.Repeat("07", CertificateKeySize)); err == nil || !strings.Contains(err.Error(), `"/etc/shadow" is not a file a control-plane join shares`) {
		t.Errorf("a path outside the shared files: %v", err)
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
	e := []JoinFileEntry{{Path: EncryptionKey, Mode: 0o600, Content: []byte("k1")}}
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
