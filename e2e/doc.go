//go:build e2e

// Package e2e holds Ferry's end-to-end suites and their harness:
// systemd-nspawn machines booted from a debootstrapped Debian 12 rootfs
// (cached under $FERRY_E2E_CACHE, default /var/cache/ferry-e2e), each on an
// overlay of it, on a bridge with no route out (no NAT, forwarding off on the
// bridge), driven with nsenter (`make e2e [E2E_RUN=regexp]`, as root).
//
// NewCluster(t, specs...) builds what it needs and boots the nodes; the test
// then works inside them with Node.Exec, Node.CopyIn and Node.WriteFile, and
// everything (nodes, overlays, cgroups, bridge) is torn down when it ends.
// A missing prerequisite (root, systemd-nspawn, debootstrap, nsenter) fails
// the test: a skipped end-to-end suite proves nothing.
//
// A test process killed outright (SIGKILL, go test's -timeout) cannot clean
// up: its nodes power off (systemd-nspawn gets SIGTERM when the test dies),
// and the next NewCluster removes what it left on the host (bridge, overlay
// mounts and directories, iptables FORWARD rules with the comment
// "ferry-e2e air gap", cgroups), from the record each run keeps under
// $FERRY_E2E_CACHE/runs while it holds that record's lock.
//
// The suites: the air gap itself (airgap_test.go); TestBootstrapSingleServer
// (one node from the from-source bundle: hardening, firewall, static users,
// an address change, idempotence); TestJoin (a worker and a second control
// plane join from join files, pods across nodes, then both are removed
// from cluster.yaml); TestUpgrade (three nodes rolled from a bundle of the
// previous Kubernetes minor to the default one, a client all along).
//
// Host packages: debootstrap, systemd-container (systemd-nspawn),
// util-linux (nsenter, mount), iproute2, xorriso, and the Debian mirror
// reachable from the host when the rootfs is first built (about a minute).
package e2e
