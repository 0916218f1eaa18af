// Package bootstrap turns a verified bundle and cluster.yaml into the
// desired state of a node (converge.Desired) and converges it:
// `installer bootstrap` on the first node and `installer apply` after.
//
//	ISO ─verify─► import ─► content service (in process during bootstrap,
//	                         then the ferry-content unit)
//	cluster.yaml ─► PKI (realms, DNS-only leaves) + node files (nodeconfig)
//	            ─► converge: packages (dnf, gpgcheck) → files → units
//	                         → kubeadm init → CNI, labels, taints
package bootstrap
