// Package verify checks a bundle ISO the way every consumer must before
// using any of it: read in user space (no mount), check manifest.json's
// signature against the admin's keyring, parse the manifest, refuse an
// expired bundle, then check that every file on the ISO is listed and that
// every listed file is there with its size and sha256.
//
//	ISO ─▶ iso.Open ─▶ manifest.json + .asc ─▶ Keyring.Verify ─▶ ParseManifest
//	    ─▶ expiry ─▶ listed == present ─▶ sizes ─▶ sha256 (parallel) ─▶ Report
//
// Open stops after the manifest is trusted and hands the opened image to a
// server, which checks each file's digest as it reads it; Verify checks all
// files up front and reports every failing one by path.
package verify
