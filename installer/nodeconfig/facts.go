package nodeconfig

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/mod/semver"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/installer/cluster"
)

// renderer holds one node's validated inputs.
type renderer struct {
	c    *cluster.Cluster // defaulted
	raw  *cluster.Cluster // as given: what the file says explicitly
	n    *cluster.Node    // in c
	rawN *cluster.Node    // in raw
	f    Facts

	controlPlane bool
	cpIP, etcdIP netip.Addr
	apiHost      string // controlPlaneEndpoint's DNS name
	apiPort      int
	// cgroupDriver is the kubelet's; systemdCgroup is containerd's runc
	// option, which agrees with it.
	cgroupDriver  string
	systemdCgroup bool
	// registryHosts are the upstream hosts containerd resolves at the
	// content service, sorted.
	registryHosts []string
}

func newRenderer(c *cluster.Cluster, node string, f Facts) (*renderer, error) {
	if c == nil {
		return nil, errors.New("no cluster configuration")
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("cluster configuration: %w", err)
	}
	d := c.Defaulted()
	n := d.Node(node)
	if n == nil {
		var names []string
		for _, x := range d.Spec.Nodes {
			names = append(names, x.Name)
		}
		return nil, fmt.Errorf("node %q: %w (its nodes: %s)", node, ErrUnknownNode, strings.Join(names, ", "))
	}
	r := &renderer{c: d, raw: c, n: n, rawN: c.Node(node), f: f, controlPlane: n.HasRole(cluster.RoleControlPlane)}
	host, port, err := net.SplitHostPort(d.Spec.ControlPlaneEndpoint)
	if err != nil {
		return nil, fmt.Errorf("spec.controlPlaneEndpoint: %w", err) // Validate and SetDefaults make this unreachable
	}
	r.apiHost = host
	r.apiPort, _ = strconv.Atoi(port)
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, &bundle.FieldError{Field: field, Err: fmt.Errorf(format, args...)})
	}
	r.checkFacts(add)
	r.addresses(add)
	r.cgroups(add)
	if len(errs) > 0 {
		return nil, fmt.Errorf("node %s: %w", node, errors.Join(errs...))
	}
	return r, nil
}

var (
	// versionRE: a Ferry version is one word of printable ASCII (it goes
	// into every file's header line).
	versionRE           = regexp.MustCompile(`^[0-9A-Za-z][-+.~_0-9A-Za-z]{0,99}$`)
	kubernetesVersionRE = regexp.MustCompile(`^v1\.[0-9]{1,3}\.[0-9]{1,4}$`)
	// imageTagRE is the distribution spec's tag grammar.
	imageTagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
)

