package nodeconfig

// modules is ModulesFile: the kernel modules containerd and kube-proxy
// need, loaded at boot by systemd-modules-load (the apply step loads them
// with modprobe right away).
func (r *renderer) modules() (File, error) {
	return r.rootFile(0o644, []byte(`# overlayfs for containerd's snapshotter; br_netfilter so bridged pod
# traffic passes iptables (kube-proxy, network policies).
overlay
br_netfilter
`)), nil
}

// sysctl is SysctlFile: forwarding and bridge netfilter for pod traffic,
// and the kernel defaults the kubelet expects (so that
// protectKernelDefaults: true can be set without the kubelet failing).
func (r *renderer) sysctl() (File, error) {
	return r.rootFile(0o644, []byte(`# Pods are routed: the node forwards their traffic (IPv4; dual-stack,
# which needs IPv6 forwarding, comes later: R37).
net.ipv4.ip_forward = 1
# Bridged pod traffic passes iptables (needs br_netfilter, see modules-load.d).
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1
# What the kubelet sets itself, or checks with protectKernelDefaults.
vm.overcommit_memory = 1
vm.panic_on_oom = 0
kernel.panic = 10
kernel.panic_on_oops = 1
kernel.keys.root_maxkeys = 1000000
kernel.keys.root_maxbytes = 25000000
`)), nil
}
