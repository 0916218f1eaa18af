package joinfile

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ferry-k8s/ferry/internal/atomicfile"
	"github.com/ferry-k8s/ferry/internal/fileutil"
)

// APIVersion and Kind are a join file's.
const (
	APIVersion = "ferry.dev/v1alpha1"
	Kind       = "JoinFile"
)

// MaxSize bounds a join file read from disk.
const MaxSize = 1 << 20

// File is what `installer token create` writes on a control-plane
// node and `installer join` reads on the new node: everything the node
// needs to install from the cluster's content services and join it, and
// nothing it can get elsewhere. It holds secrets (the bootstrap token,
// the node's private keys): it is written 0600, expires with its token,
// and is meant to be carried to the node once and removed.
//
// Every field is authenticated: MAC is an HMAC-SHA256 over all the others
// under a key derived from the certificate key token create prints, which
// travels apart from the file (as kubeadm's --certificate-key does). A
// file is not used before its MAC checks out (Parse).
type File struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Cluster is metadata.name; Node the node of cluster.yaml it is for.
	Cluster string    `json:"cluster"`
	Node    string    `json:"node"`
	Expires time.Time `json:"expires"`
	// ClusterConfig is cluster.yaml as the control plane has it.
	ClusterConfig string `json:"clusterConfig"`
	// Keyring is the armored keyring bundles must be signed by.
	Keyring string `json:"keyring"`
	// ContentCA is the content realm's CA (PEM): the content services'
	// certificates are verified with it and nothing else.
	ContentCA string `json:"contentCA"`
	// ContentServices are the control-plane nodes' content services
	// (host:port, DNS names), tried in order.
	ContentServices []string `json:"contentServices"`
	// Bundle is the file name of the installed bundle under the content
	// services' /bundles/.
	Bundle string `json:"bundle"`
	// BundleSHA256 and BundleSize are the ISO's: what is fetched is
	// checked against them before it is opened (then verified in full).
	BundleSHA256 string `json:"bundleSHA256"`
	BundleSize   int64  `json:"bundleSize"`
	// Discovery is the kubeconfig kubeadm join discovers the cluster from
	// (the cluster's CA, the endpoint, a bootstrap token).
	Discovery string `json:"discovery"`
	// Files are the node's own certificates and keys, issued for its
	// hostname by the control plane (R23: per host, DNS names only);
	// only WorkerFiles.
	Files []Entry `json:"files,omitempty"`
	// Secrets, for a control-plane node, are the realms' online CAs
	// (intermediate certificates and keys, never a root key: R25), the
	// service-account key pair and the encryption-at-rest key, sealed
	// with AES-256-GCM under a key derived from the certificate key
	// (Seal, OpenSecrets); only ControlPlaneSecrets.
	Secrets []byte `json:"secrets,omitempty"`
	// MAC is the HMAC-SHA256 (hex) of every other field (macInput) under
	// a key derived from the certificate key (Sign).
	MAC string `json:"mac"`

	// CertificateKey is the file's key, hex (CertificateKeySize bytes):
	// it authenticates the file and opens its secrets. Set by whoever
	// makes the file, never written into it.
	CertificateKey string `json:"-"`
}

// Entry is one file of a join file.
type Entry struct {
	Path    string      `json:"path"`
	Mode    fs.FileMode `json:"mode"`
	Content []byte      `json:"content"`
}

// CertificateKeySize is the size of a join file's key (hex-encoded on the
// command line): every join file has its own.
const CertificateKeySize = 32

// NewCertificateKey makes a join file's key: random, CertificateKeySize
// bytes.
func NewCertificateKey() ([]byte, error) {
	key := make([]byte, CertificateKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("making a certificate key: %w", err)
	}
	return key, nil
}

