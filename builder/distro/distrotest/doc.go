// Package distrotest gives tests the distribution's own programs
// (kube-apiserver, kubeadm, etcd, containerd, …) built exactly as the
// builder builds them, from the builder's cache.
package distrotest
