package nodeconfig

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ferry-k8s/ferry/installer/cluster"
)

// containerdConfig is config.toml for containerd 2.x (configuration
// version 3; R16). The CRI plugin's images come through the registry
// hosts in ContainerdHostsDir (the content service, hostsFiles), its pod
// sandbox is the bundle's pause image, runc's cgroup manager agrees with
// the kubelet's cgroup driver, and SELinux labelling follows the node's
// mode (R13).
func (r *renderer) containerdConfig() (File, error) {
	restrictOOM := false
	if cd := r.n.Containerd; cd != nil && cd.RestrictOOMScoreAdj != nil {
		restrictOOM = *cd.RestrictOOMScoreAdj
	}
	var b strings.Builder
	fmt.Fprintf(&b, `version = 3
root = "/var/lib/containerd"
state = "/run/containerd"

[grpc]
  address = "/run/containerd/containerd.sock"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"

[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = %s

[plugins."io.containerd.cri.v1.images".registry]
  config_path = %s

[plugins."io.containerd.cri.v1.runtime"]
  enable_selinux = %t
  restrict_oom_score_adj = %t

[plugins."io.containerd.cri.v1.runtime".containerd]
  default_runtime_name = "runc"

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
  SystemdCgroup = %t

[plugins."io.containerd.grpc.v1.cri"]
  # Streaming (exec, attach, port-forward) on the loopback only; the
  # kubelet proxies it (R31).
  stream_server_address = "127.0.0.1"

[plugins."io.containerd.transfer.v1.local"]
  config_path = %s
`, tomlString(r.f.PauseImage), tomlString(ContainerdHostsDir),
		r.n.SELinux != cluster.SELinuxDisabled, restrictOOM, r.systemdCgroup, tomlString(ContainerdHostsDir))
	return r.rootFile(0o644, []byte(b.String())), nil
}

// hostsFiles are ContainerdHostsDir/<host>/hosts.toml for each upstream
// registry of the bundle's images: the only hosts containerd asks are the
// content services, over TLS verified with the content realm's CA (R21,
// R22). containerd tries the [host] entries in order and `server` last,
// so the services are the entries but the last, which is `server`: each
// is asked once, and nothing falls back upstream (R2: the air gap). A
// service that is down or lacks an image (one that has not imported a new
// bundle yet) passes the request on to the next. containerd sends the
// upstream host as ?ns=, which is how a service finds the image under its
// upstream name.
func (r *renderer) hostsFiles() ([]File, error) {
	var files []File
	services := r.f.ContentServices
	last := services[len(services)-1]
	for _, h := range r.registryHosts {
		var b strings.Builder
		fmt.Fprintf(&b, `# Images of %s come from Ferry's content services only, in this order.
server = %s
capabilities = ["pull", "resolve"]
ca = %s
`, h, tomlString("https://"+last), tomlString(r.f.ContentCAFile))
		for _, s := range services[:len(services)-1] {
			fmt.Fprintf(&b, `
[host.%s]
  capabilities = ["pull", "resolve"]
  ca = %s
`, tomlString("https://"+s), tomlString(r.f.ContentCAFile))
		}
		f := r.rootFile(0o644, []byte(b.String()))
		f.Path = ContainerdHostsDir + "/" + h + "/hosts.toml"
		files = append(files, f)
	}
	return files, nil
}

// tomlString quotes s as a TOML basic string (the values here are image
// references and paths; strconv.Quote's escapes are TOML's for them).
func tomlString(s string) string { return strconv.Quote(s) }
