package builder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/ferry-k8s/ferry/internal/atomicfile"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/images"
	"github.com/ferry-k8s/ferry/internal/progress"
	"github.com/ferry-k8s/ferry/repo"
)

// resolve loads the spec and checks that every local source exists, so a
// typo fails in a second rather than after copying gigabytes.
func (b *build) resolve(ctx context.Context) error {
	if err := b.loadSpec(); err != nil {
		return err
	}
	spec := b.spec
	var errs []error
	for i, im := range spec.Spec.Images {
		if p := localSourcePath(im.Source); p != "" {
			if _, err := os.Stat(spec.Path(p)); err != nil {
				errs = append(errs, &bundle.FieldError{Field: fmt.Sprintf("spec.images[%d].source", i), Err: fmt.Errorf("unreadable source %s: %w", im.Source, err)})
			}
		}
	}
	for i, p := range spec.Spec.Packages {
		if len(p.Names) > 0 {
			continue // checkNamedPackages
		}
		rpms, err := b.specRPMs(p.Directory)
		field := fmt.Sprintf("spec.packages[%d].directory", i)
		switch {
		case err != nil:
			errs = append(errs, &bundle.FieldError{Field: field, Err: err})
		case len(rpms) == 0:
			errs = append(errs, &bundle.FieldError{Field: field, Err: fmt.Errorf("no *.rpm files in %s", spec.Path(p.Directory))})
		}
	}
	if err := b.checkNamedPackages(); err != nil {
		errs = append(errs, err)
	}
	if b.opts.InstallerBinary != "" {
		if fi, err := os.Stat(b.opts.InstallerBinary); err != nil {
			errs = append(errs, fmt.Errorf("installer binary: %w", err))
		} else if !fi.Mode().IsRegular() {
			errs = append(errs, fmt.Errorf("installer binary %s is not a regular file", b.opts.InstallerBinary))
		}
	}
	return errors.Join(errs...)
}

// localSourcePath is the file-system path of a local image source, or "".
func localSourcePath(source string) string {
	transport, ref, _ := strings.Cut(source, ":")
	switch transport {
	case "oci", "oci-archive", "docker-archive", "dir":
		p, _, _ := strings.Cut(ref, ":")
		return p
	}
	return ""
}

// absoluteSource rewrites a local source's path relative to the spec.
func (b *build) absoluteSource(source string) string {
	p := localSourcePath(source)
	if p == "" || filepath.IsAbs(p) {
		return source
	}
	transport, _, _ := strings.Cut(source, ":")
	return transport + ":" + b.spec.Path(p) + strings.TrimPrefix(source, transport+":"+p)
}

// imageCacheDir is the OCI layout of registry images under Options.CacheDir.
const imageCacheDir = "oci"

