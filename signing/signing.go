package signing

import (
	"bufio"
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Errors callers branch on. Verify wraps one of these, so errors.Is works.
var (
	ErrUnknownKey       = errors.New("signed by a key that is not in the keyring")
	ErrBadSignature     = errors.New("signature does not match the data")
	ErrKeyExpired       = errors.New("signing key has expired (or is not valid yet at the time checked)")
	ErrKeyRevoked       = errors.New("signing key is revoked")
	ErrSignatureExpired = errors.New("signature has expired")
	ErrNoSignature      = errors.New("no OpenPGP signature found")
	ErrPassphrase       = errors.New("secret key is passphrase-protected")
	ErrWeak             = errors.New("signature too weak to trust")
	ErrSecretKey        = errors.New("the keyring holds secret key material: give the public key only (builder key generate --public-output, gpg --export)")
)

// maxKeySize bounds the key and signature files we read: real ones are a few
// KiB, and the files may come from untrusted media.
const maxKeySize = 1 << 20

// signatureHash is the digest used in every signature we make.
const signatureHash = crypto.SHA256

// Signer makes detached signatures with one decrypted secret key.
type Signer struct {
	entity *openpgp.Entity
}

// LoadSignerFile reads an armored or binary OpenPGP secret key from path.
// passphrase may be nil for an unprotected key.
func LoadSignerFile(path string, passphrase []byte) (*Signer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening signing key: %w", err)
	}
	defer f.Close()
	s, err := LoadSigner(f, passphrase)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return s, nil
}

// LoadSigner reads one OpenPGP secret key (armored or binary) from r and
// decrypts it with passphrase if it is protected.
func LoadSigner(r io.Reader, passphrase []byte) (*Signer, error) {
	el, err := readEntities(r)
	if err != nil {
		return nil, err
	}
	if len(el) != 1 {
		return nil, fmt.Errorf("expected exactly one key, found %d", len(el))
	}
	e := el[0]
	if e.PrivateKey == nil {
		return nil, errors.New("file holds a public key only; a secret key is needed to sign")
	}
	if encrypted(e) {
		if len(passphrase) == 0 {
			return nil, ErrPassphrase
		}
		if err := e.DecryptPrivateKeys(passphrase); err != nil {
			return nil, fmt.Errorf("decrypting secret key: wrong passphrase or damaged key: %w", err)
		}
	}
	return &Signer{entity: e}, nil
}

func encrypted(e *openpgp.Entity) bool {
	if e.PrivateKey != nil && e.PrivateKey.Encrypted {
		return true
	}
	for _, sk := range e.Subkeys {
		if sk.PrivateKey != nil && sk.PrivateKey.Encrypted {
			return true
		}
	}
	return false
}

// Fingerprint is the signing key's primary fingerprint in upper-case hex.
func (s *Signer) Fingerprint() string {
	return fingerprint(s.entity)
}

// Created is the primary key's creation time. Signatures cannot predate it.
func (s *Signer) Created() time.Time {
	return s.entity.PrimaryKey.CreationTime
}

// Sign writes a detached signature of msg to w, dated at (clamped to the key's
// creation time so that a SOURCE_DATE_EPOCH older than the key still signs).
// Armored output is ASCII ("-----BEGIN PGP SIGNATURE-----"), as gpg --armor;
// binary output is what RPM header signatures need.
func (s *Signer) Sign(w io.Writer, msg io.Reader, at time.Time, armored bool) error {
	if created := s.Created(); at.Before(created) {
		at = created
	}
	at = at.UTC().Truncate(time.Second)
	deterministic := false
	cfg := &packet.Config{
		DefaultHash: signatureHash,
		Time:        func() time.Time { return at },
		// go-crypto salts v4 signatures by default; a reproducible bundle
		// needs the same bytes for the same inputs (see doc.go).
		NonDeterministicSignaturesViaNotation: &deterministic,
	}
	var err error
	if armored {
		err = openpgp.ArmoredDetachSign(w, s.entity, msg, cfg)
	} else {
		err = openpgp.DetachSign(w, s.entity, msg, cfg)
	}
	if err != nil {
		return fmt.Errorf("signing with key %s: %w", s.Fingerprint(), err)
	}
	return nil
}

