package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/cryptotest"
	"time"
)

var testPass = Passphrase("correct horse battery staple")

// openssl runs the real openssl (Debian package openssl, in `make deps`)
// and returns its combined output; a missing binary fails the test.
func openssl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatalf("openssl is needed (apt-get install openssl): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	return string(out), err
}

func newRealm(t *testing.T, name string, opts Options) *Realm {
	t.Helper()
	r, err := NewRealm(name, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func writeLeaf(t *testing.T, dir, name string, l *Leaf) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := l.WriteFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestChainsVerifyWithOpenSSL: every realm's leaves verify with openssl
// against the root, with the intermediate as untrusted, for the purpose
// they were issued for; and against ca.crt alone (kubeadm's bundle).
func TestChainsVerifyWithOpenSSL(t *testing.T) {
	for _, name := range Realms {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			r := newRealm(t, name, Options{Organization: "lab"})
			if err := r.WriteFiles(dir, testPass); err != nil {
				t.Fatal(err)
			}
			root, ca := filepath.Join(dir, RootCertFile), filepath.Join(dir, CACertFile)
			server, err := r.IssueServer("api.lab.example.com", "kubernetes.default.svc")
			if err != nil {
				t.Fatal(err)
			}
			client, err := r.IssueClient("alice", "developers")
			if err != nil {
				t.Fatal(err)
			}
			peer, err := r.IssuePeer("cp1", "cp1.lab.example.com")
			if err != nil {
				t.Fatal(err)
			}
			sf, _ := writeLeaf(t, dir, "server", server)
			cf, _ := writeLeaf(t, dir, "client", client)
			pf, _ := writeLeaf(t, dir, "peer", peer)
			for _, c := range []struct {
				file, purpose string
				ok            bool
			}{
				{sf, "sslserver", true}, {sf, "sslclient", false},
				{cf, "sslclient", true}, {cf, "sslserver", false},
				{pf, "sslserver", true}, {pf, "sslclient", true},
			} {
				out, err := openssl(t, "verify", "-purpose", c.purpose, "-CAfile", root, "-untrusted", ca, c.file)
				if (err == nil) != c.ok {
					t.Errorf("openssl verify -purpose %s %s: ok=%v, want %v: %s", c.purpose, filepath.Base(c.file), err == nil, c.ok, out)
				}
			}
			if out, err := openssl(t, "verify", "-CAfile", ca, sf); err != nil {
				t.Errorf("leaf does not verify against ca.crt: %v %s", err, out)
			}
			// The leaf's own file carries its intermediate: the root alone suffices.
			if out, err := openssl(t, "verify", "-CAfile", root, "-untrusted", sf, sf); err != nil {
				t.Errorf("leaf chain file does not verify against the root: %v %s", err, out)
			}
			// And without the intermediate there is no chain.
			if out, err := openssl(t, "verify", "-CAfile", root, cf); err == nil {
				t.Errorf("leaf verified against the root without its intermediate: %s", out)
			}
		})
	}
}

// TestRealmsDoNotCrossVerify: an etcd leaf is not accepted under the
// kubernetes root, by openssl or by Go.
func TestRealmsDoNotCrossVerify(t *testing.T) {
	dir := t.TempDir()
	k8s := newRealm(t, RealmKubernetes, Options{})
	etcd := newRealm(t, RealmEtcd, Options{})
	kd, ed := filepath.Join(dir, "k8s"), filepath.Join(dir, "etcd")
	if err := k8s.WriteFiles(kd, testPass); err != nil {
		t.Fatal(err)
	}
	if err := etcd.WriteFiles(ed, testPass); err != nil {
		t.Fatal(err)
	}
	leaf, err := etcd.IssueServer("etcd.lab.example.com")
	if err != nil {
		t.Fatal(err)
	}
	lf, _ := writeLeaf(t, dir, "etcd-server", leaf)
	if out, err := openssl(t, "verify", "-CAfile", filepath.Join(kd, RootCertFile), "-untrusted", filepath.Join(kd, CACertFile), lf); err == nil {
		t.Errorf("etcd leaf verified under the kubernetes root: %s", out)
	}
	if out, err := openssl(t, "verify", "-CAfile", filepath.Join(kd, RootCertFile), "-untrusted", lf, lf); err == nil {
		t.Errorf("etcd chain verified under the kubernetes root: %s", out)
	}
	if out, err := openssl(t, "verify", "-CAfile", filepath.Join(ed, RootCertFile), "-untrusted", lf, lf); err != nil {
		t.Errorf("etcd leaf does not verify under its own root: %v %s", err, out)
	}
	pool := x509.NewCertPool()
	pool.AddCert(k8s.Root)
	inter := x509.NewCertPool()
	inter.AddCert(etcd.Intermediate)
	inter.AddCert(k8s.Intermediate)
	if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter}); err == nil {
		t.Error("Go verified an etcd leaf under the kubernetes root")
	}
}

