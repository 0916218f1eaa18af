package desired

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/ferry-k8s/ferry/installer/addon"
	"github.com/ferry-k8s/ferry/installer/addons"
	"github.com/ferry-k8s/ferry/installer/cluster"
	"github.com/ferry-k8s/ferry/installer/converge"
	"github.com/ferry-k8s/ferry/installer/layout"
	"github.com/ferry-k8s/ferry/installer/nodeconfig"
	"github.com/ferry-k8s/ferry/installer/pki"
)

// NodePackages are the distribution's packages every node installs.
var NodePackages = []string{"kubelet", "kubeadm", "kubectl", "containerd", "runc", "cri-tools", "kubernetes-cni", "kube-proxy", "etcd", "ferry-installer"}

// packageRestarts are the units restarted when their package is upgraded
// (their running binary is the old one). The kubelet restarts after
// kubeadm's upgrade.
var packageRestarts = map[string][]string{
	"containerd":      {"containerd.service"},
	"kube-proxy":      {layout.KubeProxyUnit},
	"ferry-installer": {layout.ContentUnit, layout.APIProxyUnit},
}

// ContentCAFile is the content realm's CA certificate on every node.
var ContentCAFile = filepath.Join(layout.PKIDir, pki.RealmContent, pki.CACertFile)

// Node is the node as the bundle and cluster.yaml want it, and warnings
// worth telling the admin (a setting that needs a reboot).
func Node(in Input) (converge.Desired, []string, error) {
	if in.Node.HasRole(cluster.RoleControlPlane) {
		return controlPlane(in)
	}
	return worker(in)
}

