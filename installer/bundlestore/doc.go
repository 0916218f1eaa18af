// Package bundlestore keeps a node's bundles (layout.BundlesDir): what
// installer bootstrap, join and upgrade import, what the node daemon
// stages for a roll-out, which one the node targets (layout.TargetFile),
// and the rules for moving from one to another. Every command that puts a
// bundle on a node or moves the node to one goes through here, so the
// rules hold on every path.
//
//	ISO ─ReadFacts (verify in full)─► Facts ─Import─► BundlesDir/NAME-VERSION.iso
//	                                        ─KeepValidity─► beside it: .validity
//	content services ─Stage (bundlefetch, ReadFacts)─► BundlesDir (not the target)
//	SetTarget ─► layout.TargetFile ─Imported / Target─► the bundle the node runs
//	MayFollow(cur, next): same distribution, newer (or an allowed rollback),
//	    minUpgradeFrom, Kubernetes one minor at a time, never back
//
// A bundle in the store was verified when it was stored: later reads of
// its manifest (ManifestRelease, Target) do not verify it again. Facts
// also say how dnf reaches the bundle's repository (DNFArgs, ExtractRepo
// for the first install).
package bundlestore
