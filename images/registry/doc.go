// Package registry is a pull-only OCI distribution API server as an
// http.Handler, serving whatever a Store holds. Every write method is refused.
//
// Repositories are named by their full upstream names
// ("registry.k8s.io/pause"), so clients reach them either by that name in the
// path (skopeo, or containerd with override_path):
//
//	docker://ferry.example:5000/registry.k8s.io/pause:3.10
//
// or as a containerd mirror of the upstream, which sends the upstream's host
// as ns= and the short name in the path (/v2/pause/manifests/3.10?ns=registry.k8s.io):
//
//	# /etc/containerd/certs.d/registry.k8s.io/hosts.toml
//	server = "https://registry.k8s.io"
//	[host."https://ferry.example:5000"]
//	  capabilities = ["pull", "resolve"]
//	  ca = "/etc/ferry/registry-ca.crt"
//
// Every name, reference and ns is checked against the spec's grammar before
// the Store sees it; the raw path is read, and encoded or dot segments are
// refused rather than interpreted.
package registry
