// Package nodestate reads the node, once per round, into the values
// installer/desired renders from: the host (addresses per plane, MTU,
// cgroups, systemd, SELinux, the peers' resolved addresses, the firewall
// backend), Ferry's records (mode, etcd membership, imported bundles),
// and the node's keys and certificates — made here when the node has none
// yet or when one is due (Credentials), so that desired stays a pure
// function.
//
// The state of the resources a plan manages (packages, files, units,
// kubeadm's progress, the Node object) is converge.Host.Observe's: what
// it reads depends on the desired node.
//
//	nodestate.Observe ──► desired.Node ──► converge.Host.Observe ──► converge.Plan ──► converge.Host.Apply
package nodestate
