package pki

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
)

// Encrypted private keys are PKCS#8 EncryptedPrivateKeyInfo with PBES2
// (RFC 8018): PBKDF2 with HMAC-SHA-256 and AES-256-CBC, the scheme that
// `openssl pkey -aes256` writes and every OpenSSL since 1.0 reads:
//
//	openssl pkey -in root.key -passin file:passphrase.txt
//
// Reading also takes the other PBES2 variants OpenSSL writes (HMAC-SHA-1,
// -SHA-384, -SHA-512; AES-128/192-CBC), so a key re-encrypted by an admin
// with openssl still loads. Nothing else is accepted.

// PEMTypeEncryptedKey is the PEM type of an encrypted PKCS#8 key.
const PEMTypeEncryptedKey = "ENCRYPTED PRIVATE KEY"

// KDFIterations is the PBKDF2-HMAC-SHA-256 iteration count of keys written
// here (OWASP's 2023 figure); a root key is decrypted rarely, so the cost
// (a fraction of a second) is paid rarely.
const KDFIterations = 600_000

// maxKDFIterations bounds the work a key file can make us do.
const maxKDFIterations = 10_000_000

// ErrWrongPassphrase is wrapped by the error of a decryption with the wrong
// passphrase (or of a corrupted file: PBES2 cannot tell them apart).
var ErrWrongPassphrase = errors.New("wrong passphrase or corrupted key")

var (
	oidPBES2      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidHMACSHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidHMACSHA384 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 10}
	oidHMACSHA512 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}
	oidAES128CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
)

type encryptedPrivateKeyInfo struct {
	Algorithm     pkix.AlgorithmIdentifier
	EncryptedData []byte
}

type pbes2Params struct {
	KeyDerivationFunc pkix.AlgorithmIdentifier
	EncryptionScheme  pkix.AlgorithmIdentifier
}

type pbkdf2Params struct {
	Salt           []byte
	IterationCount int
	KeyLength      int                      `asn1:"optional"`
	PRF            pkix.AlgorithmIdentifier `asn1:"optional"`
}

// pbes2 is a parsed PBES2 key: everything needed to decrypt it.
type pbes2 struct {
	salt       []byte
	iterations int
	prf        func() hash.Hash
	keyLen     int
	iv         []byte
	ciphertext []byte
}

// EncryptPrivateKey returns key as a PEM "ENCRYPTED PRIVATE KEY" (PKCS#8,
// PBES2: PBKDF2-HMAC-SHA-256 with KDFIterations and a random 16-byte salt,
// AES-256-CBC).
func EncryptPrivateKey(key crypto.Signer, pass Passphrase) ([]byte, error) {
	if err := pass.check(); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encrypting private key: %w", err)
	}
	return encryptPKCS8(der, pass, KDFIterations)
}

func encryptPKCS8(der []byte, pass Passphrase, iterations int) ([]byte, error) {
	salt, iv := make([]byte, 16), make([]byte, aes.BlockSize)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	if _, err := rand.Read(iv); err != nil {
		return nil, err
	}
	dk, err := pbkdf2.Key(sha256.New, string(pass), salt, iterations, 32)
	if err != nil {
		return nil, fmt.Errorf("encrypting private key: %w", err)
	}
	block, err := aes.NewCipher(dk)
	if err != nil {
		return nil, err
	}
	pad := aes.BlockSize - len(der)%aes.BlockSize
	plain := append(bytes.Clone(der), bytes.Repeat([]byte{byte(pad)}, pad)...)
	ct := make([]byte, len(plain))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, plain)
	clear(plain)
	clear(dk)

	kdfParams, err := asn1.Marshal(pbkdf2Params{
		Salt:           salt,
		IterationCount: iterations,
		PRF:            pkix.AlgorithmIdentifier{Algorithm: oidHMACSHA256, Parameters: asn1.NullRawValue},
	})
	if err != nil {
		return nil, err
	}
	ivParam, err := asn1.Marshal(iv)
	if err != nil {
		return nil, err
	}
	params, err := asn1.Marshal(pbes2Params{
		KeyDerivationFunc: pkix.AlgorithmIdentifier{Algorithm: oidPBKDF2, Parameters: asn1.RawValue{FullBytes: kdfParams}},
		EncryptionScheme:  pkix.AlgorithmIdentifier{Algorithm: oidAES256CBC, Parameters: asn1.RawValue{FullBytes: ivParam}},
	})
	if err != nil {
		return nil, err
	}
	out, err := asn1.Marshal(encryptedPrivateKeyInfo{
		Algorithm:     pkix.AlgorithmIdentifier{Algorithm: oidPBES2, Parameters: asn1.RawValue{FullBytes: params}},
		EncryptedData: ct,
	})
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: PEMTypeEncryptedKey, Bytes: out}), nil
}

