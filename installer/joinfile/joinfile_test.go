package joinfile

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/installer/nodeconfig"
	"github.com/ferry-k8s/ferry/installer/pki"
)

func validFile(now time.Time) *File {
	return &File{APIVersion: "ferry.dev/v1alpha1", Kind: Kind, Cluster: "c", Node: "w1", Expires: now.Add(time.Hour),
		ClusterConfig: "apiVersion: ferry.dev/v1alpha1\n", Keyring: "-----BEGIN PGP PUBLIC KEY BLOCK-----", ContentCA: "-----BEGIN CERTIFICATE-----",
		ContentServices: []string{"cp1.example.com:5443"}, Bundle: "ferry-kubernetes-1.0.0.iso", BundleSHA256: strings.Repeat("ab", 32), BundleSize: 1 << 20,
		Discovery: "apiVersion: v1\n", Files: []Entry{{Path: nodeconfig.KubeletServingKey, Mode: 0o600, Content: []byte("k")}}}
}

var testJoinKey = bytes.Repeat([]byte{7}, CertificateKeySize)

// signed is j as token create writes it: signed with key.
func signed(t testing.TB, j *File, key []byte) []byte {
	t.Helper()
	if err := j.Sign(key); err != nil {
		t.Fatal(err)
	}
	data, err := j.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return append(data, '\n')
}

// controlPlaneFile is a genuine control-plane join file: the CAs
// sealed, no files of its own (the same bytes each time: a fixed nonce).
func controlPlaneFile(t testing.TB, now time.Time, key []byte) []byte {
	t.Helper()
	j := validFile(now)
	j.Node, j.Files = "cp2", nil
	if err := j.sealWithNonce(key, []Entry{{Path: filepath.Join(pkiDir, pki.RealmKubernetes, pki.CAKeyFile), Mode: 0o600, Content: []byte("the cluster's CA key")}}, make([]byte, 12)); err != nil {
		t.Fatal(err)
	}
	return signed(t, j, key)
}