// TestMutualTLS: a server and a client of one realm complete a TLS 1.3
// handshake on loopback, each trusting only the realm's root; a client of
// another realm is refused.
func TestMutualTLS(t *testing.T) {
	r := newRealm(t, RealmNodeDaemon, Options{})
	other := newRealm(t, RealmContent, Options{})
	server, err := r.IssueServer("localhost")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(r.Root)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{tlsCert(t, server)},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    roots,
		MinVersion:   tls.VersionTLS13,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if err := c.(*tls.Conn).Handshake(); err == nil {
					io.WriteString(c, c.(*tls.Conn).ConnectionState().PeerCertificates[0].Subject.CommonName)
				}
			}()
		}
	}()
	dial := func(realm *Realm, user string) (string, error) {
		leaf, err := realm.IssueClient(user)
		if err != nil {
			t.Fatal(err)
		}
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{
			ServerName: "localhost", RootCAs: roots, Certificates: []tls.Certificate{tlsCert(t, leaf)}, MinVersion: tls.VersionTLS13,
		})
		if err != nil {
			return "", err
		}
		defer c.Close()
		b, err := io.ReadAll(c)
		return string(b), err
	}
	if got, err := dial(r, "node-1"); err != nil || got != "node-1" {
		t.Errorf("same realm: %q %v", got, err)
	}
	if got, err := dial(other, "intruder"); err == nil && got != "" {
		t.Errorf("a client of another realm was accepted as %q", got)
	}
}

