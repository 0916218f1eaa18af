package compose

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/docker/reference"

	"github.com/ferry-k8s/ferry/images"
)

// Image describes one image to compose.
type Image struct {
	// Name is the image's full name with a tag, e.g.
	// "registry.ferry.dev/k8s/kube-apiserver:v1.36.3". It is listed in
	// index.json as org.opencontainers.image.ref.name, so the image is
	// "oci:LAYOUT:NAME" to containers/image, skopeo and images.Copy.
	Name string
	// Packages are RPM files whose payloads form the image's single layer.
	// A path in two packages is fine only when both entries are the same
	// (type, mode, owner, content or target); otherwise it is an error
	// naming both packages.
	Packages []string
	// Include selects payload entries: a pattern is matched with path.Match
	// against the whole path ("/usr/bin/kube-*"), or, ending in '/', selects
	// a directory and everything under it ("/etc/kubernetes/"). Empty: every
	// entry. A pattern that selects nothing is an error. Parents of selected
	// entries come along (with their package metadata when a package lists
	// them).
	Include []string
	// Files are extra entries, e.g. /etc/nsswitch.conf, /tmp (Directory,
	// mode 01777) or /var/lib/etcd owned by the image user. They follow the
	// same rule as package entries for duplicate paths.
	Files []File
	// User is the config's User: "uid[:gid]" (numbers, preferred: the
	// components run as non-root) or "name[:group]", which must then be in
	// the image's /etc/passwd (and /etc/group).
	User string
	// UserName, if set, generates /etc/passwd and /etc/group with root and
	// this user, whose ids come from User (which must then be numeric and
	// not 0). Package files owned by UserName get its uid.
	UserName string
	// Entrypoint is required; an absolute Entrypoint[0] must be an
	// executable file of the image. Cmd are its default arguments.
	Entrypoint, Cmd []string
	// Env entries are KEY=value; PATH defaults to
	// /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin.
	Env []string
	// WorkingDir, if set, is an absolute path.
	WorkingDir string
	// ExposedPorts are "port[/tcp|udp|sctp]" ("6443/tcp"); the protocol
	// defaults to tcp.
	ExposedPorts []string
	// Annotations (org.opencontainers.image.source, version, revision,
	// licenses, title, description, vendor, …) become the manifest's
	// annotations and the config's labels. org.opencontainers.image.created
	// defaults to Created.
	Annotations map[string]string
	// Platform defaults to linux/amd64 when Architecture is empty (OS
	// defaults to linux). Packages must be noarch or of this architecture.
	Platform imgspecv1.Platform
	// Created is the image's creation time and every file's mtime
	// (SOURCE_DATE_EPOCH; truncated to seconds). Zero means the Unix epoch.
	Created time.Time
}

// FileType is the type of an extra File.
type FileType uint8

// File types.
const (
	Regular FileType = iota
	Directory
	Symlink
)

// File is an extra entry of an image.
type File struct {
	Path string // absolute, clean: "/etc/passwd"
	Type FileType
	// Mode holds permission bits, setuid (04000), setgid (02000) and sticky
	// (01000) included. 0 means the default: 0644 for a regular file, 0755
	// for a directory, 0777 for a symlink.
	Mode     uint32
	UID, GID int
	Body     []byte // content of a regular file
	Target   string // target of a symlink
}

// Result describes one composed image.
type Result struct {
	Name     string
	Digest   digest.Digest // of the manifest: the image is Name@Digest
	Size     int64         // of the manifest
	Packages []string      // NEVRAs of the packages, in order
}

// maxID bounds uids and gids (2^31-1, as the OCI runtime spec's uint32
// would allow more but Linux reserves (uid_t)-1).
const maxID = 1<<31 - 1