// SignBytes is Sign for data in memory.
func (s *Signer) SignBytes(msg []byte, at time.Time, armored bool) ([]byte, error) {
	var b bytes.Buffer
	if err := s.Sign(&b, bytes.NewReader(msg), at, armored); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// PublicKey returns the armored public key, for keyrings and for gpg --import.
func (s *Signer) PublicKey() ([]byte, error) {
	var b bytes.Buffer
	w, err := armor.Encode(&b, openpgp.PublicKeyType, nil)
	if err != nil {
		return nil, err
	}
	if err := s.entity.Serialize(w); err != nil {
		return nil, fmt.Errorf("serializing public key: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// Keyring is a set of trusted public keys.
type Keyring struct {
	entities openpgp.EntityList
}

// Signature describes a verified signature.
type Signature struct {
	Fingerprint string    // primary key fingerprint of the signer
	KeyID       string    // the (sub)key that made the signature
	Identity    string    // the signer's primary user ID
	Created     time.Time // signature creation time
}

// LoadKeyringFile reads armored or binary public keys (several may be
// concatenated) from path.
func LoadKeyringFile(path string) (*Keyring, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening keyring: %w", err)
	}
	defer f.Close()
	k, err := ReadKeyring(f)
	if err != nil {
		return nil, fmt.Errorf("keyring %s: %w", path, err)
	}
	return k, nil
}

// ReadKeyring reads armored or binary public keys from r. It refuses a
// file that holds secret key material (ErrSecretKey): a keyring is copied
// to every node and into join files, and one mistyped path must not
// publish a release signing key.
func ReadKeyring(r io.Reader) (*Keyring, error) {
	el, err := readEntities(r)
	if err != nil {
		return nil, err
	}
	if len(el) == 0 {
		return nil, errors.New("no keys found")
	}
	for _, e := range el {
		if hasSecret(e) {
			return nil, fmt.Errorf("key %s: %w", fingerprint(e), ErrSecretKey)
		}
	}
	return &Keyring{entities: el}, nil
}

// hasSecret says whether e carries any secret key material.
func hasSecret(e *openpgp.Entity) bool {
	if e.PrivateKey != nil {
		return true
	}
	for _, sk := range e.Subkeys {
		if sk.PrivateKey != nil {
			return true
		}
	}
	return false
}

// Fingerprints lists the primary key fingerprints of the keyring.
func (k *Keyring) Fingerprints() []string {
	out := make([]string, 0, len(k.entities))
	for _, e := range k.entities {
		out = append(out, fingerprint(e))
	}
	return out
}

// Verify checks a detached signature (armored or binary) of msg against the
// keyring at time now: the key must be known, neither expired nor revoked at
// now, and the signature must match and not have expired.
func (k *Keyring) Verify(msg io.Reader, sig []byte, now time.Time) (*Signature, error) {
	if len(sig) > maxKeySize {
		return nil, fmt.Errorf("signature of %d bytes is larger than %d: %w", len(sig), maxKeySize, ErrNoSignature)
	}
	body, err := dearmor(sig, openpgp.SignatureType)
	if err != nil {
		return nil, err
	}
	return k.verifyBody(msg, body, now)
}

// verifyBody is Verify for a binary signature.
func (k *Keyring) verifyBody(msg io.Reader, body []byte, now time.Time) (*Signature, error) {
	// go-crypto's reader skips a signature it cannot parse (an MD5 one)
	// and then reports an unknown signer: say what is wrong instead.
	if _, err := packet.Read(bytes.NewReader(body)); err != nil {
		var ue pgperrors.UnsupportedError
		if errors.As(err, &ue) {
			if name, ok := legacyHashes[sigHashID(body)]; ok {
				return nil, fmt.Errorf("%w: the signature uses %s; SHA-256 or stronger is needed", ErrWeak, name)
			}
			return nil, fmt.Errorf("%w: %v", ErrWeak, err)
		}
	}
	cfg := &packet.Config{Time: func() time.Time { return now }}
	p, signer, err := openpgp.VerifyDetachedSignature(k.entities, msg, bytes.NewReader(body), cfg)
	if err != nil {
		return nil, classify(err)
	}
	if err := checkStrength(p, signer); err != nil {
		return nil, err
	}
	out := &Signature{Fingerprint: fingerprint(signer), Created: p.CreationTime}
	if p.IssuerKeyId != nil {
		out.KeyID = fmt.Sprintf("%016X", *p.IssuerKeyId)
	}
	if id := signer.PrimaryIdentity(); id != nil {
		out.Identity = id.Name
	}
	return out, nil
}

// weakHashes are digests a signature may not be made with.
var weakHashes = map[crypto.Hash]bool{crypto.MD5: true, crypto.SHA1: true, crypto.RIPEMD160: true}

// legacyHashes name the OpenPGP ids of weak digests, for a signature
// go-crypto would not even parse.
var legacyHashes = map[byte]string{1: "MD5", 2: "SHA-1", 3: "RIPEMD-160"}

// sigHashID reads the hash algorithm id of the v4 signature packet that
// starts body (0 when it is not one), without go-crypto, which refuses to
// parse a signature with a hash it does not support.
func sigHashID(body []byte) byte {
	if len(body) < 2 || body[0]&0x80 == 0 {
		return 0
	}
	hdr := 0
	if body[0]&0x40 != 0 { // new format: tag, then a 1, 2 or 5 byte length
		switch l := body[1]; {
		case l < 192:
			hdr = 2
		case l < 224:
			hdr = 3
		case l == 255:
			hdr = 6
		default:
			return 0 // partial lengths: not a signature
		}
	} else { // old format: the length type is in the low two bits
		hdr = map[byte]int{0: 2, 1: 3, 2: 5}[body[0]&3]
		if hdr == 0 {
			return 0
		}
	}
	// version, signature type, public-key algorithm, hash algorithm
	if len(body) < hdr+4 || body[hdr] != 4 {
		return 0
	}
	return body[hdr+3]
}

// MinRSABits is the smallest RSA key a signature is accepted from.
const MinRSABits = 2048

// checkStrength refuses, after go-crypto checked the signature, what it
// accepts and should not: a weak digest, a short RSA key, a signature
// dated before its key was made.
func checkStrength(p *packet.Signature, signer *openpgp.Entity) error {
	if weakHashes[p.Hash] {
		return fmt.Errorf("%w: the signature uses %s; SHA-256 or stronger is needed", ErrWeak, p.Hash)
	}
	key := signer.PrimaryKey
	if p.IssuerKeyId != nil {
		for _, sk := range signer.Subkeys {
			if sk.PublicKey.KeyId == *p.IssuerKeyId {
				key = sk.PublicKey
			}
		}
	}
	if key.PubKeyAlgo == packet.PubKeyAlgoRSA || key.PubKeyAlgo == packet.PubKeyAlgoRSASignOnly {
		if bits, err := key.BitLength(); err == nil && bits < MinRSABits {
			return fmt.Errorf("%w: key %s is RSA of %d bits, fewer than %d", ErrWeak, fingerprint(signer), bits, MinRSABits)
		}
	}
	if p.CreationTime.Before(key.CreationTime) {
		return fmt.Errorf("%w: the signature is dated %s, before its key was made (%s)", ErrBadSignature,
			p.CreationTime.UTC().Format(time.RFC3339), key.CreationTime.UTC().Format(time.RFC3339))
	}
	return nil
}

// classify maps go-crypto's errors to ours, keeping the original as context.
func classify(err error) error {
	switch {
	case errors.Is(err, pgperrors.ErrUnknownIssuer):
		return ErrUnknownKey
	case errors.Is(err, pgperrors.ErrKeyExpired):
		return ErrKeyExpired
	case errors.Is(err, pgperrors.ErrKeyRevoked):
		return ErrKeyRevoked
	case errors.Is(err, pgperrors.ErrSignatureExpired):
		return ErrSignatureExpired
	}
	var se pgperrors.SignatureError
	if errors.As(err, &se) {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	var st pgperrors.StructuralError
	if errors.As(err, &st) {
		return fmt.Errorf("%w: malformed signature: %v", ErrNoSignature, err)
	}
	return fmt.Errorf("%w: %v", ErrBadSignature, err)
}

// readEntities reads keys, armored or binary, bounded in size.
func readEntities(r io.Reader) (openpgp.EntityList, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxKeySize+1))
	if err != nil {
		return nil, fmt.Errorf("reading key: %w", err)
	}
	if len(data) > maxKeySize {
		return nil, fmt.Errorf("key file larger than %d bytes", maxKeySize)
	}
	var el openpgp.EntityList
	if isArmored(data) {
		el, err = readArmoredBlocks(data)
	} else {
		el, err = openpgp.ReadKeyRing(bytes.NewReader(data))
	}
	if err != nil {
		return nil, fmt.Errorf("parsing OpenPGP key: %w", err)
	}
	return el, nil
}

// readArmoredBlocks accepts several concatenated armored key blocks, as
// people make keyrings with cat.
func readArmoredBlocks(data []byte) (openpgp.EntityList, error) {
	var all openpgp.EntityList
	for len(bytes.TrimSpace(data)) > 0 {
		block, err := armor.Decode(bytes.NewReader(data))
		if err != nil {
			if len(all) > 0 && errors.Is(err, io.EOF) {
				break
			}
			return nil, err
		}
		if block.Type != openpgp.PublicKeyType && block.Type != openpgp.PrivateKeyType {
			return nil, fmt.Errorf("unexpected armor type %q", block.Type)
		}
		el, err := openpgp.ReadKeyRing(block.Body)
		if err != nil {
			return nil, err
		}
		all = append(all, el...)
		end := bytes.Index(data, []byte("-----END PGP"))
		if end < 0 {
			break
		}
		next := bytes.IndexByte(data[end:], '\n')
		if next < 0 {
			break
		}
		data = data[end+next+1:]
	}
	return all, nil
}

func isArmored(data []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("-----BEGIN PGP"))
}

// dearmor returns the binary packets of an armored block of the wanted type,
// or data unchanged when it is binary already.
func dearmor(data []byte, wantType string) ([]byte, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, ErrNoSignature
	}
	if !isArmored(data) {
		return data, nil
	}
	block, err := armor.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: decoding armor: %v", ErrNoSignature, err)
	}
	if block.Type != wantType {
		return nil, fmt.Errorf("%w: armor type is %q, want %q", ErrNoSignature, block.Type, wantType)
	}
	body, err := io.ReadAll(io.LimitReader(block.Body, maxKeySize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: decoding armor: %v", ErrNoSignature, err)
	}
	return body, nil
}

