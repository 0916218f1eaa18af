package signing

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp/armor"

	"github.com/ferry-k8s/ferry/internal/testutil"
)

func TestKeyringArmored(t *testing.T) {
	s1, _, pub1 := newKey(t, KeyOptions{Name: "One", Email: "one@ferry.invalid"})
	s2, _, pub2 := newKey(t, KeyOptions{Name: "Two", Email: "two@ferry.invalid"})
	// A keyring of two keys, read from binary packets: Armored gives both,
	// armored, one block each.
	var bin bytes.Buffer
	for _, pub := range [][]byte{pub1, pub2} {
		block, err := armor.Decode(bytes.NewReader(pub))
		if err != nil {
			t.Fatal(err)
		}
		bin.ReadFrom(block.Body)
	}
	ring, err := ReadKeyring(bytes.NewReader(bin.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	out, err := ring.Armored()
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(out), "-----BEGIN PGP PUBLIC KEY BLOCK-----"); n != 2 || bytes.Contains(out, []byte("PRIVATE")) {
		t.Fatalf("%d public key blocks:\n%s", n, out)
	}
	back, err := ReadKeyring(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{s1.Fingerprint(), s2.Fingerprint()}
	if got := back.Fingerprints(); !slices.Equal(got, want) {
		t.Errorf("fingerprints %v, want %v", got, want)
	}
	// What a server hands out still verifies signatures.
	sig, err := s2.SignBytes([]byte("msg"), epoch, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := back.Verify(bytes.NewReader([]byte("msg")), sig, epoch); err != nil {
		t.Errorf("verify with the re-armored keyring: %v", err)
	}
	// And gpg imports it (as dnf's gpgkey= would).
	gpg := testutil.Need(t, "gpg")
	home := testutil.GPGHome(t)
	file := filepath.Join(home, "keys.asc")
	if err := os.WriteFile(file, out, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := exec.Command(gpg, "--homedir", home, "--batch", "--import", file).CombinedOutput()
	if err != nil || !strings.Contains(string(res), "imported: 2") {
		t.Errorf("gpg --import: %v\n%s", err, res)
	}
}
