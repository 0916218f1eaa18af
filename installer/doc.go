// Package installer is the node side of Ferry: it verifies bundle ISOs,
// serves their registry and yum repositories, and converges nodes and the
// cluster (observe → plan → apply). Today it holds the verify command; the
// content service and convergence follow (see the project's issues).
package installer
