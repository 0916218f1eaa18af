// Package access hands out credentials on a control-plane node, each
// issued from the kubernetes realm's intermediate and short-lived:
//
//	installer token create ─ CreateJoinFile ─► a join file for a node of
//	    cluster.yaml (installer/joinfile): a kubeadm bootstrap token (made
//	    through the node-local API server proxy), the cluster's
//	    configuration, keyring and content CA, the bundle's name and
//	    digest, and the node's own certificates (a worker) or the shared
//	    online CAs sealed under the file's key (a control plane)
//	installer user kubeconfig ─ UserKubeconfig ─► a kubeconfig with a
//	    client certificate for a static user of cluster.yaml
//
// Only what cluster.yaml lists gets anything: its nodes, its static users.
package access
