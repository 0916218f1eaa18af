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

	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/ferry-k8s/ferry/internal/testutil"
)

// TestWeakSignaturesRefused makes, with the real gpg, signatures that
// go-crypto accepts and Ferry must not: a SHA-1 digest, an RSA key of 1024
// bits, and one it refuses for the wrong reason (an MD5 digest, reported as
// an unknown signer); each is refused with the real reason, and the same
// keys and data with SHA-256 (or a 3072-bit key) pass, so the refusal is
// the weakness.
func TestWeakSignaturesRefused(t *testing.T) {
	gpg := testutil.Need(t, "gpg")
	dir := t.TempDir()
	home := testutil.GPGHome(t)
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(gpg, append([]string{"--homedir", home, "--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("gpg %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	msg := filepath.Join(dir, "msg")
	writeFile(t, msg, []byte("ferry\n"))
	sign := func(uid, digest string) []byte {
		sig := filepath.Join(dir, uid+"-"+digest+".sig")
		run("--local-user", uid, "--digest-algo", digest, "--output", sig, "--detach-sign", msg)
		data, err := os.ReadFile(sig)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	ring := func(uid string) *Keyring {
		pub := filepath.Join(dir, uid+".pub")
		run("--yes", "--armor", "--output", pub, "--export", uid)
		k, err := LoadKeyringFile(pub)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	run("--quick-gen-key", "Ed <ed@ferry.invalid>", "ed25519", "sign", "never")
	run("--quick-gen-key", "Short <short@ferry.invalid>", "rsa1024", "sign", "never")
	run("--quick-gen-key", "Long <long@ferry.invalid>", "rsa3072", "sign", "never")
	// gpg dates signatures with the machine's clock: check after it.
	now := time.Now().Add(time.Hour)
	for _, tc := range []struct {
		name, uid, digest string
		want              string // "" accepted
	}{
		{"ed25519 sha256", "ed@ferry.invalid", "SHA256", ""},
		{"ed25519 sha1", "ed@ferry.invalid", "SHA1", "uses SHA-1"},
		{"rsa3072 md5", "long@ferry.invalid", "MD5", "uses MD5"},
		{"rsa3072 sha256", "long@ferry.invalid", "SHA256", ""},
		{"rsa1024 sha256", "short@ferry.invalid", "SHA256", "RSA of 1024 bits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ring(tc.uid).Verify(bytes.NewReader([]byte("ferry\n")), sign(tc.uid, tc.digest), now)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (!errors.Is(err, ErrWeak) || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Verify = %v, want ErrWeak naming %q", err, tc.want)
			}
		})
	}
}

// TestSignatureBeforeItsKey: a signature dated before its key was made
// (which an honest signer cannot produce) is refused.
func TestSignatureBeforeItsKey(t *testing.T) {
	s, k, _ := newKey(t, KeyOptions{})
	// go-crypto's signing API refuses to make one: build the packet.
	priv := s.entity.PrivateKey
	id := priv.KeyId
	p := &packet.Signature{Version: 4, SigType: packet.SigTypeBinary, PubKeyAlgo: priv.PubKeyAlgo, Hash: signatureHash,
		CreationTime: epoch.Add(-24 * time.Hour), IssuerKeyId: &id}
	h := signatureHash.New()
	h.Write([]byte("m"))
	if err := p.Sign(h, priv, nil); err != nil {
		t.Fatal(err)
	}
	var sig bytes.Buffer
	if err := p.Serialize(&sig); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Verify(bytes.NewReader([]byte("m")), sig.Bytes(), epoch.Add(time.Hour)); err == nil || !strings.Contains(err.Error(), "before its key was made") {
		t.Fatalf("Verify = %v", err)
	}
}
