package validity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/ferry-k8s/ferry/internal/atomicfile"
	"github.com/ferry-k8s/ferry/signing"
)

const (
	// SchemaVersion is the statement schema this package reads and writes.
	SchemaVersion = 1
	// Kind names a validity statement.
	Kind = "BundleValidity"
	// Ext is the file extension of a statement; Beside gives the path of
	// the statement that goes with an ISO.
	Ext = ".validity"
	// MaxSize bounds a statement file (a real one is under 1 KiB).
	MaxSize = 64 << 10
	// MaxValidity bounds how far past its issue a statement may reach, as
	// the bundle spec's expiresAfter is bounded (100 years).
	MaxValidity = 36500 * 24 * time.Hour
	// ClockSkew is how far in the future a statement's issue time may lie
	// on the checking machine (air-gapped clocks drift); beyond it the
	// statement is refused, so a statement dated years ahead cannot block
	// every later one (CheckNewer).
	ClockSkew = 24 * time.Hour
)

// ErrInvalid is wrapped by every refusal of a statement.
var ErrInvalid = errors.New("invalid validity statement")

// Statement extends one bundle's validity.
type Statement struct {
	SchemaVersion int       `json:"schemaVersion"`
	Kind          string    `json:"kind"`
	Bundle        BundleRef `json:"bundle"`
	// Issued orders statements for one bundle: a later one replaces an
	// earlier one, never the reverse.
	Issued time.Time `json:"issued"`
	// Expires is the bundle's new end of validity.
	Expires time.Time `json:"expires"`
}

// BundleRef names the bundle a statement is for: the sha256 of its signed
// manifest.json binds it; name and version are for people.
type BundleRef struct {
	Name           string `json:"name"`
	Version        string `json:"version"`
	ManifestSHA256 string `json:"manifestSHA256"`
}

var hex64 = regexp.MustCompile(`^[a-f0-9]{64}$`)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Validate checks every field.
func (s *Statement) Validate() error {
	switch {
	case s.SchemaVersion != SchemaVersion:
		return invalid("schemaVersion: %d is not supported (this program reads %d)", s.SchemaVersion, SchemaVersion)
	case s.Kind != Kind:
		return invalid("kind: %q, want %q", s.Kind, Kind)
	case strings.TrimSpace(s.Bundle.Name) == "" || strings.TrimSpace(s.Bundle.Version) == "":
		return invalid("bundle.name and bundle.version: required")
	case !hex64.MatchString(s.Bundle.ManifestSHA256):
		return invalid("bundle.manifestSHA256: %q is not 64 lower-case hex digits", s.Bundle.ManifestSHA256)
	case s.Issued.IsZero():
		return invalid("issued: required")
	case !s.Expires.After(s.Issued):
		return invalid("expires: %s is not after issued %s", s.Expires.Format(time.RFC3339), s.Issued.Format(time.RFC3339))
	case s.Expires.Sub(s.Issued) > MaxValidity:
		return invalid("expires: %s is more than %d days after issued %s", s.Expires.Format(time.RFC3339), int(MaxValidity.Hours()/24), s.Issued.Format(time.RFC3339))
	}
	return nil
}

