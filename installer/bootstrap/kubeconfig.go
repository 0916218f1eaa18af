package bootstrap

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// kubeconfigCreds are a kubeconfig user's credentials: a client
// certificate and key (PEM), or a bearer token.
type kubeconfigCreds struct {
	CertPEM, KeyPEM []byte
	Token           string
}

// kubeconfig is a kubeconfig with one cluster (the API at server, its
// CA, and the name its certificate must carry when server is not that
// name: tlsServerName, "" for none), one user and the context joining them.
func kubeconfig(clusterName, server, tlsServerName string, ca []byte, user, context string, creds kubeconfigCreds) string {
	b64 := base64.StdEncoding.EncodeToString
	tls := ""
	if tlsServerName != "" {
		tls = "    tls-server-name: " + tlsServerName + "\n"
	}
	var u strings.Builder
	if creds.Token != "" {
		fmt.Fprintf(&u, "    token: %s\n", creds.Token)
	} else {
		fmt.Fprintf(&u, "    client-certificate-data: %s\n    client-key-data: %s\n", b64(creds.CertPEM), b64(creds.KeyPEM))
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: %[1]s
  cluster:
    server: https://%[2]s
%[7]s    certificate-authority-data: %[3]s
users:
- name: %[4]s
  user:
%[5]scontexts:
- name: %[6]s
  context: {cluster: %[1]s, user: %[4]s}
current-context: %[6]s
`, clusterName, server, b64(ca), user, u.String(), context, tls)
}
