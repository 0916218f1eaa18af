// Package clustertest holds the cluster.yaml texts several packages' tests
// start from, so that "a single server" or "an HA cluster" is the same
// cluster everywhere. It imports nothing, so installer/cluster's own tests
// can use it too; installer/cluster/testdata holds the full example.
package clustertest