// fetch copies every image into one OCI layout at images/.
func (b *build) fetch(ctx context.Context) error {
	dir := filepath.Join(b.tree, bundle.ImagesDir)
	if err := resetDir(dir); err != nil {
		return fmt.Errorf("preparing %s: %w", dir, err)
	}
	if len(b.spec.Spec.Images) == 0 {
		return os.Remove(dir)
	}
	srcs := make([]images.Source, len(b.spec.Spec.Images))
	for i, im := range b.spec.Spec.Images {
		name, err := b.spec.ImageName(i)
		if err != nil {
			return err
		}
		platforms := im.Platforms
		if len(platforms) == 0 {
			platforms = b.spec.Spec.Platforms
		}
		ref := b.absoluteSource(im.Source)
		if d, ok := b.pins[i]; ok {
			if ref, err = pinnedRef(im.Source, d); err != nil {
				return err
			}
		}
		srcs[i] = images.Source{Ref: ref, Origin: b.imageOrigin(im), Name: name, Platforms: platforms}
	}
	var mu sync.Mutex
	bars := map[string]*progress.Bar{}
	// Archive sources are unpacked in the work directory (next to the
	// output, or Options.WorkDir): neither containers/image's /var/tmp nor
	// a TMPDIR that may be a small tmpfs.
	tmp := filepath.Join(b.workDir, "tmp")
	if err := resetDir(tmp); err != nil {
		return fmt.Errorf("preparing %s: %w", tmp, err)
	}
	defer os.RemoveAll(tmp)
	opts := images.CopyOptions{Parallel: b.opts.Workers, SystemContext: b.opts.Registry.systemContext(), TempDir: tmp}
	if b.opts.CacheDir != "" {
		// Registry images go through the shared cache's OCI layout: a
		// rebuild of the same lock downloads nothing, and needs no registry.
		opts.CacheDir = filepath.Join(b.opts.CacheDir, imageCacheDir)
	}
	if b.opts.Progress != nil {
		opts.Progress = func(name string, done, total int64) {
			mu.Lock()
			defer mu.Unlock()
			bar := bars[name]
			if bar == nil {
				bar = progress.New(b.opts.Progress, true, shortName(name), total)
				bars[name] = bar
			}
			bar.Set(done, total)
		}
	}
	res, err := images.Copy(ctx, dir, srcs, opts)
	for _, bar := range bars {
		bar.Finish()
	}
	if err != nil {
		return err
	}
	for i, r := range res {
		want := b.spec.Spec.Images[i].Digest
		if d, ok := b.pins[i]; ok {
			want = d
		}
		if want != "" && want != r.Digest.String() && want != r.OriginalDigest.String() {
			return &bundle.FieldError{Field: fmt.Sprintf("spec.images[%d].digest", i),
				Err: fmt.Errorf("source %s has digest %s, the spec pins %s", b.spec.Spec.Images[i].Source, r.Digest, want)}
		}
		b.log.Info("image copied", slog.String("name", r.Name), slog.String("digest", r.Digest.String()))
	}
	b.blobsVerified = true
	return nil
}

func shortName(name string) string {
	if i := strings.LastIndex(name, "/"); i >= 0 {
		return name[i+1:]
	}
	return name
}