// ParseCertificateKey decodes a join file's key as token create printed
// it (64 hex digits).
func ParseCertificateKey(hexKey string) ([]byte, error) {
	key, err := hex.DecodeString(strings.TrimSpace(hexKey))
	if err != nil {
		return nil, fmt.Errorf("the certificate key is not hex: %w", err)
	}
	if len(key) != CertificateKeySize {
		return nil, fmt.Errorf("the certificate key has %d bytes, want %d (64 hex digits)", len(key), CertificateKeySize)
	}
	return key, nil
}

// The keys derived from a join file's key, one per use (HKDF-SHA256).
const (
	macKeyInfo    = "ferry.dev/v1alpha1 JoinFile mac"
	secretKeyInfo = "ferry.dev/v1alpha1 JoinFile secrets"
)

func deriveKey(key []byte, info string) ([]byte, error) {
	if len(key) != CertificateKeySize {
		return nil, fmt.Errorf("the certificate key has %d bytes, want %d (64 hex digits)", len(key), CertificateKeySize)
	}
	return hkdf.Key(sha256.New, key, nil, info, 32)
}

// macInput is the canonical encoding of every field but MAC: a version
// tag, then each field in declaration order, strings and bytes prefixed
// with their length, lists with their count (so no two files share an
// encoding). A field added to File must be added here
// (TestMACCoversEveryField fails otherwise).
func (j *File) macInput() []byte {
	b := []byte{}
	num := func(n uint64) { b = binary.BigEndian.AppendUint64(b, n) }
	str := func(s string) { num(uint64(len(s))); b = append(b, s...) }
	str("ferry.dev/v1alpha1 JoinFile mac input")
	str(j.APIVersion)
	str(j.Kind)
	str(j.Cluster)
	str(j.Node)
	str(j.Expires.UTC().Format(time.RFC3339Nano))
	str(j.ClusterConfig)
	str(j.Keyring)
	str(j.ContentCA)
	num(uint64(len(j.ContentServices)))
	for _, s := range j.ContentServices {
		str(s)
	}
	str(j.Bundle)
	str(j.BundleSHA256)
	num(uint64(j.BundleSize))
	str(j.Discovery)
	num(uint64(len(j.Files)))
	for _, f := range j.Files {
		str(f.Path)
		num(uint64(f.Mode))
		str(string(f.Content))
	}
	str(string(j.Secrets))
	return b
}

func (j *File) mac(key []byte) ([]byte, error) {
	mk, err := deriveKey(key, macKeyInfo)
	if err != nil {
		return nil, err
	}
	h := hmac.New(sha256.New, mk)
	h.Write(j.macInput())
	return h.Sum(nil), nil
}

// Sign sets MAC under key (the file's certificate key): the last step of
// making a join file, after every other field (Seal included).
func (j *File) Sign(key []byte) error {
	sum, err := j.mac(key)
	if err != nil {
		return err
	}
	j.MAC = hex.EncodeToString(sum)
	return nil
}

// verify checks MAC against key, in constant time.
func (j *File) verify(key []byte) error {
	if j.MAC == "" {
		return errors.New("it carries no MAC (made by an older installer, or altered): make a new one with installer token create")
	}
	got, err := hex.DecodeString(j.MAC)
	if err != nil || len(got) != sha256.Size {
		return errors.New("mac: want 64 hex digits (the file was altered)")
	}
	want, err := j.mac(key)
	if err != nil {
		return err
	}
	if !hmac.Equal(got, want) {
		return errors.New("the file was altered, or the certificate key is not the one installer token create printed with it (its MAC does not match)")
	}
	return nil
}

// sealAAD binds sealed secrets to the file's cluster and node (the MAC
// binds them to the whole file as well).
func (j *File) sealAAD() []byte {
	return []byte("ferry join secrets\x00" + j.Cluster + "\x00" + j.Node)
}

