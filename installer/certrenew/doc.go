// Package certrenew renews the certificates a worker node got in its join
// file (its kubelet's serving certificate, kube-proxy's client
// certificate) through the Kubernetes CertificateSigningRequest API, before
// they expire (Ferry's leaves live 30 days, R24), with no CA key ever on a
// worker.
//
//	worker daemon (Renew, each round)            control-plane daemon (Signer.Process)
//	  a third of the life left?
//	  new key (kept in <key>.next, 0600)
//	  CSR ferry-<kind>-<node>-<key hash> ──────▶ requester system:node:<node> of
//	    signer ferry.dev/kubelet-serving          cluster.yaml; subject, DNS names and
//	    or ferry.dev/kube-proxy-client            usages exactly the policy's
//	                                              ─▶ approve, sign with the realm's
//	                                                 online CA (installer/pki), or deny
//	  certificate issued? verify it: the key,
//	  the chain to the cluster's CA, the names
//	  <cert>.next, key renamed, cert renamed ──▶ the caller restarts the unit
//
// The signer names are Ferry's own, so kube-controller-manager's signers
// leave the requests alone. Nodes may create CertificateSigningRequests
// (the Node authorizer grants it for TLS bootstrapping); approving and
// signing takes a control plane's credentials. The policy admits the
// identity a worker already holds: its own kubelet (system:node:<name>,
// its hostname only, no IP address, R29) and kube-proxy (every worker's
// join file carries a system:kube-proxy certificate).
//
// Answered requests are left to kube-controller-manager's cleaner (an
// hour after; nodes may not delete requests). Every step is idempotent: the request's name derives from the new key,
// a request answered already is not signed twice, and a renewal that
// stopped between its two renames is completed by the next call.
//
// RenewCAs (`installer pki renew-ca`) renews what no CSR can: a control
// plane's intermediate CAs, from their offline root keys brought back for
// the occasion (R25), keeping each intermediate's key so that every leaf
// stays valid.
package certrenew