func TestParse(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		edit func(j *File)
		want []string
	}{
		{"valid", func(*File) {}, nil},
		{"expired", func(j *File) { j.Expires = now.Add(-time.Minute) }, []string{"expires: the join file expired at 2026-11-21T11:59:00Z"}},
		{"kind", func(j *File) { j.Kind = "Cluster" }, []string{`apiVersion/kind: want ferry.dev/v1alpha1 JoinFile, got "ferry.dev/v1alpha1" "Cluster"`}},
		{"missing", func(j *File) { j.Discovery, j.ContentServices = "", nil }, []string{"discovery: missing", "contentServices: none"}},
		{"service", func(j *File) { j.ContentServices = []string{"cp1"} }, []string{"contentServices[0]: address cp1: missing port"}},
		{"bundle traversal", func(j *File) { j.Bundle = "../../etc/passwd.iso" }, []string{`bundle: want a file name ending in .iso, got "../../etc/passwd.iso"`}},
		{"digest", func(j *File) { j.BundleSHA256 = "ABC" }, []string{"bundleSHA256: want 64 lowercase hex digits"}},
		{"file elsewhere", func(j *File) { j.Files[0].Path = "/etc/kubernetes/pki/ca.key" }, []string{`files[0].path: "/etc/kubernetes/pki/ca.key" is not a file a join file may carry`}},
		{"file mode", func(j *File) { j.Files[0].Mode = 0o4755 }, []string{"files[0].mode: 4755: want 0644 or stricter"}},
	} {
		// Signed: what a control plane would not make, checked all the same.
		t.Run(tc.name, func(t *testing.T) {
			j := validFile(now)
			tc.edit(j)
			data := signed(t, j, testJoinKey)
			got, err := Parse(bytes.NewReader(data), "w1.join", now, testJoinKey)
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
	big := strings.Repeat(" ", MaxSize+1)
	if _, err := Parse(strings.NewReader(big), "x", now, testJoinKey); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized: %v", err)
	}
}

// tamper changes one field of a join file's JSON, as someone holding the
// file (but not its key) would.
func tamper(t *testing.T, data []byte, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A join file altered in any field, a control plane's or a worker's, is
// refused before any field is used: the attacker's keyring, content CA,
// content services, bundle digest, discovery (bootstrap token, cluster
// CA, endpoint) or files never reach the node.
func TestTamperedIsRefused(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	worker := signed(t, validFile(now), testJoinKey)
	cp := controlPlaneFile(t, now, testJoinKey)
	// The genuine files open.
	if _, err := Parse(bytes.NewReader(worker), "w1.join", now, testJoinKey); err != nil {
		t.Fatalf("genuine worker file: %v", err)
	}
	j, err := Parse(bytes.NewReader(cp), "cp2.join", now, testJoinKey)
	if err != nil {
		t.Fatalf("genuine control-plane file: %v", err)
	}
	if s, err := j.OpenSecrets(testJoinKey); err != nil || string(s[0].Content) != "the cluster's CA key" {
		t.Fatalf("genuine control-plane secrets: %v", err)
	}
	evilFile := []any{map[string]any{"path": kubeProxyKey, "mode": 0o600, "content": base64.StdEncoding.EncodeToString([]byte("attacker's key"))}}
	attacks := []struct {
		name string
		edit func(m map[string]any)
	}{
		{"keyring", func(m map[string]any) { m["keyring"] = "-----BEGIN PGP PUBLIC KEY BLOCK-----\nthe attacker's key" }},
		{"contentCA", func(m map[string]any) { m["contentCA"] = "-----BEGIN CERTIFICATE-----\nthe attacker's CA" }},
		{"contentServices", func(m map[string]any) { m["contentServices"] = []any{"evil.example.com:5443"} }},
		{"contentServices added", func(m map[string]any) {
			m["contentServices"] = append([]any{"evil.example.com:5443"}, m["contentServices"].([]any)...)
		}},
		{"bundle", func(m map[string]any) { m["bundle"] = "evil-1.0.0.iso" }},
		{"bundleSHA256", func(m map[string]any) { m["bundleSHA256"] = strings.Repeat("cd", 32) }},
		{"bundleSize", func(m map[string]any) { m["bundleSize"] = 2 << 20 }},
		{"bundleSHA256 removed", func(m map[string]any) { delete(m, "bundleSHA256") }},
		{"discovery", func(m map[string]any) {
			m["discovery"] = "apiVersion: v1\nclusters: [{cluster: {server: https://evil:6443}}]\n"
		}},
		{"files", func(m map[string]any) { m["files"] = evilFile }},
		{"files added", func(m map[string]any) { have, _ := m["files"].([]any); m["files"] = append(evilFile, have...) }},
		{"clusterConfig", func(m map[string]any) {
			m["clusterConfig"] = "apiVersion: ferry.dev/v1alpha1\nkind: Cluster\n# the attacker's\n"
		}},
		{"expires", func(m map[string]any) { m["expires"] = now.Add(100 * 24 * time.Hour).Format(time.RFC3339) }},
		{"node", func(m map[string]any) { m["node"] = "cp3" }},
		{"cluster", func(m map[string]any) { m["cluster"] = "other" }},
		{"mac", func(m map[string]any) { m["mac"] = strings.Repeat("00", 32) }},
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{"worker", worker}, {"control plane", cp}} {
		for _, a := range attacks {
			t.Run(f.name+"/"+a.name, func(t *testing.T) {
				bad := tamper(t, f.data, a.edit)
				if bytes.Equal(bad, f.data) {
					t.Fatal("the attack changed nothing")
				}
				// The attack is accepted without a MAC check: it is one.
				j, err := decode(bad, "x")
				if err != nil {
					t.Fatalf("the altered file does not even decode: %v", err)
				}
				if a.name != "bundleSHA256 removed" && a.name != "mac" && a.name != "expires" {
					if err := j.validate(now); err != nil {
						t.Fatalf("the altered file fails validation already (not an attack on the MAC): %v", err)
					}
				}
				_, err = Parse(bytes.NewReader(bad), "x.join", now, testJoinKey)
				if err == nil || !strings.Contains(err.Error(), "join file x.join: the file was altered, or the certificate key is not the one installer token create printed with it") {
					t.Fatalf("altered file: %v", err)
				}
			})
		}
		// A control plane's secrets moved into another file (another
		// node's, or one the attacker made) do not open either.
		t.Run(f.name+"/wrong key", func(t *testing.T) {
			_, err := Parse(bytes.NewReader(f.data), "x.join", now, bytes.Repeat([]byte{8}, CertificateKeySize))
			if err == nil || !strings.Contains(err.Error(), "the certificate key is not the one installer token create printed") {
				t.Fatalf("wrong key: %v", err)
			}
		})
		t.Run(f.name+"/no mac", func(t *testing.T) {
			bad := tamper(t, f.data, func(m map[string]any) { delete(m, "mac") })
			_, err := Parse(bytes.NewReader(bad), "x.join", now, testJoinKey)
			if err == nil || !strings.Contains(err.Error(), "carries no MAC") {
				t.Fatalf("no MAC: %v", err)
			}
		})
	}
	// The control plane's sealed secrets moved into a file the attacker
	// made: the MAC does not hold, whatever the attacker signs with.
	t.Run("secrets transplanted", func(t *testing.T) {
		var genuine map[string]any
		json.Unmarshal(cp, &genuine)
		evil := validFile(now)
		evil.Node, evil.Files, evil.Keyring = "cp2", nil, "the attacker's keyring"
		evilKey := bytes.Repeat([]byte{9}, CertificateKeySize)
		data := tamper(t, signed(t, evil, evilKey), func(m map[string]any) { m["secrets"] = genuine["secrets"] })
		if _, err := Parse(bytes.NewReader(data), "x.join", now, testJoinKey); err == nil || !strings.Contains(err.Error(), "was altered") {
			t.Fatalf("transplanted secrets, the genuine key: %v", err)
		}
	})
}

// Every field of a join file, and of its entries, is under the MAC: a
// field added to File or Entry and not to macInput fails here.
func TestMACCoversEveryField(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	base := func() *File {
		j := validFile(now)
		j.Secrets = []byte("sealed")
		if err := j.Sign(testJoinKey); err != nil {
			t.Fatal(err)
		}
		return j
	}
	// change alters the value v, whatever its kind.
	change := func(t *testing.T, v reflect.Value) {
		switch {
		case v.Type() == reflect.TypeOf(time.Time{}):
			v.Set(reflect.ValueOf(v.Interface().(time.Time).Add(time.Second)))
		case v.Kind() == reflect.String:
			v.SetString(v.String() + "x")
		case v.Kind() == reflect.Int64:
			v.SetInt(v.Int() + 1)
		case v.Kind() == reflect.Uint32:
			v.SetUint(v.Uint() ^ 0o4)
		case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8:
			v.SetBytes(append(append([]byte{}, v.Bytes()...), 'x'))
		case v.Kind() == reflect.Slice:
			v.Set(reflect.Append(v, v.Index(0)))
		default:
			t.Fatalf("no way to change a %s: teach the test", v.Type())
		}
	}
	jt := reflect.TypeOf(File{})
	for i := range jt.NumField() {
		f := jt.Field(i)
		if f.Name == "MAC" || f.Name == "CertificateKey" {
			continue
		}
		j := base()
		change(t, reflect.ValueOf(j).Elem().Field(i))
		if err := j.verify(testJoinKey); err == nil {
			t.Errorf("File.%s changed, the MAC still holds", f.Name)
		}
	}
	et := reflect.TypeOf(Entry{})
	for i := range et.NumField() {
		j := base()
		change(t, reflect.ValueOf(&j.Files[0]).Elem().Field(i))
		if err := j.verify(testJoinKey); err == nil {
			t.Errorf("Entry.%s changed, the MAC still holds", et.Field(i).Name)
		}
	}
	// Moving bytes between neighbouring fields changes the MAC too.
	j := base()
	j.Keyring, j.ContentCA = j.Keyring+j.ContentCA[:1], j.ContentCA[1:]
	if err := j.verify(testJoinKey); err == nil {
		t.Error("bytes moved from contentCA to keyring, the MAC still holds")
	}
	// The key travels apart: it is not in the file.
	j = base()
	j.CertificateKey = hex.EncodeToString(testJoinKey)
	data, _ := j.Marshal()
	if bytes.Contains(data, []byte(j.CertificateKey)) || bytes.Contains(data, testJoinKey) {
		t.Error("the join file carries its key")
	}
}

// The JSON of a join file is read strictly: a repeated key (which
// encoding/json would take the last of), a key in another case (which it
// would match), an unknown field, anything after the object.
func TestParseStrictJSON(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	genuine := signed(t, validFile(now), testJoinKey)
	obj := bytes.TrimRight(genuine, "\n")
	inner := obj[:len(obj)-1] // without the closing brace
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"duplicate key", append(append([]byte{}, inner...), []byte(`, "keyring": "the attacker's keyring"}`)...), "join file x.join: keyring: duplicate key"},
		{"duplicate key first", append([]byte(`{"keyring": "the attacker's keyring", `), obj[1:]...), "join file x.join: keyring: duplicate key"},
		{"duplicate key in a file", bytes.Replace(genuine, []byte(`"path": `), []byte(`"path": "/etc/shadow", "path": `), 1), "join file x.join: files[0].path: duplicate key"},
		{"key in another case", append(append([]byte{}, inner...), []byte(`, "Keyring": "the attacker's keyring"}`)...), `join file x.join: Keyring: unknown field`},
		{"unknown field", append(append([]byte{}, inner...), []byte(`, "extra": 1}`)...), "join file x.join: extra: unknown field"},
		{"trailing object", append(append([]byte{}, genuine...), []byte(`{"keyring": "the attacker's keyring"}`)...), "join file x.join: trailing data after the object"},
		{"trailing garbage", append(append([]byte{}, genuine...), []byte("x")...), "join file x.join: trailing data after the object"},
		{"not an object", []byte(`["JoinFile"]`), "join file x.join: not a JSON object"},
		{"nested deep", []byte(`{"files": [[[[[[[[[[[[]]]]]]]]]]]]}`), "nested deeper than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(bytes.NewReader(tc.data), "x.join", now, testJoinKey)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error with %q, got %v", tc.want, err)
			}
		})
	}
	// White space after the object is no trailing data.
	if _, err := Parse(bytes.NewReader(append(append([]byte{}, genuine...), " \n\t\n"...)), "x.join", now, testJoinKey); err != nil {
		t.Errorf("trailing white space: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	var genuine []*File
	for _, data := range [][]byte{signed(f, validFile(now), testJoinKey), controlPlaneFile(f, now, testJoinKey)} {
		j, err := decode(data, "seed")
		if err != nil {
			f.Fatal(err)
		}
		genuine = append(genuine, j)
		f.Add(data)
	}
	f.Add([]byte(`{"files":[{"path":"/x","mode":-1,"content":"!!"}]}`))
	f.Add([]byte(`{"kind":"JoinFile","kind":"x"} {}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		// The checks behind the MAC, which a fuzzer cannot forge.
		if j, err := decode(b, "fuzz"); err == nil && j.validate(now) == nil {
			if j.Bundle == "" || strings.Contains(j.Bundle, "/") || now.After(j.Expires) {
				t.Fatalf("validated %+v", j)
			}
			for _, e := range j.Files {
				if e.Mode&^0o644 != 0 {
					t.Fatalf("validated mode %o", e.Mode)
				}
			}
		}
		j, err := Parse(bytes.NewReader(b), "fuzz", now, testJoinKey)
		if err != nil {
			return
		}
		// Accepted, it holds what was signed, field for field: nothing
		// else carries the MAC.
		for _, g := range genuine {
			if bytes.Equal(j.macInput(), g.macInput()) {
				return
			}
		}
		t.Fatalf("accepted a file no one signed: %+v", j)
	})
}

// A control-plane join file's secrets open only with its key, only for
// its node, and only into the files a control plane shares.
func TestSecrets(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	j := validFile(now)
	entries := []Entry{{Path: encryptionKey, Mode: 0o600, Content: []byte("k")}}
	if err := j.Seal(testJoinKey, entries); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(j.Secrets, []byte(encryptionKey)) {
		t.Fatal("sealed secrets show their paths")
	}
	got, err := j.OpenSecrets(testJoinKey)
	if err != nil || len(got) != 1 || got[0].Path != encryptionKey || string(got[0].Content) != "k" {
		t.Fatalf("open: %v %+v", err, got)
	}
	if _, err := j.OpenSecrets(bytes.Repeat([]byte{8}, CertificateKeySize)); err == nil || !strings.Contains(err.Error(), "do not open with this certificate key") {
		t.Errorf("wrong key: %v", err)
	}
	if _, err := ParseCertificateKey("07"); err == nil || !strings.Contains(err.Error(), "want 32") {
		t.Errorf("short key: %v", err)
	}
	if _, err := ParseCertificateKey(strings.Repeat("zz", 32)); err == nil || !strings.Contains(err.Error(), "not hex") {
		t.Errorf("not hex: %v", err)
	}
	if k, err := ParseCertificateKey(" " + strings.Repeat("07", 32) + "\n"); err != nil || !bytes.Equal(k, testJoinKey) {
		t.Errorf("the printed key: %v", err)
	}
	other := *j
	other.Node = "w2"
	if _, err := other.OpenSecrets(testJoinKey); err == nil {
		t.Error("secrets sealed for w1 open for w2")
	}
	j.Seal(testJoinKey, []Entry{{Path: "/etc/shadow", Mode: 0o600, Content: []byte("x")}})
	if _, err := j.OpenSecrets(testJoinKey); err == nil || !strings.Contains(err.Error(), `"/etc/shadow" is not a file a control-plane join shares`) {
		t.Errorf("a path outside the shared files: %v", err)
	}
	// The secrets are not sealed with the join key itself, nor with the
	// MAC's key: one derived key per use.
	mk, _ := deriveKey(testJoinKey, macKeyInfo)
	sk, _ := deriveKey(testJoinKey, secretKeyInfo)
	if bytes.Equal(mk, sk) || bytes.Equal(sk, testJoinKey) || bytes.Equal(mk, testJoinKey) {
		t.Error("the derived keys are not distinct")
	}
}

// token create --out: the file is 0600 whatever was there, and never
// written through a symbolic link.
func TestWrite(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	mk := func() *File {
		j := validFile(now)
		if err := j.Sign(testJoinKey); err != nil {
			t.Fatal(err)
		}
		j.CertificateKey = hex.EncodeToString(testJoinKey)
		return j
	}
	check := func(t *testing.T, p string) {
		t.Helper()
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v, want a regular file 0600", p, fi.Mode())
		}
		if _, err := Read(p, now, testJoinKey); err != nil {
			t.Fatalf("the written file: %v", err)
		}
	}
	dir := t.TempDir()
	t.Run("new", func(t *testing.T) {
		p := filepath.Join(dir, "new.join")
		if err := Write(p, mk()); err != nil {
			t.Fatal(err)
		}
		check(t, p)
	})
	t.Run("existing 0644 file", func(t *testing.T) {
		p := filepath.Join(dir, "old.join")
		if err := os.WriteFile(p, []byte("an older, readable file"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := Write(p, mk()); err != nil {
			t.Fatal(err)
		}
		check(t, p)
	})
	t.Run("symbolic link", func(t *testing.T) {
		elsewhere := filepath.Join(dir, "elsewhere")
		if err := os.WriteFile(elsewhere, []byte("not yours"), 0o644); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "link.join")
		if err := os.Symlink(elsewhere, p); err != nil {
			t.Fatal(err)
		}
		err := Write(p, mk())
		if err == nil || !strings.Contains(err.Error(), "writing join file "+p+": it is a symbolic link") {
			t.Fatalf("symbolic link: %v", err)
		}
		if b, _ := os.ReadFile(elsewhere); string(b) != "not yours" {
			t.Errorf("written through the link: %q", b)
		}
		if fi, _ := os.Lstat(p); fi.Mode()&os.ModeSymlink == 0 {
			t.Error("the link was replaced")
		}
		// A dangling link (a file the attacker wants created) too.
		dangling := filepath.Join(dir, "dangling.join")
		os.Symlink(filepath.Join(dir, "created-by-link"), dangling)
		if err := Write(dangling, mk()); err == nil {
			t.Error("wrote through a dangling link")
		}
		if _, err := os.Lstat(filepath.Join(dir, "created-by-link")); err == nil {
			t.Error("a file was created through a dangling link")
		}
	})
	t.Run("directory", func(t *testing.T) {
		if err := Write(dir, mk()); err == nil || !strings.Contains(err.Error(), "is not a regular file") {
			t.Errorf("a directory at the path: %v", err)
		}
	})
	t.Run("no key", func(t *testing.T) {
		j := mk()
		j.CertificateKey = ""
		if err := Write(filepath.Join(dir, "nokey.join"), j); err == nil {
			t.Error("a join file without its key written")
		}
	})
	t.Run("unsigned", func(t *testing.T) {
		j := mk()
		j.Keyring += "changed after signing"
		if err := Write(filepath.Join(dir, "unsigned.join"), j); err == nil || !strings.Contains(err.Error(), "altered") {
			t.Errorf("a join file that would not open written: %v", err)
		}
	})
}

// TestWriteSecretFile: a kubeconfig with a client key (installer user
// kubeconfig --out) is written 0600 even over an existing 0644 file, and
// never through a symbolic link (which would put the key where the link
// points).
func TestWriteSecretFile(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "alice.kubeconfig")
	if err := os.WriteFile(existing, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteSecretFile("kubeconfig", existing, []byte("secret")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(existing); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("an existing 0644 file: %v %v", fi.Mode(), err)
	}
	target := filepath.Join(dir, "public.txt")
	if err := os.WriteFile(target, []byte("public"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "bob.kubeconfig")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := WriteSecretFile("kubeconfig", link, []byte("secret")); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("through a symbolic link: %v", err)
	}
	if data, _ := os.ReadFile(target); string(data) != "public" {
		t.Fatalf("the link's target was written: %q", data)
	}
	if err := WriteSecretFile("kubeconfig", dir, []byte("secret")); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("over a directory: %v", err)
	}
}
