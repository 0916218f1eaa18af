// Package compose builds OCI images from RPM payloads, with no base image,
// the way apko builds images from APKs: the builder packages the Kubernetes
// components it compiles as RPMs and composes the control-plane images
// (kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy,
// etcd, coredns, pause) from those packages' files.
//
//	Image{Packages, Include, Files, User, …}
//	  → read each RPM (header checked by repo, payload cpio read here)
//	  → file tree (selected entries, extra files, implied parents,
//	    owners mapped through the image's /etc/passwd and /etc/group)
//	  → layer: sorted tar → gzip, DiffID and digest in one pass
//	  → config (User, Entrypoint, Cmd, Env, WorkingDir, ExposedPorts,
//	    Labels, history) → manifest (annotations)
//	  → OCI layout: blobs/sha256/…, index.json entry named by
//	    org.opencontainers.image.ref.name = the full name
//
// The layout is then read like any other: `skopeo inspect
// oci:DIR:registry.ferry.dev/k8s/kube-apiserver:v1.36.3`, or images.Copy
// with Source{Ref: "oci:DIR:NAME"} into the bundle's layout.
//
// # Reproducibility
//
// The same packages and Image give byte-identical blobs, hence the same
// digests: tar entries are sorted by path (parents first), every mtime is
// Image.Created, user and group names are left out, headers are USTAR
// unless a long name needs PAX; gzip writes no name and no mtime; configs
// and manifests are encoding/json output of fixed structures (maps sorted).
// A different Go release or klauspost/compress version may compress
// differently; the DiffID stays the same.
//
// # Packages
//
// Payloads may be gzip, zstd, xz, lzma, bzip2 or uncompressed cpio (newc,
// or rpm ≥ 4.12's stripped form). Regular files, directories, symlinks
// and hard links (as tar hard links, or a plain file when only one member
// is selected) are kept with their modes; ghost files are left out; device
// files, FIFOs and sockets are refused. File contents are checked against
// the header's digests. Owner names map to ids through the image's own
// /etc/passwd and /etc/group (from a package, Image.Files, or generated
// for Image.UserName); root is 0; an unknown name is an error naming the
// file and the owner. The same path from two packages (or Files) must be
// the same entry, else the error names both.
//
// Untrusted input is bounded: headers as repo checks them; cpio names,
// symlink targets, paths (clean, absolute, no "..", no ".wh." whiteout
// names), the image's total content (32 GiB), decompressor windows; files
// must have the sizes the header declares.
package compose