func tlsCert(t *testing.T, l *Leaf) tls.Certificate {
	t.Helper()
	k, err := l.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(l.CertPEM(), k)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRootKeyWithOpenSSL: openssl reads root.key with the passphrase (and
// finds the root certificate's key in it), and not without it.
func TestRootKeyWithOpenSSL(t *testing.T) {
	dir := t.TempDir()
	r := newRealm(t, RealmKubernetes, Options{})
	if err := r.WriteFiles(dir, testPass); err != nil {
		t.Fatal(err)
	}
	passFile := filepath.Join(dir, "pass")
	if err := os.WriteFile(passFile, append(bytes.Clone(testPass), '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, RootKeyFile)
	pemData, _ := os.ReadFile(keyFile)
	if !bytes.HasPrefix(pemData, []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----")) {
		t.Fatalf("root.key is not an encrypted PKCS#8 PEM:\n%s", pemData)
	}
	pub, err := openssl(t, "pkey", "-in", keyFile, "-passin", "file:"+passFile, "-pubout")
	if err != nil {
		t.Fatalf("openssl cannot read root.key with the passphrase: %v\n%s", err, pub)
	}
	certPub, err := openssl(t, "x509", "-in", filepath.Join(dir, RootCertFile), "-noout", "-pubkey")
	if err != nil || certPub != pub {
		t.Errorf("root.key's public key differs from root.crt's:\n%s\n%s %v", pub, certPub, err)
	}
	asn1, err := openssl(t, "asn1parse", "-in", keyFile)
	if err != nil || !strings.Contains(asn1, "PBES2") || !strings.Contains(asn1, "PBKDF2") || !strings.Contains(asn1, "hmacWithSHA256") || !strings.Contains(asn1, "aes-256-cbc") {
		t.Errorf("unexpected encryption scheme:\n%s %v", asn1, err)
	}
	for _, bad := range [][]string{{"-passin", "pass:"}, {"-passin", "pass:wrong passphrase!"}} {
		if out, err := openssl(t, append([]string{"pkey", "-in", keyFile, "-noout"}, bad...)...); err == nil {
			t.Errorf("openssl read root.key with %v: %s", bad, out)
		}
	}
}

// TestDecryptOpenSSLKeys: keys encrypted by openssl, in the PBES2 variants
// it writes, are read; what we do not take is refused with a reason.
func TestDecryptOpenSSLKeys(t *testing.T) {
	dir := t.TempDir()
	passFile := filepath.Join(dir, "pass")
	if err := os.WriteFile(passFile, testPass, 0o600); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain.pem")
	if out, err := openssl(t, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", plain); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	pubWant, err := openssl(t, "pkey", "-in", plain, "-pubout")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		err  string
	}{
		{"pkey -aes256", []string{"pkey", "-aes256"}, ""},
		{"pkcs8 aes-128-cbc sha1", []string{"pkcs8", "-topk8", "-v2", "aes-128-cbc", "-v2prf", "hmacWithSHA1"}, ""},
		{"pkcs8 aes-192-cbc sha512", []string{"pkcs8", "-topk8", "-v2", "aes-192-cbc", "-v2prf", "hmacWithSHA512", "-iter", "5000"}, ""},
		{"pkcs8 scrypt", []string{"pkcs8", "-topk8", "-v2", "aes-256-cbc", "-scrypt"}, "not PBKDF2"},
		{"pkcs8 des3", []string{"pkcs8", "-topk8", "-v2", "des3"}, "not AES-CBC"},
		{"pkcs8 v1", []string{"pkcs8", "-topk8", "-v1", "PBE-SHA1-3DES"}, "not PBES2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".pem")
			args := append(append([]string{}, tc.args...), "-in", plain, "-out", out, "-passout", "file:"+passFile)
			if msg, err := openssl(t, args...); err != nil {
				t.Fatalf("%v %s", err, msg)
			}
			data, _ := os.ReadFile(out)
			key, err := DecryptPrivateKey(data, testPass)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ec, ok := key.(*ecdsa.PrivateKey)
			if !ok || ec.Curve != elliptic.P256() {
				t.Fatalf("key %T", key)
			}
			pemKey, _ := keyPEM(key)
			kf := filepath.Join(t.TempDir(), "k.pem")
			os.WriteFile(kf, pemKey, 0o600)
			if pub, err := openssl(t, "pkey", "-in", kf, "-pubout"); err != nil || pub != pubWant {
				t.Errorf("decrypted a different key: %v", err)
			}
			if _, err := DecryptPrivateKey(data, Passphrase("not the passphrase")); !errors.Is(err, ErrWrongPassphrase) {
				t.Errorf("wrong passphrase: %v", err)
			}
		})
	}
}

func TestDecryptRefuses(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), nil)
	good, err := encryptPKCS8(mustPKCS8(t, k), testPass, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecryptPrivateKey(good, testPass); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"no PEM":        {[]byte("hello"), "no PEM block"},
		"plain key":     {mustKeyPEM(t, k), `PEM block is "PRIVATE KEY"`},
		"trailing data": {append(bytes.Clone(good), "x"...), "data after the PEM block"},
		"not DER":       {[]byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"), "not a PKCS#8 EncryptedPrivateKeyInfo"},
	} {
		if _, err := DecryptPrivateKey(tc.data, testPass); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", name, err, tc.want)
		}
	}
	if _, err := EncryptPrivateKey(k, Passphrase("short")); err == nil || !strings.Contains(err.Error(), "passphrase too short") {
		t.Errorf("short passphrase: %v", err)
	}
}

func mustPKCS8(t *testing.T, k *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func mustKeyPEM(t *testing.T, k *ecdsa.PrivateKey) []byte {
	p, err := keyPEM(k)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLoadRealm: an online-only load issues leaves but cannot renew; a
// load with the passphrase renews, keeping the intermediate's key (old
// leaves still verify) or rekeying (they do not chain to the new one).
func TestLoadRealm(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	r := newRealm(t, RealmEtcd, Options{Organization: "prod", Now: clock})
	if err := r.WriteFiles(dir, testPass); err != nil {
		t.Fatal(err)
	}
	rootKeyBefore, _ := os.ReadFile(filepath.Join(dir, RootKeyFile))

	online, err := LoadRealm(dir, nil, Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if online.Name != RealmEtcd || online.RootKey != nil || !online.Root.Equal(r.Root) || !online.Intermediate.Equal(r.Intermediate) {
		t.Fatalf("online load: %+v", online)
	}
	if err := online.Renew(false); !errors.Is(err, ErrRootKeyNotLoaded) {
		t.Errorf("online Renew: %v", err)
	}
	if _, err := online.RootKeyPEM(testPass); !errors.Is(err, ErrRootKeyNotLoaded) {
		t.Errorf("online RootKeyPEM: %v", err)
	}
	if err := online.WriteFiles(dir, nil); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, RootKeyFile)); !bytes.Equal(after, rootKeyBefore) {
		t.Error("an online-only WriteFiles changed root.key")
	}

	if _, err := LoadRealm(dir, Passphrase("wrong passphrase"), Options{}); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("wrong passphrase: %v", err)
	}
	now = now.Add(300 * 24 * time.Hour)
	old, err := online.IssuePeer("cp1", "cp1.prod.example.com")
	if err != nil {
		t.Fatal(err)
	}
	full, err := LoadRealm(dir, testPass, Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if !NeedsRotation(full.Intermediate, now, DefaultRotationThreshold) {
		t.Error("intermediate at day 300 of 365 does not need rotation")
	}
	oldInter := full.Intermediate
	if err := full.Renew(false); err != nil {
		t.Fatal(err)
	}
	if full.Intermediate.SerialNumber.Cmp(oldInter.SerialNumber) == 0 || !full.Intermediate.NotAfter.After(oldInter.NotAfter) ||
		NeedsRotation(full.Intermediate, now, DefaultRotationThreshold) {
		t.Errorf("renewed intermediate: serial %v, not after %v", full.Intermediate.SerialNumber, full.Intermediate.NotAfter)
	}
	if err := full.WriteFiles(dir, testPass); err != nil {
		t.Fatal(err)
	}
	again, err := LoadRealm(dir, nil, Options{Now: clock})
	if err != nil || !again.Intermediate.Equal(full.Intermediate) {
		t.Fatalf("reload after renewal: %v", err)
	}
	if err := verifyUnder(old.Cert, again); err != nil {
		t.Errorf("a leaf of the old intermediate does not verify after Renew(false): %v", err)
	}
	if err := full.Renew(true); err != nil {
		t.Fatal(err)
	}
	if publicKeyEqual(full.IntermediateKey, oldInter) {
		t.Error("Renew(true) kept the key")
	}
	if err := verifyUnder(old.Cert, full); err == nil {
		t.Error("a leaf of the old key verifies after Renew(true)")
	}
	fresh, err := full.IssueServer("cp1.prod.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyUnder(fresh.Cert, full); err != nil {
		t.Error(err)
	}
}

// verifyUnder verifies a leaf with the realm's root as the only anchor and
// its current intermediate, at the leaf's mid-life.
func verifyUnder(c *x509.Certificate, r *Realm) error {
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(r.Root)
	inter.AddCert(r.Intermediate)
	_, err := c.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: c.NotBefore.Add(time.Hour), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err
}

func TestWriteFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki", "kubernetes")
	r := newRealm(t, RealmKubernetes, Options{})
	if err := r.WriteFiles(dir, Passphrase("short")); err == nil || !strings.Contains(err.Error(), "passphrase too short") {
		t.Fatalf("short passphrase: %v", err)
	}
	if err := r.WriteFiles(dir, testPass); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{".": 0o700 | os.ModeDir, RootCertFile: 0o644, RootKeyFile: 0o600, CACertFile: 0o644, CAKeyFile: 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode() != mode {
			t.Errorf("%s: mode %v, want %v (%v)", name, fi.Mode(), mode, err)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 4 {
		t.Errorf("files: %v", ents)
	}
	// The same realm again: fine. Another realm's root: refused.
	if err := r.WriteFiles(dir, testPass); err != nil {
		t.Errorf("rewriting the same realm: %v", err)
	}
	other := newRealm(t, RealmKubernetes, Options{})
	if err := other.WriteFiles(dir, testPass); err == nil || !strings.Contains(err.Error(), "holds another root CA") {
		t.Errorf("another root: %v", err)
	}
}

// TestLoadRealmRefuses: files that do not form one realm's chain.
func TestLoadRealmRefuses(t *testing.T) {
	a := newRealm(t, RealmKubernetes, Options{})
	b := newRealm(t, RealmKubernetes, Options{})
	written := t.TempDir()
	if err := a.WriteFiles(written, testPass); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(t *testing.T, dir string)
		want string
	}{
		{"key readable by others", func(t *testing.T, dir string) { os.Chmod(filepath.Join(dir, CAKeyFile), 0o644) }, "lets others read the key"},
		{"missing ca.key", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, CAKeyFile)) }, "no such file"},
		{"ca.crt without root", func(t *testing.T, dir string) { write(t, dir, CACertFile, certPEM(a.Intermediate), 0o644) }, "want the intermediate CA followed by the root"},
		{"intermediate of another root", func(t *testing.T, dir string) {
			write(t, dir, CACertFile, append(certPEM(b.Intermediate), certPEM(a.Root)...), 0o644)
		}, "the intermediate is not a CA signed by the root"},
		{"key of another intermediate", func(t *testing.T, dir string) { write(t, dir, CAKeyFile, mustKey(t, b), 0o600) }, "ca.key does not belong to the intermediate CA"},
		{"two roots", func(t *testing.T, dir string) {
			write(t, dir, RootCertFile, append(certPEM(a.Root), certPEM(b.Root)...), 0o644)
		}, "want one certificate, found 2"},
		{"garbage", func(t *testing.T, dir string) { write(t, dir, RootCertFile, []byte("not PEM"), 0o644) }, "root.crt: data that is not PEM"},
		{"empty", func(t *testing.T, dir string) { write(t, dir, RootCertFile, nil, 0o644) }, "root.crt: no certificate"},
		{"key in a cert file", func(t *testing.T, dir string) { write(t, dir, CACertFile, mustKey(t, a), 0o644) }, `PEM block "PRIVATE KEY" is not a CERTIFICATE`},
		{"huge file", func(t *testing.T, dir string) {
			write(t, dir, CACertFile, bytes.Repeat([]byte("x"), maxPEMFile+1), 0o644)
		}, "larger than"},
		{"leaf as intermediate", func(t *testing.T, dir string) {
			l, _ := a.IssueServer("x.example.com")
			write(t, dir, CACertFile, append(certPEM(l.Cert), certPEM(a.Root)...), 0o644)
		}, "not a CA signed by the root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, written, dir)
			tc.edit(t, dir)
			if _, err := LoadRealm(dir, nil, Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("root key of another realm", func(t *testing.T) {
		dir := t.TempDir()
		copyDir(t, written, dir)
		k, _ := b.RootKeyPEM(testPass)
		write(t, dir, RootKeyFile, k, 0o600)
		if _, err := LoadRealm(dir, testPass, Options{}); err == nil || !strings.Contains(err.Error(), "root.key does not belong to the root CA") {
			t.Errorf("got %v", err)
		}
	})
}

// copyDir copies the files of src into dst, keeping their modes.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := e.Info()
		write(t, dst, e.Name(), data, fi.Mode().Perm())
	}
}

