// Package content is the node-side content service: it serves every
// verified bundle ISO it holds as an OCI registry (pull only, through
// images/registry) and as yum repositories, over HTTPS, reading straight
// from the ISO files and checking every byte against what was verified.
//
//	ISO ─▶ verify.OpenVerified (signature, every file, chunk sums; as
//	       installed content: past its validity it is served, and said so)
//	    ─▶ loadBundle: images.CheckLayout (the image rules the builder and
//	       bundle verification apply too), objects indexed per repository,
//	       yum repodata and its signature checked
//	    ─▶ publish: an immutable snapshot swapped in atomically
//	request ─▶ snapshot ─▶ acquire the bundle ─▶ verify.Reader ─▶ response
//
// What the service is given is installed content: a bundle past its
// validity keeps being served (CheckValidity warns, counts it in
// ferry_content_bundles_expired and names it in /readyz), because a
// cluster must never take itself down because of a date; refusing new
// imports of expired bundles is CheckISO's job (installer bundle add). A
// validity statement beside an ISO extends it and is served beside it.
//
// Bundles are reference counted: Remove and Sync unpublish a bundle at
// once (new requests 404), while downloads in flight keep their
// reference and finish; the ISO file closes with the last of them. Content
// is only ever read through verify.Reader: a byte changed on the ISO after
// verification aborts the response and counts in
// ferry_content_digest_failures_total.
//
// Server wraps a Service in the HTTPS server run by `installer serve`:
// TLS 1.2+ only, optional client certificates, configuration file
// (kind: ContentService) reloaded with the certificate on SIGHUP, graceful
// stop on SIGTERM, systemd notify and watchdog. The unit file is in
// internal/systemd.
package content
