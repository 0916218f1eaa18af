package nodeconfig

import (
	"bytes"
	"maps"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// kubeadm's configuration types (kubeadm.k8s.io/v1beta4), the fields Ferry
// sets. k8s.io/kubernetes is not importable as a library; the tests check
// every rendered file with the real kubeadm.
const kubeadmAPIVersion = "kubeadm.k8s.io/v1beta4"

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

type arg struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type hostPathMount struct {
	Name      string `json:"name"`
	HostPath  string `json:"hostPath"`
	MountPath string `json:"mountPath"`
	ReadOnly  bool   `json:"readOnly,omitempty"`
	PathType  string `json:"pathType,omitempty"`
}

type apiEndpoint struct {
	AdvertiseAddress string `json:"advertiseAddress"`
	BindPort         int    `json:"bindPort"`
}

type taint struct {
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`
	Effect string `json:"effect"`
}

type nodeRegistration struct {
	Name      string `json:"name"`
	CRISocket string `json:"criSocket"`
	// Taints is never nil: an empty list tells kubeadm "no taints", nil
	// "the default control-plane taint".
	Taints           []taint `json:"taints"`
	KubeletExtraArgs []arg   `json:"kubeletExtraArgs,omitempty"`
	ImagePullPolicy  string  `json:"imagePullPolicy"`
}

type patches struct {
	Directory string `json:"directory"`
}

type initConfiguration struct {
	typeMeta         `json:",inline"`
	NodeRegistration nodeRegistration `json:"nodeRegistration"`
	LocalAPIEndpoint apiEndpoint      `json:"localAPIEndpoint"`
	Patches          patches          `json:"patches"`
}

type controlPlaneComponent struct {
	ExtraArgs    []arg           `json:"extraArgs,omitempty"`
	ExtraVolumes []hostPathMount `json:"extraVolumes,omitempty"`
}

type localEtcd struct {
	ImageTag  string `json:"imageTag"`
	DataDir   string `json:"dataDir"`
	ExtraArgs []arg  `json:"extraArgs,omitempty"`
}

type clusterConfiguration struct {
	typeMeta             `json:",inline"`
	ClusterName          string `json:"clusterName"`
	KubernetesVersion    string `json:"kubernetesVersion"`
	ControlPlaneEndpoint string `json:"controlPlaneEndpoint"`
	ImageRepository      string `json:"imageRepository"`
	CertificatesDir      string `json:"certificatesDir"`
	EncryptionAlgorithm  string `json:"encryptionAlgorithm"`
	Networking           struct {
		PodSubnet     string `json:"podSubnet"`
		ServiceSubnet string `json:"serviceSubnet"`
		DNSDomain     string `json:"dnsDomain"`
	} `json:"networking"`
	Etcd struct {
		Local localEtcd `json:"local"`
	} `json:"etcd"`
	APIServer         controlPlaneComponent `json:"apiServer"`
	ControllerManager controlPlaneComponent `json:"controllerManager"`
	Scheduler         controlPlaneComponent `json:"scheduler"`
	DNS               struct {
		ImageTag string `json:"imageTag"`
	} `json:"dns"`
}

type joinConfiguration struct {
	typeMeta         `json:",inline"`
	NodeRegistration nodeRegistration `json:"nodeRegistration"`
	CACertPath       string           `json:"caCertPath"`
	Discovery        struct {
		File struct {
			KubeConfigPath string `json:"kubeConfigPath"`
		} `json:"file"`
	} `json:"discovery"`
	ControlPlane *struct {
		LocalAPIEndpoint apiEndpoint `json:"localAPIEndpoint"`
	} `json:"controlPlane,omitempty"`
	Patches patches `json:"patches"`
}

type upgradeConfiguration struct {
	typeMeta `json:",inline"`
	Apply    struct {
		KubernetesVersion  string   `json:"kubernetesVersion"`
		CertificateRenewal bool     `json:"certificateRenewal"`
		EtcdUpgrade        bool     `json:"etcdUpgrade"`
		ImagePullPolicy    string   `json:"imagePullPolicy"`
		Patches            patches  `json:"patches"`
		SkipPhases         []string `json:"skipPhases,omitempty"`
	} `json:"apply"`
	Node struct {
		CertificateRenewal bool     `json:"certificateRenewal"`
		EtcdUpgrade        bool     `json:"etcdUpgrade"`
		ImagePullPolicy    string   `json:"imagePullPolicy"`
		Patches            patches  `json:"patches"`
		SkipPhases         []string `json:"skipPhases,omitempty"`
	} `json:"node"`
	Plan struct {
		KubernetesVersion string `json:"kubernetesVersion"`
	} `json:"plan"`
}

// TLS settings of every component that takes them (R21): TLS 1.2 or
// later, and for TLS 1.2 only AEAD suites with forward secrecy.
const tlsMinVersion = "VersionTLS12"

var tlsCipherSuites = []string{
	"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
	"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
	"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
	"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
	"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
	"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}

// initConfig is kubeadm.yaml, `kubeadm init --config` on a control-plane
// node. Only the InitConfiguration is the node's; the rest is the
// cluster's (kubeadm stores it in the kubeadm-config and kubelet-config
// ConfigMaps, and joining or upgrading nodes read it from there), so every
// per-node setting is in the node's patches, never here.
func (r *renderer) initConfig() (File, error) {
	ic := initConfiguration{
		typeMeta:         typeMeta{kubeadmAPIVersion, "InitConfiguration"},
		NodeRegistration: r.nodeRegistration(),
		LocalAPIEndpoint: apiEndpoint{AdvertiseAddress: r.cpIP.String(), BindPort: r.apiPort},
		Patches:          patches{PatchesDir},
	}
	body, err := yamlDocs(ic, r.clusterConfiguration(), r.kubeletConfiguration(), r.kubeProxyConfiguration())
	if err != nil {
		return File{}, err
	}
	return r.rootFile(0o600, body), nil
}

// nodeRegistration is the node's kubelet registration: its name, taints
// (R47; none for a control plane that runs workloads, R4) and its address
// on the control-plane plane as the Node's InternalIP (R31).
func (r *renderer) nodeRegistration() nodeRegistration {
	nr := nodeRegistration{
		Name:             r.n.Name,
		CRISocket:        CRISocket,
		Taints:           []taint{},
		KubeletExtraArgs: []arg{{"node-ip", r.cpIP.String()}},
		ImagePullPolicy:  "IfNotPresent",
	}
	ts, _ := r.n.ParsedTaints() // Validate checked them
	for _, t := range ts {
		nr.Taints = append(nr.Taints, taint{Key: t.Key, Value: t.Value, Effect: t.Effect})
	}
	// The node's labels from its first registration (a joining worker has
	// no credentials to label itself through the API afterwards); the
	// NodeRestriction admission plugin refuses node-role labels from a
	// kubelet, those stay with the control plane.
	var labels []string
	for _, k := range slices.Sorted(maps.Keys(r.n.Labels)) {
		if !strings.HasPrefix(k, "node-role.kubernetes.io/") {
			labels = append(labels, k+"="+r.n.Labels[k])
		}
	}
	if len(labels) > 0 {
		nr.KubeletExtraArgs = append(nr.KubeletExtraArgs, arg{"node-labels", strings.Join(labels, ",")})
	}
	return nr
}

// clusterConfiguration is the cluster's kubeadm ClusterConfiguration: the
// same on every control-plane node.
func (r *renderer) clusterConfiguration() clusterConfiguration {
	k := r.c.Spec.Kubernetes
	cc := clusterConfiguration{
		typeMeta:             typeMeta{kubeadmAPIVersion, "ClusterConfiguration"},
		ClusterName:          r.c.Metadata.Name,
		KubernetesVersion:    r.f.KubernetesVersion,
		ControlPlaneEndpoint: r.c.Spec.ControlPlaneEndpoint,
		ImageRepository:      r.f.ImageRepository,
		CertificatesDir:      CertificatesDir,
		EncryptionAlgorithm:  "ECDSA-P256", // as Ferry's CAs (installer/pki)
	}
	cc.Networking.PodSubnet, cc.Networking.ServiceSubnet, cc.Networking.DNSDomain = k.PodSubnet, k.ServiceSubnet, k.ClusterDomain
	cc.DNS.ImageTag = r.f.CoreDNSImageTag
	cc.Etcd.Local = localEtcd{
		ImageTag: r.f.EtcdImageTag,
		DataDir:  EtcdDataDir,
		ExtraArgs: sortedArgs(map[string]string{
			"cipher-suites":   strings.Join(tlsCipherSuites, ","),
			"tls-min-version": "TLS1.2",
			// The JSON gateway dials etcd's own listeners by address,
			// which DNS-only certificates (R29) do not name; clients
			// (the API server, etcdctl) speak gRPC.
			"enable-grpc-gateway": "false",
		}),
	}
	gates := featureGates(k.FeatureGates)
	tls := func(m map[string]string) map[string]string {
		m["tls-min-version"] = tlsMinVersion
		m["tls-cipher-suites"] = strings.Join(tlsCipherSuites, ",")
		if gates != "" {
			m["feature-gates"] = gates
		}
		return m
	}
	cc.APIServer = controlPlaneComponent{
		ExtraArgs: sortedArgs(tls(map[string]string{
			"profiling":                  "false",
			"encryption-provider-config": EncryptionConfigFile,
			"encryption-provider-config-automatic-reload": "true",
			// Anonymous requests reach the health endpoints only (the
			// kubelet's probes of the static Pod carry no credentials),
			// and people authenticate by OIDC or client certificates.
			"authentication-config": AuthenticationConfigFile,
			// The API server reaches its node's etcd by name: etcd's
			// certificates carry DNS names only (R29), "localhost" among them.
			"etcd-servers": "https://localhost:2379",
		})),
		ExtraVolumes: []hostPathMount{
			{Name: "ferry-authentication-config", HostPath: AuthenticationConfigFile, MountPath: AuthenticationConfigFile, ReadOnly: true, PathType: "File"},
			{Name: "ferry-encryption-config", HostPath: EncryptionConfigFile, MountPath: EncryptionConfigFile, ReadOnly: true, PathType: "File"},
		},
	}
	// Both serve only their health and metrics endpoints, on the loopback.
	// The signer is the intermediate alone: ca.crt is the intermediate and
	// the root (the trust bundle), and the CSR signer wants one certificate.
	cc.ControllerManager.ExtraArgs = sortedArgs(tls(map[string]string{"profiling": "false", "bind-address": "127.0.0.1",
		"cluster-signing-cert-file": SignerCertFile, "cluster-signing-key-file": CertificatesDir + "/ca.key"}))
	cc.Scheduler.ExtraArgs = sortedArgs(tls(map[string]string{"profiling": "false", "bind-address": "127.0.0.1"}))
	return cc
}

// kubeletConfiguration is the cluster's KubeletConfiguration (kubeadm
// uploads it as the kubelet-config ConfigMap every joining node starts
// from); each node's kubeletconfiguration patch adds its own settings.
func (r *renderer) kubeletConfiguration() map[string]any {
	k := r.c.Spec.Kubernetes
	kc := map[string]any{
		"apiVersion": "kubelet.config.k8s.io/v1beta1",
		"kind":       "KubeletConfiguration",
		// R22: client certificates of the cluster CA and webhook token
		// review; never anonymous; authorization by the API server.
		"authentication": map[string]any{
			"anonymous": map[string]any{"enabled": false},
			"webhook":   map[string]any{"enabled": true},
			"x509":      map[string]any{"clientCAFile": CertificatesDir + "/ca.crt"},
		},
		"authorization": map[string]any{"mode": "Webhook"},
		// R27: no read-only port, no profiling.
		"readOnlyPort":              0,
		"enableProfilingHandler":    false,
		"enableContentionProfiling": false,
		"enableDebugFlagsHandler":   false,
		// logs, exec and port-forward go through these, authenticated.
		"enableDebuggingHandlers": true,
		"healthzBindAddress":      "127.0.0.1",
		// R21, R24, R29: the client certificate is rotated through the
		// API server; the serving certificate is Ferry's (DNS SANs).
		"rotateCertificates": true,
		"serverTLSBootstrap": false,
		"tlsCertFile":        KubeletServingCert,
		"tlsPrivateKeyFile":  KubeletServingKey,
		"tlsMinVersion":      tlsMinVersion,
		"tlsCipherSuites":    tlsCipherSuites,
		"clusterDomain":      k.ClusterDomain,
		// R55: the CPU, Memory and Topology Managers are on in every
		// kubelet; their policies stay "none" (the static CPU policy needs
		// CPUs reserved per node) unless a node's overrides set them.
		"cpuManagerPolicy":      "none",
		"memoryManagerPolicy":   "None",
		"topologyManagerPolicy": "none",
		"topologyManagerScope":  "container",
	}
	if dns, err := k.ClusterDNS(); err == nil {
		kc["clusterDNS"] = []string{dns.String()}
	}
	if len(k.FeatureGates) > 0 {
		kc["featureGates"] = k.FeatureGates
	}
	return kc
}

// kubeProxyConfiguration is the cluster's kube-proxy configuration (one
// DaemonSet for all nodes: nothing per node).
func (r *renderer) kubeProxyConfiguration() map[string]any {
	kp := map[string]any{
		"apiVersion":  "kubeproxy.config.k8s.io/v1alpha1",
		"kind":        "KubeProxyConfiguration",
		"mode":        "iptables",
		"clusterCIDR": r.c.Spec.Kubernetes.PodSubnet,
		// Node ports on the node's primary addresses only; metrics and
		// health on the loopback (R31).
		"nodePortAddresses":  []string{"primary"},
		"metricsBindAddress": "127.0.0.1:10249",
		"healthzBindAddress": "127.0.0.1:10256",
	}
	if gates := r.c.Spec.Kubernetes.FeatureGates; len(gates) > 0 {
		kp["featureGates"] = gates
	}
	return kp
}

// joinConfig is join.yaml, `kubeadm join --config` of this node. The
// cluster is discovered from DiscoveryFile, a kubeconfig with the CA and
// a bootstrap token that the join step writes (so this file does not
// change with each token). Ferry writes a joining control-plane node's
// certificates before kubeadm runs.
func (r *renderer) joinConfig() (File, error) {
	jc := joinConfiguration{
		typeMeta:         typeMeta{kubeadmAPIVersion, "JoinConfiguration"},
		NodeRegistration: r.nodeRegistration(),
		CACertPath:       CertificatesDir + "/ca.crt",
		Patches:          patches{PatchesDir},
	}
	jc.Discovery.File.KubeConfigPath = DiscoveryFile
	if r.controlPlane {
		jc.ControlPlane = &struct {
			LocalAPIEndpoint apiEndpoint `json:"localAPIEndpoint"`
		}{apiEndpoint{AdvertiseAddress: r.cpIP.String(), BindPort: r.apiPort}}
	}
	body, err := yamlDocs(jc)
	if err != nil {
		return File{}, err
	}
	return r.rootFile(0o600, body), nil
}

// upgradeConfig is upgrade.yaml, `kubeadm upgrade apply|node --config`:
// to the bundle's version, with this node's patches, and without
// kubeadm renewing certificates (Ferry's carry DNS SANs only, R29;
// kubeadm's would add IP SANs).
func (r *renderer) upgradeConfig() (File, error) {
	uc := upgradeConfiguration{typeMeta: typeMeta{kubeadmAPIVersion, "UpgradeConfiguration"}}
	uc.Apply.KubernetesVersion = r.f.KubernetesVersion
	uc.Apply.EtcdUpgrade = true
	uc.Apply.ImagePullPolicy = "IfNotPresent"
	uc.Apply.Patches = patches{PatchesDir}
	uc.Node.EtcdUpgrade = true
	uc.Node.ImagePullPolicy = "IfNotPresent"
	uc.Node.Patches = patches{PatchesDir}
	// kube-proxy is a host service from the kube-proxy RPM (upgraded with
	// the packages), not kubeadm's DaemonSet. CoreDNS is Ferry's add-on
	// (installer/addons): kubeadm's addon phase, which `upgrade node` runs
	// too on the last control plane upgraded, would overwrite it.
	skip := []string{"addon/coredns", "addon/kube-proxy"}
	uc.Apply.SkipPhases = skip
	uc.Node.SkipPhases = skip
	uc.Plan.KubernetesVersion = r.f.KubernetesVersion
	body, err := yamlDocs(uc)
	if err != nil {
		return File{}, err
	}
	return r.rootFile(0o600, body), nil
}

// yamlDocs marshals each value as a YAML document (map keys sorted).
func yamlDocs(docs ...any) ([]byte, error) {
	var b bytes.Buffer
	for i, d := range docs {
		y, err := yaml.Marshal(d)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(y)
	}
	return b.Bytes(), nil
}

func sortedArgs(m map[string]string) []arg {
	args := make([]arg, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		args = append(args, arg{k, m[k]})
	}
	return args
}

// featureGates is the --feature-gates value: "A=true,B=false", sorted.
func featureGates(g map[string]bool) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(g)) {
		parts = append(parts, k+"="+strconv.FormatBool(g[k]))
	}
	return strings.Join(parts, ",")
}