func write(t *testing.T, dir, name string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, name), mode); err != nil {
		t.Fatal(err)
	}
}

func mustKey(t *testing.T, r *Realm) []byte {
	k, err := keyPEM(r.IntermediateKey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// The API server's certificate carries the kubernetes service IP (the one
// R29 exception) and nothing else numeric.
func TestIssueServiceIP(t *testing.T) {
	r := newRealm(t, RealmKubernetes, Options{})
	l, err := r.Issue(LeafRequest{DNSNames: []string{"api.example.com", "kubernetes.default.svc"}, APIServerIPs: []net.IP{net.ParseIP("10.96.0.1")}, Usage: ServerAuth})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Cert.IPAddresses) != 1 || !l.Cert.IPAddresses[0].Equal(net.ParseIP("10.96.0.1")) {
		t.Fatalf("IP SANs %v", l.Cert.IPAddresses)
	}
	if err := l.Cert.VerifyHostname("10.96.0.1"); err != nil {
		t.Fatal(err)
	}
}

func TestIssueRefuses(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	r := newRealm(t, RealmKubernetes, Options{Now: func() time.Time { return now }})
	for _, tc := range []struct {
		name string
		req  LeafRequest
		want string
	}{
		{"IPv4 SAN", LeafRequest{DNSNames: []string{"api.example.com", "10.96.0.1"}, Usage: ServerAuth}, `"10.96.0.1" is an IP address: certificates carry DNS names only (R29)`},
		{"IPv6 SAN", LeafRequest{DNSNames: []string{"::1"}, Usage: ServerAuth}, `"::1" is an IP address`},
		{"bracketed IPv6 SAN", LeafRequest{DNSNames: []string{"[fd00::1]"}, Usage: ServerAuth}, `"[fd00::1]" is an IP address`},
		{"IP SAN on a client", LeafRequest{CommonName: "x", DNSNames: []string{"127.0.0.1"}, Usage: ClientAuth}, "is an IP address"},
		{"service IP on a client", LeafRequest{CommonName: "x", APIServerIPs: []net.IP{net.ParseIP("10.96.0.1")}, Usage: ClientAuth}, "only in an API server certificate"},
		{"loopback service IP", LeafRequest{DNSNames: []string{"api.example.com"}, APIServerIPs: []net.IP{net.ParseIP("127.0.0.1")}, Usage: ServerAuth}, "not an address clients dial"},
		{"wildcard", LeafRequest{DNSNames: []string{"*.example.com"}, Usage: ServerAuth}, "no wildcard names"},
		{"bad name", LeafRequest{DNSNames: []string{"api_server.example.com"}, Usage: ServerAuth}, "is not a DNS name"},
		{"trailing dot", LeafRequest{DNSNames: []string{"api.example.com."}, Usage: ServerAuth}, "is not a DNS name"},
		{"duplicate name", LeafRequest{DNSNames: []string{"a.example.com", "a.example.com"}, Usage: ServerAuth}, "listed twice"},
		{"server without name", LeafRequest{CommonName: "api", Usage: ServerAuth}, "a server certificate needs a DNS name"},
		{"no usage", LeafRequest{DNSNames: []string{"a.example.com"}}, "usage must be"},
		{"client without name", LeafRequest{Usage: ClientAuth}, "common name"},
		{"long common name", LeafRequest{CommonName: strings.Repeat("a", 65), Usage: ClientAuth}, "want 1–64 characters"},
		{"control character", LeafRequest{CommonName: "alice", Organizations: []string{"dev\n"}, Usage: ClientAuth}, "organization"},
		{"long validity", LeafRequest{DNSNames: []string{"a.example.com"}, Usage: ServerAuth, Validity: 2 * 365 * 24 * time.Hour}, "R24"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if l, err := r.Issue(tc.req); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v (%v), want %q", err, l, tc.want)
			}
		})
	}
	now = r.Intermediate.NotAfter.Add(time.Second)
	if _, err := r.IssueServer("late.example.com"); err == nil || !strings.Contains(err.Error(), "the intermediate CA is not valid now") {
		t.Errorf("expired intermediate: %v", err)
	}
	if _, err := NewRealm("kube", Options{}); err == nil || !strings.Contains(err.Error(), `unknown realm "kube"`) {
		t.Errorf("unknown realm: %v", err)
	}
	if _, err := NewRealm(RealmEtcd, Options{LeafValidity: 500 * 24 * time.Hour}); err == nil {
		t.Error("leaf validity beyond the maximum accepted")
	}
}

