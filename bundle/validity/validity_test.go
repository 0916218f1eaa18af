package validity

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/internal/testutil"
	"github.com/ferry-k8s/ferry/signing"
)

// t0 is the tests' fixed clock: every check here is made at an injected
// time, never at the machine's.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const digest = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

type key struct {
	signer *signing.Signer
	ring   *signing.Keyring
	pub    []byte
}

func newKey(t testing.TB, created time.Time, lifetime time.Duration) key {
	t.Helper()
	sec, pub, err := signing.GenerateKey(signing.KeyOptions{Name: "Ferry Test", Email: "test@ferry.invalid", Created: created, Lifetime: lifetime})
	if err != nil {
		t.Fatal(err)
	}
	s, err := signing.LoadSigner(bytes.NewReader(sec), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := signing.ReadKeyring(bytes.NewReader(pub))
	if err != nil {
		t.Fatal(err)
	}
	return key{s, r, pub}
}

func statement(issued, expires time.Time) *Statement {
	return &Statement{SchemaVersion: SchemaVersion, Kind: Kind, Bundle: BundleRef{Name: "ferry", Version: "1.0.0", ManifestSHA256: digest}, Issued: issued, Expires: expires}
}

func TestSignVerify(t *testing.T) {
	k := newKey(t, t0, 0)
	st := statement(t0.Add(400*24*time.Hour), t0.Add(900*24*time.Hour))
	data, err := Sign(st, k.signer)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("-----BEGIN PGP SIGNED MESSAGE-----")) {
		t.Fatalf("not a cleartext-signed message:\n%s", data)
	}
	v, err := Verify(data, k.ring, t0.Add(500*24*time.Hour), digest)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Expires.Equal(st.Expires) || !v.Issued.Equal(st.Issued) || v.Bundle != st.Bundle || v.Signer.Fingerprint != k.signer.Fingerprint() {
		t.Fatalf("verified %+v, signed %+v", v.Statement, st)
	}
	// Reproducible: the same statement and key give the same bytes.
	again, err := Sign(st, k.signer)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, data) {
		t.Error("signing the same statement twice gave different bytes")
	}
}

func TestVerifyRefuses(t *testing.T) {
	k := newKey(t, t0, 0)
	other := newKey(t, t0, 0)
	short := newKey(t, t0, 30*24*time.Hour)
	now := t0.Add(100 * 24 * time.Hour)
	good := statement(t0.Add(24*time.Hour), t0.Add(800*24*time.Hour))
	sign := func(k key, st *Statement) []byte {
		data, err := Sign(st, k.signer)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	valid := sign(k, good)
	tampered := bytes.Replace(valid, []byte(good.Expires.Format(time.RFC3339)), []byte(good.Expires.Add(time.Hour).Format(time.RFC3339)), 1)
	if bytes.Equal(tampered, valid) {
		t.Fatal("the tamper changed nothing")
	}
	future := sign(k, statement(now.Add(ClockSkew+time.Hour), now.Add(900*24*time.Hour)))
	for _, tc := range []struct {
		name   string
		data   []byte
		ring   *signing.Keyring
		digest string
		want   string
	}{
		{"another bundle", valid, k.ring, strings.Repeat("e", 64), "not for this one"},
		{"untrusted key", sign(other, good), k.ring, digest, "not in the keyring"},
		{"expired key", sign(short, good), short.ring, digest, "expired"},
		{"tampered text", tampered, k.ring, digest, "does not match"},
		{"issued in the future", future, k.ring, digest, "in the future"},
		{"garbage", []byte("hello"), k.ring, digest, "not a cleartext-signed message"},
		{"too large", bytes.Repeat([]byte("a"), MaxSize+1), k.ring, digest, "more than the limit"},
		{"trailing data", append(append([]byte{}, valid...), []byte("extra\n")...), k.ring, digest, "trailing data"},
		{"detached signature", mustDetach(t, k, valid), k.ring, digest, "not a cleartext-signed message"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Verify(tc.data, tc.ring, now, tc.digest)
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Verify = %v, want an ErrInvalid naming %q", err, tc.want)
			}
		})
	}
	if _, err := Verify(valid, k.ring, now, digest); err != nil {
		t.Fatalf("the untampered statement: %v", err)
	}
}

