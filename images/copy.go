package images

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/copy"
	dockerarchive "go.podman.io/image/v5/docker/archive"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/oci/layout"
	"go.podman.io/image/v5/pkg/blobinfocache/none"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/types"
)

// Source is one image to put in the bundle.
type Source struct {
	// Ref is a containers-transports reference: "oci:DIR:NAME",
	// "oci-archive:FILE", "docker-archive:FILE[:NAME:TAG]", "dir:DIR",
	// "docker://REGISTRY/REPO:TAG" or "docker://REGISTRY/REPO@sha256:…".
	Ref string
	// Origin is how the source is named to people: in errors and in the
	// dev.ferry.image.source annotation. The builder passes the spec's text
	// (a relative path) while Ref holds the resolved one, so the bundle does
	// not record build-host paths and rebuilds elsewhere stay identical.
	// Empty: Ref.
	Origin string
	// Name is the image's name in the bundle: its upstream name with a tag
	// and/or digest, e.g. "registry.k8s.io/pause:3.10". It is normalized to
	// its fully qualified form ("nginx:1" becomes "docker.io/library/nginx:1").
	// If empty, it is taken from the reference's Docker name (docker:// and
	// docker-archive:FILE:NAME:TAG references); otherwise it is an error.
	Name string
	// Platforms ("linux/amd64", "linux/arm64/v8") to keep from a
	// multi-platform source; empty keeps every platform. For a single-image
	// source, the image's platform must be one of them. See platform.matches
	// for variant handling.
	Platforms []string
}

// Result describes one image in the layout.
type Result struct {
	Name   string // full name, e.g. "registry.k8s.io/pause:3.10"
	Source string // the Source's Origin (or Ref) it was copied from
	// Digest of the top-level manifest or index as stored in the layout.
	Digest digest.Digest
	// OriginalDigest is the source's top-level digest. It equals Digest
	// except when Platforms dropped instances from an index: the index is
	// then rewritten (only the kept instances listed) and gets a new digest,
	// while every kept instance manifest keeps its digest.
	OriginalDigest digest.Digest
	MediaType      string
	Size           int64    // of the top-level manifest or index
	Platforms      []string // of the image, or of the instances kept
	// Synthesized is true when the source stores no manifest (docker-archive):
	// containers/image generates a Docker schema 2 manifest from the
	// archive's manifest.json and config, and that manifest is stored as is.
	// Digest is then that generated manifest's digest: deterministic for a
	// given archive, but not the image's registry digest. The config blob
	// (image ID) and the uncompressed layers (whose digests are the DiffIDs)
	// are byte-identical to the archive's.
	Synthesized bool
}

// CopyOptions tunes Copy. The zero value is usable.
type CopyOptions struct {
	// Progress, if set, is called per image with the bytes of blobs done
	// (copied or found already present) and the total bytes of its blobs,
	// from another goroutine but never concurrently with itself; the last
	// call for an image that succeeded has done == total.
	Progress func(name string, done, total int64)
	// SystemContext is used to read sources (auth, certificates, registries
	// configuration for docker://); nil means containers/image defaults,
	// but for BigFilesTemporaryDir (see TempDir).
	SystemContext *types.SystemContext
	// TempDir holds Copy's temporary files: oci-archive and docker-archive
	// sources unpacked (SystemContext.BigFilesTemporaryDir, unless set) and
	// containers/image's blob info cache. Empty: os.TempDir(), that is
	// $TMPDIR or /tmp; never containers/image's own default of /var/tmp,
	// which ignores TMPDIR.
	TempDir string
	// Parallel is the number of blobs copied at once per image; 0 means the
	// containers/image default (6).
	Parallel int
	// CacheDir, if set, is a download cache for docker:// sources shared by
	// builds: an OCI image layout (created if missing) that every manifest
	// and blob of those images is downloaded into first, and from which the
	// blobs are then hard-linked into layoutDir, verified on the way. A
	// source pinned by digest whose manifests and blobs are all cached is
	// copied without contacting its registry. Builds may share one CacheDir
	// at the same time. See cache.
	CacheDir string
}

// progressInterval is how often containers/image reports blob progress.
const progressInterval = 200 * time.Millisecond

// linkBlobs enables hard-linking blobs of oci: sources and of the cache
// (tests turn it off to measure the difference, and to take the path of a
// cache on another file system).
var linkBlobs = true