// controlPlane is a control-plane node: kubeadm init (the first) or join
// with Ferry's PKI, the content service, etcd membership by name (R29).
func controlPlane(in Input) (converge.Desired, []string, error) {
	c, n, b := in.Cluster, in.Node, in.Bundle
	etcdImage, ok1 := b.Images["etcd"]
	corednsImage, ok2 := b.Images["coredns"]
	pauseImage, ok3 := b.Images["pause"]
	if !ok1 || !ok2 || !ok3 {
		return converge.Desired{}, nil, fmt.Errorf("bundle %s %s lacks the etcd, coredns or pause image", b.Name, b.Version)
	}
	tag := func(ref string) string { return ref[strings.LastIndex(ref, ":")+1:] }
	files, err := nodeconfig.Render(c, n.Name, nodeconfig.Facts{
		KubernetesVersion:  b.KubernetesVersion,
		ImageRepository:    b.ImageRepository,
		EtcdImageTag:       tag(etcdImage),
		CoreDNSImageTag:    tag(corednsImage),
		PauseImage:         pauseImage,
		ContentServices:    c.NodeContentServices(n),
		ContentCAFile:      ContentCAFile,
		NodeIPs:            in.Host.IPs,
		CgroupVersion:      in.Host.CgroupVersion,
		HasSystemd:         in.Host.Systemd,
		EncryptionKey:      in.EncryptionKey,
		EtcdInitialCluster: in.EtcdInitialCluster,
		OIDCCA:             in.OIDCCA,
		Version:            in.Version,
	})
	if err != nil {
		return converge.Desired{}, nil, err
	}
	d, warnings, err := base(in, files)
	if err != nil {
		return converge.Desired{}, nil, err
	}
	// PKI: the realms, kubeadm's leaves (DNS names only), the content
	// service's, the kubelet's serving certificate and kube-proxy's
	// client, owned as the control plane's users need them (R12).
	owned := map[string]nodeconfig.Ownership{}
	for _, w := range nodeconfig.ControlPlaneOwnership() {
		owned[w.Path] = w
	}
	for _, pf := range in.PKI {
		if w, ok := owned[pf.Path]; ok {
			pf.Owner, pf.Group, pf.Mode = w.Owner, w.Group, w.Mode
		}
		if pf.Path == layout.ContentKey {
			pf.Group, pf.Mode = "ferry", 0o640
		}
		d.Files = append(d.Files, pf)
	}
	for _, w := range nodeconfig.ControlPlaneOwnership() {
		d.Owned = append(d.Owned, converge.Owned{Path: w.Path, Owner: w.Owner, Group: w.Group, Mode: w.Mode, Dir: w.Dir})
	}

	// The content service: the imported bundles, the keyring, TLS.
	d.Dirs = append(d.Dirs,
		converge.Dir{Path: layout.BundlesDir, Mode: 0o755},
		converge.Dir{Path: layout.KeysDir, Mode: 0o755},
		converge.Dir{Path: layout.SecretsDir, Mode: 0o700},
	)
	serve := nodeconfig.ContentService{Port: cluster.ContentPort, ISOs: in.ServedISOs, Keyring: layout.KeyringFile,
		TLSCert: layout.ContentCert, TLSKey: layout.ContentKey, ExternalHost: fmt.Sprintf("%s:%d", n.Hostname, cluster.ContentPort), PIDFile: "/run/ferry/content.pid"}
	d.Files = append(d.Files,
		converge.File{Path: layout.ClusterConfig, Mode: 0o644, Content: in.ClusterConfig},
		converge.File{Path: layout.KeyringFile, Mode: 0o644, Content: in.Keyring},
		converge.File{Path: layout.EncryptionKey, Mode: 0o600, Content: in.EncryptionKey, Secret: true},
		converge.File{Path: layout.ServeConfig, Mode: 0o640, Group: "ferry", Restarts: []string{layout.ContentUnit}, Content: nodeconfig.WithHeader(in.Version, serve.Render())},
		repoFile(in, ContentCAFile),
	)
	if o := c.Spec.Authentication.OIDC; o != nil && o.CAFile != "" && !filepath.IsAbs(o.CAFile) && in.OIDCCA != nil {
		// Kept beside cluster.yaml, where its relative path names it
		// for the next apply.
		if !filepath.IsLocal(o.CAFile) {
			return converge.Desired{}, nil, fmt.Errorf("spec.authentication.oidc.caFile %s: a relative path must stay in cluster.yaml's directory", o.CAFile)
		}
		d.Files = append(d.Files, converge.File{Path: filepath.Join(filepath.Dir(layout.ClusterConfig), o.CAFile), Mode: 0o644, Content: in.OIDCCA})
	}
	if err := network(&d, in, in.PKI); err != nil {
		return converge.Desired{}, nil, err
	}
	d.Units = append(d.Units, []converge.Unit{
		{Name: layout.ContentUnit, Start: true},
		{Name: "containerd.service", Start: true},
		{Name: "kubelet.service"},
		{Name: layout.KubeProxyUnit, Start: true},
		{Name: layout.NodeUnit, Start: true},
	}...)
	d.Kubeadm = &converge.KubeadmInit{Config: nodeconfig.InitConfigFile,
		// kube-proxy runs as a host service with the host's iptables (the
		// bundle's images carry no iptables binaries). CoreDNS is Ferry's
		// add-on (installer/addons); kubeadm records it as disabled
		// (ClusterConfiguration dns.disabled), so it pulls no image for it.
		SkipPhases: []string{"addon/coredns", "addon/kube-proxy"}}
	d.Kubeadm.Owned = append(d.Kubeadm.Owned, d.Owned...)
	d.Kubeadm.InputDigest = kubeadmInputs(files)
	// kubeadm points these at the node's IP; the API server's certificate
	// names the node by its hostname.
	local := fmt.Sprintf("https://%s:%d", n.Hostname, cluster.APIServerPort)
	endpoint := "https://" + c.Spec.ControlPlaneEndpoint
	d.Kubeadm.Servers = map[string]string{
		"/etc/kubernetes/controller-manager.conf": local, "/etc/kubernetes/scheduler.conf": local, layout.KubeletConf: local,
		layout.AdminConf: endpoint, layout.SuperAdminConf: endpoint,
	}
	if len(in.IgnorePreflightErrors) > 0 {
		d.Kubeadm.IgnorePreflightErrors = in.IgnorePreflightErrors
	}
	etcdClient := func(m *converge.EtcdMember) *converge.EtcdMember {
		m.CACert = filepath.Join(layout.KubernetesPKI, "etcd/ca.crt")
		m.Cert = filepath.Join(layout.KubernetesPKI, "apiserver-etcd-client.crt")
		m.Key = filepath.Join(layout.KubernetesPKI, "apiserver-etcd-client.key")
		return m
	}
	if in.Mode == ModeJoin {
		// A control-plane node that joins: its etcd member first (added
		// by Ferry, by name), then kubeadm join with Ferry's certificates.
		// d.Kubeadm stays for what follows a join (reconfiguration, R30).
		var endpoints []string
		for i := range c.Spec.Nodes {
			if cp := &c.Spec.Nodes[i]; cp.HasRole(cluster.RoleControlPlane) && cp.Name != n.Name {
				endpoints = append(endpoints, nodeconfig.EtcdClientURL(cp))
			}
		}
		d.EtcdMember = etcdClient(&converge.EtcdMember{Name: n.Name, PeerURL: nodeconfig.EtcdPeerURL(n), Endpoints: endpoints,
			StateFile: layout.EtcdStateFile, PromotedFile: layout.EtcdPromotedFile})
		d.Join = &converge.KubeadmJoin{Config: nodeconfig.JoinConfigFile, Discovery: nodeconfig.DiscoveryFile, ControlPlane: true,
			InitConfig: nodeconfig.InitConfigFile, Owned: d.Owned, InputDigest: d.Kubeadm.InputDigest, IgnorePreflightErrors: in.IgnorePreflightErrors,
			Servers:          map[string]string{"/etc/kubernetes/controller-manager.conf": local, "/etc/kubernetes/scheduler.conf": local, layout.AdminConf: endpoint},
			DiscoveryContent: in.Discovery}
	}
	for k, v := range n.Labels {
		d.Labels[k] = v
	}
	d.Taints = n.Taints
	d.ClusterNodes = []string{}
	for _, cn := range c.Spec.Nodes {
		d.ClusterNodes = append(d.ClusterNodes, cn.Name)
	}
	d.LocalEtcd = etcdClient(&converge.EtcdMember{Endpoints: []string{"https://localhost:2379"}})
	d.KubernetesVersion = b.KubernetesVersion
	d.Upgrade = &converge.KubeadmUpgrade{Config: nodeconfig.UpgradeConfigFile, ControlPlane: true, InitConfig: nodeconfig.InitConfigFile, IgnorePreflightErrors: in.IgnorePreflightErrors}
	if n.HasRole(cluster.RoleWorker) {
		d.RemoveTaints = []string{"node-role.kubernetes.io/control-plane:NoSchedule"}
	}
	return d, warnings, nil
}

