// Package desired is the node as the bundle and cluster.yaml want it: a
// pure function (Node) of the configuration, the bundle's facts and what
// was observed on the node (installer/nodestate), returning the
// converge.Desired that installer/converge plans against.
//
// Nothing here reads the node, the clock or a random source: keys and
// certificates made once (the realms, the leaves, the encryption key) are
// inputs, made or read by installer/nodestate before. So the same inputs
// give the same node, and golden tests (testdata/golden) pin every role ×
// mode: a single server, the first control plane, a control plane that
// joins, a worker, an HA member, a changed address.
//
// The files' text is rendered by installer/nodeconfig; this package
// decides which files, units, packages and kubeadm steps a node gets and
// what restarts what.
package desired