func TestLeafProperties(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	r := newRealm(t, RealmKubernetes, Options{Now: func() time.Time { return now }, IntermediateValidity: 40 * 24 * time.Hour})
	s, err := r.IssueServer("api.prod.example.com", "kubernetes.default.svc.cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	c := s.Cert
	if c.Subject.CommonName != "api.prod.example.com" || len(c.IPAddresses) != 0 || len(c.DNSNames) != 2 || c.IsCA {
		t.Errorf("subject %v, IPs %v, DNS %v", c.Subject, c.IPAddresses, c.DNSNames)
	}
	if c.KeyUsage != x509.KeyUsageDigitalSignature || len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("usages %v %v", c.KeyUsage, c.ExtKeyUsage)
	}
	if c.PublicKeyAlgorithm != x509.ECDSA || s.Key.Curve != elliptic.P256() {
		t.Errorf("key %v", c.PublicKeyAlgorithm)
	}
	if !c.NotBefore.Equal(now.Add(-backdate)) || !c.NotAfter.Equal(now.Add(DefaultLeafValidity)) {
		t.Errorf("validity %v – %v", c.NotBefore, c.NotAfter)
	}
	if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %v", c.SerialNumber)
	}
	cl, err := r.IssueClient("alice", "kubeadm:cluster-admins", "developers")
	if err != nil {
		t.Fatal(err)
	}
	orgs := slices.Sorted(slices.Values(cl.Cert.Subject.Organization))
	if cl.Cert.Subject.CommonName != "alice" || fmt.Sprint(orgs) != "[developers kubeadm:cluster-admins]" ||
		cl.Cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth || cl.Cert.SerialNumber.Cmp(c.SerialNumber) == 0 {
		t.Errorf("client %v %v", cl.Cert.Subject, cl.Cert.ExtKeyUsage)
	}
	// A leaf never outlives its intermediate: 30 days asked, 10 left.
	now = now.Add(30 * 24 * time.Hour)
	late, err := r.IssueServer("api.prod.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if !late.Cert.NotAfter.Equal(r.Intermediate.NotAfter) {
		t.Errorf("leaf ends %v, intermediate %v", late.Cert.NotAfter, r.Intermediate.NotAfter)
	}
	short, err := r.Issue(LeafRequest{DNSNames: []string{"x.example.com"}, Usage: ServerAuth, Validity: time.Hour})
	if err != nil || !short.Cert.NotAfter.Equal(now.Add(time.Hour)) {
		t.Errorf("1h leaf: %v %v", short, err)
	}
	// Root and intermediate: CAs with path lengths 1 and 0.
	if !r.Root.IsCA || r.Root.MaxPathLen != 1 || !r.Intermediate.IsCA || r.Intermediate.MaxPathLen != 0 || !r.Intermediate.MaxPathLenZero {
		t.Errorf("CA constraints: root %v/%d, intermediate %v/%d", r.Root.IsCA, r.Root.MaxPathLen, r.Intermediate.IsCA, r.Intermediate.MaxPathLen)
	}
	if r.Root.Subject.OrganizationalUnit[0] != RealmKubernetes || !r.Root.NotAfter.Equal(r.Root.NotBefore.Add(DefaultRootValidity+backdate)) {
		t.Errorf("root %v %v–%v", r.Root.Subject, r.Root.NotBefore, r.Root.NotAfter)
	}
}