// checkFacts checks the facts that do not depend on the node's addresses.
func (r *renderer) checkFacts(add func(field, format string, args ...any)) {
	f := &r.f
	switch v := f.KubernetesVersion; {
	case v == "":
		add("facts.KubernetesVersion", "required: the bundle's Kubernetes version, such as v1.36.3")
	case !kubernetesVersionRE.MatchString(v):
		add("facts.KubernetesVersion", "%q is not a release version such as v1.36.3", v)
	case semver.Compare(v, MinKubernetesVersion) < 0:
		add("facts.KubernetesVersion", "%s is older than %s, the oldest these files are for", v, MinKubernetesVersion)
	}
	if f.ImageRepository == "" {
		add("facts.ImageRepository", "required: the prefix of the bundle's Kubernetes images, such as registry.ferry.dev/k8s")
	} else if err := bundle.ValidImageName(f.ImageRepository + "/x:y"); err != nil || registryHost(f.ImageRepository) == "" {
		add("facts.ImageRepository", "%q is not registry-host/path", f.ImageRepository)
	}
	if r.controlPlane {
		for _, t := range []struct{ field, value, example string }{
			{"facts.EtcdImageTag", f.EtcdImageTag, "3.6.8-0"},
			{"facts.CoreDNSImageTag", f.CoreDNSImageTag, "v1.14.2"},
		} {
			if !imageTagRE.MatchString(t.value) {
				add(t.field, "%q is not an image tag such as %s", t.value, t.example)
			}
		}
	}
	if ic := f.EtcdInitialCluster; ic != "" {
		self := false
		for _, m := range strings.Split(ic, ",") {
			name, u, ok := strings.Cut(m, "=")
			if !ok || name == "" || !strings.HasPrefix(u, "https://") || strings.ContainsAny(m, " \t\n") {
				add("facts.EtcdInitialCluster", "%q is not name=https://host:port", m)
				continue
			}
			if name == r.n.Name && u == EtcdPeerURL(r.n) {
				self = true
			}
		}
		if !self {
			add("facts.EtcdInitialCluster", "%q lacks this member (%s=%s)", ic, r.n.Name, EtcdPeerURL(r.n))
		}
	}
	if f.PauseImage == "" {
		add("facts.PauseImage", "required: the bundle's pause image, such as registry.ferry.dev/k8s/pause:3.10.2")
	} else if err := bundle.ValidImageName(f.PauseImage); err != nil || registryHost(f.PauseImage) == "" {
		add("facts.PauseImage", "%q is not a full image reference such as registry.ferry.dev/k8s/pause:3.10.2", f.PauseImage)
	}
	hosts := map[string]bool{}
	if h := registryHost(f.ImageRepository); h != "" {
		hosts[h] = true
	}
	if h := registryHost(f.PauseImage); h != "" {
		hosts[h] = true
	}
	for i, h := range f.Registries {
		if !validRegistryHost(h) {
			add(fmt.Sprintf("facts.Registries[%d]", i), "%q is not a registry host[:port]", h)
			continue
		}
		hosts[h] = true
	}
	r.registryHosts = slices.Sorted(maps.Keys(hosts))
	if len(f.ContentServices) == 0 {
		add("facts.ContentServices", "required: the content services (every control-plane node's), host:port with a DNS name, such as cp1.example.com:5443")
	}
	for i, cs := range f.ContentServices {
		field := fmt.Sprintf("facts.ContentServices[%d]", i)
		if host, port, err := net.SplitHostPort(cs); err != nil || !validDNSName(host) || !validPort(port) {
			if _, ipErr := netip.ParseAddr(host); err == nil && ipErr == nil {
				add(field, "%q: the content service is reached by a DNS name, not an IP address (R29)", cs)
			} else {
				add(field, "%q is not host:port with a DNS name, such as cp1.example.com:5443", cs)
			}
		} else if j := slices.Index(f.ContentServices, cs); j < i {
			add(field, "%q is also ContentServices[%d]", cs, j)
		}
	}
	if !path.IsAbs(f.ContentCAFile) || path.Clean(f.ContentCAFile) != f.ContentCAFile || strings.ContainsAny(f.ContentCAFile, "\"\\\n") {
		add("facts.ContentCAFile", "%q is not a clean absolute path, such as /etc/ferry/pki/content/ca.crt", f.ContentCAFile)
	}
	if f.CgroupVersion != 1 && f.CgroupVersion != 2 {
		add("facts.CgroupVersion", "must be 1 or 2 (observed on the node), got %d", f.CgroupVersion)
	}
	if r.controlPlane && len(f.EncryptionKey) != EncryptionKeySize {
		add("facts.EncryptionKey", "must be %d bytes (generated at install, R9), got %d", EncryptionKeySize, len(f.EncryptionKey))
	}
	if o := r.c.Spec.Authentication.OIDC; r.controlPlane && o != nil && o.CAFile != "" {
		if err := checkPEMCerts(f.OIDCCA); err != nil {
			add("facts.OIDCCA", "the content of spec.authentication.oidc.caFile (%s): %v", o.CAFile, err)
		}
	}
	if !versionRE.MatchString(f.Version) {
		add("facts.Version", "%q is not a version (one word, at most 100 characters): it goes into every file's header (R19)", f.Version)
	}
}

// addresses checks the node's plane addresses: each must be an address,
// in its plane's network when spec.networks sets one.
func (r *renderer) addresses(add func(field, format string, args ...any)) {
	nets := map[string]string{
		PlaneControlPlane: r.c.Spec.Networks.ControlPlane,
		PlaneWorkload:     r.c.Spec.Networks.Workload,
		PlaneEtcd:         r.c.Spec.Networks.Etcd,
	}
	for _, plane := range slices.Sorted(maps.Keys(r.f.NodeIPs)) {
		if !slices.Contains(Planes, plane) {
			add("facts.NodeIPs."+plane, "unknown plane (want %s)", strings.Join(Planes, ", "))
		}
	}
	need := []string{PlaneControlPlane}
	if r.controlPlane {
		need = append(need, PlaneEtcd)
	}
	for _, plane := range Planes {
		field := "facts.NodeIPs." + plane
		s, ok := r.f.NodeIPs[plane]
		if !ok {
			if slices.Contains(need, plane) {
				add(field, "missing: the node's address on the %s plane (observed: %s)", plane, describeNetwork(nets[plane]))
			}
			continue
		}
		ip, err := netip.ParseAddr(s)
		if err != nil || ip.Zone() != "" || ip.IsUnspecified() || ip.IsLoopback() || ip.IsMulticast() {
			add(field, "%q is not a unicast address of the node", s)
			continue
		}
		ip = ip.Unmap()
		if cidr := nets[plane]; cidr != "" {
			if p, err := netip.ParsePrefix(cidr); err == nil && !p.Contains(ip) {
				add(field, "%s is not in spec.networks.%s (%s)", ip, plane, cidr)
				continue
			}
		}
		switch plane {
		case PlaneControlPlane:
			r.cpIP = ip
		case PlaneEtcd:
			r.etcdIP = ip
		}
	}
}

