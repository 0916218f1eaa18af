// Package nodeconfig computes the configuration files a node should have:
// kubeadm's configurations and patches, containerd's configuration and
// registry hosts, the API server's encryption and authentication
// configurations, kernel settings and the control plane's system users.
// It is pure: Render is a function of the cluster configuration, the
// node's name and Facts (from the bundle and from observing the node),
// and gives the same bytes for the same input. Nothing is read or written.
//
//	cluster.yaml ─▶ cluster.Load ─┐
//	bundle, observed node ─▶ Facts ┴▶ Render ─▶ []File (path, mode, owner, content)
//	   ─▶ plan: compare each File.Body() with the body on the node (SplitHeader)
//	   ─▶ apply: users and ownership, certificates, files, then
//	      kubeadm init|join|upgrade --config /etc/ferry/kubeadm/…
//
// Every file starts with the R19 header (see WithHeader): Ferry's version
// and the SHA-256 of the content below it. A body that differs from its
// header's hash was edited on the node (ErrEdited); a header that differs
// only in the version is not a change to apply.
//
// Decisions, with the requirement they come from:
//   - kubeadm does the work (R1). The ClusterConfiguration and the
//     KubeletConfiguration are the cluster's: kubeadm stores them in the
//     kubeadm-config and kubelet-config ConfigMaps and joining or
//     upgrading nodes read them from there. So everything of one node is
//     in its patches (PatchesDir), which kubeadm applies on that node at
//     init, join and upgrade: its addresses as extra container args (the
//     last of a repeated flag wins), its kubelet overrides as a merge
//     patch over the cluster's KubeletConfiguration.
//   - Each service binds only to its plane's address (R31): the API server
//     and kubelet to the control-plane address, etcd to the etcd-plane
//     address (and the loopback for its node's API server); the
//     controller-manager, scheduler, kube-proxy's metrics and containerd's
//     streaming stay on the loopback.
//   - Endpoints are names (R29): etcd advertises the node's hostname and
//     the API server reaches its etcd at https://localhost:2379, so the
//     etcd server certificate carries the hostname and "localhost". When
//     the etcd plane is not the control plane, the hostnames of the
//     control-plane nodes must resolve to their etcd-plane addresses
//     where etcd runs (peers dial the names, and etcd checks a peer's DNS
//     SAN against its source address). etcd's JSON gateway is off (it
//     dials etcd's own listeners by address); its metrics and health stay
//     plain HTTP on the loopback, where the kubelet probes them.
//   - The etcd patch gives etcd the initial cluster of `kubeadm init`:
//     the node alone. kubeadm's control-plane join adds a member by its
//     address and derives the initial cluster from the members; a joining
//     control-plane node needs the join step to add its member by name
//     and to give etcd the current members instead (open).
//   - The control plane runs without root (R12) as fixed IDs (Users,
//     64010–64014), on read-only root filesystems with an emptyDir for
//     /tmp, all capabilities dropped (R14). The apply step creates the
//     accounts (SysusersFile) and owns the files they read
//     (ControlPlaneOwnership, TmpfilesFile) before the static Pods start.
//     kube-proxy stays as kubeadm deploys it (root: it programs the
//     node's netfilter; kubeadm has no patch target for it).
//   - Anonymous requests reach the API server's health endpoints only
//     (AuthenticationConfiguration, with OIDC when configured; R17, R27);
//     joining nodes discover the cluster from a kubeconfig file with a
//     bootstrap token (DiscoveryFile), which needs no anonymous access.
//   - The kubelet's serving certificate is Ferry's (KubeletServingCert:
//     DNS SANs, R29): no self-signed certificate, no serverTLSBootstrap.
//     Its read-only port is 0 and profiling is off everywhere (R27).
//     kubeadm never renews certificates on upgrade (certificateRenewal:
//     false), since its certificates carry IP SANs.
//   - Encryption at rest (R9) with the configured provider and the
//     install-time key (mode 0600, the API server's user), identity last
//     to read what was stored before; the API server reloads the file
//     when it changes.
//   - containerd (R16) resolves the bundle's registries at the content
//     service only, over TLS with the content realm's CA (R21, R22), and
//     never falls back upstream (R2).
//   - The kubelet's cgroup driver and containerd's SystemdCgroup agree:
//     the configured one, else systemd on systemd hosts with cgroup v2,
//     else cgroupfs. A cgroup v1 host gets failCgroupV1: false (R15: v1
//     tolerated). R55: the CPU, Memory and Topology Managers run with the
//     "none" policies unless a node's overrides choose others.
package nodeconfig
