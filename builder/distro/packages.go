package distro

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/ferry-k8s/ferry/internal/systemd"
	"github.com/ferry-k8s/ferry/repo/rpmbuild"
)

// Release is the RPM release of every package built from source.
const Release = "1.ferry"

// rpmVersion is an upstream version as an RPM version: no "v", and no '-'
// (which separates version and release in RPM).
func rpmVersion(v string) string {
	return strings.ReplaceAll(strings.TrimPrefix(v, "v"), "-", "~")
}

// Packages are the RPMs of the distribution: every host binary (R18) and
// the payloads the images are composed from (R20). bins maps a component
// name to its built binaries; installer is the installer binary to
// package (required).
func Packages(built map[string]*Built, installer, installerVersion string, buildTime time.Time) ([]rpmbuild.Package, error) {
	need := func(component, bin string) (string, error) {
		b, ok := built[component]
		if !ok {
			return "", fmt.Errorf("component %s was not built", component)
		}
		p, ok := b.Binaries[bin]
		if !ok {
			return "", fmt.Errorf("component %s has no binary %s", component, bin)
		}
		return p, nil
	}
	var errs []error
	bin := func(component, name, dest string) rpmbuild.File {
		src, err := need(component, name)
		if err != nil {
			errs = append(errs, err)
		}
		return rpmbuild.File{Path: dest, Source: src, Mode: 0o755}
	}
	dir := func(p string, mode uint32) rpmbuild.File {
		return rpmbuild.File{Path: p, Type: rpmbuild.Dir, Mode: fs.FileMode(mode)}
	}
	config := func(p, body string) rpmbuild.File {
		return rpmbuild.File{Path: p, Body: []byte(body), Mode: 0o644, NoReplace: true}
	}
	version := func(component string) string {
		if b, ok := built[component]; ok {
			return rpmVersion(b.Version)
		}
		errs = append(errs, fmt.Errorf("component %s was not built", component))
		return "0"
	}
	pkg := func(name, component, summary string, files ...rpmbuild.File) rpmbuild.Package {
		license, url := "Apache-2.0", "https://github.com/ferry-k8s/ferry"
		if b, ok := built[component]; ok {
			license, url = b.License, b.URL
		}
		return rpmbuild.Package{
			Name: name, Version: version(component), Release: Release, Arch: "x86_64",
			Summary: summary, License: license, URL: url, Vendor: "Ferry", Packager: "Ferry builder",
			Description: summary + ". Built by Ferry from the pinned upstream Go module sources.",
			BuildTime:   buildTime, Files: files,
		}
	}
	eq := func(name, component string) rpmbuild.Relation {
		return rpmbuild.Relation{Name: name, Flags: "=", Version: version(component) + "-" + Release}
	}
	req := func(name string) rpmbuild.Relation { return rpmbuild.Relation{Name: name} }

	kubelet := pkg("kubelet", "kubernetes", "Kubernetes node agent",
		bin("kubernetes", "kubelet", "/usr/bin/kubelet"),
		dir("/etc/kubernetes", 0o755), dir("/etc/kubernetes/manifests", 0o755), dir("/var/lib/kubelet", 0o700),
		config("/etc/sysconfig/kubelet", "# Extra kubelet flags (kubeadm writes its own to /var/lib/kubelet/kubeadm-flags.env).\nKUBELET_EXTRA_ARGS=\n"))
	kubelet.Units = []rpmbuild.Unit{{Name: "kubelet.service", Body: []byte(kubeletUnit)}}
	kubelet.Requires = []rpmbuild.Relation{req("kubernetes-cni"), req("containerd")}

	kubeadm := pkg("kubeadm", "kubernetes", "Kubernetes cluster bootstrapping tool",
		bin("kubernetes", "kubeadm", "/usr/bin/kubeadm"),
		dir("/usr/lib/systemd/system/kubelet.service.d", 0o755),
		rpmbuild.File{Path: "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf", Body: []byte(kubeadmDropIn), Mode: 0o644})
	kubeadm.Requires = []rpmbuild.Relation{eq("kubelet", "kubernetes"), eq("kubectl", "kubernetes"), req("cri-tools"), req("kubernetes-cni")}

	kubectl := pkg("kubectl", "kubernetes", "Kubernetes command-line client", bin("kubernetes", "kubectl", "/usr/bin/kubectl"))

	pkgs := []rpmbuild.Package{kubelet, kubeadm, kubectl}
	// Control-plane components: the payloads of their images.
	for _, n := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"} {
		pkgs = append(pkgs, pkg(n, "kubernetes", "Kubernetes "+strings.TrimPrefix(n, "kube-")+" (payload of the "+n+" image)",
			bin("kubernetes", n, "/usr/bin/"+n)))
	}

	containerd := pkg("containerd", "containerd", "Container runtime (CRI) for Kubernetes",
		bin("containerd", "containerd", "/usr/bin/containerd"),
		bin("containerd", "containerd-shim-runc-v2", "/usr/bin/containerd-shim-runc-v2"),
		bin("containerd", "ctr", "/usr/bin/ctr"),
		dir("/etc/containerd", 0o755), dir("/etc/containerd/certs.d", 0o755), dir("/var/lib/containerd", 0o711))
	containerd.Units = []rpmbuild.Unit{{Name: "containerd.service", Body: []byte(containerdUnit)}}
	containerd.Requires = []rpmbuild.Relation{req("runc")}

	runc := pkg("runc", "runc", "OCI container runtime (no kernel memory accounting: R8)", bin("runc", "runc", "/usr/bin/runc"))

	cni := pkg("kubernetes-cni", "cni-plugins", "CNI plugins (bridge, host-local, loopback, portmap, …)",
		dir("/opt/cni", 0o755), dir("/opt/cni/bin", 0o755), dir("/etc/cni", 0o755), dir("/etc/cni/net.d", 0o755))
	if b, ok := built["cni-plugins"]; ok {
		for _, name := range sortedKeys(b.Binaries) {
			cni.Files = append(cni.Files, bin("cni-plugins", name, "/opt/cni/bin/"+name))
		}
	}

	crictl := pkg("cri-tools", "cri-tools", "CLI for CRI container runtimes (crictl)",
		bin("cri-tools", "crictl", "/usr/bin/crictl"),
		config("/etc/crictl.yaml", "runtime-endpoint: unix:///run/containerd/containerd.sock\nimage-endpoint: unix:///run/containerd/containerd.sock\ntimeout: 10\n"))

	etcd := pkg("etcd", "etcd", "Distributed key-value store (payload of the etcd image; etcdctl and etcdutl for backups)",
		bin("etcd", "etcd", "/usr/bin/etcd"), bin("etcd", "etcdctl", "/usr/bin/etcdctl"), bin("etcd", "etcdutl", "/usr/bin/etcdutl"))
	coredns := pkg("coredns", "coredns", "DNS server (payload of the coredns image)", bin("coredns", "coredns", "/usr/bin/coredns"))
	pause := pkg("ferry-pause", "pause", "Pod sandbox process (payload of the pause image)", bin("pause", "pause", "/usr/bin/pause"))
	pkgs = append(pkgs, containerd, runc, cni, crictl, etcd, coredns, pause)

	if installer == "" {
		errs = append(errs, fmt.Errorf("no installer binary to package (the installer is an RPM too: R18)"))
	}
	inst := rpmbuild.Package{
		Name: "ferry-installer", Version: rpmVersion(installerVersion), Release: Release, Arch: "x86_64",
		Summary: "Ferry node installer and content service", License: "Apache-2.0", URL: "https://github.com/ferry-k8s/ferry",
		Vendor: "Ferry", Packager: "Ferry builder", BuildTime: buildTime,
		Description: "Ferry's node side: verifies bundles, serves their registry and yum repositories, bootstraps and upgrades nodes.",
		Files: []rpmbuild.File{
			{Path: "/usr/bin/installer", Source: installer, Mode: 0o755},
			dir("/etc/ferry", 0o755),
		},
		Units:    []rpmbuild.Unit{{Name: "ferry-content.service", Body: systemd.ContentUnit}, {Name: "ferry-node.service", Body: systemd.NodeUnit}, {Name: "ferry-apiproxy.service", Body: systemd.APIProxyUnit}},
		Sysusers: []rpmbuild.Sysusers{{Name: "ferry", Conf: systemd.Sysusers}},
	}
	pkgs = append(pkgs, inst)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return pkgs, nil
}

// The units follow the upstream packages' (kubelet from the Kubernetes
// release RPMs, containerd's own unit), installed disabled: the installer
// enables them.
const kubeletUnit = `[Unit]
Description=kubelet: the Kubernetes node agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target containerd.service

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
`

const kubeadmDropIn = `# kubelet as kubeadm runs it: kubeadm init/join write the kubeconfigs,
# /var/lib/kubelet/config.yaml and kubeadm-flags.env.
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/sysconfig/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
`

const containerdUnit = `[Unit]
Description=containerd container runtime
Documentation=https://containerd.io
After=network.target local-fs.target

[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/bin/containerd
Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
`
