//go:build e2e

// Package e2e will hold Ferry's end-to-end suites: systemd-nspawn machines
// booted from a debootstrapped rootfs, on a bridge with no route out, that
// bootstrap, join and upgrade real clusters from bundle ISOs (`make e2e`).
// None exists yet: the single-server suite comes with the installer's
// bootstrap (see the project's issues and ../shared/E2E-NODES.md).
package e2e
