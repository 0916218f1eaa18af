// Package validity is the signed validity statement: a small file that
// extends a bundle's expiry without rebuilding its ISO, in the spirit of
// TUF's timestamp role.
//
// A bundle's manifest carries `expires`; past it, the installer refuses to
// import, join or upgrade to the bundle (freeze protection), while content
// already installed keeps being served. A site that keeps its DVD in a vault
// asks the publisher for a statement instead of a new image:
//
//	builder extend --iso X.iso --until 2028-06-01 --signing-key K --output X.validity
//
// The statement is a cleartext-signed OpenPGP message (gpg --verify checks
// it) whose text is a JSON document binding the manifest's sha256 to a new
// expiry:
//
//	{
//	  "schemaVersion": 1,
//	  "kind": "BundleValidity",
//	  "bundle": {"name": "ferry", "version": "1.2.0", "manifestSHA256": "…"},
//	  "issued": "2027-11-02T09:00:00Z",
//	  "expires": "2028-06-01T00:00:00Z"
//	}
//
// Verify refuses a statement for another bundle (mix-and-match), one signed
// by a key that is not trusted or has expired, one issued in the future, and
// anything malformed or larger than MaxSize. CheckNewer refuses a statement
// older than one already accepted for the same bundle (rollback).
//
//	Sign(statement, signer) ─▶ X.validity ─▶ Verify(data, keyring, now, manifest sha256) ─▶ *Verified
//	                                            └▶ CheckNewer(accepted, new)
package validity