// TestReproducible: with a seeded global random source and a fixed clock,
// a realm comes out byte for byte the same (Go ≥ 1.26 ignores a custom
// io.Reader for key generation; testing/cryptotest is the way).
func TestReproducible(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	make := func() []byte {
		cryptotest.SetGlobalRandom(t, 42)
		r := newRealm(t, RealmContent, Options{Now: func() time.Time { return now }})
		l, err := r.IssueServer("repo.example.com")
		if err != nil {
			t.Fatal(err)
		}
		return append(r.CACertPEM(), l.CertPEM()...)
	}
	if a, b := make(), make(); !bytes.Equal(a, b) {
		t.Error("same seed and clock, different certificates")
	}
}

func TestNeedsRotation(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cert := &x509.Certificate{NotBefore: start, NotAfter: start.Add(30 * 24 * time.Hour)}
	day := func(d float64) time.Time { return start.Add(time.Duration(d * float64(24*time.Hour))) }
	for _, tc := range []struct {
		name      string
		cert      *x509.Certificate
		now       time.Time
		threshold float64
		want      bool
	}{
		{"fresh", cert, day(1), DefaultRotationThreshold, false},
		{"day 19", cert, day(19), DefaultRotationThreshold, false},
		{"day 20: a third left", cert, day(20), DefaultRotationThreshold, true},
		{"day 29", cert, day(29), DefaultRotationThreshold, true},
		{"expired", cert, day(30), DefaultRotationThreshold, true},
		{"long expired", cert, day(400), DefaultRotationThreshold, true},
		{"not yet valid", cert, day(-1), DefaultRotationThreshold, true},
		{"threshold 0: valid", cert, day(29.9), 0, false},
		{"threshold 0: expired", cert, day(30), 0, true},
		{"threshold 1", cert, day(0), 1, true},
		{"half, before", cert, day(14.9), 0.5, false},
		{"half, at", cert, day(15), 0.5, true},
		{"nil certificate", nil, day(1), DefaultRotationThreshold, true},
	} {
		if got := NeedsRotation(tc.cert, tc.now, tc.threshold); got != tc.want {
			t.Errorf("%s: got %v", tc.name, got)
		}
	}
}

