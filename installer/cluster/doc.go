// Package cluster reads, defaults and checks the cluster configuration
// (cluster.yaml, kind Cluster): the desired state that `installer
// bootstrap` and `installer apply` converge the nodes to. It is pure: no
// file other than the configuration is read, nothing is written, nothing
// is observed on the node.
//
//	cluster.yaml ─▶ Load/Parse (syntax, size, unknown fields by path)
//	             ─▶ Validate (every problem, each at its field path, joined)
//	             ─▶ Defaulted (a copy with every default filled in)
//	             ─▶ plan (elsewhere): desired (this) + observed ─▶ operations
//
// Defaults are never implicit in the consumers: Defaulted (or SetDefaults)
// writes every default into the configuration (the API endpoint's port,
// the subnets, each node's effective SELinux mode, kubelet overrides,
// containerd settings, role labels and the control-plane taint), so the
// planner reads one value per field and `installer` can show the admin
// exactly what it will apply.
//
// Decisions, with the requirement they come from:
//   - Endpoints and hostnames are DNS names, never IP addresses (R29).
//   - Per-plane CIDRs (R31) are optional; a node's address on each plane is
//     observed later. Planes may share a network; none may overlap the pod
//     or service subnet.
//   - SELinux (R13): every node is enforcing unless configured otherwise.
//     Worker-only nodes may be permissive or disabled. A control-plane node
//     may only be when spec.security.allowNonEnforcingControlPlane is true
//     (hosts without SELinux, such as the Debian-based systemd-nspawn test
//     machines, need it).
//   - kubelet overrides are an allow-list of documented knobs (see
//     KubeletKnobs): the settings Ferry owns for security (readOnlyPort,
//     authentication, TLS, …; R21, R22, R27) cannot be overridden.
//   - A control-plane node without the worker role gets the
//     node-role.kubernetes.io/control-plane:NoSchedule taint; a node with
//     both roles runs workloads (R4, R47).
//   - Static users may not be in system:masters: a client certificate
//     cannot be revoked, and that group bypasses RBAC (R17).
package cluster
