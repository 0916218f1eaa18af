package bundle

import (
	"fmt"
	"regexp"

	"golang.org/x/mod/semver"
)

// DefaultImageRepository prefixes the images built from source. They are
// Ferry's builds, so they are not named after upstream registries they do
// not come from; kubeadm's imageRepository and the containerd mirror
// configuration point here.
const DefaultImageRepository = "registry.ferry.dev/k8s"

// DefaultDistributionRepo is the bundle's yum repository of built RPMs.
const DefaultDistributionRepo = "kubernetes"

// DistributionSpec asks the builder for a Kubernetes distribution built
// from pinned Go module sources: RPMs of every host binary and images
// composed from RPM payloads (spec.distribution).
type DistributionSpec struct {
	// ImageRepository prefixes the images built from source
	// (<imageRepository>/kube-apiserver:v1.36.3). Default
	// DefaultImageRepository.
	ImageRepository string `json:"imageRepository,omitempty"`
	// Repo is the bundle repository (/packages/<repo>/) of the built RPMs.
	// Default DefaultDistributionRepo.
	Repo string `json:"repo,omitempty"`
	// Versions pins the source of each component.
	Versions ComponentVersions `json:"versions"`
}

// ComponentVersions are the upstream versions (Go module versions, with
// their "v") the distribution is built from.
type ComponentVersions struct {
	// Kubernetes (k8s.io/kubernetes): kubelet, kubeadm, kubectl and the
	// control-plane images. Default spec.kubernetesVersion; they must agree.
	Kubernetes string `json:"kubernetes,omitempty"`
	// Etcd (go.etcd.io/etcd/server/v3 and its etcdctl, etcdutl).
	Etcd string `json:"etcd"`
	// CoreDNS (github.com/coredns/coredns).
	CoreDNS string `json:"coredns"`
	// Containerd (github.com/containerd/containerd/v2).
	Containerd string `json:"containerd"`
	// Runc (github.com/opencontainers/runc).
	Runc string `json:"runc"`
	// CNIPlugins (github.com/containernetworking/plugins).
	CNIPlugins string `json:"cniPlugins"`
	// CRITools (sigs.k8s.io/cri-tools): crictl.
	CRITools string `json:"criTools"`
	// Pause is the tag of the pause image (Ferry's own pause, built from
	// the source embedded in the builder); kubeadm's expected tag.
	Pause string `json:"pause"`
}

var pauseTagRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+){1,2}$`)

func (d *DistributionSpec) validate(kubernetesVersion string) []error {
	var errs []error
	f := "spec.distribution"
	if d.ImageRepository != "" {
		if err := ValidImageName(d.ImageRepository + "/x:y"); err != nil {
			errs = append(errs, fieldErr(f+".imageRepository", "must be registry/path, got %q", d.ImageRepository))
		}
	}
	if d.Repo != "" && !repoName.MatchString(d.Repo) {
		errs = append(errs, fieldErr(f+".repo", "must be letters, digits, '.', '_', '-' (up to 63), got %q", d.Repo))
	}
	v := d.Versions
	if v.Kubernetes == "" {
		v.Kubernetes = kubernetesVersion
	}
	switch {
	case v.Kubernetes == "":
		errs = append(errs, fieldErr(f+".versions.kubernetes", "is required (or set spec.kubernetesVersion)"))
	case kubernetesVersion != "" && v.Kubernetes != kubernetesVersion:
		errs = append(errs, fieldErr(f+".versions.kubernetes", "%s differs from spec.kubernetesVersion %s", v.Kubernetes, kubernetesVersion))
	}
	for _, c := range []struct{ field, v string }{
		{"kubernetes", v.Kubernetes}, {"etcd", v.Etcd}, {"coredns", v.CoreDNS}, {"containerd", v.Containerd},
		{"runc", v.Runc}, {"cniPlugins", v.CNIPlugins}, {"criTools", v.CRITools},
	} {
		if c.v == "" {
			if c.field != "kubernetes" {
				errs = append(errs, fieldErr(f+".versions."+c.field, "is required"))
			}
			continue
		}
		if !semver.IsValid(c.v) || semver.Build(c.v) != "" {
			errs = append(errs, fieldErr(f+".versions."+c.field, "must be a module version such as v1.2.3, got %q", c.v))
		}
	}
	if !pauseTagRE.MatchString(v.Pause) {
		errs = append(errs, fieldErr(f+".versions.pause", "must be a tag such as 3.10.1, got %q", v.Pause))
	}
	return errs
}

// Resolved returns the distribution with its defaults filled in.
func (d DistributionSpec) Resolved(kubernetesVersion string) DistributionSpec {
	if d.ImageRepository == "" {
		d.ImageRepository = DefaultImageRepository
	}
	if d.Repo == "" {
		d.Repo = DefaultDistributionRepo
	}
	if d.Versions.Kubernetes == "" {
		d.Versions.Kubernetes = kubernetesVersion
	}
	return d
}

// String names the distribution's versions for logs.
func (v ComponentVersions) String() string {
	return fmt.Sprintf("kubernetes %s, etcd %s, coredns %s, containerd %s, runc %s, cni-plugins %s, cri-tools %s, pause %s",
		v.Kubernetes, v.Etcd, v.CoreDNS, v.Containerd, v.Runc, v.CNIPlugins, v.CRITools, v.Pause)
}

// DistributionRecord is distribution.json: what was built from what, carried on the
// ISO so anyone can trace each binary to its source.
type DistributionRecord struct {
	Versions   ComponentVersions `json:"versions"`
	Components []ComponentRecord `json:"components"`
	Packages   []PackageRecord   `json:"packages"`
	Images     []ImageRecord     `json:"images"`
	// KernelMemoryAccounting is R8's check: runc and kubelet never enable it.
	KernelMemoryAccounting []string `json:"kernelMemoryAccounting"`
}

// ComponentRecord is one component's source and binaries.
type ComponentRecord struct {
	Name      string            `json:"name"`
	Module    string            `json:"module,omitempty"`
	Version   string            `json:"version"`
	ModuleSum string            `json:"moduleSum,omitempty"`
	GoVersion string            `json:"goVersion"`
	Binaries  map[string]string `json:"binaries"` // name → sha256
}

// PackageRecord is one built RPM.
type PackageRecord struct {
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
}

// ImageRecord is one composed image.
type ImageRecord struct {
	Name   string `json:"name"`
	Digest string `json:"digest"`
}

// DistributionRecordName is the build record's file name (on the ISO).
const DistributionRecordName = "distribution.json"
