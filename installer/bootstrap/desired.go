package bootstrap

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ferry-k8s/ferry/installer/cluster"
	"github.com/ferry-k8s/ferry/installer/converge"
	"github.com/ferry-k8s/ferry/installer/nodeconfig"
	"github.com/ferry-k8s/ferry/installer/pki"
	"github.com/ferry-k8s/ferry/signing"
)

// publicKeyring is the keyring file at p as Ferry writes it to nodes and
// join files: its public keys only, armored, whatever else the file held
// (signing.ReadKeyring refuses secret key material).
func publicKeyring(p string) ([]byte, error) {
	ring, err := signing.LoadKeyringFile(p)
	if err != nil {
		return nil, err
	}
	return ring.Armored()
}

// desired is the node as the bundle and cluster.yaml want it: a function
// of its inputs and of what is on the node already only where keys and
// certificates are made once (the realms, the encryption key, leaves still
// valid).
func desired(c *cluster.Cluster, n *cluster.Node, f *BundleFacts, nf *nodeFacts, o Options, imported string) (converge.Desired, error) {
	if !n.HasRole(cluster.RoleControlPlane) {
		return desiredWorker(c, n, f, nf, o, imported)
	}
	keyring, err := publicKeyring(o.Keyring)
	if err != nil {
		return converge.Desired{}, err
	}
	encKey, err := encryptionKey(o.Root)
	if err != nil {
		return converge.Desired{}, err
	}
	etcdImage, ok1 := f.Image("etcd")
	corednsImage, ok2 := f.Image("coredns")
	pauseImage, ok3 := f.Image("pause")
	if !ok1 || !ok2 || !ok3 {
		return converge.Desired{}, fmt.Errorf("bundle %s %s lacks the etcd, coredns or pause image", f.Name, f.Version)
	}
	tag := func(ref string) string { return ref[strings.LastIndex(ref, ":")+1:] }
	contentHost := fmt.Sprintf("%s:%d", n.Hostname, ContentPort)
	realmCA := func(r string) string { return filepath.Join(PKIDir, r, pki.CACertFile) }
	files, err := nodeconfig.Render(c, n.Name, nodeconfig.Facts{
		KubernetesVersion:  f.KubernetesVersion,
		ImageRepository:    f.ImageRepository,
		EtcdImageTag:       tag(etcdImage),
		CoreDNSImageTag:    tag(corednsImage),
		PauseImage:         pauseImage,
		ContentServices:    nodeContentServices(c, n),
		ContentCAFile:      realmCA(pki.RealmContent),
		NodeIPs:            nf.ips,
		CgroupVersion:      nf.cgroupVersion,
		HasSystemd:         nf.systemd,
		EncryptionKey:      encKey,
		EtcdInitialCluster: etcdInitialCluster(o),
		Version:            versionString(),
	})
	if err != nil {
		return converge.Desired{}, err
	}
	d, err := nodeBase(n, f, nf, o, files)
	if err != nil {
		return converge.Desired{}, err
	}

	// PKI: the realms, kubeadm's leaves (DNS names only), the content
	// service's, the kubelet's serving certificate and kube-proxy's client.
	leaves, err := kubeadmLeaves(c, n, nf.ips[nodeconfig.PlaneControlPlane])
	if err != nil {
		return converge.Desired{}, err
	}
	leaves = append(leaves, contentLeaf(n),
		leafSpec{nodeconfig.KubeletServingCert, nodeconfig.KubeletServingKey, pki.RealmKubernetes, pki.LeafRequest{CommonName: "system:node:" + n.Name, Organizations: []string{"system:nodes"}, DNSNames: []string{n.Hostname}, Usage: pki.ServerAuth}},
		leafSpec{"/etc/ferry/kube-proxy/client.crt", "/etc/ferry/kube-proxy/client.key", pki.RealmKubernetes, pki.LeafRequest{CommonName: "system:kube-proxy", Usage: pki.ClientAuth}},
	)
	pkiOut, err := pkiFiles(PKIOptions{Root: o.Root, Passphrase: o.RootPassphrase, Now: o.Now, Organization: c.Metadata.Name}, leaves,
		[]string{pki.RealmKubernetes, pki.RealmEtcd, pki.RealmFrontProxy, pki.RealmContent})
	if err != nil {
		return converge.Desired{}, err
	}
	owned := map[string]nodeconfig.Ownership{}
	for _, w := range nodeconfig.ControlPlaneOwnership() {
		owned[w.Path] = w
	}
	for _, pf := range pkiOut {
		if w, ok := owned[pf.Path]; ok {
			pf.Owner, pf.Group, pf.Mode = w.Owner, w.Group, w.Mode
		}
		if pf.Path == "/etc/ferry/tls/content.key" {
			pf.Group, pf.Mode = "ferry", 0o640
		}
		d.Files = append(d.Files, pf)
	}
	for _, w := range nodeconfig.ControlPlaneOwnership() {
		cw := converge.Owned{Path: w.Path, Owner: w.Owner, Group: w.Group, Mode: w.Mode, Dir: w.Dir}
		d.Owned = append(d.Owned, cw)
	}

	// The content service: the imported bundle, the keyring, TLS.
	d.Dirs = append(d.Dirs,
		converge.Dir{Path: BundlesDir, Mode: 0o755},
		converge.Dir{Path: "/etc/ferry/keys", Mode: 0o755},
		converge.Dir{Path: "/etc/ferry/secrets", Mode: 0o700},
	)
	d.Files = append(d.Files,
		converge.File{Path: ClusterConfig, Mode: 0o644, Content: mustRead(o.Config)},
		converge.File{Path: KeyringFile, Mode: 0o644, Content: keyring},
		converge.File{Path: EncryptionKey, Mode: 0o600, Content: encKey, Secret: true},
		converge.File{Path: ServeConfig, Mode: 0o640, Group: "ferry", Restarts: []string{"ferry-content.service"}, Content: nodeconfig.WithHeader(versionString(), []byte(fmt.Sprintf(
			"apiVersion: ferry.dev/v1alpha1\nkind: ContentService\nlisten: \":%d\"\nisos:\n  - %s\nkeyring: %s\ntlsCert: /etc/ferry/tls/content.crt\ntlsKey: /etc/ferry/tls/content.key\nexternalURL: https://%s\npidFile: /run/ferry/content.pid\n",
			ContentPort, strings.Join(servedISOs(o.Root, imported), "\n  - "), KeyringFile, contentHost)))},
		converge.File{Path: RepoFile, Mode: 0o644, Content: nodeconfig.WithHeader(versionString(), []byte(fmt.Sprintf(
			"[%s]\nname=Ferry %s %s (%s)\nbaseurl=%s\nenabled=1\ngpgcheck=1\nrepo_gpgcheck=1\ngpgkey=file://%s\nsslverify=1\nsslcacert=%s\n",
			repoID(f), f.Name, f.Version, f.Repo, strings.Join(repoURLs(c, n, f), "\n        "), KeyringFile, realmCA(pki.RealmContent))))},
	)
	if err := networkFiles(&d, c, n, nf, pkiOut); err != nil {
		return converge.Desired{}, err
	}
	d.Units = append(d.Units, []converge.Unit{
		{Name: "ferry-content.service", Start: true},
		{Name: "containerd.service", Start: true},
		{Name: "kubelet.service"},
		{Name: "kube-proxy.service", Start: true},
		{Name: "ferry-node.service", Start: true},
	}...)
	d.Kubeadm = &converge.KubeadmInit{Config: nodeconfig.InitConfigFile,
		// kube-proxy runs as a host service with the host's iptables (the
		// bundle's images carry no iptables binaries); see kubeProxyFiles.
		SkipPhases: []string{"addon/kube-proxy"}}
	d.Kubeadm.Owned = append(d.Kubeadm.Owned, d.Owned...)
	inputs := sha256.New()
	for _, file := range files {
		if file.Path == nodeconfig.InitConfigFile || strings.HasPrefix(file.Path, nodeconfig.PatchesDir+"/") {
			fmt.Fprintf(inputs, "%s %d\n", file.Path, len(file.Content))
			inputs.Write(file.Content)
		}
	}
	d.Kubeadm.InputDigest = hex.EncodeToString(inputs.Sum(nil))
	// kubeadm points these at the node's IP; the API server's certificate
	// names the node by its hostname.
	local := fmt.Sprintf("https://%s:6443", n.Hostname)
	endpoint := "https://" + c.Spec.ControlPlaneEndpoint
	d.Kubeadm.Servers = map[string]string{
		"/etc/kubernetes/controller-manager.conf": local, "/etc/kubernetes/scheduler.conf": local, "/etc/kubernetes/kubelet.conf": local,
		"/etc/kubernetes/admin.conf": endpoint, "/etc/kubernetes/super-admin.conf": endpoint,
	}
	if len(o.IgnorePreflightErrors) > 0 {
		d.Kubeadm.IgnorePreflightErrors = o.IgnorePreflightErrors
	}
	if o.mode == "join" {
		// A control-plane node that joins: its etcd member first (added
		// by Ferry, by name), then kubeadm join with Ferry's certificates.
		// d.Kubeadm stays for what follows a join (reconfiguration, R30).
		var endpoints []string
		for i := range c.Spec.Nodes {
			if cp := &c.Spec.Nodes[i]; cp.HasRole(cluster.RoleControlPlane) && cp.Name != n.Name {
				endpoints = append(endpoints, nodeconfig.EtcdClientURL(cp))
			}
		}
		d.EtcdMember = &converge.EtcdMember{Name: n.Name, PeerURL: nodeconfig.EtcdPeerURL(n), Endpoints: endpoints,
			CACert: filepath.Join(KubernetesPKI, "etcd/ca.crt"), Cert: filepath.Join(KubernetesPKI, "apiserver-etcd-client.crt"),
			Key: filepath.Join(KubernetesPKI, "apiserver-etcd-client.key"), StateFile: EtcdStateFile, PromotedFile: StateDir + "/etcd-promoted"}
		d.Join = &converge.KubeadmJoin{Config: nodeconfig.JoinConfigFile, Discovery: nodeconfig.DiscoveryFile, ControlPlane: true,
			InitConfig: nodeconfig.InitConfigFile, Owned: d.Owned, InputDigest: d.Kubeadm.InputDigest, IgnorePreflightErrors: o.IgnorePreflightErrors,
			Servers: map[string]string{"/etc/kubernetes/controller-manager.conf": local, "/etc/kubernetes/scheduler.conf": local, "/etc/kubernetes/admin.conf": endpoint}}
		if o.join != nil {
			d.Join.DiscoveryContent = []byte(o.join.Discovery)
		}
	}
	for k, v := range n.Labels {
		d.Labels[k] = v
	}
	d.Taints = n.Taints
	d.ClusterNodes = []string{}
	for _, cn := range c.Spec.Nodes {
		d.ClusterNodes = append(d.ClusterNodes, cn.Name)
	}
	d.LocalEtcd = &converge.EtcdMember{Endpoints: []string{"https://localhost:2379"}, CACert: filepath.Join(KubernetesPKI, "etcd/ca.crt"),
		Cert: filepath.Join(KubernetesPKI, "apiserver-etcd-client.crt"), Key: filepath.Join(KubernetesPKI, "apiserver-etcd-client.key")}
	d.KubernetesVersion = f.KubernetesVersion
	d.Upgrade = &converge.KubeadmUpgrade{Config: nodeconfig.UpgradeConfigFile, ControlPlane: true, InitConfig: nodeconfig.InitConfigFile, IgnorePreflightErrors: o.IgnorePreflightErrors}
	if n.HasRole(cluster.RoleWorker) {
		d.RemoveTaints = []string{"node-role.kubernetes.io/control-plane:NoSchedule"}
	}
	return d, nil
}