func mustDetach(t *testing.T, k key, msg []byte) []byte {
	sig, err := k.signer.SignBytes(msg, t0, true)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func TestParseRefuses(t *testing.T) {
	good, err := statement(t0, t0.Add(time.Hour)).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(good); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ from, to, want string }{
		"unknown field":   {`"kind"`, `"extra": 1, "kind"`, "unknown field"},
		"schema":          {`"schemaVersion": 1`, `"schemaVersion": 2`, "schemaVersion"},
		"kind":            {`"BundleValidity"`, `"Other"`, "kind"},
		"digest":          {digest, "XYZ", "manifestSHA256"},
		"expires":         {t0.Add(time.Hour).Format(time.RFC3339), t0.Add(-time.Hour).Format(time.RFC3339), "not after issued"},
		"too far":         {t0.Add(time.Hour).Format(time.RFC3339), "2999-01-01T00:00:00Z", "days after issued"},
		"trailing object": {"}\n", "}\n{}", "trailing data"},
		"no name":         {`"name": "ferry"`, `"name": ""`, "required"},
	} {
		t.Run(name, func(t *testing.T) {
			bad := strings.Replace(string(good), tc.from, tc.to, 1)
			if bad == string(good) {
				t.Fatalf("%q not found in %s", tc.from, good)
			}
			if _, err := Parse([]byte(bad)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse = %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

func TestCheckNewer(t *testing.T) {
	a := statement(t0, t0.Add(400*24*time.Hour))
	b := statement(t0.Add(time.Hour), t0.Add(300*24*time.Hour)) // later, even if shorter: the publisher's word
	if err := CheckNewer(nil, a); err != nil {
		t.Error(err)
	}
	if err := CheckNewer(a, b); err != nil {
		t.Errorf("a newer statement: %v", err)
	}
	if err := CheckNewer(a, a); err != nil {
		t.Errorf("the same statement again: %v", err)
	}
	if err := CheckNewer(b, a); err == nil || !strings.Contains(err.Error(), "rollback") {
		t.Errorf("an older statement: %v, want a rollback refusal", err)
	}
	c := statement(t0, t0.Add(500*24*time.Hour))
	if err := CheckNewer(a, c); err == nil {
		t.Error("the same issue time with another expiry was accepted")
	}
	d := statement(t0.Add(2*time.Hour), t0.Add(500*24*time.Hour))
	d.Bundle.ManifestSHA256 = strings.Repeat("f", 64)
	if err := CheckNewer(a, d); err == nil {
		t.Error("a statement for another bundle was accepted as newer")
	}
}

// TestGPGVerifiesStatement runs the real gpg: a person with gnupg and the
// publisher's key checks a statement without Ferry, and gpg refuses one
// whose text was changed.
func TestGPGVerifiesStatement(t *testing.T) {
	gpg := testutil.Need(t, "gpg")
	k := newKey(t, t0, 0)
	data, err := Sign(statement(t0.Add(time.Hour), t0.Add(800*24*time.Hour)), k.signer)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	home := testutil.GPGHome(t)
	run := func(args ...string) (string, error) {
		out, err := exec.Command(gpg, append([]string{"--homedir", home, "--batch", "--no-tty"}, args...)...).CombinedOutput()
		return string(out), err
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if out, err := run("--import", write("pub.asc", k.pub)); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}
	if out, err := run("--verify", write("x.validity", data)); err != nil || !strings.Contains(out, "Good signature") {
		t.Fatalf("gpg --verify: %v\n%s", err, out)
	}
	// gpg's own reading of the text is ours.
	out, err := run("--decrypt", write("y.validity", data))
	if err != nil {
		t.Fatalf("gpg --decrypt: %v\n%s", err, out)
	}
	if !strings.Contains(out, `"kind": "BundleValidity"`) || !strings.Contains(out, digest) {
		t.Fatalf("gpg reads another text:\n%s", out)
	}
	tampered := bytes.Replace(data, []byte(`"version": "1.0.0"`), []byte(`"version": "1.0.1"`), 1)
	if out, err := run("--verify", write("z.validity", tampered)); err == nil {
		t.Fatalf("gpg accepted a tampered statement:\n%s", out)
	}
	// And a statement clear-signed by gpg itself is one Ferry reads.
	text, err := statement(t0.Add(2*time.Hour), t0.Add(900*24*time.Hour)).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sec := filepath.Join(dir, "gpgkey")
	if out, err := run("--passphrase", "", "--pinentry-mode", "loopback", "--quick-gen-key", "Gpg Made <gpg@ferry.invalid>", "ed25519", "sign", "never"); err != nil {
		t.Fatalf("gpg --quick-gen-key: %v\n%s", err, out)
	}
	if out, err := run("--armor", "--output", sec, "--export", "gpg@ferry.invalid"); err != nil {
		t.Fatalf("gpg --export: %v\n%s", err, out)
	}
	signed := filepath.Join(dir, "gpg.validity")
	if out, err := run("--pinentry-mode", "loopback", "--passphrase", "", "--local-user", "gpg@ferry.invalid", "--output", signed, "--clearsign", write("text.json", text)); err != nil {
		t.Fatalf("gpg --clearsign: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(sec)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := signing.ReadKeyring(bytes.NewReader(pub))
	if err != nil {
		t.Fatal(err)
	}
	gdata, err := os.ReadFile(signed)
	if err != nil {
		t.Fatal(err)
	}
	// gpg dates its signature with the machine's clock; check at a time
	// after it.
	if _, err := Verify(gdata, ring, time.Now().Add(time.Hour), digest); err != nil {
		t.Fatalf("a statement clear-signed by gpg: %v", err)
	}
}

func TestReadFileBounded(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big.validity")
	if err := os.WriteFile(p, bytes.Repeat([]byte("x"), MaxSize+10), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(p); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("ReadFile = %v, want a size refusal", err)
	}
	if got := Beside("/var/lib/ferry/bundles/ferry-1.0.0.iso"); got != "/var/lib/ferry/bundles/ferry-1.0.0.validity" {
		t.Errorf("Beside = %s", got)
	}
}

// FuzzVerify feeds arbitrary files to the statement reader: it never
// panics, and whatever it accepts is a valid statement for the bundle
// asked about, whose text parses back to the same value.
func FuzzVerify(f *testing.F) {
	k := newKey(f, t0, 0)
	good, err := Sign(statement(t0.Add(time.Hour), t0.Add(800*24*time.Hour)), k.signer)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n{}\n-----BEGIN PGP SIGNATURE-----\n\n-----END PGP SIGNATURE-----\n"))
	f.Add([]byte{})
	text, _ := statement(t0, t0.Add(time.Hour)).Marshal()
	f.Add(text)
	now := t0.Add(48 * time.Hour)
	f.Fuzz(func(t *testing.T, data []byte) {
		if s, err := Parse(data); err == nil {
			again, err := s.Marshal()
			if err != nil {
				t.Fatalf("a parsed statement does not marshal: %v", err)
			}
			s2, err := Parse(again)
			if err != nil || *s2 != *s {
				t.Fatalf("round trip: %+v, %v; want %+v", s2, err, s)
			}
		}
		v, err := Verify(data, k.ring, now, digest)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("a refusal that is not ErrInvalid: %v", err)
			}
			return
		}
		if v.Bundle.ManifestSHA256 != digest || v.Validate() != nil || v.Issued.After(now.Add(ClockSkew)) {
			t.Fatalf("accepted %+v", v.Statement)
		}
	})
}
