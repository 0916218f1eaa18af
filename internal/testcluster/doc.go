// Package testcluster starts a real Kubernetes control plane for tests:
// etcd and kube-apiserver (the programs the caller names, usually the
// distribution's own builds from builder/distro/distrotest), on 127.0.0.1
// at free ports, with TLS everywhere: certificates of a throwaway CA
// (internal/testpki), or of the CA the test passes (Ferry's kubernetes
// realm, for code that signs with it). Tests that need nodes add kwok
// (installer/rollout) or act as a node with a client certificate of its
// identity (ClientAs).
//
// It imports none of the installer's packages: the API server's
// configuration as Ferry renders it is installer/nodeconfig/nodeconfigtest's.
package testcluster
