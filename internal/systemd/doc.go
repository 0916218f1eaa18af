// Package systemd holds the systemd units of the node side, embedded so
// that packaging (the installer RPM) and tests use the very same bytes:
//
//   - ferry-content.service: `installer serve`, Type=notify with watchdog,
//     as the unprivileged user ferry, hardened (see the file).
//   - ferry.sysusers: the ferry user and group, for systemd-sysusers.
//   - ferry-node.service: `installer daemon`, Type=notify with watchdog, the
//     node's convergence on demand over a root-only Unix socket.
//
// It is internal/, not under installer/, because the builder packages
// them too (builder/distro), and the builder imports nothing of the
// installer.
//
// The tests check them with systemd-analyze verify and security, and
// systemd-sysusers.
package systemd

import _ "embed"

// ContentUnit is ferry-content.service, installed as
// /usr/lib/systemd/system/ferry-content.service.
//
//go:embed ferry-content.service
var ContentUnit []byte

// NodeUnit is ferry-node.service, installed as
// /usr/lib/systemd/system/ferry-node.service.
//
//go:embed ferry-node.service
var NodeUnit []byte

// Sysusers is ferry.sysusers, installed as /usr/lib/sysusers.d/ferry.conf.
//
//go:embed ferry.sysusers
var Sysusers []byte

// APIProxyUnit is ferry-apiproxy.service (R32), installed as
// /usr/lib/systemd/system/ferry-apiproxy.service.
//
//go:embed ferry-apiproxy.service
var APIProxyUnit []byte
