package signing

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/repo/rpmtest"
)

func TestVerifyRPM(t *testing.T) {
	newKey := func(name string) (*Signer, *Keyring) {
		sec, pub, err := GenerateKey(KeyOptions{Name: name, Email: name + "@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		s, err := LoadSigner(bytes.NewReader(sec), nil)
		if err != nil {
			t.Fatal(err)
		}
		k, err := ReadKeyring(bytes.NewReader(pub))
		if err != nil {
			t.Fatal(err)
		}
		return s, k
	}
	signer, ring := newKey("repo")
	_, other := newKey("other")
	sign := func(b []byte) ([]byte, error) { return signer.SignBytes(b, time.Now(), false) }
	spec := rpmtest.Spec{Name: "pkg", Version: "1.0", Release: "2", Arch: "x86_64", Epoch: 3, Files: map[string][]byte{"/usr/share/pkg/x": bytes.Repeat([]byte("x"), 10000)}}
	signed, err := rpmtest.Bytes(spec, sign)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ring.VerifyRPM(bytes.NewReader(signed))
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "pkg" || got.Epoch != "3" || got.Version != "1.0" || got.Release != "2" || got.Arch != "x86_64" ||
		len(got.Signatures) != 2 || got.Signatures[0].Fingerprint != signer.Fingerprint() {
		t.Fatalf("verified %+v", got)
	}
	if _, err := other.VerifyRPM(bytes.NewReader(signed)); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("another key: %v", err)
	}
	unsigned, err := rpmtest.Bytes(spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ring.VerifyRPM(bytes.NewReader(unsigned)); !errors.Is(err, ErrNoSignature) {
		t.Errorf("unsigned: %v", err)
	}
	// A changed payload byte: the signature over header and payload (and
	// the payload digest) no longer match.
	tampered := bytes.Clone(signed)
	tampered[len(tampered)-100] ^= 1
	if _, err := ring.VerifyRPM(bytes.NewReader(tampered)); !errors.Is(err, ErrBadSignature) {
		t.Errorf("tampered payload: %v", err)
	}
	if _, err := ring.VerifyRPM(bytes.NewReader([]byte("not an rpm"))); !errors.Is(err, ErrBadSignature) {
		t.Errorf("garbage: %v", err)
	}
}