// defaultPath is the PATH of an image whose Env sets none.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Write composes imgs into the OCI image layout at layoutDir (created if
// missing; an existing layout is added to, and an entry of the same name
// replaced) and returns their manifests' digests, in order.
//
// Every image is checked before any is composed: names (full, tagged,
// unique), packages (files that exist), users, ports, paths. Images are
// composed concurrently (up to GOMAXPROCS at a time); index.json is written
// once at the end, so a failed Write lists none of its images (their blobs
// may remain in blobs/). The first error in image order is returned.
func Write(ctx context.Context, layoutDir string, imgs []Image) ([]Result, error) {
	jobs := make([]*job, len(imgs))
	names := map[string]int{}
	for i := range imgs {
		j, err := prepare(imgs[i])
		if err != nil {
			return nil, fmt.Errorf("image %d (%s): %w", i, imgs[i].Name, err)
		}
		if k, dup := names[j.img.Name]; dup {
			return nil, fmt.Errorf("images %d and %d are both named %q", k, i, j.img.Name)
		}
		names[j.img.Name] = i
		jobs[i] = j
	}
	l, err := images.OpenLayoutDir(layoutDir)
	if err != nil {
		return nil, fmt.Errorf("opening image layout %s: %w", layoutDir, err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make([]Result, len(jobs))
	descs := make([]imgspecv1.Descriptor, len(jobs))
	errs := make([]error, len(jobs))
	sem := make(chan struct{}, max(1, min(runtime.GOMAXPROCS(0), len(jobs))))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			if err := ctx.Err(); err != nil {
				errs[i] = err
				return
			}
			descs[i], results[i], errs[i] = compose(ctx, l, j)
			if errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	if err := firstError(errs); err != nil {
		return nil, err
	}
	if err := l.PutIndex(descs...); err != nil {
		return nil, fmt.Errorf("writing image layout %s: %w", layoutDir, err)
	}
	return results, nil
}

// firstError returns the first error in order that is not a cancellation
// caused by another image's failure (or the cancellation if that is all).
func firstError(errs []error) error {
	var canceled error
	for _, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, context.Canceled):
			if canceled == nil {
				canceled = err
			}
		default:
			return err
		}
	}
	return canceled
}

// job is a checked Image.
type job struct {
	img         Image
	platform    imgspecv1.Platform
	created     time.Time
	uid, gid    int
	numericUser bool
	env         []string
	ports       map[string]struct{}
	annotations map[string]string
}

var userNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// prepare checks an Image and fills in defaults.
func prepare(img Image) (*job, error) {
	j := &job{img: img}
	ref, err := reference.ParseNamed(img.Name)
	if err != nil {
		return nil, fmt.Errorf("name %q: %w (a full name with a tag, e.g. registry.example.com/app:1.0)", img.Name, err)
	}
	if _, ok := ref.(reference.Digested); ok {
		return nil, fmt.Errorf("name %q: has a digest; the digest of a composed image is only known once it is written", img.Name)
	}
	if _, ok := ref.(reference.Tagged); !ok {
		return nil, fmt.Errorf("name %q: needs a tag", img.Name)
	}

	j.platform = img.Platform
	if j.platform.OS == "" {
		j.platform.OS = "linux"
	}
	if j.platform.Architecture == "" {
		j.platform.Architecture = "amd64"
	}
	j.created = time.Unix(0, 0).UTC()
	if !img.Created.IsZero() {
		j.created = img.Created.Truncate(time.Second).UTC()
	}

	if err := j.parseUser(); err != nil {
		return nil, err
	}
	if len(img.Entrypoint) == 0 || img.Entrypoint[0] == "" {
		return nil, errors.New("entrypoint is required")
	}
	for _, a := range slices.Concat(img.Entrypoint, img.Cmd) {
		if strings.IndexByte(a, 0) >= 0 {
			return nil, fmt.Errorf("argument %q contains NUL", a)
		}
	}
	hasPath := false
	for _, e := range img.Env {
		k, _, ok := strings.Cut(e, "=")
		if !ok || k == "" || strings.IndexByte(e, 0) >= 0 {
			return nil, fmt.Errorf("env %q: not KEY=value", e)
		}
		hasPath = hasPath || k == "PATH"
	}
	if !hasPath {
		j.env = append(j.env, defaultPath)
	}
	j.env = append(j.env, img.Env...)
	if wd := img.WorkingDir; wd != "" && (!path.IsAbs(wd) || path.Clean(wd) != wd) {
		return nil, fmt.Errorf("working directory %q: not a clean absolute path", wd)
	}
	for _, p := range img.ExposedPorts {
		port, proto, ok := strings.Cut(p, "/")
		if !ok {
			proto = "tcp"
		}
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 || (proto != "tcp" && proto != "udp" && proto != "sctp") {
			return nil, fmt.Errorf("exposed port %q: not PORT[/tcp|udp|sctp]", p)
		}
		if j.ports == nil {
			j.ports = map[string]struct{}{}
		}
		j.ports[fmt.Sprintf("%d/%s", n, proto)] = struct{}{}
	}
	j.annotations = maps.Clone(img.Annotations)
	for k := range j.annotations {
		if k == "" {
			return nil, errors.New("annotation with an empty key")
		}
	}
	if _, ok := j.annotations[imgspecv1.AnnotationCreated]; !ok {
		if j.annotations == nil {
			j.annotations = map[string]string{}
		}
		j.annotations[imgspecv1.AnnotationCreated] = j.created.Format(time.RFC3339)
	}
	if _, err := newSelector(img.Include); err != nil {
		return nil, err
	}
	for i, f := range img.Files {
		if _, err := fileNode(f); err != nil {
			return nil, fmt.Errorf("files[%d]: %w", i, err)
		}
	}
	for _, p := range img.Packages {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("package: %w", err)
		}
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("package %s: not a regular file", p)
		}
	}
	return j, nil
}