// kubeadmInputs is the hash of kubeadm's inputs: its configuration and
// its patches.
func kubeadmInputs(files []nodeconfig.File) string {
	h := sha256.New()
	for _, file := range files {
		if file.Path == nodeconfig.InitConfigFile || strings.HasPrefix(file.Path, nodeconfig.PatchesDir+"/") {
			fmt.Fprintf(h, "%s %d\n", file.Path, len(file.Content))
			h.Write(file.Content)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// worker is a worker node: the distribution's packages from the control
// planes' content services, containerd mirroring their registry, its own
// certificates (from its join file, kept afterwards), and kubeadm join.
func worker(in Input) (converge.Desired, []string, error) {
	c, n, b := in.Cluster, in.Node, in.Bundle
	pauseImage, ok := b.Images["pause"]
	if !ok {
		return converge.Desired{}, nil, fmt.Errorf("bundle %s %s lacks the pause image", b.Name, b.Version)
	}
	services := c.NodeContentServices(n)
	if len(services) == 0 {
		return converge.Desired{}, nil, errors.New("cluster.yaml has no control-plane node")
	}
	files, err := nodeconfig.Render(c, n.Name, nodeconfig.Facts{
		KubernetesVersion: b.KubernetesVersion,
		ImageRepository:   b.ImageRepository,
		PauseImage:        pauseImage,
		ContentServices:   services,
		ContentCAFile:     ContentCAFile,
		NodeIPs:           in.Host.IPs,
		CgroupVersion:     in.Host.CgroupVersion,
		HasSystemd:        in.Host.Systemd,
		Version:           in.Version,
	})
	if err != nil {
		return converge.Desired{}, nil, err
	}
	d, warnings, err := base(in, files)
	if err != nil {
		return converge.Desired{}, nil, err
	}
	d.Files = append(d.Files, in.PKI...)
	d.Dirs = append(d.Dirs,
		converge.Dir{Path: layout.BundlesDir, Mode: 0o755},
		converge.Dir{Path: layout.KeysDir, Mode: 0o755},
	)
	d.Files = append(d.Files,
		converge.File{Path: ContentCAFile, Mode: 0o644, Content: in.ContentCA},
		converge.File{Path: layout.ClusterConfig, Mode: 0o644, Content: in.ClusterConfig},
		converge.File{Path: layout.KeyringFile, Mode: 0o644, Content: in.Keyring},
		repoFile(in, ContentCAFile),
	)
	// kube-proxy's kubeconfig carries the cluster's CA; kubeadm join
	// writes ca.crt itself (its preflight wants none there before).
	if err := network(&d, in, append(in.PKI, converge.File{Path: layout.ClusterCA, Content: in.ClusterCA})); err != nil {
		return converge.Desired{}, nil, err
	}
	d.Units = append(d.Units, []converge.Unit{
		{Name: "containerd.service", Start: true},
		{Name: "kubelet.service"},
		{Name: layout.KubeProxyUnit, Start: true},
		{Name: layout.NodeUnit, Start: true},
	}...)
	d.Join = &converge.KubeadmJoin{Config: nodeconfig.JoinConfigFile, Discovery: nodeconfig.DiscoveryFile, IgnorePreflightErrors: in.IgnorePreflightErrors,
		DiscoveryContent: in.Discovery}
	// The kubelet (and the node daemon, with its credentials) reach the
	// API through the node-local proxy (R32), not the endpoint kubeadm
	// join wrote: a worker keeps its API while any control plane runs.
	d.Kubeconfigs = []converge.Kubeconfig{{Path: layout.KubeletConf, Server: layout.APIProxyServer, TLSServerName: c.APIServerName(), Restarts: []string{"kubelet.service"}}}
	d.KubernetesVersion = b.KubernetesVersion
	d.Upgrade = &converge.KubeadmUpgrade{Config: nodeconfig.UpgradeConfigFile, IgnorePreflightErrors: in.IgnorePreflightErrors}
	return d, warnings, nil
}

// base is what every node has: the distribution's packages (and the
// host-provides package where rpm does not manage the host), the files
// nodeconfig rendered, with the units they restart and the commands they
// trigger, and the host's SELinux mode (R13).
func base(in Input, files []nodeconfig.File) (converge.Desired, []string, error) {
	b := in.Bundle
	d := converge.Desired{Packages: map[string]string{}, Labels: map[string]string{}, PackageRestarts: packageRestarts}
	for _, p := range NodePackages {
		v, ok := b.Packages[p]
		if !ok {
			return converge.Desired{}, nil, fmt.Errorf("bundle %s %s has no package %s", b.Name, b.Version, p)
		}
		d.Packages[p] = v
	}
	if in.HostProvidesRPM != "" {
		d.LocalPackages = map[string]string{layout.HostProvidesName: in.HostProvidesRPM}
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
	// What the cluster's add-ons need on each node (a CNI's
	// configuration, a unit), as this node's bundle renders them.
	for _, a := range addons.All() {
		r, err := addon.Render(a, AddonInput(in.Cluster, b))
		if err != nil {
			return converge.Desired{}, nil, err
		}
		for _, f := range r.Rendered.Files {
			d.Files = append(d.Files, converge.File{Path: f.Path, Mode: f.Mode, Content: f.Content})
		}
		for _, u := range r.Rendered.Units {
			d.Units = append(d.Units, converge.Unit{Name: u, Start: true})
		}
	}
	var warnings []string
	if sf, warning := selinuxFile(in.Node, in.Host.SELinux); sf != nil {
		d.Files = append(d.Files, *sf)
		if warning != "" {
			warnings = append(warnings, warning)
		}
	}
	return d, warnings, nil
}

// AddonInput is what the cluster's add-ons render from, for a node
// running bundle b.
func AddonInput(c *cluster.Cluster, b Bundle) addon.Input {
	return addon.Input{Cluster: c, KubernetesVersion: b.KubernetesVersion, BundleName: b.Name, BundleVersion: b.Version,
		ImageRepository: b.ImageRepository, Images: b.Images}
}

// repoFile is the distribution's repository at every control plane's
// content service, in the node's order (dnf tries them in turn; during a
// roll-out, a control plane that has not imported the new bundle yet
// installs from one that has).
func repoFile(in Input, contentCA string) converge.File {
	b := in.Bundle
	var urls []string
	for _, s := range in.Cluster.NodeContentServices(in.Node) {
		urls = append(urls, fmt.Sprintf("https://%s/repos/%s/%s/", s, b.Version, b.Repo))
	}
	r := nodeconfig.Repo{ID: b.RepoID(), Name: fmt.Sprintf("Ferry %s %s (%s)", b.Name, b.Version, b.Repo), BaseURLs: urls,
		GPGKey: layout.KeyringFile, SSLCACert: contentCA}
	return converge.File{Path: layout.RepoFile, Mode: 0o644, Content: nodeconfig.WithHeader(in.Version, r.Render())}
}

// selinuxFile is the host's SELinux configuration with the node's mode
// (R13: spec.nodes[].selinux), the rest of the file as the site has it;
// when the kernel runs SELinux, setenforce follows a change at once. A
// host whose kernel does not run SELinux needs a reboot (and a relabel)
// to enforce: the file is written and the warning says so.
func selinuxFile(n *cluster.Node, st *SELinux) (*converge.File, string) {
	if st == nil {
		return nil, ""
	}
	want := "SELINUX=" + string(n.SELinux)
	var out []string
	found := false
	for _, line := range strings.Split(strings.TrimSuffix(string(st.Config), "\n"), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "SELINUX=") {
			if found {
				continue // a second SELINUX= line: only the first counts
			}
			found = true
			line = want
		}
		out = append(out, line)
	}
	if !found {
		out = append(out, want)
	}
	content := []byte(strings.Join(out, "\n") + "\n")
	f := &converge.File{Path: layout.SELinuxConfig, Mode: 0o644, Content: content}
	if string(content) == string(st.Config) {
		return f, ""
	}
	switch {
	case st.Enabled && n.SELinux == cluster.SELinuxEnforcing:
		f.After = []string{"setenforce 1"}
	case st.Enabled:
		f.After = []string{"setenforce 0"}
	case n.SELinux != cluster.SELinuxDisabled:
		return f, fmt.Sprintf("node %s: SELinux %s is configured but the kernel does not run SELinux: reboot the node (with a relabel) for it to apply", n.Name, n.SELinux)
	}
	return f, ""
}
