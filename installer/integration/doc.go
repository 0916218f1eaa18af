// Package integration tests the content service (`installer serve`) with
// the clients nodes really use: containerd (ctr), skopeo and dnf, over TLS,
// plus the requests a hostile or broken client sends. It holds no code but
// its tests; the tests build the installer binary and run it on loopback.
//
// Every client program is required: a missing one fails the test (`make
// deps` installs skopeo, dnf and rpm; containerd comes from Debian's
// containerd package). The containerd test starts its own containerd as
// root with a private root, state and socket.
package integration
