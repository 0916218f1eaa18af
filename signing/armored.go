package signing

import (
	"bytes"
	"fmt"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

// Armored returns the keyring's public keys, one armored block per key,
// concatenated: what a server hands to dnf (gpgkey=) and to gpg --import,
// whatever form (armored or binary) the keyring was read from.
func (k *Keyring) Armored() ([]byte, error) {
	var b bytes.Buffer
	for _, e := range k.entities {
		w, err := armor.Encode(&b, openpgp.PublicKeyType, nil)
		if err != nil {
			return nil, err
		}
		if err := e.Serialize(w); err != nil {
			return nil, fmt.Errorf("serializing public key %s: %w", fingerprint(e), err)
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}
