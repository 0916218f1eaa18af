// Package bootstrap turns a verified bundle and cluster.yaml into the
// desired state of a node (converge.Desired) and converges it:
// `installer bootstrap` on the first node and `installer apply` after.
//
//	ISO ─verify─► import ─► content service (in process during bootstrap,
//	                         then the ferry-content unit)
//	cluster.yaml ─► PKI (realms, DNS-only leaves) + node files (nodeconfig)
//	            ─► converge: packages (dnf, gpgcheck) → files → units
//	                         → kubeadm init → CNI, labels, taints
//
// New nodes join from a join file (`installer token create` on a control
// plane, `installer join` on the node): every field of it is authenticated
// with an HMAC under a key of its own that travels apart from the file
// (--certificate-key), and is checked before any field is used; a control
// plane's shared CAs are sealed under a key derived from the same one (the
// format: installer/joinfile; the bundle is fetched with installer/bundlefetch).
package bootstrap
