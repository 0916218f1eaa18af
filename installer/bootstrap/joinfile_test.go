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