func TestPassphrase(t *testing.T) {
	p := Passphrase("hunter2-but-longer")
	s := fmt.Sprintf("%v %s %q %x %#v %+v %d", p, p, p, p, p, struct{ P Passphrase }{p}, p)
	if strings.Contains(s, "hunter2") || strings.Contains(s, fmt.Sprintf("%x", []byte("hunter2"))) {
		t.Errorf("passphrase printed: %s", s)
	}
	if fmt.Sprint(fmt.Errorf("loading: %v", p)) != "loading: [redacted]" {
		t.Error("passphrase in an error")
	}
	dir := t.TempDir()
	for content, want := range map[string]string{
		"secret passphrase\n":         "secret passphrase",
		"secret passphrase\r\n":       "secret passphrase",
		"secret passphrase":           "secret passphrase",
		"secret passphrase\nsecond\n": "secret passphrase",
		" spaces kept \n":             " spaces kept ",
	} {
		f := filepath.Join(dir, "p")
		os.WriteFile(f, []byte(content), 0o600)
		got, err := ReadPassphraseFile(f)
		if err != nil || string(got) != want {
			t.Errorf("%q: got %q %v", content, got, err)
		}
	}
	for _, bad := range []string{"", "\n", strings.Repeat("x", 5000)} {
		f := filepath.Join(dir, "p")
		os.WriteFile(f, []byte(bad), 0o600)
		if _, err := ReadPassphraseFile(f); err == nil {
			t.Errorf("%.10q accepted", bad)
		}
	}
	if _, err := ReadPassphraseFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	t.Setenv("FERRY_TEST_PASS", "from the environment")
	if got, err := PassphraseFromEnv("FERRY_TEST_PASS"); err != nil || string(got) != "from the environment" {
		t.Errorf("env: %q %v", got, err)
	}
	t.Setenv("FERRY_TEST_EMPTY", "")
	for _, name := range []string{"FERRY_TEST_EMPTY", "FERRY_TEST_UNSET_VARIABLE"} {
		if _, err := PassphraseFromEnv(name); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzDecryptPrivateKey: hostile key files never panic, and decryption
// work stays bounded (large iteration counts are refused before any work).
// A key that decrypts fails with ErrWrongPassphrase under another
// passphrase, and encrypts again to a file that decrypts to the same key
// (and not under another passphrase).
func FuzzDecryptPrivateKey(f *testing.F) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), nil)
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	good, err := encryptPKCS8(der, testPass, 1000)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	// Keys encrypted by OpenSSL 3 (not by encryptPKCS8, so that the round
	// trip below is reached even if encryptPKCS8 and DecryptPrivateKey
	// disagree): openssl genpkey … | openssl pkcs8 -topk8 -v2 CIPHER
	// -v2prf PRF -iter N -passout pass:"correct horse battery staple".
	f.Add([]byte(opensslP256AES256SHA256))
	f.Add([]byte(opensslEd25519AES128SHA1))
	f.Add([]byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if p, err := parsePBES2FromPEM(data); err == nil && p.iterations > 20000 {
			return // valid but slow to try: parsing is what is fuzzed here
		}
		key, err := DecryptPrivateKey(data, testPass)
		if err != nil {
			return
		}
		wrong := Passphrase("not the staple")
		if _, err := DecryptPrivateKey(data, wrong); !errors.Is(err, ErrWrongPassphrase) {
			t.Fatalf("decrypted with another passphrase: %v", err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatalf("a decrypted %T does not marshal: %v", key, err)
		}
		again, err := encryptPKCS8(der, testPass, 1000)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecryptPrivateKey(again, testPass)
		if err != nil {
			t.Fatalf("a re-encrypted %T does not decrypt: %v", key, err)
		}
		if eq, ok := key.(interface{ Equal(crypto.PrivateKey) bool }); !ok || !eq.Equal(back) {
			t.Fatalf("the key changed on a round trip: %T, %T", key, back)
		}
		if _, err := DecryptPrivateKey(again, wrong); !errors.Is(err, ErrWrongPassphrase) {
			t.Fatalf("the re-encrypted key decrypted with another passphrase: %v", err)
		}
	})
}

