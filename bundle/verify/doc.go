// Package verify checks a bundle ISO the way every consumer must before
// using any of it: read in user space (no mount), check manifest.json's
// signature against the admin's keyring, parse the manifest, judge its
// validity, then check that every file on the ISO is listed and that every
// listed file is there with its size and sha256.
//
//	ISO ─▶ iso.OpenRoot ─▶ manifest.json + .asc ─▶ Keyring.Verify ─▶ ParseManifest
//	    ─▶ iso.OpenStrict (every tree, path table and descriptor agree;
//	       at most the manifest's files and directories plus a margin)
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
// Nothing but the root directory's manifest and signature is read before
// the signature is checked, so what an untrusted image makes us allocate is
// bounded by those two files (no larger than the image: their extents may
// not overlap). Then every tree another reader could use (primary, Rock
// Ridge, Joliet, path tables, extra descriptors) must name the same files
// with the same extents, or the bundle is refused naming the tree, the path
// and the field: what verify checked is what xorriso, bsdtar, 7z or isoinfo
// would extract.
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