func secretsCipher(key []byte) (cipher.AEAD, error) {
	sk, err := deriveKey(key, secretKeyInfo)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(sk)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Seal encrypts a control plane's shared secrets (entries) into
// j.Secrets with a key derived from key, under a random nonce, bound to
// j's cluster and node: set those first, and Sign after.
func (j *File) Seal(key []byte, entries []Entry) error {
	nonce := make([]byte, 12) // GCM's standard nonce
	if _, err := rand.Read(nonce); err != nil {
		return fmt.Errorf("sealing secrets: %w", err)
	}
	return j.sealWithNonce(key, entries, nonce)
}

func (j *File) sealWithNonce(key []byte, entries []Entry, nonce []byte) error {
	aead, err := secretsCipher(key)
	if err != nil {
		return err
	}
	if len(nonce) != aead.NonceSize() {
		return fmt.Errorf("sealing secrets: a nonce of %d bytes, want %d", len(nonce), aead.NonceSize())
	}
	plain, err := json.Marshal(entries)
	if err != nil {
		return err
	}
	j.Secrets = aead.Seal(nonce, nonce, plain, j.sealAAD())
	return nil
}

// OpenSecrets decrypts a control-plane join file's secrets with its key
// (ParseCertificateKey; the file's MAC checked already by Parse) and
// checks that each is a file a control-plane node shares
// (ControlPlaneSecrets).
func (j *File) OpenSecrets(key []byte) ([]Entry, error) {
	aead, err := secretsCipher(key)
	if err != nil {
		return nil, err
	}
	if len(j.Secrets) < aead.NonceSize() {
		return nil, errors.New("join file: secrets: none, or too short (is the node a control plane in the cluster.yaml the file was made from?)")
	}
	plain, err := aead.Open(nil, j.Secrets[:aead.NonceSize()], j.Secrets[aead.NonceSize():], j.sealAAD())
	if err != nil {
		return nil, errors.New("join file: secrets do not open with this certificate key (wrong key, or the file was altered)")
	}
	var entries []Entry
	if err := json.Unmarshal(plain, &entries); err != nil {
		return nil, fmt.Errorf("join file: secrets: %w", err)
	}
	allowed := ControlPlaneSecrets()
	for i, e := range entries {
		if !slices.Contains(allowed, e.Path) {
			return nil, fmt.Errorf("join file: secrets[%d]: %q is not a file a control-plane join shares", i, e.Path)
		}
		if e.Mode&^0o644 != 0 {
			return nil, fmt.Errorf("join file: secrets[%d]: mode %04o: want 0644 or stricter", i, e.Mode)
		}
	}
	return entries, nil
}

// Marshal is the join file's bytes.
func (j *File) Marshal() ([]byte, error) {
	return json.MarshalIndent(j, "", "  ")
}

// Write writes j (signed, with its CertificateKey) to p, mode 0600
// whatever is there already: through a temporary file in the same
// directory, renamed over p, so that an existing file keeps neither its
// content nor its mode. A symbolic link at p is refused rather than
// replaced or followed. The bytes are checked first to open with j's key.
func Write(p string, j *File) error {
	key, err := ParseCertificateKey(j.CertificateKey)
	if err != nil {
		return err
	}
	data, err := j.Marshal()
	if err != nil {
		return err
	}
	data = append(data, '\n')
	// What is written must open on the node: the MAC of the parsed bytes.
	back, err := decode(data, p)
	if err != nil {
		return err
	}
	if err := back.verify(key); err != nil {
		return fmt.Errorf("join file %s: %w", p, err)
	}
	if err := CheckOut(p); err != nil {
		return err
	}
	return atomicfile.WriteFile(p, data, 0o600)
}

// CheckOut says whether a join file may be written at p: nothing there,
// or a regular file (replaced); not a symbolic link.
func CheckOut(p string) error { return checkSecretOut("join file", p) }

// checkSecretOut refuses to write a file holding secrets (what) at p
// through a symbolic link or over something that is not a regular file.
func checkSecretOut(what, p string) error {
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("writing %s %s: %w", what, p, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("writing %s %s: it is a symbolic link: give the path of the file itself, or remove the link", what, p)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("writing %s %s: it exists and is not a regular file", what, p)
	}
	return nil
}

// WriteSecretFile writes data, which holds secrets (what: for errors),
// to p with mode 0600 through a temporary file renamed into place: an
// existing file at p gets the new mode too, and a symbolic link at p is
// refused rather than followed or replaced. Join files are written so;
// so are other files with keys (a user's kubeconfig).
func WriteSecretFile(what, p string, data []byte) error {
	if err := checkSecretOut(what, p); err != nil {
		return err
	}
	return atomicfile.WriteFile(p, data, 0o600)
}

// Read reads and checks a join file (Parse).
func Read(p string, now time.Time, key []byte) (*File, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Parse(f, p, now, key)
}

// Parse parses a join file read from r (name is for errors) and checks
// it: strict JSON (no unknown or repeated key, nothing after the object),
// then its MAC under key (the certificate key, ParseCertificateKey) before
// any field is looked at, then its kind, that it has not expired, and
// that its files stay where a join file may write (WorkerFiles).
func Parse(r io.Reader, name string, now time.Time, key []byte) (*File, error) {
	data, err := fileutil.ReadAll(r, "join file "+name, MaxSize)
	if err != nil {
		return nil, err
	}
	j, err := decode(data, name)
	if err != nil {
		return nil, err
	}
	if err := j.verify(key); err != nil {
		return nil, fmt.Errorf("join file %s: %w", name, err)
	}
	if err := j.validate(now); err != nil {
		return nil, fmt.Errorf("join file %s: %w", name, err)
	}
	return j, nil
}

// decode decodes a join file's bytes strictly; nothing is checked but
// its syntax.
func decode(data []byte, name string) (*File, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("join file %s: larger than %d bytes", name, MaxSize)
	}
	var j File
	if err := decodeStrictJSON(data, &j); err != nil {
		return nil, fmt.Errorf("join file %s: %w", name, err)
	}
	return &j, nil
}

