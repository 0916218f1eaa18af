// Package distributiontest runs the reference registry of the OCI
// distribution project (github.com/distribution/distribution/v3, its
// cmd/registry) for tests that need a real upstream registry: tags that
// move, manifests that are deleted, blobs served by a registry that is not
// ours.
//
// The registry is built from the Go module proxy the first time it is
// needed, in a throwaway wrapper module (it is not a dependency of Ferry's
// go.mod), and the binary is kept under $FERRY_TEST_CACHE (or
// os.UserCacheDir()/ferry-test) keyed by version, so later runs start it at
// once. A failed build fails the test: nothing is skipped.
//
// Start runs it on a random loopback port with TLS (a certificate of a
// throwaway internal/testpki CA), filesystem storage in a t.TempDir() and
// deletion enabled. Clients talk to it through a TLS reverse proxy in the
// test process that records every request before forwarding it, so a test
// can count the blob and manifest requests a client made, without racing
// the registry's own access log:
//
//	client ──TLS──▶ counting proxy (Registry.Host) ──TLS──▶ distribution registry
//
// Push and Delete use the real skopeo.
package distributiontest