// job is a validated Source.
type job struct {
	src       Source
	ref       types.ImageReference
	name      string
	platforms []platform
}

// Copy copies every source, in order, into the OCI image layout at layoutDir
// (created if missing; an existing layout is added to). See the package
// documentation for the layout written and the digest guarantees.
//
// All sources are validated before anything is copied: an invalid reference,
// a missing or underivable name, or two sources with the same name is an
// error naming the sources. A copy that fails stops Copy with an error naming
// the source's Ref; images copied before it stay listed in the layout.
func Copy(ctx context.Context, layoutDir string, srcs []Source, opts CopyOptions) ([]Result, error) {
	jobs, err := prepare(srcs)
	if err != nil {
		return nil, err
	}
	if opts.TempDir == "" {
		opts.TempDir = os.TempDir()
	}
	opts.SystemContext = withBigFilesDir(opts.SystemContext, opts.TempDir)
	if strings.Contains(layoutDir, ":") {
		return nil, fmt.Errorf("layout directory %q: the oci transport does not accept ':' in paths", layoutDir)
	}
	if err := initLayout(layoutDir); err != nil {
		return nil, fmt.Errorf("creating image layout %s: %w", layoutDir, err)
	}
	index, err := loadLayoutIndex(layoutDir)
	if err != nil {
		return nil, fmt.Errorf("reading image layout %s: %w", layoutDir, err)
	}
	if err := index.write(layoutDir); err != nil {
		return nil, fmt.Errorf("writing image layout %s: %w", layoutDir, err)
	}

	// The bundle builder pins and checks digests itself (PreserveDigests, and
	// the checks in copyOne), and the finished bundle is signed by the
	// project; source signatures cannot be stored in an OCI layout anyway.
	// So no signature policy is enforced while copying.
	policy, err := signature.NewPolicyContext(&signature.Policy{
		Default: signature.PolicyRequirements{signature.NewPRInsecureAcceptAnything()},
	})
	if err != nil {
		return nil, fmt.Errorf("creating signature policy: %w", err)
	}
	defer policy.Destroy() //nolint:errcheck // nothing to release for this policy

	destSys := &types.SystemContext{
		// Keep uncompressed layers uncompressed when a manifest list is
		// edited (platform filtering); without it copy would compress them.
		OCIAcceptUncompressedLayers: true,
		BigFilesTemporaryDir:        opts.TempDir,
	}
	if opts.SystemContext != nil && opts.SystemContext.BlobInfoCacheDir != "" {
		destSys.BlobInfoCacheDir = opts.SystemContext.BlobInfoCacheDir
	} else {
		// Keep containers/image's blob info cache out of the host's
		// /var/lib/containers or ~/.local/share/containers.
		cacheDir, err := os.MkdirTemp(opts.TempDir, "ferry-blobinfocache-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(cacheDir)
		destSys.BlobInfoCacheDir = cacheDir
	}

	var c *cache
	if opts.CacheDir != "" && slices.ContainsFunc(jobs, func(j job) bool { return isDockerRef(j.ref) }) {
		if c, err = openCache(opts.CacheDir); err != nil {
			return nil, err
		}
	}

	results := make([]Result, 0, len(jobs))
	for _, j := range jobs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		res, err := copyOne(ctx, layoutDir, j, policy, destSys, c, opts)
		if err != nil {
			return nil, fmt.Errorf("copying image %s (%s): %w", j.describe(), j.name, err)
		}
		index.put(descriptorFor(res))
		if err := index.write(layoutDir); err != nil {
			return nil, fmt.Errorf("writing image layout %s: %w", layoutDir, err)
		}
		results = append(results, res)
	}
	return results, nil
}