// Marshal encodes the statement's text (indented JSON and a newline).
func (s *Statement) Marshal() ([]byte, error) {
	c := *s
	c.Issued, c.Expires = c.Issued.UTC(), c.Expires.UTC()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Parse decodes a statement's text strictly: unknown fields, a newer
// schema, duplicate or trailing data and invalid fields are refused.
func Parse(text []byte) (*Statement, error) {
	if len(text) > MaxSize {
		return nil, invalid("%d bytes, more than the limit of %d", len(text), MaxSize)
	}
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.DisallowUnknownFields()
	var s Statement
	if err := dec.Decode(&s); err != nil {
		return nil, invalid("parsing: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, invalid("trailing data after the JSON object")
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	s.Issued, s.Expires = s.Issued.UTC(), s.Expires.UTC()
	return &s, nil
}

// ParseUnverified reads a statement file's text WITHOUT checking its
// signature: only for a file that was verified when it was written (the
// rollback check against the accepted statement, status display) or to
// find which bundle a statement names before Verify checks it.
func ParseUnverified(data []byte) (*Statement, error) {
	text, err := signing.ClearSignedText(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return Parse(text)
}

// Sign makes the statement file: its text, cleartext-signed by signer at
// the statement's issue time.
func Sign(s *Statement, signer *signing.Signer) ([]byte, error) {
	text, err := s.Marshal()
	if err != nil {
		return nil, err
	}
	return signer.ClearSign(text, s.Issued)
}

// Verified is a statement whose signature checked.
type Verified struct {
	Statement
	// Signer is the key that signed it.
	Signer *signing.Signature
	// Raw is the statement file as read.
	Raw []byte
}

// Verify checks a statement file for the bundle whose manifest has the
// sha256 manifestSHA256: signed by a key of ring valid at now, well formed,
// for that bundle, and not issued after now + ClockSkew.
func Verify(data []byte, ring *signing.Keyring, now time.Time, manifestSHA256 string) (*Verified, error) {
	if len(data) > MaxSize {
		return nil, invalid("%d bytes, more than the limit of %d", len(data), MaxSize)
	}
	text, sig, err := ring.VerifyClearSigned(data, now, ClockSkew)
	if err != nil {
		return nil, fmt.Errorf("%w: signature: %w", ErrInvalid, err)
	}
	s, err := Parse(text)
	if err != nil {
		return nil, err
	}
	if s.Bundle.ManifestSHA256 != manifestSHA256 {
		return nil, invalid("it is for bundle %s %s (manifest sha256 %s), not for this one (manifest sha256 %s)", s.Bundle.Name, s.Bundle.Version, s.Bundle.ManifestSHA256, manifestSHA256)
	}
	if s.Issued.After(now.Add(ClockSkew)) { // signed at another time than issued
		return nil, invalid("issued %s, in the future (checked at %s): check this machine's clock", s.Issued.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return &Verified{Statement: *s, Signer: sig, Raw: data}, nil
}

// CheckNewer refuses next when it is not newer than prev, an accepted
// statement for the same bundle: issued earlier is a rollback, issued at
// the same time is accepted only as the very same statement.
func CheckNewer(prev, next *Statement) error {
	switch {
	case prev == nil:
		return nil
	case next.Bundle.ManifestSHA256 != prev.Bundle.ManifestSHA256:
		return invalid("it is for bundle manifest sha256 %s, the accepted one for %s", next.Bundle.ManifestSHA256, prev.Bundle.ManifestSHA256)
	case next.Issued.Before(prev.Issued):
		return invalid("issued %s, before the statement already accepted (issued %s, expires %s): refusing a rollback", next.Issued.Format(time.RFC3339), prev.Issued.Format(time.RFC3339), prev.Expires.Format(time.RFC3339))
	case next.Issued.Equal(prev.Issued) && !next.Expires.Equal(prev.Expires):
		return invalid("issued %s like the statement already accepted, but with another expiry (%s, accepted %s)", next.Issued.Format(time.RFC3339), next.Expires.Format(time.RFC3339), prev.Expires.Format(time.RFC3339))
	}
	return nil
}

// Beside is the path of the statement that goes with the ISO at isoPath:
// the same path with Ext instead of ".iso".
func Beside(isoPath string) string {
	return strings.TrimSuffix(isoPath, ".iso") + Ext
}

// ReadFile reads a statement file, refusing more than MaxSize bytes.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("validity statement: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("validity statement %s: %w", path, err)
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("validity statement %s: %w", path, invalid("more than the limit of %d bytes", MaxSize))
	}
	return data, nil
}

// Install makes the statement file data the one beside the ISO at isoPath
// (Beside), after checking it (Verify, for the bundle whose manifest has
// the sha256 manifestSHA256) and that it is not older than the statement
// already there (CheckNewer: no rollback of a bundle's validity). It
// reports whether the file changed; the same statement again changes
// nothing. The file is replaced atomically.
func Install(isoPath string, data []byte, ring *signing.Keyring, now time.Time, manifestSHA256 string) (*Verified, bool, error) {
	v, err := Verify(data, ring, now, manifestSHA256)
	if err != nil {
		return nil, false, err
	}
	dst := Beside(isoPath)
	if old, err := ReadFile(dst); err == nil {
		if bytes.Equal(old, data) {
			return v, false, nil
		}
		// The file there was checked when it was written; a statement
		// for another bundle (an ISO replaced since) is simply replaced.
		if prev, err := ParseUnverified(old); err == nil && prev.Bundle.ManifestSHA256 == manifestSHA256 {
			if err := CheckNewer(prev, &v.Statement); err != nil {
				return nil, false, fmt.Errorf("%w (accepted statement: %s)", err, dst)
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	if err := atomicfile.WriteFile(dst, data, 0o644); err != nil {
		return nil, false, fmt.Errorf("writing validity statement %s: %w", dst, err)
	}
	return v, true, nil
}
