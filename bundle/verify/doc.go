// Package verify checks a bundle ISO the way every consumer must before
// using any of it: read in user space (no mount), check manifest.json's
// signature against the admin's keyring, parse the manifest, refuse an
// expired bundle, then check that every file on the ISO is listed and that
// every listed file is there with its size and sha256.
//
//	ISO ─▶ iso.Open ─▶ manifest.json + .asc ─▶ Keyring.Verify ─▶ ParseManifest
//	    ─▶ expiry ─▶ listed == present ─▶ sizes ─▶ sha256 (parallel) ─▶ Report
//
// Verify checks all files up front and reports every failing one by path.
// OpenVerified does the same for a server and keeps the sha256 of every
// 1 MiB chunk of every file, so a Reader checks each chunk again as it
// serves it: a change to the ISO after the check is never passed on.
package verify
