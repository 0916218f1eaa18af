package joinfile

import (
	"path/filepath"

	"github.com/ferry-k8s/ferry/installer/layout"
	"github.com/ferry-k8s/ferry/installer/nodeconfig"
	"github.com/ferry-k8s/ferry/installer/pki"
)

// Where on a node the files a join file carries go: the node's layout
// (installer/layout). A join file may carry these and nothing else.
const (
	pkiDir        = layout.PKIDir
	kubernetesPKI = layout.KubernetesPKI
	encryptionKey = layout.EncryptionKey
	kubeProxyCert = layout.KubeProxyCert
	kubeProxyKey  = layout.KubeProxyKey
)

// WorkerFiles are the files a join file's Files may be: a worker's own
// certificates and keys (the kubelet's serving certificate, kube-proxy's
// client certificate).
func WorkerFiles() []string {
	return []string{nodeconfig.KubeletServingCert, nodeconfig.KubeletServingKey, kubeProxyCert, kubeProxyKey}
}

// ControlPlaneSecrets are the files a control-plane node shares with the
// others, the only ones a join file's sealed Secrets may be: each realm's
// online CA, the service-account keys, the encryption-at-rest key.
func ControlPlaneSecrets() []string {
	var ps []string
	for _, r := range []string{pki.RealmKubernetes, pki.RealmEtcd, pki.RealmFrontProxy, pki.RealmContent} {
		for _, f := range []string{pki.RootCertFile, pki.CACertFile, pki.CAKeyFile} {
			ps = append(ps, filepath.Join(pkiDir, r, f))
		}
	}
	return append(ps, filepath.Join(kubernetesPKI, "sa.key"), filepath.Join(kubernetesPKI, "sa.pub"), encryptionKey)
}
