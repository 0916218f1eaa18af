// Package distro builds Ferry's Kubernetes distribution from pinned Go
// module sources: it compiles every component (Kubernetes, etcd, CoreDNS,
// containerd, runc, CNI plugins, cri-tools, pause), packages the host
// binaries as RPMs and composes the control-plane images from those RPMs'
// payloads.
//
//	versions (spec.distribution) ──► Components ──► GoBuilder.Build (wrapper module, go.sum
//	checked by the checksum database, binary cache) ──► RPMs (repo/rpmbuild, signed)
//	──► images (images/compose, from the RPM payloads) ──► the bundle's repo and layout
//
// Everything is reproducible: the same versions, toolchain and
// SOURCE_DATE_EPOCH give the same binaries, RPMs and image digests.
package distro