// nodeBase is what every node has: the distribution's packages (and the
// host-provides package where rpm does not manage the host), the files
// nodeconfig rendered, with the units they restart and the commands they
// trigger, and the host's SELinux mode (R13).
func nodeBase(n *cluster.Node, f *BundleFacts, nf *nodeFacts, o Options, files []nodeconfig.File) (converge.Desired, error) {
	d := converge.Desired{Packages: map[string]string{}, Labels: map[string]string{}, PackageRestarts: packageRestarts}
	for _, p := range NodePackages {
		v, ok := f.Packages[p]
		if !ok {
			return converge.Desired{}, fmt.Errorf("bundle %s %s has no package %s", f.Name, f.Version, p)
		}
		d.Packages[p] = v
	}
	if !nf.hasShell {
		p, err := hostProvides(o.Root)
		if err != nil {
			return converge.Desired{}, err
		}
		d.LocalPackages = map[string]string{hostProvidesName: strings.TrimPrefix(p, filepath.Clean(o.Root))}
	}
	for _, file := range files {
		cf := converge.File{Path: file.Path, Mode: file.Mode, Owner: file.Owner, Group: file.Group, Content: file.Content, Secret: file.Secret}
		switch file.Path {
		case nodeconfig.ContainerdConfigFile:
			cf.Restarts = []string{"containerd.service"}
		case nodeconfig.SysctlFile:
			cf.After = []string{"sysctl -p " + nodeconfig.SysctlFile}
		case nodeconfig.SysusersFile:
			cf.After = []string{"systemd-sysusers " + nodeconfig.SysusersFile}
		}
		if strings.HasPrefix(file.Path, nodeconfig.ContainerdHostsDir) {
			cf.Restarts = []string{"containerd.service"}
		}
		d.Files = append(d.Files, cf)
	}
	if sf := selinuxFile(n, nf.selinux, o.Log); sf != nil {
		d.Files = append(d.Files, *sf)
	}
	return d, nil
}

