// Package signing holds Ferry's OpenPGP keys, detached signatures and
// keyrings. It is the only package of the project that imports
// github.com/ProtonMail/go-crypto, so the choice of OpenPGP library, of key
// algorithms and of what counts as a valid signature lives in one place.
//
// Signatures are made deterministic on purpose: the signature creation time is
// supplied by the caller (the bundle's SOURCE_DATE_EPOCH, clamped to the key's
// creation time) and the default key algorithm, Ed25519, signs without
// randomness, so rebuilding a bundle with the same inputs and key yields the
// same bytes. go-crypto would otherwise add a random salt notation to each
// signature, a hedge against fault attacks on the signing machine; we give
// that up for reproducibility, which lets anyone rebuild a bundle and compare
// it byte for byte. RSA keys are deterministic as well; ECDSA keys are not, so
// bundles signed with them rebuild with a different signature.
//
//	LoadSigner(key, passphrase) ─▶ Signer.Sign(msg, at) ─▶ detached signature
//	ReadKeyring(pub)            ─▶ Keyring.Verify(msg, sig, now) ─▶ *Signature | ErrUnknownKey, ErrKeyExpired, …
package signing
