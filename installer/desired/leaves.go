package desired

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"

	"github.com/ferry-k8s/ferry/installer/cluster"
	"github.com/ferry-k8s/ferry/installer/layout"
	"github.com/ferry-k8s/ferry/installer/nodeconfig"
	"github.com/ferry-k8s/ferry/installer/pki"
)

// Leaf is one certificate a node uses, issued by Ferry from a realm so
// that it carries DNS names only (R29).
type Leaf struct {
	Cert, Key string
	Realm     string
	Req       pki.LeafRequest
}

// ControlPlaneRealms are the realms a control plane keeps.
var ControlPlaneRealms = []string{pki.RealmKubernetes, pki.RealmEtcd, pki.RealmFrontProxy, pki.RealmContent}

// ControlPlaneLeaves are the certificates of a control-plane node:
// kubeadm's, as kubeadm names them (it takes leaves it finds on disk when
// they chain to the CA, and writes only the kubeconfigs and the
// service-account key itself), the content service's, the kubelet's
// serving certificate and kube-proxy's client. advertise is the node's
// control-plane address.
func ControlPlaneLeaves(c *cluster.Cluster, n *cluster.Node, advertise string) ([]Leaf, error) {
	endpoint, _, err := net.SplitHostPort(c.Spec.ControlPlaneEndpoint)
	if err != nil {
		endpoint = c.Spec.ControlPlaneEndpoint
	}
	domain := c.Spec.Kubernetes.ClusterDomain
	svcIP, err := firstServiceIP(c.Spec.Kubernetes.ServiceSubnet)
	if err != nil {
		return nil, err
	}
	apiIPs := []net.IP{svcIP}
	if ip := net.ParseIP(advertise); ip != nil {
		apiIPs = append(apiIPs, ip)
	}
	apiNames := dedupe([]string{endpoint, n.Hostname, "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + domain})
	etcdNames := dedupe([]string{n.Hostname, "localhost"})
	p := func(rel string) string { return filepath.Join(layout.KubernetesPKI, rel) }
	return append([]Leaf{
		{p("apiserver.crt"), p("apiserver.key"), pki.RealmKubernetes, pki.LeafRequest{CommonName: "kube-apiserver", DNSNames: apiNames, APIServerIPs: apiIPs, Usage: pki.ServerAuth}},
		{p("apiserver-kubelet-client.crt"), p("apiserver-kubelet-client.key"), pki.RealmKubernetes, pki.LeafRequest{CommonName: "kube-apiserver-kubelet-client", Organizations: []string{"kubeadm:cluster-admins"}, Usage: pki.ClientAuth}},
		{p("apiserver-etcd-client.crt"), p("apiserver-etcd-client.key"), pki.RealmEtcd, pki.LeafRequest{CommonName: "kube-apiserver-etcd-client", Usage: pki.ClientAuth}},
		{p("front-proxy-client.crt"), p("front-proxy-client.key"), pki.RealmFrontProxy, pki.LeafRequest{CommonName: "front-proxy-client", Usage: pki.ClientAuth}},
		{p("etcd/server.crt"), p("etcd/server.key"), pki.RealmEtcd, pki.LeafRequest{CommonName: n.Hostname, DNSNames: etcdNames, Usage: pki.ServerAuth | pki.ClientAuth}},
		{p("etcd/peer.crt"), p("etcd/peer.key"), pki.RealmEtcd, pki.LeafRequest{CommonName: n.Hostname, DNSNames: []string{n.Hostname}, Usage: pki.ServerAuth | pki.ClientAuth}},
		{p("etcd/healthcheck-client.crt"), p("etcd/healthcheck-client.key"), pki.RealmEtcd, pki.LeafRequest{CommonName: "kube-etcd-healthcheck-client", Usage: pki.ClientAuth}},
		ContentLeaf(n),
	}, WorkerLeaves(n)...), nil
}

// ContentLeaf is the content service's server certificate.
func ContentLeaf(n *cluster.Node) Leaf {
	return Leaf{layout.ContentCert, layout.ContentKey, pki.RealmContent, pki.LeafRequest{DNSNames: []string{n.Hostname}, Usage: pki.ServerAuth}}
}

// WorkerLeaves are the certificates every node has of its own: the
// kubelet's serving certificate and kube-proxy's client (a worker gets
// them in its join file and renews them through the API).
func WorkerLeaves(n *cluster.Node) []Leaf {
	return []Leaf{
		{nodeconfig.KubeletServingCert, nodeconfig.KubeletServingKey, pki.RealmKubernetes, pki.LeafRequest{CommonName: "system:node:" + n.Name, Organizations: []string{"system:nodes"}, DNSNames: []string{n.Hostname}, Usage: pki.ServerAuth}},
		{layout.KubeProxyCert, layout.KubeProxyKey, pki.RealmKubernetes, pki.LeafRequest{CommonName: "system:kube-proxy", Usage: pki.ClientAuth}},
	}
}

func firstServiceIP(cidr string) (net.IP, error) {
	pfx, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, fmt.Errorf("spec.kubernetes.serviceSubnet %q: %w", cidr, err)
	}
	return net.IP(pfx.Masked().Addr().Next().AsSlice()), nil
}

func dedupe(s []string) []string {
	var out []string
	for _, v := range s {
		if v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}