// compose places the RPMs of every packages entry in its repository, the
// installer binary, and the bundle's public key.
func (b *build) compose(ctx context.Context) error {
	pkgRoot := filepath.Join(b.tree, bundle.PackagesDir)
	if err := os.RemoveAll(pkgRoot); err != nil {
		return err
	}
	placed := map[string]string{} // destination → source, to name collisions
	// Packages by name first: all are downloaded and verified before any
	// file is placed.
	if err := b.composeNamedPackages(ctx, pkgRoot, placed); err != nil {
		return err
	}
	for i, p := range b.spec.Spec.Packages {
		if len(p.Names) > 0 {
			continue // composeNamedPackages
		}
		repoName := p.Repo
		if repoName == "" {
			repoName = bundle.DefaultRepo
		}
		rpms, err := b.specRPMs(p.Directory)
		if err != nil {
			return &bundle.FieldError{Field: fmt.Sprintf("spec.packages[%d].directory", i), Err: err}
		}
		dest := filepath.Join(pkgRoot, repoName, "Packages")
		if err := os.MkdirAll(dest, 0o755); err != nil {
			return err
		}
		for _, r := range rpms {
			if err := ctx.Err(); err != nil {
				return err
			}
			d := filepath.Join(dest, r.name)
			if prev, dup := placed[d]; dup {
				return fmt.Errorf("spec.packages[%d]: %s and %s would both be %s in repository %q", i, prev, r.entry, r.name, repoName)
			}
			placed[d] = r.entry
			// The file itself, never a link: os.Link does not follow one.
			if err := linkOrCopy(r.path, d, 0o644); err != nil {
				return err
			}
		}
	}
	inst := filepath.Join(b.tree, bundle.InstallerPath)
	if err := os.RemoveAll(inst); err != nil {
		return err
	}
	if b.opts.InstallerBinary != "" {
		if err := copyFile(b.opts.InstallerBinary, inst, 0o755); err != nil {
			return err
		}
	}
	if b.opts.Signer != nil {
		pub, err := b.opts.Signer.PublicKey()
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(b.tree, bundle.PublicKeyPath), pub, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// localRPM is one *.rpm of a spec's package directory.
type localRPM struct {
	entry string // the directory entry, as the spec names it
	name  string // its base name: the file's name in the bundle
	path  string // the file read: entry, or the target of a link
}

// specRPMs lists the *.rpm entries of a packages directory of the spec,
// sorted, refusing rather than dropping what it cannot take (all of it
// named at once):
//
//   - a symbolic link is followed when its target is a regular file
//     inside the spec's directory or the package directory; one that
//     leads elsewhere, dangles or ends at anything else is refused,
//     naming the link and its target;
//   - any other entry that is not a regular file is refused;
//   - a file whose name is not its header's name-version-release.arch.rpm
//     is refused, naming the file and the header's NEVRA (a name that lies
//     about the package would mislead whoever reads the ISO's listing).
//
// Other files are ignored.
func (b *build) specRPMs(directory string) ([]localRPM, error) {
	dir := b.spec.Path(directory)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading package directory: %w", err)
	}
	// Where link targets may be: the spec's directory and the package
	// directory, both with their own links resolved.
	var roots []string
	for _, d := range []string{b.spec.Dir, dir} {
		if r, err := filepath.EvalSymlinks(d); err == nil {
			if r, err = filepath.Abs(r); err == nil {
				roots = append(roots, r)
			}
		}
	}
	var out []localRPM
	var errs []error
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".rpm") {
			continue
		}
		r := localRPM{entry: filepath.Join(dir, e.Name()), name: e.Name()}
		r.path = r.entry
		switch t := e.Type(); {
		case t&fs.ModeSymlink != 0:
			p, err := rpmLinkTarget(r.entry, roots)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			r.path = p
		case !t.IsRegular():
			errs = append(errs, fmt.Errorf("%s is not a regular file (%s): only RPM files and links to them are taken", r.entry, t))
			continue
		}
		pkg, err := repo.ReadPackageHeader(r.path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if want := pkg.FileName(); r.name != want {
			errs = append(errs, fmt.Errorf("%s holds the package %s: its file name must be %s", r.entry, pkg.NEVRA(), want))
			continue
		}
		out = append(out, r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// rpmLinkTarget resolves the symbolic link p, which must lead to a regular
// file below one of roots.
func rpmLinkTarget(p string, roots []string) (string, error) {
	target, err := os.Readlink(p)
	if err != nil {
		return "", fmt.Errorf("reading link %s: %w", p, err)
	}
	resolved, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("link %s -> %s: %w", p, target, err)
	}
	if resolved, err = filepath.Abs(resolved); err != nil {
		return "", err
	}
	inside := false
	for _, root := range roots {
		if rel, err := filepath.Rel(root, resolved); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			inside = true
		}
	}
	if !inside {
		return "", fmt.Errorf("link %s -> %s leads to %s, outside the spec's directory: only links within it are followed", p, target, resolved)
	}
	fi, err := os.Stat(resolved)
	if err != nil {
		return "", fmt.Errorf("link %s -> %s: %w", p, target, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("link %s -> %s leads to %s, not a regular file", p, target, resolved)
	}
	return resolved, nil
}

// listRPMs lists dir/*.rpm of the content tree (where compose placed
// regular files only), sorted; other files are ignored.
func listRPMs(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading package directory: %w", err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".rpm") && e.Type().IsRegular() {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}

// repodata writes repodata for every repository under packages/ and signs
// each repomd.xml.
func (b *build) repodata(ctx context.Context) error {
	repos, err := b.repoDirs()
	if err != nil {
		return err
	}
	for _, dir := range repos {
		if err := ctx.Err(); err != nil {
			return err
		}
		// repodata/ and any temporary .repodata-* an interrupted run left.
		stale, _ := filepath.Glob(filepath.Join(dir, ".repodata-*"))
		for _, p := range append(stale, filepath.Join(dir, "repodata")) {
			if err := os.RemoveAll(p); err != nil {
				return err
			}
		}
		rpms, err := listRPMs(filepath.Join(dir, "Packages"))
		if err != nil {
			return err
		}
		pkgs := make([]*repo.Package, 0, len(rpms))
		for _, p := range rpms {
			pkg, err := repo.ReadPackage(p, "Packages/"+filepath.Base(p))
			if err != nil {
				return err
			}
			pkg.FileTime = b.created.Unix()
			pkgs = append(pkgs, pkg)
		}
		if _, err := repo.WriteRepodata(dir, pkgs, repo.RepodataOptions{Revision: b.created.Unix()}); err != nil {
			return fmt.Errorf("writing repodata of %s: %w", dir, err)
		}
		md := filepath.Join(dir, "repodata", "repomd.xml")
		if err := b.signFile(md, md+".asc"); err != nil {
			return err
		}
		b.log.Info("repository written", slog.String("repo", filepath.Base(dir)), slog.Int("packages", len(pkgs)))
	}
	return nil
}

func (b *build) repoDirs() ([]string, error) {
	root := filepath.Join(b.tree, bundle.PackagesDir)
	ents, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, filepath.Join(root, e.Name()))
		}
	}
	return out, nil
}

