// Package rpmtest builds small, real RPM packages for tests and benchmarks.
//
// The packages are written with github.com/google/rpmpack, so no rpmbuild is
// needed. Builds are reproducible: the build time and every file mtime are
// fixed, so the same Spec (and the same signer output) always gives the same
// bytes. A signer, when given, receives the bytes to sign (first the main
// header alone, then header and payload) and must return a binary
// (not armored) detached OpenPGP signature.
package rpmtest