func fingerprint(e *openpgp.Entity) string {
	return strings.ToUpper(fmt.Sprintf("%X", e.PrimaryKey.Fingerprint))
}

// KeyOptions describe a new signing key.
type KeyOptions struct {
	Name, Email string
	Comment     string
	Lifetime    time.Duration // 0: the key does not expire
	Created     time.Time     // zero: now
	Passphrase  []byte        // protects the secret key when set
	// Rand, when set, replaces the system's entropy. Only for fixtures that
	// must be reproducible (the example bundle, tests): a key made from a
	// known stream is a known key.
	Rand io.Reader
}

// GenerateKey makes a new Ed25519 signing key and returns the armored secret
// key and the armored public key.
func GenerateKey(o KeyOptions) (secret, public []byte, err error) {
	created := o.Created
	if created.IsZero() {
		created = time.Now()
	}
	created = created.UTC().Truncate(time.Second)
	cfg := &packet.Config{
		Algorithm:       packet.PubKeyAlgoEdDSA,
		DefaultHash:     signatureHash,
		Time:            func() time.Time { return created },
		KeyLifetimeSecs: uint32(o.Lifetime / time.Second),
		Rand:            o.Rand,
	}
	e, err := openpgp.NewEntity(o.Name, o.Comment, o.Email, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("generating key: %w", err)
	}
	s := &Signer{entity: e}
	public, err = s.PublicKey()
	if err != nil {
		return nil, nil, err
	}
	if len(o.Passphrase) > 0 {
		if err := e.EncryptPrivateKeys(o.Passphrase, cfg); err != nil {
			return nil, nil, fmt.Errorf("protecting key: %w", err)
		}
	}
	var b bytes.Buffer
	w, err := armor.Encode(&b, openpgp.PrivateKeyType, nil)
	if err != nil {
		return nil, nil, err
	}
	if err := e.SerializePrivateWithoutSigning(w, cfg); err != nil {
		return nil, nil, fmt.Errorf("serializing secret key: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, nil, err
	}
	b.WriteByte('\n')
	return b.Bytes(), public, nil
}

// ReadPassphraseFile reads the first line of path, as gpg --passphrase-file.
func ReadPassphraseFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening passphrase file: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 64<<10))
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("reading passphrase file %s: %w", path, err)
		}
		return nil, fmt.Errorf("passphrase file %s is empty", path)
	}
	return []byte(strings.TrimRight(sc.Text(), "\r")), nil
}

