package signing

import (
	"crypto"
	"errors"
	"fmt"
	"io"

	rpmutils "github.com/sassoftware/go-rpmutils"
)

// RPMSignatures are the verified OpenPGP signatures of one RPM package.
type RPMSignatures struct {
	// Name, Epoch ("" when absent), Version, Release and Arch are read from
	// the header the signatures cover.
	Name, Epoch, Version, Release, Arch string
	Signatures                          []Signature
}

// VerifyRPM reads an RPM package from r and checks its OpenPGP signatures
// (over the header, and over header and payload) against the keyring, and
// the payload against the digest in the signed header. It fails with
// ErrNoSignature on an unsigned package, ErrUnknownKey when a signature is
// by a key not in the keyring, and ErrBadSignature when a signature or
// digest does not match or uses MD5 or SHA-1. Key expiry is not checked:
// distributions keep signing keys for a release's lifetime.
//
// The header is parsed by go-rpmutils, which trusts its sizes: give it
// packages whose digest was checked against signed metadata first.
func (k *Keyring) VerifyRPM(r io.Reader) (*RPMSignatures, error) {
	hdr, sigs, err := rpmutils.Verify(r, k.entities)
	if err != nil {
		var nf rpmutils.KeyNotFoundError
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("%w: key ID %016X", ErrUnknownKey, nf.KeyID)
		}
		if errors.Is(err, rpmutils.ErrNoPGPSignature) {
			return nil, fmt.Errorf("%w: %v", ErrNoSignature, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	if len(sigs) == 0 {
		return nil, fmt.Errorf("%w: the package is not signed", ErrNoSignature)
	}
	out := &RPMSignatures{}
	for _, s := range sigs {
		if s.Hash == crypto.MD5 || s.Hash == crypto.SHA1 {
			return nil, fmt.Errorf("%w: signature made with the weak hash %s", ErrBadSignature, s.Hash)
		}
		sig := Signature{KeyID: fmt.Sprintf("%016X", s.KeyId), Created: s.CreationTime, Identity: s.PrimaryName}
		if s.Signer != nil {
			sig.Fingerprint = fingerprint(s.Signer)
		}
		out.Signatures = append(out.Signatures, sig)
	}
	nevra, err := hdr.GetNEVRA()
	if err != nil {
		return nil, fmt.Errorf("reading the package's name: %w", err)
	}
	out.Name, out.Epoch, out.Version, out.Release, out.Arch = nevra.Name, nevra.Epoch, nevra.Version, nevra.Release, nevra.Arch
	return out, nil
}
