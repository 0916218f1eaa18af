// Package bundlefetch downloads a bundle ISO, and the validity statement
// served beside it, from the control planes' content services
// (installer/content, /bundles/): what a joining node fetches (the join
// file names the bundle and its digest) and what a node fetches to stage
// the bundle of a roll-out (by name only).
//
//	Fetcher{Services, CA, Dir}
//	  Fetch(Bundle) ─▶ each service in turn, over TLS verified with CA only
//	       ├─ SHA256 known: internal/fetch Fetch ─▶ Dir/sha256/<hex> (size and digest checked)
//	       └─ unknown:      internal/fetch Download ─▶ Dir/<file>.download (≤ MaxBundleSize)
//	     both resume a partial download (Range) and retry a failing service a few times
//	  Validity(file) ─▶ <name>.validity from the first service that has one ─▶ Dir; none: ""
//
// What is fetched is not trusted for having come from a content service:
// the caller verifies the bundle in full (signature, every file) and
// checks the statement before either is used.
package bundlefetch
