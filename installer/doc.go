// Package installer is the node side of Ferry. Its subpackages and command:
//
//	cmd/installer   the CLI: verify, serve, bundle add|remove|list
//	content         the content service: verified bundles served as an OCI
//	                registry and yum repositories over HTTPS
//	systemd         the unit and sysusers files for the content service
//	integration     tests with real clients (containerd, skopeo, dnf)
//
// Convergence of nodes and the cluster (observe → plan → apply) follows.
package installer
