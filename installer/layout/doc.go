// Package layout is where Ferry keeps its state and configuration on a
// node: one list of paths for the renderers (installer/desired), the
// commands (installer/bootstrap, installer/upgrade, installer/access) and
// the node daemon (installer/nodeagent). The ports are installer/cluster's
// (topology.go); the files kubeadm and the control plane read are
// installer/nodeconfig's, which renders them.
package layout