// signFile writes an armored detached signature of src to dst.
func (b *build) signFile(src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	var sig bytes.Buffer
	if err := b.opts.Signer.Sign(&sig, f, b.created, true); err != nil {
		return fmt.Errorf("signing %s: %w", src, err)
	}
	return atomicfile.WriteFile(dst, sig.Bytes(), 0o644)
}

// reservedTop are the files the manifest phase writes about the others.
var reservedTop = map[string]bool{
	bundle.ManifestPath: true, bundle.ManifestSigPath: true,
	bundle.SumsPath: true, bundle.SumsSigPath: true,
}

// manifest hashes every file of the tree in parallel and writes SHA256SUMS,
// its signature, and manifest.json listing all of them.
func (b *build) manifest(ctx context.Context) error {
	for name := range reservedTop {
		if err := os.RemoveAll(filepath.Join(b.tree, name)); err != nil {
			return err
		}
	}
	jobs, err := treeJobs(b.tree)
	if err != nil {
		return err
	}
	var total int64
	for _, j := range jobs {
		total += j.Size
	}
	files := make([]bundle.File, 0, len(jobs)+2)
	if b.blobsVerified {
		var rest []bundle.HashJob
		for _, j := range jobs {
			if sum, ok := contentAddress(j.Path); ok {
				files = append(files, bundle.File{Path: j.Path, Size: j.Size, SHA256: sum})
				total -= j.Size
				continue
			}
			rest = append(rest, j)
		}
		jobs = rest
	}
	bar := progress.New(b.opts.Progress, b.opts.Progress != nil, "hashing", total)
	results := bundle.HashFiles(ctx, jobs, b.opts.Workers, bar.Add)
	bar.Finish()
	for i, r := range results {
		if r.Err != nil {
			return r.Err
		}
		if r.Size != jobs[i].Size {
			return fmt.Errorf("%s changed size while hashing (%d → %d bytes)", r.Path, jobs[i].Size, r.Size)
		}
		files = append(files, bundle.File{Path: r.Path, Size: r.Size, SHA256: r.SHA256})
	}
	sums := bundle.FormatSums(files)
	if err := atomicfile.WriteFile(filepath.Join(b.tree, bundle.SumsPath), sums, 0o644); err != nil {
		return err
	}
	if err := b.signFile(filepath.Join(b.tree, bundle.SumsPath), filepath.Join(b.tree, bundle.SumsSigPath)); err != nil {
		return err
	}
	for _, name := range []string{bundle.SumsPath, bundle.SumsSigPath} {
		f, err := hashSmallFile(filepath.Join(b.tree, name), name)
		if err != nil {
			return err
		}
		files = append(files, f)
	}
	m, err := b.buildManifest(files)
	if err != nil {
		return err
	}
	data, err := m.Marshal()
	if err != nil {
		return err
	}
	// The manifest we write must be one an installer accepts.
	if _, err := bundle.ParseManifest(data); err != nil {
		return fmt.Errorf("generated manifest is invalid (a bug): %w", err)
	}

	return atomicfile.WriteFile(filepath.Join(b.tree, bundle.ManifestPath), data, 0o644)
}