// opensslP256AES256SHA256 is a P-256 key, AES-256-CBC, PBKDF2 with
// HMAC-SHA-256, 1000 iterations.
const opensslP256AES256SHA256 = `-----BEGIN ENCRYPTED PRIVATE KEY-----
MIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAgGpqsMS0KgrAICA+gw
DAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEED2GGS9ovo7HBRDVI1i7DbQEgZA/
13SxpGdozQzXcUY4pgmjxzuOx2SaHWEphEwQVbNHOG7Fcg3vS1MLnmgXUgxZAYM0
AIy6kSmdJ6InilP37QFKBvdNRyB/+IQVPGFiWIrUm4jApLg+ro3eJtdQpnJdiegk
LzSHzR4LR1yH8n5Xp7XIn1sfucFKBpzTLg0I0IvoLVxEzLT38GFtRdA7ITp1lxw=
-----END ENCRYPTED PRIVATE KEY-----
`

// opensslEd25519AES128SHA1 is an Ed25519 key, AES-128-CBC, PBKDF2 with
// HMAC-SHA-1 (the default: no PRF parameter), 2048 iterations.
const opensslEd25519AES128SHA1 = `-----BEGIN ENCRYPTED PRIVATE KEY-----
MIGNMEkGCSqGSIb3DQEFDTA8MBsGCSqGSIb3DQEFDDAOBAhuLx8N7uTvGgICCAAw
HQYJYIZIAWUDBAECBBAYA70kPlPcIYXTUWFUWx3kBEBhnvuIlTxWK3qsWwlSGb9E
5wUmKsFrJ1TjC0J+QjGwE7ZWJvbvJfho5moaz3DvjCbX6Ni0SGVFJYZMrRqNZicQ
-----END ENCRYPTED PRIVATE KEY-----
`

func parsePBES2FromPEM(data []byte) (*pbes2, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("no PEM")
	}
	return parsePBES2(b.Bytes)
}
