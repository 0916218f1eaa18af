// Package imagetest generates OCI image layouts for tests, entirely in code and
// without network access.
//
// Everything it writes is deterministic: the same arguments produce the same
// bytes, hence the same digests, for a given Go toolchain (gzip output comes
// from compress/flate, whose encoder may change between Go releases).
//
// Layers are gzip-compressed tar archives holding a mix of pseudo-random
// (incompressible) bytes and repetitive text (compressible), with fixed tar
// headers (owner 0:0, fixed modification time, USTAR format) and a fixed gzip
// header and level. Layer i of an image made by WriteImage depends only on the
// seed, i and its size, so two images written with the same seed and the same
// size for layer i share that layer blob.
//
// Only image-spec types and plain file writes are used; the package does not
// depend on go.podman.io/image.
package imagetest