// ClearSign returns msg as an OpenPGP cleartext-signed message ("-----BEGIN
// PGP SIGNED MESSAGE-----", as gpg --clearsign writes), signed at at
// (clamped to the key's creation time), deterministic like Sign. Anyone with
// gpg and the public key can check it: gpg --verify FILE.
func (s *Signer) ClearSign(msg []byte, at time.Time) ([]byte, error) {
	if created := s.Created(); at.Before(created) {
		at = created
	}
	at = at.UTC().Truncate(time.Second)
	key, ok := s.entity.SigningKey(at)
	if !ok || key.PrivateKey == nil {
		return nil, fmt.Errorf("signing with key %s: no key usable for signing at %s", s.Fingerprint(), at.Format(time.RFC3339))
	}
	deterministic := false
	cfg := &packet.Config{DefaultHash: signatureHash, Time: func() time.Time { return at }, NonDeterministicSignaturesViaNotation: &deterministic}
	var b bytes.Buffer
	w, err := clearsign.Encode(&b, key.PrivateKey, cfg)
	if err != nil {
		return nil, fmt.Errorf("signing with key %s: %w", s.Fingerprint(), err)
	}
	if _, err := w.Write(msg); err != nil {
		return nil, fmt.Errorf("signing with key %s: %w", s.Fingerprint(), err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("signing with key %s: %w", s.Fingerprint(), err)
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// clearSignedHeader starts every cleartext-signed message.
const clearSignedHeader = "-----BEGIN PGP SIGNED MESSAGE-----"

// VerifyClearSigned checks a cleartext-signed message (ClearSign, or gpg
// --clearsign) against the keyring at now, as Verify does, and returns the
// signed text. A signature made up to skew after now is checked at its own
// time; one made later is refused. Anything before the message or after its
// signature is refused: what is checked is all there is.
func (k *Keyring) VerifyClearSigned(data []byte, now time.Time, skew time.Duration) ([]byte, *Signature, error) {
	if len(data) > maxKeySize {
		return nil, nil, fmt.Errorf("%w: %d bytes is larger than %d", ErrNoSignature, len(data), maxKeySize)
	}
	if !bytes.HasPrefix(data, []byte(clearSignedHeader)) {
		return nil, nil, fmt.Errorf("%w: not a cleartext-signed message (want %q at the start)", ErrNoSignature, clearSignedHeader)
	}
	block, rest := clearsign.Decode(data)
	if block == nil {
		return nil, nil, fmt.Errorf("%w: malformed cleartext-signed message", ErrNoSignature)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, nil, fmt.Errorf("%w: %d bytes of trailing data after the signature", ErrNoSignature, len(rest))
	}
	body, err := io.ReadAll(io.LimitReader(block.ArmoredSignature.Body, maxKeySize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: decoding armor: %v", ErrNoSignature, err)
	}
	at := now
	if created, err := SignatureCreated(body); err == nil && created.After(now) {
		if created.After(now.Add(skew)) {
			return nil, nil, fmt.Errorf("%w: made at %s, in the future (checked at %s): check this machine's clock", ErrSignatureExpired, created.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
		// Within the tolerance: checked as at its own time (clocks of
		// air-gapped machines drift).
		at = created
	}
	sig, err := k.verifyBody(bytes.NewReader(block.Bytes), body, at)
	if err != nil {
		return nil, nil, err
	}
	return block.Plaintext, sig, nil
}

// SignatureCreated reads the creation time of a detached signature (armored
// or binary) WITHOUT checking it. Only to choose the time a signature is
// then verified at (Verify checks the time along with the signature).
func SignatureCreated(sig []byte) (time.Time, error) {
	if len(sig) > maxKeySize {
		return time.Time{}, fmt.Errorf("signature of %d bytes is larger than %d: %w", len(sig), maxKeySize, ErrNoSignature)
	}
	body, err := dearmor(sig, openpgp.SignatureType)
	if err != nil {
		return time.Time{}, err
	}
	p, err := packet.NewReader(bytes.NewReader(body)).Next()
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %v", ErrNoSignature, err)
	}
	s, ok := p.(*packet.Signature)
	if !ok {
		return time.Time{}, fmt.Errorf("%w: first packet is not a signature", ErrNoSignature)
	}
	return s.CreationTime, nil
}

// VerifyInstalled is Verify for content already installed: a signature
// made while its key was valid stays good after the key has expired (as
// gpg reports it: a good signature by an expired key), so a running
// cluster does not lose its own content on the day a key expires. A
// revoked key, a bad signature, or a key not valid when it signed are
// refused still. expiredSince reports that the key has expired since.
func (k *Keyring) VerifyInstalled(msg []byte, sig []byte, now time.Time) (s *Signature, expiredSince bool, err error) {
	s, err = k.Verify(bytes.NewReader(msg), sig, now)
	if err == nil || !errors.Is(err, ErrKeyExpired) {
		return s, false, err
	}
	at, terr := SignatureCreated(sig)
	if terr != nil || !at.Before(now) {
		return nil, false, err
	}
	if s2, err2 := k.Verify(bytes.NewReader(msg), sig, at); err2 == nil {
		return s2, true, nil
	}
	return nil, false, err
}

// ClearSignedText returns the text of a cleartext-signed message WITHOUT
// checking its signature: only to compare a file that was verified when it
// was written with a new one (validity statements' rollback check).
func ClearSignedText(data []byte) ([]byte, error) {
	if len(data) > maxKeySize || !bytes.HasPrefix(data, []byte(clearSignedHeader)) {
		return nil, fmt.Errorf("%w: not a cleartext-signed message", ErrNoSignature)
	}
	block, _ := clearsign.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: malformed cleartext-signed message", ErrNoSignature)
	}
	return block.Plaintext, nil
}
