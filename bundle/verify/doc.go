// Package verify checks a bundle ISO the way every consumer must before
// using any of it: read in user space (no mount), check manifest.json's
// signature against the admin's keyring, parse the manifest, judge its
// validity, then check that every file on the ISO is listed and that every
// listed file is there with its size and sha256.
//
//	ISO ─▶ iso.Open ─▶ manifest.json + .asc ─▶ Keyring.Verify ─▶ ParseManifest
//	    ─▶ validity (manifest expires, or a validity statement: --validity
//	       or the .validity file beside the ISO)
//	    ─▶ listed == present ─▶ sizes ─▶ sha256 (parallel)
//	    ─▶ image rules (images.CheckLayout) ─▶ Report
//
// The image rules are those the builder applies before it signs and the
// content service before it serves: a bundle whose image manifests claim
// blobs of another size (a layer descriptor claiming 1 TiB), an unsupported
// media type or an index inside an index is refused here too, as a problem
// of images/index.json naming the image and the descriptor.
//
// Validity (R59, docs/validity.md): a bundle past it is refused as new
// content (an import, a join, an upgrade); with Options.Installed, for a
// bundle the node already holds, it is reported (Expired, Warnings) and
// never refused, and a signature made while its key was valid stays good
// after the key expires.
//
// Verify checks all files up front and reports every failing one by path.
// OpenVerified does the same for a server and keeps the sha256 of every
// 1 MiB chunk of every file, so a Reader checks each chunk again as it
// serves it: a change to the ISO after the check is never passed on.
package verify