// prepare validates sources and resolves their names.
func prepare(srcs []Source) ([]job, error) {
	jobs := make([]job, 0, len(srcs))
	byName := map[string]int{}
	for i, s := range srcs {
		ref, err := parseRef(s.Ref)
		if err != nil {
			return nil, fmt.Errorf("source %d: %w", i, err)
		}
		name, err := resolveName(s, ref)
		if err != nil {
			return nil, fmt.Errorf("source %d (%s): %w", i, s.origin(), err)
		}
		if j, dup := byName[name]; dup {
			return nil, fmt.Errorf("sources %d (%s) and %d (%s) are both named %q", j, srcs[j].origin(), i, s.origin(), name)
		}
		byName[name] = i
		var plats []platform
		for _, p := range s.Platforms {
			pp, err := parsePlatform(p)
			if err != nil {
				return nil, fmt.Errorf("source %d (%s): %w", i, s.origin(), err)
			}
			plats = append(plats, pp)
		}
		jobs = append(jobs, job{src: s, ref: ref, name: name, platforms: plats})
	}
	return jobs, nil
}

// resolveName returns the fully qualified name of s, from s.Name or from the
// reference's Docker name.
func resolveName(s Source, ref types.ImageReference) (string, error) {
	var named reference.Named
	if s.Name != "" {
		n, err := reference.ParseNormalizedNamed(s.Name)
		if err != nil {
			return "", fmt.Errorf("invalid image name %q: %w", s.Name, err)
		}
		named = n
	} else {
		named = ref.DockerReference()
		if named == nil {
			return "", errors.New("no Name given and the reference carries no image name")
		}
	}
	_, tagged := named.(reference.Tagged)
	_, digested := named.(reference.Digested)
	if !tagged && !digested {
		return "", fmt.Errorf("image name %q has no tag or digest", named.String())
	}
	name := named.String()
	if err := checkRefName(name); err != nil {
		return "", err
	}
	return name, nil
}

// plan is what copyOne learns from the source before copying.
type plan struct {
	mediaType      string
	originalDigest digest.Digest
	instances      []digest.Digest // selected instances (index sources)
	allInstances   int
	platforms      []platform
	blobs          []types.BlobInfo // configs and layers, unique by digest
}

func (p *plan) filtered() bool { return len(p.instances) < p.allInstances }

// copyOne copies one image. With a cache (c, docker:// sources only), the
// image's blobs are first downloaded into the cache and linked from there
// into layoutDir; copy.Image then finds them present and only writes the
// manifests, read from the cache too.
func copyOne(ctx context.Context, layoutDir string, j job, policy *signature.PolicyContext, destSys *types.SystemContext, c *cache, opts CopyOptions) (Result, error) {
	var src types.ImageSource
	var cached *cachingSource
	if c != nil && isDockerRef(j.ref) {
		cached = newCachingSource(j.ref, opts.SystemContext, c)
		src = cached
	} else {
		s, err := j.ref.NewImageSource(ctx, opts.SystemContext)
		if err != nil {
			return Result{}, err
		}
		src = s
	}
	defer src.Close()

	pl, err := inspectSource(ctx, src, j.platforms)
	if err != nil {
		return Result{}, err
	}
	if dir, ok := ociLayoutDir(j.ref); ok && linkBlobs {
		seedFromLayout(dir, layoutDir, pl.blobs)
	}

	destRef, err := layout.NewReference(layoutDir, j.name)
	if err != nil {
		return Result{}, err
	}
	options := &copy.Options{
		SourceCtx:      opts.SystemContext,
		DestinationCtx: destSys,
		// Signatures cannot be stored in an OCI layout; the bundle is signed
		// as a whole by the project.
		RemoveSignatures:   true,
		PreserveDigests:    true,
		ImageListSelection: copy.CopyAllImages,
	}
	if opts.Parallel > 0 {
		options.MaxParallelDownloads = uint(opts.Parallel)
	}
	if pl.filtered() {
		// Dropping instances rewrites the index, which PreserveDigests
		// forbids; the kept instances are checked below instead.
		options.PreserveDigests = false
		options.ImageListSelection = copy.CopySpecificImages
		options.Instances = pl.instances
		options.SparseManifestListAction = copy.StripSparseManifestList
	}
	total := int64(0)
	for _, b := range pl.blobs {
		total += max(b.Size, 0)
	}
	var stopProgress func(bool)
	if cached != nil {
		parallel := opts.Parallel
		if parallel <= 0 {
			parallel = defaultParallel
		}
		report := countProgress(j.name, total, opts.Progress)
		if err := cached.fill(ctx, layoutDir, pl.blobs, none.NoCache, parallel, report); err != nil {
			return Result{}, err
		}
		stopProgress = func(ok bool) {
			if ok && opts.Progress != nil {
				opts.Progress(j.name, total, total)
			}
		}
	} else {
		stopProgress = startProgress(j.name, total, pl.blobs, opts.Progress, options)
	}

	copied, err := copy.Image(ctx, policy, layoutDestRef{destRef}, openedSourceRef{j.ref, src}, options)
	stopProgress(err == nil)
	if err != nil {
		return Result{}, err
	}

	got, err := manifest.Digest(copied)
	if err != nil {
		return Result{}, err
	}
	if err := checkCopied(pl, copied, got); err != nil {
		return Result{}, err
	}
	return Result{
		Name:           j.name,
		Source:         j.src.origin(),
		Digest:         got,
		OriginalDigest: pl.originalDigest,
		MediaType:      pl.mediaType,
		Size:           int64(len(copied)),
		Platforms:      platformStrings(pl.platforms),
		Synthesized:    j.ref.Transport().Name() == dockerarchive.Transport.Name(),
	}, nil
}

