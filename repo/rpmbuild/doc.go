// Package rpmbuild writes binary RPM packages from a declarative
// description, signed with the bundle's OpenPGP key, so that every binary
// Ferry puts on a node comes from an RPM that dnf installs with gpgcheck on.
//
//	Package{Name, Version, Files, Units, Sysusers, Requires, …}
//	    │ validate: names, EVRs, paths (absolute, clean, no ".."), modes,
//	    │ owners, duplicates; read File.Source files (bounded)
//	    ▼
//	header (sorted files, fixed build time and host, self-provides,
//	rpmlib() and /bin/sh requirements, scriptlets) + zstd cpio payload
//	    │ signing.Signer.SignBinary(header), SignBinary(header+payload)
//	    ▼
//	Write(w) / WriteFile(path): all or nothing
//
// The RPM itself is assembled by github.com/google/rpmpack; this package
// adds what a distribution package needs on top of it: validation with
// errors that name the field, an epoch-aware self-provide ("name = E:V-R"
// and "name(x86-64) = E:V-R" as rpmbuild writes them), the scriptlet
// interpreter requirements ("Requires(pre): /bin/sh"), the rpmlib()
// feature requirements, the real cpio archive size, systemd units and
// sysusers.d users.
//
// Output is reproducible: the build time (from SOURCE_DATE_EPOCH) is every
// file's mtime and the signatures' date, the build host is "localhost",
// files are sorted, and zstd, gzip and xz compress deterministically, so
// the same Package and key give the same bytes on any machine.
//
// Systemd units go to /usr/lib/systemd/system with mode 0644. The package
// never enables or starts them (the installer does): %post and %postun
// reload systemd's configuration, and %preun disables and stops the units
// when the package is erased, each only when systemd is running
// ([ -d /run/systemd/system ]), so installing into a chroot or an image
// works.
//
// Sysusers entries go to /usr/lib/sysusers.d/NAME.conf; %pre runs
// systemd-sysusers on the same text (the file itself is not installed yet
// when %pre runs), so files owned by, say, etcd:etcd get that owner when
// rpm lays them down. Without systemd-sysusers the %pre prints a warning
// and rpm installs such files as root (rpm's own fallback for an unknown
// user).
//
// Directories are owned only when listed (File.Type Dir): list the ones the
// package creates for itself (/etc/kubernetes, /var/lib/etcd), not shared
// ones such as /usr/bin, which the distribution's filesystem package owns
// with its own mode. rpm creates missing parents as root-owned 0755.
//
// Limits (from rpmpack, which writes 32-bit sizes and holds the package in
// memory): at most 2000 MiB of file content per package, no hard links,
// no device files.
package rpmbuild
