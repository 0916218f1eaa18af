package signing

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/internal/testutil"
)

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newKey(t *testing.T, o KeyOptions) (*Signer, *Keyring, []byte) {
	t.Helper()
	if o.Name == "" {
		o.Name = "Ferry Test"
		o.Email = "test@ferry.invalid"
	}
	if o.Created.IsZero() {
		o.Created = epoch
	}
	sec, pub, err := GenerateKey(o)
	if err != nil {
		t.Fatal(err)
	}
	s, err := LoadSigner(bytes.NewReader(sec), o.Passphrase)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ReadKeyring(bytes.NewReader(pub))
	if err != nil {
		t.Fatal(err)
	}
	return s, k, pub
}

func TestSignVerify(t *testing.T) {
	s, k, _ := newKey(t, KeyOptions{})
	msg := []byte("manifest contents\n")
	now := epoch.Add(time.Hour)
	for _, armored := range []bool{true, false} {
		sig, err := s.SignBytes(msg, epoch, armored)
		if err != nil {
			t.Fatal(err)
		}
		got, err := k.Verify(bytes.NewReader(msg), sig, now)
		if err != nil {
			t.Fatalf("armored=%v: %v", armored, err)
		}
		if got.Fingerprint != s.Fingerprint() || !got.Created.Equal(epoch) || got.Identity == "" {
			t.Errorf("armored=%v: got %+v, want fingerprint %s created %s", armored, got, s.Fingerprint(), epoch)
		}
		if _, err := k.Verify(bytes.NewReader([]byte("manifest contents!\n")), sig, now); !errors.Is(err, ErrBadSignature) {
			t.Errorf("armored=%v: tampered message: got %v, want ErrBadSignature", armored, err)
		}
	}
}

func TestSignatureIsDeterministic(t *testing.T) {
	s, _, _ := newKey(t, KeyOptions{})
	a, err := s.SignBytes([]byte("x"), epoch, true)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.SignBytes([]byte("x"), epoch, true)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("two signatures of the same data at the same time differ")
	}
}