// networkFiles are every node's pod network, kube-proxy and firewall
// files and units (after the node's own units, before kubelet's).
func networkFiles(d *converge.Desired, c *cluster.Cluster, n *cluster.Node, nf *nodeFacts, pkiOut []converge.File) error {
	d.Files = append(d.Files, cniFiles(c, n, nf.mtu)...)
	routes, err := routeFiles(c, n, nf)
	if err != nil {
		return err
	}
	d.Files = append(d.Files, routes...)
	if len(routes) > 0 {
		d.Units = append(d.Units, converge.Unit{Name: PodRoutesUnit, Start: true})
	}
	kp, err := kubeProxyFiles(c, n, pkiOut)
	if err != nil {
		return err
	}
	d.Files = append(d.Files, kp...)
	var ca []byte
	for _, f := range pkiOut {
		if f.Path == filepath.Join(KubernetesPKI, "ca.crt") {
			ca = f.Content
		}
	}
	proxy, unit, err := apiProxyFiles(c, ca)
	if err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	d.Files = append(d.Files, proxy...)
	d.Units = append(d.Units, unit)
	if nf.firewall != nil {
		fw, err := nodeconfig.Firewall(c, n.Name, *nf.firewall)
		if err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
		for _, file := range fw {
			cf := converge.File{Path: file.Path, Mode: file.Mode, Content: file.Content}
			if nf.firewall.Backend == nodeconfig.FirewallBackendFirewalld {
				cf.After = []string{"firewall-cmd --reload"}
			} else {
				cf.Restarts = []string{nodeconfig.FirewallUnit}
			}
			d.Files = append(d.Files, cf)
		}
		if nf.firewall.Backend == nodeconfig.FirewallBackendNftables {
			d.Units = append(d.Units, converge.Unit{Name: nodeconfig.FirewallUnit, Start: true})
		}
	}
	return nil
}

