// Package bootstrap converges a node: `installer bootstrap` on the first
// node, `installer join` on the others, `installer apply` after (and the
// node daemon's applies, installer/nodeagent). Run verifies the bundle,
// imports it (installer/bundlestore), takes the node's apply lock, then
// runs rounds of observe → desired → plan → apply until nothing is left:
//
//	ISO ─bundlestore.ReadFacts (verify)─► Import ─► content service (in
//	    process during bootstrap, then the ferry-content unit)
//	nodestate.Observe (host, records, keys and certificates)
//	    ─► desired.Node (pure) ─► converge.Host.Observe ─► converge.Plan
//	    ─► converge.Host.Apply: packages (dnf, gpgcheck) → files → units
//	       → kubeadm init or join → CNI, labels, taints
//	    ─► once the node has converged, on a control plane: the cluster's
//	       add-ons (installer/addons) in the same plan (addons.go)
//
// What stays here is what only Run needs: the node's mode (bootstrap or
// join, recorded, never mixed), its apply lock, and a control-plane join
// file's secrets. New nodes join from a join file (installer/access makes
// it, `installer token create`): every field of it is authenticated with
// an HMAC under a key of its own that travels apart from the file
// (--certificate-key), and is checked before any field is used; a control
// plane's shared CAs are sealed under a key derived from the same one (the
// format: installer/joinfile; without --iso the bundle is fetched with
// installer/bundlefetch).
package bootstrap