func TestSignBeforeKeyCreationIsClamped(t *testing.T) {
	s, k, _ := newKey(t, KeyOptions{})
	sig, err := s.SignBytes([]byte("x"), epoch.Add(-365*24*time.Hour), true)
	if err != nil {
		t.Fatal(err)
	}
	got, err := k.Verify(bytes.NewReader([]byte("x")), sig, epoch.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Created.Equal(epoch) {
		t.Errorf("signature dated %s, want the key's creation %s", got.Created, epoch)
	}
}

func TestVerifyRefusals(t *testing.T) {
	s, k, _ := newKey(t, KeyOptions{Lifetime: 24 * time.Hour})
	_, other, _ := newKey(t, KeyOptions{Name: "Someone Else", Email: "else@ferry.invalid"})
	msg := []byte("data")
	sig, err := s.SignBytes(msg, epoch, true)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ring *Keyring
		sig  []byte
		now  time.Time
		want error
	}{
		{"wrong key", other, sig, epoch.Add(time.Hour), ErrUnknownKey},
		{"expired key", k, sig, epoch.Add(48 * time.Hour), ErrKeyExpired},
		{"empty signature", k, nil, epoch, ErrNoSignature},
		{"garbage signature", k, []byte("-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n"), epoch, ErrNoSignature},
		{"public key instead of signature", k, mustPublic(t, s), epoch, ErrNoSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.ring.Verify(bytes.NewReader(msg), tt.sig, tt.now)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func mustPublic(t *testing.T, s *Signer) []byte {
	p, err := s.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPassphrase(t *testing.T) {
	sec, _, err := GenerateKey(KeyOptions{Name: "P", Email: "p@ferry.invalid", Created: epoch, Passphrase: []byte("s3cret")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSigner(bytes.NewReader(sec), nil); !errors.Is(err, ErrPassphrase) {
		t.Errorf("no passphrase: got %v, want ErrPassphrase", err)
	}
	if _, err := LoadSigner(bytes.NewReader(sec), []byte("wrong")); err == nil || !strings.Contains(err.Error(), "wrong passphrase") {
		t.Errorf("wrong passphrase: got %v", err)
	}
	if _, err := LoadSigner(bytes.NewReader(sec), []byte("s3cret")); err != nil {
		t.Errorf("right passphrase: %v", err)
	}
	if _, err := LoadSigner(bytes.NewReader(mustPublic(t, mustSigner(t))), nil); err == nil {
		t.Error("a public key was accepted as a signing key")
	}
}

func mustSigner(t *testing.T) *Signer {
	s, _, _ := newKey(t, KeyOptions{})
	return s
}

func TestKeyringOfConcatenatedKeys(t *testing.T) {
	s1, _, p1 := newKey(t, KeyOptions{Name: "One", Email: "1@ferry.invalid"})
	s2, _, p2 := newKey(t, KeyOptions{Name: "Two", Email: "2@ferry.invalid"})
	k, err := ReadKeyring(bytes.NewReader(append(append([]byte{}, p1...), p2...)))
	if err != nil {
		t.Fatal(err)
	}
	if got := k.Fingerprints(); len(got) != 2 {
		t.Fatalf("got %d keys, want 2", len(got))
	}
	for _, s := range []*Signer{s1, s2} {
		sig, err := s.SignBytes([]byte("m"), epoch, true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := k.Verify(bytes.NewReader([]byte("m")), sig, epoch); err != nil {
			t.Errorf("key %s: %v", s.Fingerprint(), err)
		}
	}
}

// TestGPGAcceptsSignatures runs the real gpg: the signatures we make must be
// checkable by people who have nothing but gnupg.
func TestGPGAcceptsSignatures(t *testing.T) {
	gpg := testutil.Need(t, "gpg")
	s, _, pub := newKey(t, KeyOptions{})
	dir := t.TempDir()
	home := testutil.GPGHome(t)
	run := func(args ...string) (string, error) {
		cmd := exec.Command(gpg, append([]string{"--homedir", home, "--batch", "--no-tty"}, args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	writeFile(t, filepath.Join(dir, "pub.asc"), pub)
	if out, err := run("--import", filepath.Join(dir, "pub.asc")); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}
	msg := []byte("hello from ferry\n")
	writeFile(t, filepath.Join(dir, "msg"), msg)
	for _, armored := range []bool{true, false} {
		sig, err := s.SignBytes(msg, epoch, armored)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "msg.sig"), sig)
		if out, err := run("--verify", filepath.Join(dir, "msg.sig"), filepath.Join(dir, "msg")); err != nil {
			t.Fatalf("armored=%v: gpg --verify rejected our signature: %v\n%s", armored, err, out)
		}
		writeFile(t, filepath.Join(dir, "msg"), []byte("tampered\n"))
		if out, err := run("--verify", filepath.Join(dir, "msg.sig"), filepath.Join(dir, "msg")); err == nil {
			t.Fatalf("gpg --verify accepted a tampered message:\n%s", out)
		}
		writeFile(t, filepath.Join(dir, "msg"), msg)
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// FuzzReadKeyring reads arbitrary keyrings: errors, never panics, and a
// keyring that reads survives what servers do with it: Armored serializes
// it, the result reads back to the same fingerprints in the same order, and
// serializes again to the same bytes.
func FuzzReadKeyring(f *testing.F) {
	_, pub, err := GenerateKey(KeyOptions{Name: "F", Email: "f@ferry.invalid", Created: epoch})
	if err != nil {
		f.Fatal(err)
	}
	_, pub2, err := GenerateKey(KeyOptions{Name: "G", Email: "g@ferry.invalid", Created: epoch, Lifetime: 24 * time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pub)
	f.Add(append(append(append([]byte{}, pub...), '\n'), pub2...)) // two keys, as cat makes them
	f.Add([]byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n-----END PGP PUBLIC KEY BLOCK-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ReadKeyring(bytes.NewReader(data))
		if err != nil {
			return
		}
		_, _ = k.Verify(bytes.NewReader([]byte("x")), data, epoch)
		fps := k.Fingerprints()
		if len(fps) == 0 {
			t.Fatal("a keyring without keys")
		}
		armored, err := k.Armored()
		if err != nil {
			t.Fatalf("a keyring that reads does not serialize: %v", err)
		}
		again, err := ReadKeyring(bytes.NewReader(armored))
		if err != nil {
			t.Fatalf("the serialized keyring does not read: %v\n%s", err, armored)
		}
		if got := again.Fingerprints(); !slices.Equal(got, fps) {
			t.Fatalf("fingerprints %v after a round trip, want %v", got, fps)
		}
		if twice, err := again.Armored(); err != nil || !bytes.Equal(twice, armored) {
			t.Fatalf("serialized again: %v\n%s\nwant\n%s", err, twice, armored)
		}
	})
}

func TestGenerateKeyFromFixedEntropyIsReproducible(t *testing.T) {
	gen := func(seed string) []byte {
		sec, _, err := GenerateKey(KeyOptions{Name: "F", Email: "f@ferry.invalid", Created: epoch, Rand: newStream(seed)})
		if err != nil {
			t.Fatal(err)
		}
		return sec
	}
	if !bytes.Equal(gen("a"), gen("a")) {
		t.Error("same entropy, different keys")
	}
	if bytes.Equal(gen("a"), gen("b")) {
		t.Error("different entropy, same key")
	}
}

func newStream(seed string) io.Reader {
	return mrand.NewChaCha8(sha256.Sum256([]byte(seed)))
}

// TestKeyringRefusesSecretKeys: a secret key given where a keyring goes is
// refused, naming the key and the remedy, so it is never copied to nodes.
func TestKeyringRefusesSecretKeys(t *testing.T) {
	sec, pub, err := GenerateKey(KeyOptions{Name: "K", Email: "k@ferry.invalid", Created: epoch})
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"secret key": sec, "public then secret": append(append(append([]byte{}, pub...), '\n'), sec...)} {
		if _, err := ReadKeyring(bytes.NewReader(data)); !errors.Is(err, ErrSecretKey) || !strings.Contains(err.Error(), "public key only") {
			t.Errorf("%s: %v, want ErrSecretKey", name, err)
		}
	}
	ring, err := ReadKeyring(bytes.NewReader(pub))
	if err != nil {
		t.Fatal(err)
	}
	armored, err := ring.Armored()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(armored, []byte("PRIVATE KEY")) {
		t.Error("Armored wrote secret key material")
	}
}