// DecryptPrivateKey reads a PEM "ENCRYPTED PRIVATE KEY" (PKCS#8, PBES2 with
// PBKDF2 and AES-CBC) with pass. A wrong passphrase gives an error that
// wraps ErrWrongPassphrase.
func DecryptPrivateKey(pemData []byte, pass Passphrase) (crypto.Signer, error) {
	block, rest := pem.Decode(pemData)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if block.Type != PEMTypeEncryptedKey {
		return nil, fmt.Errorf("PEM block is %q, want %q", block.Type, PEMTypeEncryptedKey)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("data after the PEM block")
	}
	p, err := parsePBES2(block.Bytes)
	if err != nil {
		return nil, err
	}
	der, err := p.decrypt(pass)
	if err != nil {
		return nil, err
	}
	defer clear(der)
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		// Wrong keys pass the padding check one time in 256.
		return nil, ErrWrongPassphrase
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported private key type %T", key)
	}
	return signer, nil
}

// parsePBES2 parses an EncryptedPrivateKeyInfo, refusing anything but PBES2
// with PBKDF2 and AES-CBC, and bounding the work it asks for.
func parsePBES2(der []byte) (*pbes2, error) {
	var info encryptedPrivateKeyInfo
	if rest, err := asn1.Unmarshal(der, &info); err != nil || len(rest) != 0 {
		return nil, errors.New("not a PKCS#8 EncryptedPrivateKeyInfo")
	}
	if !info.Algorithm.Algorithm.Equal(oidPBES2) {
		return nil, fmt.Errorf("encryption scheme %v is not PBES2", info.Algorithm.Algorithm)
	}
	var params pbes2Params
	if rest, err := asn1.Unmarshal(info.Algorithm.Parameters.FullBytes, &params); err != nil || len(rest) != 0 {
		return nil, errors.New("malformed PBES2 parameters")
	}
	if !params.KeyDerivationFunc.Algorithm.Equal(oidPBKDF2) {
		return nil, fmt.Errorf("key derivation %v is not PBKDF2", params.KeyDerivationFunc.Algorithm)
	}
	var kdf pbkdf2Params
	if rest, err := asn1.Unmarshal(params.KeyDerivationFunc.Parameters.FullBytes, &kdf); err != nil || len(rest) != 0 {
		return nil, errors.New("malformed PBKDF2 parameters")
	}
	p := &pbes2{salt: kdf.Salt, iterations: kdf.IterationCount, ciphertext: info.EncryptedData}
	if len(p.salt) < 8 || len(p.salt) > 64 {
		return nil, fmt.Errorf("PBKDF2 salt of %d bytes (want 8–64)", len(p.salt))
	}
	if p.iterations < 1000 || p.iterations > maxKDFIterations {
		return nil, fmt.Errorf("PBKDF2 iteration count %d (want 1000–%d)", p.iterations, maxKDFIterations)
	}
	switch prf := kdf.PRF.Algorithm; {
	case len(prf) == 0, prf.Equal(oidHMACSHA1):
		p.prf = sha1.New
	case prf.Equal(oidHMACSHA256):
		p.prf = sha256.New
	case prf.Equal(oidHMACSHA384):
		p.prf = sha512.New384
	case prf.Equal(oidHMACSHA512):
		p.prf = sha512.New
	default:
		return nil, fmt.Errorf("PBKDF2 pseudo-random function %v is not HMAC-SHA-1/256/384/512", prf)
	}
	switch alg := params.EncryptionScheme.Algorithm; {
	case alg.Equal(oidAES128CBC):
		p.keyLen = 16
	case alg.Equal(oidAES192CBC):
		p.keyLen = 24
	case alg.Equal(oidAES256CBC):
		p.keyLen = 32
	default:
		return nil, fmt.Errorf("cipher %v is not AES-CBC", alg)
	}
	if kdf.KeyLength != 0 && kdf.KeyLength != p.keyLen {
		return nil, fmt.Errorf("PBKDF2 key length %d does not fit the cipher (%d)", kdf.KeyLength, p.keyLen)
	}
	if rest, err := asn1.Unmarshal(params.EncryptionScheme.Parameters.FullBytes, &p.iv); err != nil || len(rest) != 0 || len(p.iv) != aes.BlockSize {
		return nil, errors.New("malformed AES-CBC IV")
	}
	if len(p.ciphertext) == 0 || len(p.ciphertext)%aes.BlockSize != 0 || len(p.ciphertext) > 64<<10 {
		return nil, fmt.Errorf("encrypted key of %d bytes is not whole AES blocks (or is too large)", len(p.ciphertext))
	}
	return p, nil
}

func (p *pbes2) decrypt(pass Passphrase) ([]byte, error) {
	dk, err := pbkdf2.Key(p.prf, string(pass), p.salt, p.iterations, p.keyLen)
	if err != nil {
		return nil, err
	}
	defer clear(dk)
	block, err := aes.NewCipher(dk)
	if err != nil {
		return nil, err
	}
	plain := make([]byte, len(p.ciphertext))
	cipher.NewCBCDecrypter(block, p.iv).CryptBlocks(plain, p.ciphertext)
	pad := int(plain[len(plain)-1])
	if pad < 1 || pad > aes.BlockSize || subtle.ConstantTimeCompare(plain[len(plain)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) != 1 {
		clear(plain)
		return nil, ErrWrongPassphrase
	}
	return plain[:len(plain)-pad], nil
}