func mustRead(p string) []byte {
	data, _ := os.ReadFile(p)
	return data
}

// podCIDR is node's pod range: the i-th /24 of the pod subnet for the i-th
// node of cluster.yaml, a pure function of the configuration (so that the
// routes between nodes are too).
func podCIDR(c *cluster.Cluster, n *cluster.Node) (netip.Prefix, error) {
	pfx, err := netip.ParsePrefix(c.Spec.Kubernetes.PodSubnet)
	if err != nil {
		return netip.Prefix{}, err
	}
	idx := -1
	for i := range c.Spec.Nodes {
		if c.Spec.Nodes[i].Name == n.Name {
			idx = i
		}
	}
	if pfx.Bits() > 24 || idx < 0 || idx >= 1<<(24-pfx.Bits()) {
		return netip.Prefix{}, fmt.Errorf("spec.kubernetes.podSubnet %s has no /24 for node %s", pfx, n.Name)
	}
	a := pfx.Masked().Addr().As4()
	base := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8
	base += uint32(idx) << 8
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(base >> 24), byte(base >> 16), byte(base >> 8), 0}), 24), nil
}

// cniFiles: the bridge plugin with host-local addresses from the node's
// pod range, port mapping, and loopback (the kubernetes-cni package). The
// bridge and the pods' interfaces get the MTU of the host interface that
// carries pod traffic (R34): the pod network routes without encapsulation
// (R35), so a packet leaves the node as large as the pod sent it, and a
// pod never sends larger than the node's own link carries.
func cniFiles(c *cluster.Cluster, n *cluster.Node, mtu int) []converge.File {
	pfx, err := podCIDR(c, n)
	if err != nil {
		return nil
	}
	gw := pfx.Addr().Next()
	mtuLine := ""
	if mtu >= 576 && mtu <= 65535 {
		mtuLine = fmt.Sprintf("\n      \"mtu\": %d,", mtu)
	}
	body := fmt.Sprintf(`{
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
`, mtuLine, pfx, gw)
	// JSON has no comments: the R19 header goes in a sibling file.
	return []converge.File{
		{Path: CNIConfig, Mode: 0o644, Content: []byte(body)},
		{Path: CNIConfig + ".ferry", Mode: 0o644, Content: nodeconfig.WithHeader(versionString(), []byte("# "+CNIConfig+" is generated by Ferry; its content hash is above.\n"))},
	}
}

