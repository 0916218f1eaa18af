// Package testcluster starts a real Kubernetes control plane for tests:
// etcd and kube-apiserver, built from source like the bundle's
// (builder/distro/distrotest), on 127.0.0.1 at free ports, with TLS
// everywhere and certificates of Ferry's realms (installer/pki). Tests
// that need nodes add kwok (installer/rollout) or act as a node with a
// client certificate of its identity (ClientAs).
package testcluster
