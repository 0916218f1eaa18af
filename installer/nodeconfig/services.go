package nodeconfig

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"strings"
)

// The files of Ferry's own services and of the host network, rendered
// from values the caller (installer/desired) has worked out. Each
// returns the body; the caller adds the R19 header (WithHeader) where the
// format takes comments.

// KubeconfigCreds are a kubeconfig user's credentials: a client
// certificate and key (PEM), or a bearer token.
type KubeconfigCreds struct {
	CertPEM, KeyPEM []byte
	Token           string
}

// Kubeconfig is a kubeconfig with one cluster (the API at server, its CA,
// and the name its certificate must carry when server is not that name:
// tlsServerName, "" for none), one user and the context joining them.
func Kubeconfig(clusterName, server, tlsServerName string, ca []byte, user, context string, creds KubeconfigCreds) string {
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

// ContentService is the content service's configuration (serve.yaml).
type ContentService struct {
	Port            int
	ISOs            []string
	Keyring         string
	TLSCert, TLSKey string
	ExternalHost    string // host:port
	PIDFile         string
}

// Render is the configuration's body.
func (s ContentService) Render() []byte {
	return []byte(fmt.Sprintf(
		"apiVersion: ferry.dev/v1alpha1\nkind: ContentService\nlisten: \":%d\"\nisos:\n  - %s\nkeyring: %s\ntlsCert: %s\ntlsKey: %s\nexternalURL: https://%s\npidFile: %s\n",
		s.Port, strings.Join(s.ISOs, "\n  - "), s.Keyring, s.TLSCert, s.TLSKey, s.ExternalHost, s.PIDFile))
}

// Repo is a dnf repository file of the distribution's repository at
// several base URLs (dnf tries them in turn), signed packages and
// metadata, TLS with the content realm's CA.
type Repo struct {
	ID, Name          string
	BaseURLs          []string
	GPGKey, SSLCACert string
}

// Render is the repository file's body.
func (r Repo) Render() []byte {
	return []byte(fmt.Sprintf(
		"[%s]\nname=%s\nbaseurl=%s\nenabled=1\ngpgcheck=1\nrepo_gpgcheck=1\ngpgkey=file://%s\nsslverify=1\nsslcacert=%s\n",
		r.ID, r.Name, strings.Join(r.BaseURLs, "\n        "), r.GPGKey, r.SSLCACert))
}

// BridgeCNI is the pod network's configuration: the bridge plugin with
// host-local addresses from the node's pod range, port mapping. The
// bridge and the pods' interfaces get the MTU of the host interface that
// carries pod traffic (R34; 0: the plugin's default): the pod network
// routes without encapsulation (R35), so a packet leaves the node as large
// as the pod sent it. JSON takes no comments: no header.
func BridgeCNI(podCIDR netip.Prefix, mtu int) []byte {
	mtuLine := ""
	if mtu >= 576 && mtu <= 65535 {
		mtuLine = fmt.Sprintf("\n      \"mtu\": %d,", mtu)
	}
	return []byte(fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "ferry",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "ferry0",%s
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "%s", "gateway": "%s"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, mtuLine, podCIDR, podCIDR.Addr().Next()))
}

// KubeProxy is kube-proxy's configuration and unit: kube-proxy runs as a
// host service, its binary from the bundle's RPM (R18), iptables from the
// host.
type KubeProxy struct {
	ConfigFile, Kubeconfig string
	NodeName, ClusterCIDR  string
}

// Config is the KubeProxyConfiguration.
func (k KubeProxy) Config() []byte {
	return []byte(fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %s
hostnameOverride: %s
clusterCIDR: %s
mode: iptables
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
conntrack:
  maxPerCore: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`, k.Kubeconfig, k.NodeName, k.ClusterCIDR))
}

// Unit is kube-proxy's systemd unit.
func (k KubeProxy) Unit() []byte {
	return []byte(`[Unit]
Description=kube-proxy: Kubernetes service routing (Ferry)
After=network-online.target kubelet.service
Wants=network-online.target

[Service]
ExecStart=/usr/bin/kube-proxy --config ` + k.ConfigFile + `
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
`)
}

// PodRoute is a route to another node's pod range.
type PodRoute struct {
	PodCIDR netip.Prefix
	Via     netip.Addr
}

// PodRoutesUnit is the unit that keeps the routes to the other nodes' pod
// ranges (R35: plain routing, the nodes on one subnet).
func PodRoutesUnit(routes []PodRoute) []byte {
	var lines []string
	for _, r := range routes {
		lines = append(lines, fmt.Sprintf("ExecStart=ip route replace %s via %s", r.PodCIDR, r.Via))
	}
	return []byte(`[Unit]
Description=Ferry pod network: routes to the other nodes' pod ranges
After=network-online.target
Wants=network-online.target
Before=kubelet.service

[Service]
Type=oneshot
RemainAfterExit=yes
` + strings.Join(lines, "\n") + `

[Install]
WantedBy=multi-user.target
`)
}

// APIProxy is the node-local API server proxy's configuration (R32).
type APIProxy struct {
	APIVersion, Kind string
	Listen           string
	Backends         []string
	CAFile           string
	ServerName       string
}

// Render is the configuration's body. Two failed checks, 5 s apart, make
// an API server unhealthy and move its clients: well within the kubelet's
// 40 s lease grace.
func (p APIProxy) Render() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: %s\nkind: %s\nlisten: %s\nbackends:\n", p.APIVersion, p.Kind, p.Listen)
	for _, s := range p.Backends {
		fmt.Fprintf(&b, "  - %s\n", s)
	}
	fmt.Fprintf(&b, "healthCheck:\n  caFile: %s\n  serverName: %s\n  unhealthyThreshold: 2\n", p.CAFile, p.ServerName)
	return []byte(b.String())
}
