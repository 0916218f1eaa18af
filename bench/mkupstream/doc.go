// Command mkupstream makes the upstream side of bench/upstream.sh: what a
// release engineer's builder downloads from, on local servers.
//
//	mkupstream input -dir D [-rpms 200] [-scale 1]
//	    D/repo/       a yum repository: -rpms RPMs with a dependency tree
//	                  (see plan.go), signed with an RSA 4096 key by the real
//	                  gpg, createrepo_c's metadata, repodata/repomd.xml.asc
//	    D/RPM-GPG-KEY the repository's public key (armored)
//	    D/layout/     an OCI layout of a control plane's worth of images,
//	                  each under the name bench/<repo>:<tag>
//	    D/images      one "<repo>:<tag>" a line, to push and to name in the spec
//	    D/names       the packages the spec asks for, one a line
//	    D/closure     the file names a resolver must pick for them, sorted
//	    D/release.key.asc  the bundle's signing key
//	mkupstream pki -dir D
//	    D/ca.crt, D/server.crt, D/server.key: a throwaway CA and a server
//	    certificate for 127.0.0.1 and localhost (internal/testpki; valid a day)
//	mkupstream lockinfo -lock bundle.lock
//	    "image <docker://host/repo@digest> <name>" and "rpm <sha256>  <file>"
//	    lines: what the locked build copies, for the pipeline it is compared
//	    with, and to check that both got the same bytes
package main