func describeNetwork(cidr string) string {
	if cidr == "" {
		return "its address on the default route"
	}
	return "its address in " + cidr
}

// cgroups decides the kubelet's cgroup driver and containerd's
// SystemdCgroup, which must agree: the node's (or nodeDefaults')
// kubelet cgroupDriver when set, else its containerd systemdCgroup when
// set, else systemd on a systemd host with cgroup v2 and cgroupfs
// otherwise. The systemd driver needs systemd.
func (r *renderer) cgroups(add func(field, format string, args ...any)) {
	// where names the field a setting came from: the node's own, or nodeDefaults'.
	where := func(setOnNode bool, sub string) string {
		if setOnNode {
			return fmt.Sprintf("spec.nodes[%d].%s", slices.IndexFunc(r.raw.Spec.Nodes, func(x cluster.Node) bool { return x.Name == r.n.Name }), sub)
		}
		return "spec.nodeDefaults." + sub
	}
	var field string
	driver, _ := r.n.Kubelet["cgroupDriver"].(string)
	nodeSystemd := r.rawN.Containerd != nil && r.rawN.Containerd.SystemdCgroup != nil
	defaultsSystemd := r.raw.Spec.NodeDefaults.Containerd != nil && r.raw.Spec.NodeDefaults.Containerd.SystemdCgroup != nil
	switch {
	case driver != "":
		_, onNode := r.rawN.Kubelet["cgroupDriver"]
		field = where(onNode, "kubelet.cgroupDriver")
	case nodeSystemd || defaultsSystemd:
		driver = "cgroupfs"
		if *r.n.Containerd.SystemdCgroup {
			driver = "systemd"
		}
		field = where(nodeSystemd, "containerd.systemdCgroup")
	case r.f.HasSystemd && r.f.CgroupVersion == 2:
		driver = "systemd"
	default:
		driver = "cgroupfs"
	}
	if driver == "systemd" && !r.f.HasSystemd {
		add(field, "the systemd cgroup driver needs systemd, which node %s does not run (observed): use cgroupfs", r.n.Name)
	}
	r.cgroupDriver = driver
	r.systemdCgroup = driver == "systemd"
}

// registryHost is the registry host of an image name or repository
// ("registry.ferry.dev" of "registry.ferry.dev/k8s/pause:3.10"), or "" when
// its first component is not a host (a Docker Hub short name).
func registryHost(name string) string {
	first, _, ok := strings.Cut(name, "/")
	if !ok || !validRegistryHost(first) {
		return ""
	}
	return first
}

// validRegistryHost: a DNS name with a dot, or localhost, with an optional
// port (the reference grammar's rule for telling a host from a path).
func validRegistryHost(h string) bool {
	host, port := h, ""
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		host, port = h[:i], h[i+1:]
		if !validPort(port) {
			return false
		}
	}
	return validDNSName(host) && (strings.Contains(host, ".") || host == "localhost")
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535 && strconv.Itoa(n) == p
}

// validDNSName: lower-case labels of letters, digits and '-', not an IP
// address.
func validDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range []byte(l) {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				return false
			}
		}
	}
	return true
}

// checkPEMCerts: one or more PEM certificates.
func checkPEMCerts(data []byte) error {
	if len(data) == 0 {
		return errors.New("empty: read the file and pass its content")
	}
	if len(data) > 1<<20 {
		return errors.New("larger than 1 MiB")
	}
	n := 0
	for rest := data; ; n++ {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return fmt.Errorf("holds a %s, want CERTIFICATE blocks only", b.Type)
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return fmt.Errorf("certificate %d: %w", n+1, err)
		}
	}
	if n == 0 {
		return errors.New("no PEM certificate in it")
	}
	return nil
}