// contentAddress returns the sha256 that an OCI blob path names.
func contentAddress(p string) (string, bool) {
	sum, ok := strings.CutPrefix(p, bundle.ImagesDir+"/blobs/sha256/")
	if !ok || len(sum) != 64 || strings.Trim(sum, "0123456789abcdef") != "" {
		return "", false
	}
	return sum, true
}

func (b *build) buildManifest(files []bundle.File) (*bundle.Manifest, error) {
	validity, err := b.spec.Spec.Validity()
	if err != nil {
		return nil, err
	}
	m := &bundle.Manifest{
		SchemaVersion:     bundle.ManifestSchemaVersion,
		Product:           bundle.Product,
		Name:              b.spec.Metadata.Name,
		Version:           b.spec.Metadata.Version,
		KubernetesVersion: b.spec.Spec.KubernetesVersion,
		Created:           b.created,
		Expires:           b.created.Add(validity),
		MinUpgradeFrom:    b.spec.Spec.MinUpgradeFrom,
		Files:             files,
	}
	if _, err := os.Stat(filepath.Join(b.tree, bundle.ImagesDir, "index.json")); err == nil {
		// The rules the content service serves by (images.CheckLayout),
		// judged on the files about to be signed: a bundle that would be
		// refused on the node is not built.
		byPath := make(map[string]bundle.File, len(files))
		for _, f := range files {
			byPath[f.Path] = f
		}
		layout, err := images.CheckLayout(os.DirFS(b.tree), bundle.ImagesDir, func(name string) (int64, string, bool) {
			f, ok := byPath[name]
			return f.Size, f.SHA256, ok
		})
		if err != nil {
			return nil, fmt.Errorf("the bundle's images break the rules installers enforce: %w", err)
		}
		for _, im := range layout.Images {
			m.Images = append(m.Images, bundle.Image{Name: im.Name, Digest: im.Digest.String(), MediaType: im.MediaType, Platforms: im.Platforms, Source: im.Source})
		}
	}
	repos, err := b.repoDirs()
	if err != nil {
		return nil, err
	}
	for _, dir := range repos {
		rpms, err := listRPMs(filepath.Join(dir, "Packages"))
		if err != nil {
			return nil, err
		}
		name := filepath.Base(dir)
		m.Repositories = append(m.Repositories, bundle.Repository{Name: name, Path: bundle.PackagesDir + "/" + name, Packages: len(rpms)})
	}
	return m, nil
}

// treeJobs lists every regular file below root as hash jobs with
// slash-separated relative paths. Anything else (symlinks, devices) is an
// error: the bundle holds plain files only.
func treeJobs(root string) ([]bundle.HashJob, error) {
	var jobs []bundle.HashJob
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file (%s): bundles hold plain files only", p, d.Type())
		}
		if reservedTop[rel] {
			return nil
		}
		if err := bundle.CheckPath(rel); err != nil {
			return fmt.Errorf("file %s: %w", p, err)
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		jobs = append(jobs, bundle.HashJob{Path: rel, Size: fi.Size(), Open: func() (io.ReadCloser, error) { return os.Open(p) }})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the content tree: %w", err)
	}
	return jobs, nil
}

func hashSmallFile(p, rel string) (bundle.File, error) {
	res := bundle.HashFiles(context.Background(), []bundle.HashJob{{Path: rel, Open: func() (io.ReadCloser, error) { return os.Open(p) }}}, 1, nil)[0]
	return bundle.File{Path: rel, Size: res.Size, SHA256: res.SHA256}, res.Err
}

// sign writes manifest.json.asc.
func (b *build) sign(ctx context.Context) error {
	return b.signFile(filepath.Join(b.tree, bundle.ManifestPath), filepath.Join(b.tree, bundle.ManifestSigPath))
}
