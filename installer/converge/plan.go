package converge

// Plan is a pure function of the desired and observed node: the operations
// that make the node as desired, in order; none when it already is (R3).
//
//	nodes removed from the configuration (R50) →
//	root-owned directories and files → packages (one dnf transaction) →
//	commands the root-owned files trigger → paths owned by system users
//	(created by the packages) → their commands → daemon-reload → units
//	(restarted when their configuration changed) → kubeadm init → etcd
//	member → kubeadm join → etcd promotion → kubeadm upgrade or
//	reconfiguration → kubeconfigs → owned paths → labels and taints
//
// Each step is a sub-planner of the operations' family, tested on its own;
// a step that depends on earlier ones (a restart after a written file)
// reads the operations planned before it. The last steps need the API
// server: while it does not answer (Observed.APIUnknown), they are left to
// a later round.
//
// Root-owned files come before packages so that configuration (the
// repository file, containerd's config) is in place when a package's
// scriptlets run; %config(noreplace) keeps ours.
func Plan(d Desired, o Observed) []Op {
	// Nodes that left the configuration go first, while the firewall and
	// the routes (rendered without them) still admit them: an etcd member
	// must be removed before its peers stop hearing it.
	ops := planRemovedNodes(d, o)
	// Root-owned paths first; paths owned by a system user come after the
	// packages, whose %pre creates that user.
	rootFiles := planFiles(d, o, true)
	ops = append(ops, rootFiles...)
	ops = append(ops, planPackages(d, o)...)
	// Commands the root-owned files trigger (systemd-sysusers makes the
	// users the next files belong to) run before those files.
	ops = append(ops, planCommands(rootFiles, nil)...)
	userFiles := planFiles(d, o, false)
	ops = append(ops, userFiles...)
	ops = append(ops, planCommands(userFiles, rootFiles)...)
	ops = append(ops, planUnits(d, o, ops)...)
	ops = append(ops, planKubeadmInit(d, o)...)
	ops = append(ops, planEtcdAdd(d, o)...)
	ops = append(ops, planKubeadmJoin(d, o)...)
	ops = append(ops, planEtcdPromote(d, o)...)
	ops = append(ops, planKubeadmUpgrade(d, o)...)
	ops = append(ops, planKubeconfigs(d, o, ops)...)
	ops = append(ops, planOwned(d, o)...)
	return append(ops, planNodeObject(d, o)...)
}
