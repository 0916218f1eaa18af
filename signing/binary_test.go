package signing

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/ferry-k8s/ferry/internal/testutil"
)

func TestSignBinary(t *testing.T) {
	s, k, pub := newKey(t, KeyOptions{})
	msg := []byte("rpm header bytes")
	sig, err := s.SignBinary(msg, epoch)
	if err != nil {
		t.Fatal(err)
	}
	// One binary signature packet, version 4, made by our key.
	p, err := packet.Read(bytes.NewReader(sig))
	if err != nil {
		t.Fatalf("reading the signature packet: %v", err)
	}
	sp, ok := p.(*packet.Signature)
	if !ok {
		t.Fatalf("got a %T, want a signature packet", p)
	}
	if sp.Version != 4 || sp.SigType != packet.SigTypeBinary || !sp.CreationTime.Equal(epoch) {
		t.Errorf("signature version %d, type %d, created %s; want 4, binary, %s", sp.Version, sp.SigType, sp.CreationTime, epoch)
	}
	if _, err := packet.Read(bytes.NewReader(sig[packetLen(t, sig):])); err == nil {
		t.Error("more than one packet after the signature")
	}
	if _, err := k.Verify(bytes.NewReader(msg), sig, epoch.Add(time.Hour)); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if _, err := k.Verify(bytes.NewReader(append(msg, 0)), sig, epoch.Add(time.Hour)); !errors.Is(err, ErrBadSignature) {
		t.Errorf("changed data: got %v, want ErrBadSignature", err)
	}
	again, err := s.SignBinary(msg, epoch)
	if err != nil || !bytes.Equal(sig, again) {
		t.Errorf("two signatures of the same data differ (err %v)", err)
	}
	// gpg, the reference implementation, agrees.
	gpg := testutil.Need(t, "gpg")
	home := testutil.GPGHome(t)
	files := map[string][]byte{"key.asc": pub, "msg": msg, "msg.sig": sig}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(home, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command(gpg, "--homedir", home, "--batch", "--import", filepath.Join(home, "key.asc")).CombinedOutput(); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}
	out, err := exec.Command(gpg, "--homedir", home, "--batch", "--verify", filepath.Join(home, "msg.sig"), filepath.Join(home, "msg")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Good signature") {
		t.Errorf("gpg --verify: %v\n%s", err, out)
	}
}

// packetLen returns the length of the first (new-format or old-format)
// OpenPGP packet in b.
func packetLen(t *testing.T, b []byte) int {
	t.Helper()
	r := bytes.NewReader(b)
	if _, err := packet.Read(r); err != nil {
		t.Fatal(err)
	}
	return len(b) - r.Len()
}

func TestSignBinaryRefusesV6Keys(t *testing.T) {
	cfg := &packet.Config{V6Keys: true, Algorithm: packet.PubKeyAlgoEd25519, Time: func() time.Time { return epoch }}
	e, err := openpgp.NewEntity("V6", "", "v6@ferry.invalid", cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &Signer{entity: e}
	if _, err := s.SignBinary([]byte("x"), epoch); err == nil || !strings.Contains(err.Error(), "version 6 key") {
		t.Fatalf("got %v, want a refusal of the version 6 key", err)
	}
}
