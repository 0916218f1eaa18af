// Package pki keeps Ferry's certificate authorities: one CA chain per realm
// (kubernetes, etcd, front-proxy, content, node-daemon; R23), each an
// offline root and an online intermediate, and the short-lived leaf
// certificates the intermediates issue (R24, R25, R29).
//
// Lifecycle of a realm:
//
//	NewRealm ─▶ root CA (10y, ECDSA P-256, path length 1)
//	         └▶ intermediate CA (1y, path length 0), signed by the root
//	WriteFiles(dir, passphrase)
//	   root.crt  0644  trust anchor
//	   root.key  0600  PKCS#8 encrypted (PBES2: PBKDF2-SHA-256 + AES-256-CBC);
//	                   copy it off the node and delete it there (R25)
//	   ca.crt    0644  intermediate, then root
//	   ca.key    0600  intermediate key, unencrypted (it signs online)
//	LoadRealm(dir, nil)         online: issue leaves
//	LoadRealm(dir, passphrase)  with the root key: Renew the intermediate
//	Issue… ─▶ leaf (30d default, DNS SANs only, never IP SANs; chain file =
//	          leaf + intermediate)
//	NeedsRotation(cert, now, threshold) ─▶ reissue a leaf, or Renew the
//	          intermediate (keeping its key by default, so nothing it signed
//	          and no pinned key hash changes)
//
// kubeadm (read in v1.36.3: cmd/kubeadm/app/phases/certs and
// util/pkiutil) takes a realm's ca.crt and ca.key as its CA unchanged:
//   - LoadCertificateAuthority reads ca.crt with certutil.CertsFromFile and
//     uses the first certificate as the CA (it only checks IsCA), signing
//     with ca.key; so ca.crt is the intermediate first, then the root.
//   - Leaves found on disk are checked with VerifyCertChain(leaf, the rest
//     of the leaf's file, ca.crt's first certificate), a Go x509 verify with
//     the intermediate as the trust anchor: our leaves pass (their files
//     carry the intermediate too).
//   - The whole ca.crt becomes the trust bundle of the components
//     (--client-ca-file, the kubelet's clientCAFile, kube-root-ca.crt in
//     every namespace), so clients that need a self-signed anchor (OpenSSL:
//     dnf, curl) find the root there; kubeconfigs embed only the first
//     certificate (the intermediate; seen in admin.conf), which is why Renew keeps the
//     intermediate's key unless asked to rekey.
//   - kubeadm's own leaves always carry IP SANs (advertise address,
//     127.0.0.1, the kubernetes service IP), so Ferry writes every leaf
//     itself (DNS SANs only, R29) before running kubeadm. `kubeadm init`'s
//     certs phase takes a leaf already on disk when it chains to ca.crt,
//     without looking at its SANs (tried with kubeadm v1.36.3: "Using
//     existing apiserver certificate and key on disk"). `kubeadm join
//     --control-plane` is stricter: its control-plane-prepare/certs phase
//     (CreatePKIAssets) checks an existing leaf's SANs against the IPs it
//     expects and fails, so joins run with
//     --skip-phases=control-plane-prepare/certs.
//   - R29's exceptions, forced by how clients dial the API server: pods reach
//     it at the kubernetes service IP (client-go's in-cluster configuration
//     dials KUBERNETES_SERVICE_HOST and checks the certificate against that
//     IP), and kubeadm talks to its local API server only by its advertise
//     address (PointKubeConfigToLocalAPIEndpoint, for init, join and
//     upgrade alike). So the API server's certificate, and only it, carries
//     those two addresses (LeafRequest.APIServerIPs); every other
//     certificate carries DNS names only, and every endpoint Ferry
//     configures is a name.
//   - The key files are read by keyutil.PrivateKeyFromFile: unencrypted
//     PEM only (PKCS#8 "PRIVATE KEY" works); hence the intermediate key is
//     not encrypted, and the root key never goes into /etc/kubernetes/pki.
package pki
