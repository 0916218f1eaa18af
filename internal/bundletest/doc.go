// Package bundletest makes bundles that the builder refuses to make, for
// tests of what their consumers refuse: Resign lists a builder work tree's
// files, as a test edited them, in its manifest and signs it again, so the
// ISO the builder's iso phase then writes is signed and intact, yet holds
// whatever the test put there (a layer descriptor claiming 1 TiB, say).
// ManifestISO writes the ISO of a bundle that holds only its manifest,
// for readers of a stored bundle's manifest. Only tests import it.
package bundletest
