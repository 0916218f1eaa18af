// Package joinfile is the join file's format: what `installer token
// create` writes on a control-plane node (installer/access makes one
// from the cluster's PKI) and `installer join` reads on the new node.
//
//	token create: File ─Seal(key, CAs)─▶ Sign(key) ─▶ Write (0600, temp+rename, no symbolic link)
//	join:         Read ─▶ strict JSON ─▶ MAC under key ─▶ validate ─▶ File ─OpenSecrets(key)─▶ CAs
//
// A join file holds secrets (a bootstrap token, a worker's private keys,
// a control plane's shared CAs). Every field is authenticated with an
// HMAC-SHA256 under a key derived (HKDF-SHA256) from the file's own
// certificate key, which travels apart from the file (as kubeadm's
// --certificate-key does); nothing of a file is used before its MAC checks
// out. A control plane's CAs are sealed with AES-256-GCM under another key
// derived from the same one, bound to the file's cluster and node. The
// JSON is decoded strictly (no unknown, repeated or case-folded key,
// nothing after the object), and the files a join file carries may only
// go where a worker's own certificates (WorkerFiles) or a control plane's
// shared secrets (ControlPlaneSecrets) live.
package joinfile
