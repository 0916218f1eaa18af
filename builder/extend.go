package builder

import (
	"bytes"
	"fmt"
	"time"

	"github.com/ferry-k8s/ferry/bundle/validity"
	"github.com/ferry-k8s/ferry/bundle/verify"
	"github.com/ferry-k8s/ferry/internal/atomicfile"
	"github.com/ferry-k8s/ferry/signing"
)

// ExtendOptions configure Extend.
type ExtendOptions struct {
	// ISO is the bundle to extend.
	ISO string
	// Until is the bundle's new end of validity.
	Until time.Time
	// Signer signs the statement; its key must be in the nodes' keyring.
	Signer *signing.Signer
	// Keyring checks the ISO's manifest signature before its digest is
	// signed; nil: the signer's own public key (the key that built it).
	// Give the old key's public half when a new key extends a bundle an
	// older key signed.
	Keyring *signing.Keyring
	// Output is where the statement is written (atomically); empty:
	// validity.Beside(ISO).
	Output string
	// Now is the statement's issue time; zero: the current time.
	Now time.Time
}

// Extend writes a signed validity statement that extends the bundle ISO to
// Until, without rebuilding it: the statement binds the sha256 of the
// ISO's signed manifest (checked against Keyring first) to the new expiry.
// An expired bundle can be extended; a statement that ends before its
// issue time cannot be made.
func Extend(o ExtendOptions) (*validity.Statement, string, error) {
	if o.Signer == nil {
		return nil, "", fmt.Errorf("extending %s: no signing key", o.ISO)
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC().Truncate(time.Second)
	ring := o.Keyring
	if ring == nil {
		pub, err := o.Signer.PublicKey()
		if err != nil {
			return nil, "", err
		}
		if ring, err = signing.ReadKeyring(bytes.NewReader(pub)); err != nil {
			return nil, "", err
		}
	}
	if !o.Until.After(now) {
		return nil, "", fmt.Errorf("extending %s: --until %s is not after now (%s)", o.ISO, o.Until.UTC().Format(time.RFC3339), now.Format(time.RFC3339))
	}
	// Installed: the bundle may have expired already (that is why it is
	// extended), and its key may have expired since it signed.
	b, err := verify.Open(o.ISO, ring, verify.Options{Now: now, Installed: true})
	if err != nil {
		return nil, "", fmt.Errorf("extending %s: %w", o.ISO, err)
	}
	defer b.Close()
	m := b.Manifest
	st := &validity.Statement{SchemaVersion: validity.SchemaVersion, Kind: validity.Kind,
		Bundle: validity.BundleRef{Name: m.Name, Version: m.Version, ManifestSHA256: b.ManifestSHA256},
		Issued: now, Expires: o.Until.UTC().Truncate(time.Second)}
	data, err := validity.Sign(st, o.Signer)
	if err != nil {
		return nil, "", fmt.Errorf("extending %s: %w", o.ISO, err)
	}
	out := o.Output
	if out == "" {
		out = validity.Beside(o.ISO)
	}
	if err := atomicfile.WriteFile(out, data, 0o644); err != nil {
		return nil, "", err
	}
	return st, out, nil
}