// checkCopied verifies the digest guarantees on what copy.Image wrote.
func checkCopied(pl *plan, copied []byte, got digest.Digest) error {
	if !pl.filtered() {
		if got != pl.originalDigest {
			return fmt.Errorf("digest changed while copying: source %s, written %s", pl.originalDigest, got)
		}
		return nil
	}
	list, err := manifest.ListFromBlob(copied, pl.mediaType)
	if err != nil {
		return fmt.Errorf("parsing written index: %w", err)
	}
	written := list.Instances()
	want := slices.Clone(pl.instances)
	slices.Sort(written)
	slices.Sort(want)
	if !slices.Equal(written, want) {
		return fmt.Errorf("written index lists instances %v, want the source's %v", written, want)
	}
	return nil
}

// inspectSource reads the source's manifest(s), selects instances by
// platform, and lists the blobs to copy.
func inspectSource(ctx context.Context, src types.ImageSource, want []platform) (*plan, error) {
	top, mt, err := readManifest(ctx, src, nil)
	if err != nil {
		return nil, err
	}
	pl := &plan{mediaType: mt}
	if pl.originalDigest, err = manifest.Digest(top); err != nil {
		return nil, err
	}
	seen := map[digest.Digest]bool{}
	addBlobs := func(m manifest.Manifest) {
		infos := []types.BlobInfo{m.ConfigInfo()}
		for _, l := range m.LayerInfos() {
			infos = append(infos, l.BlobInfo)
		}
		for _, b := range infos {
			if b.Digest != "" && !seen[b.Digest] {
				seen[b.Digest] = true
				pl.blobs = append(pl.blobs, b)
			}
		}
	}

	if !manifest.MIMETypeIsMultiImage(mt) {
		m, err := manifest.FromBlob(top, mt)
		if err != nil {
			return nil, fmt.Errorf("parsing manifest: %w", err)
		}
		p, err := configPlatform(ctx, src, m.ConfigInfo())
		if err != nil {
			return nil, err
		}
		if len(want) > 0 && !matchesAny(want, p) {
			return nil, fmt.Errorf("image is for platform %s, not one of %s", p, strings.Join(platformStrings(want), ", "))
		}
		pl.platforms = []platform{p}
		addBlobs(m)
		return pl, nil
	}

	list, err := manifest.ListFromBlob(top, mt)
	if err != nil {
		return nil, fmt.Errorf("parsing index: %w", err)
	}
	all := list.Instances()
	pl.allInstances = len(all)
	matched := make([]bool, len(want))
	for _, d := range all {
		inst, err := list.Instance(d)
		if err != nil {
			return nil, err
		}
		p := platformFromSpec(inst.ReadOnly.Platform)
		keep := len(want) == 0
		for i, w := range want {
			if w.matches(p) {
				keep, matched[i] = true, true
			}
		}
		if keep && !slices.Contains(pl.instances, d) {
			pl.instances = append(pl.instances, d)
			pl.platforms = append(pl.platforms, p)
		}
	}
	for i, ok := range matched {
		if !ok {
			return nil, fmt.Errorf("index %s has no instance for platform %s", pl.originalDigest, want[i])
		}
	}
	for _, d := range pl.instances {
		mb, imt, err := readManifest(ctx, src, &d)
		if err != nil {
			return nil, fmt.Errorf("instance %s: %w", d, err)
		}
		if manifest.MIMETypeIsMultiImage(imt) {
			return nil, fmt.Errorf("instance %s is itself an index, which is not supported", d)
		}
		m, err := manifest.FromBlob(mb, imt)
		if err != nil {
			return nil, fmt.Errorf("instance %s: parsing manifest: %w", d, err)
		}
		addBlobs(m)
	}
	return pl, nil
}

