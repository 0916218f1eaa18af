// Package nodeconfigtest gives tests configuration as installer/nodeconfig
// renders it for a node, to run real components (the API server of
// internal/testcluster) the way Ferry configures them.
package nodeconfigtest
