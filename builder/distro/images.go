package distro

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ferry-k8s/ferry/images/compose"
)

// nonRoot is the uid and gid of the images' user where the component runs
// without root: kubeadm's manifests set runAsUser where they need another.
const nonRoot = "65532:65532"

// imageDef says how one of kubeadm's images is composed.
type imageDef struct {
	component, rpm string
	binary         string
	ports          []string
	// root: the component needs root in its container (kube-proxy
	// programs the node's iptables/nftables).
	root bool
	// extra files (scratch directories)
	dirs []string
}

var imageDefs = map[string]imageDef{
	"kube-apiserver":          {component: "kubernetes", rpm: "kube-apiserver", binary: "/usr/bin/kube-apiserver", ports: []string{"6443/tcp"}},
	"kube-controller-manager": {component: "kubernetes", rpm: "kube-controller-manager", binary: "/usr/bin/kube-controller-manager", ports: []string{"10257/tcp"}},
	"kube-scheduler":          {component: "kubernetes", rpm: "kube-scheduler", binary: "/usr/bin/kube-scheduler", ports: []string{"10259/tcp"}},
	"kube-proxy":              {component: "kubernetes", rpm: "kube-proxy", binary: "/usr/bin/kube-proxy", ports: []string{"10249/tcp", "10256/tcp"}, root: true},
	"etcd":                    {component: "etcd", rpm: "etcd", binary: "/usr/bin/etcd", ports: []string{"2379/tcp", "2380/tcp"}, dirs: []string{"/var/lib/etcd"}},
	"coredns":                 {component: "coredns", rpm: "coredns", binary: "/usr/bin/coredns", ports: []string{"53/udp", "53/tcp", "9153/tcp"}},
	"pause":                   {component: "pause", rpm: "ferry-pause", binary: "/usr/bin/pause"},
}

// KubeadmImages asks kubeadm (the one just built) which images it will use
// for kubernetesVersion with imageRepository: the bundle must hold exactly
// these.
func KubeadmImages(ctx context.Context, kubeadm, kubernetesVersion, imageRepository string) ([]string, error) {
	dir, err := os.MkdirTemp("", "ferry-kubeadm-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	cfg := filepath.Join(dir, "kubeadm.yaml")
	body := fmt.Sprintf("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: %s\nimageRepository: %s\n", kubernetesVersion, imageRepository)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, kubeadm, "config", "images", "list", "--config", cfg, "-o", "json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("kubeadm config images list: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	var out struct {
		Images []string `json:"images"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return nil, fmt.Errorf("reading kubeadm's image list: %w", err)
	}
	if len(out.Images) == 0 {
		return nil, fmt.Errorf("kubeadm %s lists no images", kubernetesVersion)
	}
	sort.Strings(out.Images)
	return out.Images, nil
}

// Images describes the images to compose: one per image kubeadm expects,
// from the payload of the RPM that holds the component. rpms maps a
// package name to its file. The tags kubeadm expects must match the
// versions that were built.
func Images(kubeadmImages []string, imageRepository string, rpms map[string]string, built map[string]*Built, created time.Time) ([]compose.Image, error) {
	var imgs []compose.Image
	for _, ref := range kubeadmImages {
		repoPath, tag, ok := strings.Cut(ref[strings.LastIndex(ref, "/")+1:], ":")
		if !ok || !strings.HasPrefix(ref, imageRepository+"/") {
			return nil, fmt.Errorf("kubeadm expects image %s, which is not under %s", ref, imageRepository)
		}
		def, ok := imageDefs[repoPath]
		if !ok {
			return nil, fmt.Errorf("kubeadm expects image %s, which Ferry does not know how to build", ref)
		}
		b := built[def.component]
		if b == nil {
			return nil, fmt.Errorf("image %s: component %s was not built", ref, def.component)
		}
		if err := tagMatches(repoPath, tag, b.Version); err != nil {
			return nil, fmt.Errorf("kubeadm expects %s: %w", ref, err)
		}
		rpm, ok := rpms[def.rpm]
		if !ok {
			return nil, fmt.Errorf("image %s: package %s was not built", ref, def.rpm)
		}
		img := compose.Image{
			Name:         ref,
			Packages:     []string{rpm},
			Include:      []string{def.binary},
			Entrypoint:   []string{def.binary},
			ExposedPorts: def.ports,
			Created:      created,
			Annotations: map[string]string{
				"org.opencontainers.image.title":       repoPath,
				"org.opencontainers.image.description": fmt.Sprintf("%s built by Ferry from %s@%s", repoPath, b.Module, b.Version),
				"org.opencontainers.image.version":     b.Version,
				"org.opencontainers.image.revision":    b.ModuleSum,
				"org.opencontainers.image.source":      sourceURL(b),
				"org.opencontainers.image.licenses":    b.License,
				"org.opencontainers.image.vendor":      "Ferry",
				"org.opencontainers.image.url":         b.URL,
			},
			Files: []compose.File{{Path: "/tmp", Type: compose.Directory, Mode: 0o1777}},
		}
		if b.Module == "" {
			delete(img.Annotations, "org.opencontainers.image.revision")
		}
		if def.root {
			img.User = "0:0"
		} else {
			img.User, img.UserName = nonRoot, "nonroot"
			for _, d := range def.dirs {
				img.Files = append(img.Files, compose.File{Path: d, Type: compose.Directory, Mode: 0o700, UID: 65532, GID: 65532})
			}
		}
		imgs = append(imgs, img)
	}
	return imgs, nil
}

// sourceURL points at the module's source as the Go module proxy serves it.
func sourceURL(b *Built) string {
	if b.Module == "" {
		return "https://github.com/ferry-k8s/ferry"
	}
	return "https://pkg.go.dev/" + b.Module + "@" + b.Version
}

// tagMatches checks kubeadm's expected tag against the built version:
// kube-* and coredns use the version itself, etcd appends "-<n>", pause is
// the bare number.
func tagMatches(image, tag, version string) error {
	want := version
	switch image {
	case "etcd":
		if base, _, _ := strings.Cut(tag, "-"); base == strings.TrimPrefix(version, "v") {
			return nil
		}
		want = strings.TrimPrefix(version, "v") + "-0"
	case "pause":
		want = strings.TrimPrefix(version, "v")
	}
	if tag != want {
		return fmt.Errorf("tag %s, but the bundle builds %s %s (set spec.distribution.versions to what kubeadm expects)", tag, path.Base(image), version)
	}
	return nil
}