// readManifest returns a manifest with its normalized media type, refusing
// types that cannot be stored without conversion (which would change digests).
func readManifest(ctx context.Context, src types.ImageSource, instance *digest.Digest) ([]byte, string, error) {
	m, mt, err := src.GetManifest(ctx, instance)
	if err != nil {
		return nil, "", fmt.Errorf("reading manifest: %w", err)
	}
	if mt == "" {
		mt = manifest.GuessMIMEType(m)
	}
	mt = manifest.NormalizedMIMEType(mt)
	if !slices.Contains(supportedManifestTypes, mt) {
		return nil, "", fmt.Errorf("manifest type %q cannot be stored without converting it, which would change its digest (supported: %s)",
			mt, strings.Join(supportedManifestTypes, ", "))
	}
	return m, mt, nil
}

// configPlatform reads the platform fields of an image config.
func configPlatform(ctx context.Context, src types.ImageSource, info types.BlobInfo) (platform, error) {
	if err := checkDigest(info.Digest); err != nil {
		return platform{}, fmt.Errorf("config: %w", err)
	}
	rc, _, err := src.GetBlob(ctx, info, none.NoCache)
	if err != nil {
		return platform{}, fmt.Errorf("reading config %s: %w", info.Digest, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxManifestSize+1))
	if err != nil {
		return platform{}, fmt.Errorf("reading config %s: %w", info.Digest, err)
	}
	if len(data) > maxManifestSize {
		return platform{}, fmt.Errorf("config %s is larger than %d bytes", info.Digest, maxManifestSize)
	}
	if got := info.Digest.Algorithm().FromBytes(data); got != info.Digest {
		return platform{}, fmt.Errorf("config %s: content has digest %s", info.Digest, got)
	}
	var cfg struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
		Variant      string `json:"variant"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return platform{}, fmt.Errorf("parsing config %s: %w", info.Digest, err)
	}
	return platform{OS: cfg.OS, Arch: cfg.Architecture, Variant: cfg.Variant}, nil
}

// descriptorFor is the index.json entry of a copied image.
func descriptorFor(r Result) imgspecv1.Descriptor {
	ann := map[string]string{
		imgspecv1.AnnotationRefName: r.Name,
		AnnotationName:              r.Name,
		AnnotationSource:            r.Source,
	}
	if r.OriginalDigest != r.Digest {
		ann[AnnotationOriginalDigest] = r.OriginalDigest.String()
	}
	if len(r.Platforms) > 0 {
		ann[AnnotationPlatforms] = strings.Join(r.Platforms, ",")
	}
	if r.Synthesized {
		ann[AnnotationSynthesized] = "true"
	}
	return imgspecv1.Descriptor{
		MediaType:   r.MediaType,
		Digest:      r.Digest,
		Size:        r.Size,
		Annotations: ann,
	}
}

// describe names the source in errors: its origin, and the digest the
// reference pins when the origin does not show it (a tag locked to a digest).
func (j job) describe() string {
	o := j.src.origin()
	if named := j.ref.DockerReference(); named != nil {
		if d, ok := named.(reference.Digested); ok && !strings.Contains(o, d.Digest().String()) {
			return o + " pinned to " + d.Digest().String()
		}
	}
	return o
}

// origin is the source as named to people.
func (s Source) origin() string {
	if s.Origin != "" {
		return s.Origin
	}
	return s.Ref
}

// withBigFilesDir returns sys (a copy; a new one when nil) with
// BigFilesTemporaryDir set to dir unless it is set already: where
// containers/image unpacks archive sources, /var/tmp by default whatever
// TMPDIR says.
func withBigFilesDir(sys *types.SystemContext, dir string) *types.SystemContext {
	c := &types.SystemContext{}
	if sys != nil {
		*c = *sys
	}
	if c.BigFilesTemporaryDir == "" {
		c.BigFilesTemporaryDir = dir
	}
	return c
}
