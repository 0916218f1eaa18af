package distro

import (
	"fmt"
	"sort"
	"strings"

	"golang.org/x/mod/semver"

	"github.com/ferry-k8s/ferry/bundle"
)

// defaults are the pinned component versions of the default bundle for
// each supported Kubernetes version (R53: the newest three minors). etcd,
// CoreDNS and pause are the versions that release's kubeadm expects
// (cmd/kubeadm/app/constants); the node tools are shared.
var defaults = map[string]bundle.ComponentVersions{
	"v1.36.3": {Etcd: "v3.6.8", CoreDNS: "v1.14.2", Pause: "3.10.2"},
	"v1.35.4": {Etcd: "v3.6.6", CoreDNS: "v1.13.1", Pause: "3.10.1"},
	"v1.34.4": {Etcd: "v3.6.5", CoreDNS: "v1.12.1", Pause: "3.10.1"},
}

// nodeTools are the versions of the host components in every default bundle.
var nodeTools = bundle.ComponentVersions{Containerd: "v2.2.9", Runc: "v1.4.3", CNIPlugins: "v1.9.1", CRITools: "v1.36.0"}

// SupportedKubernetesVersions lists the Kubernetes versions the default
// spec can build, newest first.
func SupportedKubernetesVersions() []string {
	vs := make([]string, 0, len(defaults))
	for v := range defaults {
		vs = append(vs, v)
	}
	sort.Slice(vs, func(i, j int) bool { return semver.Compare(vs[i], vs[j]) > 0 })
	return vs
}

// DefaultSpecYAML is the default bundle spec for kubernetesVersion (empty:
// the newest supported): a complete distribution built from source.
// bundleVersion names the bundle's version (empty: the Kubernetes version
// without its "v").
func DefaultSpecYAML(kubernetesVersion, bundleVersion string) ([]byte, error) {
	if kubernetesVersion == "" {
		kubernetesVersion = SupportedKubernetesVersions()[0]
	}
	if !strings.HasPrefix(kubernetesVersion, "v") {
		kubernetesVersion = "v" + kubernetesVersion
	}
	v, ok := defaults[kubernetesVersion]
	if !ok {
		// Any patch of a supported minor is accepted, with that minor's components.
		for known, kv := range defaults {
			if semver.MajorMinor(known) == semver.MajorMinor(kubernetesVersion) && semver.IsValid(kubernetesVersion) {
				v, ok = kv, true
			}
		}
	}
	if !ok {
		return nil, fmt.Errorf("kubernetes %s is not supported by the default spec (supported: %s; any patch release of these minors works)",
			kubernetesVersion, strings.Join(SupportedKubernetesVersions(), ", "))
	}
	if bundleVersion == "" {
		bundleVersion = strings.TrimPrefix(kubernetesVersion, "v")
	}
	return []byte(fmt.Sprintf(`# Ferry's default bundle: Kubernetes %[1]s built from source.
apiVersion: %[2]s
kind: %[3]s
metadata:
  name: ferry-kubernetes
  version: %[4]s
spec:
  kubernetesVersion: %[1]s
  distribution:
    imageRepository: %[5]s
    repo: %[6]s
    versions:
      etcd: %[7]s
      coredns: %[8]s
      pause: "%[9]s"
      containerd: %[10]s
      runc: %[11]s
      cniPlugins: %[12]s
      criTools: %[13]s
`, kubernetesVersion, bundle.APIVersion, bundle.KindBundle, bundleVersion, bundle.DefaultImageRepository, bundle.DefaultDistributionRepo,
		v.Etcd, v.CoreDNS, v.Pause, nodeTools.Containerd, nodeTools.Runc, nodeTools.CNIPlugins, nodeTools.CRITools)), nil
}