// kubeProxyFiles run kube-proxy as a host service: the kube-proxy binary
// comes from the bundle's RPM (R18), iptables from the host (the images are
// composed from Go binaries and carry none). It authenticates as
// system:kube-proxy, which Kubernetes' default system:node-proxier binding
// authorizes.
func kubeProxyFiles(c *cluster.Cluster, n *cluster.Node, pkiOut []converge.File) ([]converge.File, error) {
	var cert, key, ca []byte
	for _, f := range pkiOut {
		switch f.Path {
		case "/etc/ferry/kube-proxy/client.crt":
			cert = f.Content
		case "/etc/ferry/kube-proxy/client.key":
			key = f.Content
		case filepath.Join(KubernetesPKI, "ca.crt"):
			ca = f.Content
		}
	}
	if cert == nil || key == nil || ca == nil {
		return nil, fmt.Errorf("kube-proxy: certificates missing")
	}
	// Through the node-local API server proxy (R32).
	kc := kubeconfig(c.Metadata.Name, strings.TrimPrefix(APIProxyServer, "https://"), apiServerName(c), ca, "system:kube-proxy", "kube-proxy", kubeconfigCreds{CertPEM: cert, KeyPEM: key})
	cfg := fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
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
`, KubeProxyKubeconfig, n.Name, c.Spec.Kubernetes.PodSubnet)
	unit := `[Unit]
Description=kube-proxy: Kubernetes service routing (Ferry)
After=network-online.target kubelet.service
Wants=network-online.target

[Service]
ExecStart=/usr/bin/kube-proxy --config ` + KubeProxyConfig + `
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
`
	v := versionString()
	return []converge.File{
		{Path: KubeProxyKubeconfig, Mode: 0o600, Content: nodeconfig.WithHeader(v, []byte(kc)), Secret: true, Restarts: []string{"kube-proxy.service"}},
		{Path: KubeProxyConfig, Mode: 0o644, Content: nodeconfig.WithHeader(v, []byte(cfg)), Restarts: []string{"kube-proxy.service"}},
		{Path: KubeProxyUnit, Mode: 0o644, Content: nodeconfig.WithHeader(v, []byte(unit)), Restarts: []string{"kube-proxy.service"}},
	}, nil
}

// etcdInitialCluster is the membership recorded when Ferry added this
// node's etcd member ("" on the first node and before the member exists).
func etcdInitialCluster(o Options) string {
	if o.mode != "join" {
		return ""
	}
	data, err := os.ReadFile(filepath.Join(o.Root, EtcdStateFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

// repoURLs are the distribution repository at every control plane's
// content service, in the node's order (nodeContentServices: dnf tries
// them in turn; during a roll-out, a control plane that has not imported
// the new bundle yet installs from one that has).
func repoURLs(c *cluster.Cluster, n *cluster.Node, f *BundleFacts) []string {
	var out []string
	for _, s := range nodeContentServices(c, n) {
		out = append(out, fmt.Sprintf("https://%s/repos/%s/%s/", s, f.Version, f.Repo))
	}
	return out
}

// nodeContentServices are the control planes' content services in the
// order node n asks them (its containerd and dnf): a control plane its
// own first, a worker starting at the i-th service for the i-th worker, so
// that the workers' pulls spread over the services while all are up. Each
// service is listed once; when one is down, the next is asked.
func nodeContentServices(c *cluster.Cluster, n *cluster.Node) []string {
	services := contentServices(c)
	own := fmt.Sprintf("%s:%d", n.Hostname, ContentPort)
	if i := slices.Index(services, own); i >= 0 {
		return append([]string{own}, slices.Delete(slices.Clone(services), i, i+1)...)
	}
	if len(services) == 0 {
		return nil
	}
	worker := 0
	for i := range c.Spec.Nodes {
		if c.Spec.Nodes[i].Name == n.Name {
			break
		}
		if !c.Spec.Nodes[i].HasRole(cluster.RoleControlPlane) {
			worker++
		}
	}
	k := worker % len(services)
	return append(slices.Clone(services[k:]), services[:k]...)
}