// validate checks an authenticated join file's fields.
func (j *File) validate(now time.Time) error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if j.APIVersion != APIVersion || j.Kind != Kind {
		bad("apiVersion/kind", "want %s %s, got %q %q", APIVersion, Kind, j.APIVersion, j.Kind)
	}
	if j.Expires.IsZero() {
		bad("expires", "missing")
	} else if now.After(j.Expires) {
		bad("expires", "the join file expired at %s: make a new one with installer token create", j.Expires.Format(time.RFC3339))
	}
	for field, v := range map[string]string{"node": j.Node, "clusterConfig": j.ClusterConfig, "keyring": j.Keyring, "contentCA": j.ContentCA, "discovery": j.Discovery} {
		if strings.TrimSpace(v) == "" {
			bad(field, "missing")
		}
	}
	if len(j.ContentServices) == 0 {
		bad("contentServices", "none")
	}
	for i, s := range j.ContentServices {
		if _, _, err := net.SplitHostPort(s); err != nil {
			bad(fmt.Sprintf("contentServices[%d]", i), "%v", err)
		}
	}
	if j.Bundle == "" || j.Bundle != filepath.Base(j.Bundle) || !strings.HasSuffix(j.Bundle, ".iso") || strings.HasPrefix(j.Bundle, ".") {
		bad("bundle", "want a file name ending in .iso, got %q", j.Bundle)
	}
	if j.BundleSHA256 != "" && (len(j.BundleSHA256) != 64 || strings.Trim(j.BundleSHA256, "0123456789abcdef") != "" || j.BundleSize <= 0) {
		bad("bundleSHA256", "want 64 lowercase hex digits and a positive bundleSize")
	}
	allowed := WorkerFiles()
	for i, f := range j.Files {
		if !slices.Contains(allowed, f.Path) {
			bad(fmt.Sprintf("files[%d].path", i), "%q is not a file a join file may carry", f.Path)
		}
		if f.Mode&^0o644 != 0 {
			bad(fmt.Sprintf("files[%d].mode", i), "%04o: want 0644 or stricter", f.Mode)
		}
	}
	return errors.Join(errs...)
}
