// Package bundle holds the format types that the builder and the installer
// share: the bundle spec (what to put in a bundle, YAML), and the manifest
// (what is in a bundle, JSON, signed). It imports nothing of the project.
//
// The data flows one way:
//
//	spec (bundle.yaml) ─▶ content tree ─▶ manifest.json ─▶ manifest.json.asc ─▶ ISO
//	ISO ─▶ manifest.json.asc checked ─▶ manifest.json parsed ─▶ every file checked ─▶ used
//
// Nothing read from a bundle is trusted before its manifest's signature and
// the file's digest have been checked; the parsers here are written for
// hostile input (bounded sizes, strict fields, clean relative paths).
package bundle
