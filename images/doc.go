// Package images copies container images into one OCI image layout, keeping
// their digests, and reads such a layout back.
//
// The builder calls Copy to put every image of a bundle into a single layout
// (which then goes on the ISO); installers call CheckLayout (and through it
// ReadIndex) on the layout inside the ISO, through an fs.FS.
//
// # Rules
//
// CheckLayout holds the rules every image of a bundle follows: supported
// manifest media types, manifests and configs of at most 4 MiB, no index
// inside an index, sha256 digests only, and every blob present with exactly
// the size its descriptor claims and the sha256 its digest names. The
// builder applies it before signing, bundle/verify on every bundle it
// checks, and the node's content service before serving; one function, so
// that none accepts what another refuses.
//
// # Layout written by Copy
//
// layoutDir holds oci-layout, index.json and blobs/sha256/<hex>, one file per
// digest: blobs shared by several images (or by one image under two names)
// are stored once. Each image gets one index.json entry whose annotations are:
//
//   - org.opencontainers.image.ref.name: the FULL name, e.g.
//     "registry.k8s.io/pause:3.10", not just the tag. This is what the
//     containers/image oci transport writes and looks up for
//     "oci:DIR:NAME" (it splits at the first ':' and accepts any
//     OCI ref-name, '/' and ':' included), so `skopeo inspect
//     oci:DIR:registry.k8s.io/pause:3.10` and `skopeo copy
//     oci:DIR:registry.k8s.io/pause:3.10 docker://…` work. A tag alone
//     would collide between images (pause:3.10 from two registries), and
//     the oci transport silently strips the name from the older entry.
//   - dev.ferry.image.name (AnnotationName): the same full name.
//   - dev.ferry.image.source (AnnotationSource): the Source.Ref.
//   - dev.ferry.image.platforms (AnnotationPlatforms): platforms kept.
//   - dev.ferry.image.original-digest (AnnotationOriginalDigest): only when
//     the stored index differs from the source's (platform filtering).
//   - dev.ferry.image.synthesized-manifest (AnnotationSynthesized): "true"
//     for docker-archive sources.
//
// Copying into an existing layout adds to it; an entry with the same name is
// replaced (the replaced image's blobs are not removed).
//
// # Digests
//
// Manifests are never converted and blobs never recompressed: Copy uses
// copy.Options.PreserveDigests, and the layout destination accepts Docker
// schema 2 manifests and manifest lists as they are, besides OCI ones (the
// stock oci destination refuses Docker manifest lists under PreserveDigests
// and converts Docker images to OCI otherwise, changing digests and rewriting
// configs). After each copy the written digest is checked
// against the source's. Per transport:
//
//   - oci:, oci-archive:, dir:, docker://: the stored top-level digest equals
//     the source's manifest (or index) digest, and blob bytes are the source's.
//     Docker schema 1 manifests are refused (they would need conversion).
//   - docker-archive: the archive stores no manifest; containers/image
//     generates a Docker schema 2 manifest (config as in the archive, layers
//     uncompressed, digests = DiffIDs, layer media type
//     "…rootfs.diff.tar.gzip" as Docker itself writes). That manifest is stored
//     unchanged and Result.Synthesized is set: the digest is deterministic for
//     a given archive and equals `skopeo inspect --raw docker-archive:FILE`'s,
//     but is not the registry digest of the image; the config digest (image
//     ID) and layer DiffIDs are preserved.
//   - Platforms on an index source: only the instances whose platform matches
//     are copied and the index is rewritten to list just those, so the stored
//     index digest differs from the source's (Result.OriginalDigest keeps the
//     source's). Every kept instance manifest keeps its digest, which Copy
//     checks. If every instance matches, the index is kept as is.
//
// Readers: go.podman.io/image v5.42 (linked here) and containerd read the
// Docker-typed entries of the layout by name; skopeo 1.9 (Debian 12, an old
// containers/image) only looks up OCI-typed entries by name.
//
// # Local OCI layout sources
//
// For an oci:DIR source, Copy first hard-links the image's config and layer
// blobs from DIR/blobs into layoutDir/blobs, verifying each link's size and
// sha256 before giving it its final name, so that copy.Image finds them
// present and does not write them again. Where linking fails (another
// filesystem, EXDEV; permissions) the blobs are copied normally. Linked blobs
// share their inode with the source: a later in-place modification of a
// source blob would show in the bundle (blobs are immutable by convention).
//
// # Download cache for registry images
//
// With CopyOptions.CacheDir, docker:// sources go through a second OCI image
// layout shared by builds (the builder's <cache>/oci/):
//
//	registry ──(miss only)──▶ cache layout ──hard link, verified──▶ layoutDir
//	                           blobs/sha256/…   index.json (media types)
//
// Every manifest and blob of such an image is first downloaded into the
// cache, each under a temporary name renamed to its digest only once its
// size and digest match; then configs and layers are hard-linked into
// layoutDir (verified as for oci: sources), and copy.Image, finding them
// present, writes the manifests (read from the cache, checked against their
// digests). A blob of the cache that no longer matches its digest is removed
// and downloaded again. The registry is contacted only on a miss: a source
// pinned by digest (a locked tag) whose manifests and blobs are all cached
// is copied without any request, so a rebuild of the same lock works with the
// registry unreachable, or after the digest was deleted from it. A source
// named by tag always asks the registry for the tag's manifest. Opening the
// registry on a miss costs one manifest request besides the missing
// items.
//
// Several builds may share one cache at the same time: blobs appear
// atomically and identical writers write identical bytes, and index.json (one
// entry per top-level manifest, named "registry/repo@digest", recording the
// media type the registry served) is rewritten under an exclusive flock(2)
// of <cache>/.lock. Two builds missing the same blob at once both download
// it. Nothing is removed from the cache but corrupt blobs (no eviction yet;
// a build killed mid-download leaves a ".<hex>.tmp-*" file in blobs/sha256).
//
// The bytes stored in layoutDir are the same with and without a cache as
// long as the registry serves each instance manifest with the media type its
// index gives: the cache takes it from the index, so that cold and warm
// copies agree.
//
// # Determinism
//
// The oci destination adds no timestamps or random values. index.json is
// rewritten by Copy with entries sorted by name, so copying the same sources
// into a fresh directory gives the same index.json and the same set of files,
// whatever the order of the sources.
//
// # Temporary files
//
// containers/image unpacks oci-archive sources (and copies streamed
// docker-archive ones) into a temporary directory, /var/tmp by default
// whatever TMPDIR says. Copy and Resolve use CopyOptions.TempDir (the
// builder's work directory), else os.TempDir(), unless the caller's
// SystemContext sets BigFilesTemporaryDir.
//
// # Build tags
//
// Build with -tags containers_image_openpgp (pure-Go OpenPGP instead of cgo
// gpgme; the signature package, needed by copy.Image, is otherwise cgo-only).
// Only the oci, oci-archive, docker-archive, dir and docker transports are
// imported (not transports/alltransports), so the containers-storage and
// docker-daemon stub tags are not needed by this package.
//
// Concurrent Copy calls on the same layoutDir are not supported; on the same
// CacheDir they are.
package images