// parseUser checks User and UserName.
func (j *job) parseUser() error {
	u, name := j.img.User, j.img.UserName
	if u == "" {
		if name != "" {
			return fmt.Errorf("user name %q needs a numeric User (uid:gid)", name)
		}
		return nil
	}
	us, gs, hasGroup := strings.Cut(u, ":")
	uid, uerr := strconv.ParseUint(us, 10, 31)
	gid, gerr := uid, error(nil)
	if hasGroup {
		gid, gerr = strconv.ParseUint(gs, 10, 31)
	}
	j.numericUser = uerr == nil && gerr == nil
	if us == "" || (hasGroup && gs == "") || strings.ContainsAny(u, "\x00\n") {
		return fmt.Errorf("user %q: not uid[:gid] or name[:group]", u)
	}
	if name != "" {
		switch {
		case !j.numericUser:
			return fmt.Errorf("user name %q needs a numeric User (uid:gid), not %q", name, u)
		case uid == 0:
			return fmt.Errorf("user name %q: the generated user cannot be uid 0", name)
		case name == "root" || !userNameRE.MatchString(name):
			return fmt.Errorf("user name %q: not a valid user name", name)
		}
	}
	j.uid, j.gid = int(uid), int(gid)
	return nil
}

// compose builds one image's layer, config and manifest.
func compose(ctx context.Context, l *images.LayoutDir, j *job) (imgspecv1.Descriptor, Result, error) {
	desc, res, err := composeImage(ctx, l, j)
	if err != nil {
		return desc, res, fmt.Errorf("composing image %s: %w", j.img.Name, err)
	}
	return desc, res, nil
}

func composeImage(ctx context.Context, l *images.LayoutDir, j *job) (imgspecv1.Descriptor, Result, error) {
	var none imgspecv1.Descriptor
	sp, err := newSpool()
	if err != nil {
		return none, Result{}, err
	}
	defer sp.Close()
	sel, err := newSelector(j.img.Include)
	if err != nil {
		return none, Result{}, err
	}
	b := &builder{job: j, tree: newTree(), spool: sp, sel: sel}
	for _, p := range j.img.Packages {
		if err := b.addPackage(ctx, p); err != nil {
			return none, Result{}, err
		}
	}
	if unused := sel.unused(); len(unused) > 0 {
		return none, Result{}, fmt.Errorf("include patterns %q select nothing in packages %s", unused, strings.Join(j.img.Packages, ", "))
	}
	if err := b.addFiles(); err != nil {
		return none, Result{}, err
	}
	if err := b.tree.addParents(); err != nil {
		return none, Result{}, err
	}
	if err := b.resolveOwners(); err != nil {
		return none, Result{}, err
	}
	if err := b.checkEntrypoint(); err != nil {
		return none, Result{}, err
	}

	layer, diffID, err := writeLayer(ctx, l, b.tree.sorted(), sp, j.created)
	if err != nil {
		return none, Result{}, err
	}
	createdBy := "ferry compose"
	if len(b.nevras) > 0 {
		createdBy += " from " + strings.Join(b.nevras, " ")
	}
	config, err := json.Marshal(imgspecv1.Image{
		Created:  &j.created,
		Platform: j.platform,
		Config: imgspecv1.ImageConfig{
			User:         j.img.User,
			ExposedPorts: j.ports,
			Env:          j.env,
			Entrypoint:   j.img.Entrypoint,
			Cmd:          j.img.Cmd,
			WorkingDir:   j.img.WorkingDir,
			Labels:       j.annotations,
		},
		RootFS:  imgspecv1.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
		History: []imgspecv1.History{{Created: &j.created, CreatedBy: createdBy}},
	})
	if err != nil {
		return none, Result{}, err
	}
	configDesc, err := l.WriteBlobBytes(imgspecv1.MediaTypeImageConfig, config)
	if err != nil {
		return none, Result{}, fmt.Errorf("writing config: %w", err)
	}
	manifest, err := json.Marshal(imgspecv1.Manifest{
		Versioned:   specs.Versioned{SchemaVersion: 2},
		MediaType:   imgspecv1.MediaTypeImageManifest,
		Config:      configDesc,
		Layers:      []imgspecv1.Descriptor{layer},
		Annotations: j.annotations,
	})
	if err != nil {
		return none, Result{}, err
	}
	desc, err := l.WriteBlobBytes(imgspecv1.MediaTypeImageManifest, manifest)
	if err != nil {
		return none, Result{}, fmt.Errorf("writing manifest: %w", err)
	}
	platform := j.platform
	desc.Platform = &platform
	desc.Annotations = map[string]string{imgspecv1.AnnotationRefName: j.img.Name}
	return desc, Result{Name: j.img.Name, Digest: desc.Digest, Size: desc.Size, Packages: b.nevras}, nil
}
