package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/bundle/validity"
	"github.com/ferry-k8s/ferry/images"
	"github.com/ferry-k8s/ferry/iso"
	"github.com/ferry-k8s/ferry/signing"
)

// ErrFailed is wrapped by every verification failure.
var ErrFailed = errors.New("bundle verification failed")

// maxSigSize bounds manifest.json.asc.
const maxSigSize = 1 << 20

// Options configure a verification.
type Options struct {
	ISO     string
	Keyring *signing.Keyring
	// Now is the time expiry is checked at; zero: the current time.
	Now time.Time
	// Installed judges a bundle that is already imported on this node:
	// its expiry is reported (Bundle.Expired, a warning), never refused,
	// and a signature made while its key was valid stays good after the
	// key expires. Freeze protection is for what is newly imported,
	// joined or upgraded to; it never withdraws what an admin installed.
	Installed bool
	// ValidityFile is a signed validity statement (bundle/validity) that
	// extends the bundle's expiry; empty: the statement beside the ISO
	// (validity.Beside), if there is one.
	ValidityFile string
	// Workers hash files in parallel; 0: one per CPU.
	Workers int
	// Progress, if set, is called with bytes hashed (concurrently).
	Progress func(n int64)
	// TotalBytes, if set, is called once with the bytes about to be hashed.
	TotalBytes func(n int64)
}

// Problem is one failed check, named by the file it concerns.
type Problem struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// Report is the outcome of Verify.
type Report struct {
	ISO               string    `json:"iso"`
	OK                bool      `json:"ok"`
	Name              string    `json:"name,omitempty"`
	Version           string    `json:"version,omitempty"`
	KubernetesVersion string    `json:"kubernetesVersion,omitempty"`
	Created           time.Time `json:"created,omitzero"`
	Expires           time.Time `json:"expires,omitzero"`
	// ValidUntil is Expires, or the expiry of the validity statement
	// that extends it (Extension).
	ValidUntil time.Time          `json:"validUntil,omitzero"`
	Extension  *Extension         `json:"extension,omitempty"`
	Expired    bool               `json:"expired"`
	Warnings   []string           `json:"warnings,omitempty"`
	Signer     *signing.Signature `json:"signer,omitempty"`
	Files      int                `json:"files"`
	Bytes      int64              `json:"bytes"`
	Problems   []Problem          `json:"problems,omitempty"`
	Manifest   *bundle.Manifest   `json:"-"`
}

// Extension describes the validity statement a bundle was checked with.
type Extension struct {
	Path    string            `json:"path"`
	Issued  time.Time         `json:"issued"`
	Expires time.Time         `json:"expires"`
	Signer  signing.Signature `json:"signer"`
}

// WarnBefore is how long before its end of validity a bundle is reported
// as running out (installer verify, status, logs).
const WarnBefore = 30 * 24 * time.Hour

// Bundle is an opened ISO whose manifest is signed by a trusted key, parsed
// and not expired (or, with Options.Installed, expired and reported).
// After Open, file contents are not checked yet; after OpenVerified they
// are, and File/NewReader re-check each chunk as it is read.
type Bundle struct {
	Path     string
	Image    *iso.Image
	Manifest *bundle.Manifest
	Signer   *signing.Signature
	// ManifestSHA256 is the sha256 of the signed manifest.json: what
	// identifies the bundle's content (validity statements bind to it).
	ManifestSHA256 string
	// Validity is the statement that extends the bundle, if one was
	// found and checked; ValidUntil the bundle's effective end of
	// validity, and Expired whether it has passed at the time checked.
	Validity   *validity.Verified
	ValidityAt string // the statement's path
	ValidUntil time.Time
	Expired    bool
	// Warnings are what the check found worth saying without refusing:
	// expiry near or passed (Installed), a key expired since it signed,
	// a statement beside an installed ISO that does not hold.
	Warnings []string
	file     *os.File
	// chunks holds, after OpenVerified, each listed file's chunk sums.
	chunks map[string][][32]byte
	// files indexes the manifest by path (per-request lookups).
	files map[string]bundle.File
}

// Close releases the ISO file.
func (b *Bundle) Close() error { return b.file.Close() }

// Open opens the ISO at path and trusts its manifest if the signature checks
// against ring at opts.Now and the bundle has not expired (see
// Options.Installed and Options.ValidityFile). Only opts' Now, Installed
// and ValidityFile are used.
func Open(path string, ring *signing.Keyring, opts Options) (*Bundle, error) {
	b, probs, err := open(path, ring, opts)
	if err != nil {
		return nil, err
	}
	if len(probs) > 0 {
		b.Close()
		return nil, failed(path, probs)
	}
	return b, nil
}

func failed(path string, probs []Problem) error {
	msg := ""
	for i, p := range probs {
		if i == 3 {
			msg += fmt.Sprintf("; and %d more", len(probs)-3)
			break
		}
		if i > 0 {
			msg += "; "
		}
		msg += p.Path + ": " + p.Reason
	}
	return fmt.Errorf("%w: %s: %s", ErrFailed, path, msg)
}

// open returns the bundle, the problems that make it untrustworthy, or an
// error when the ISO cannot be read at all.
func open(path string, ring *signing.Keyring, opts Options) (*Bundle, []Problem, error) {
	if ring == nil {
		return nil, nil, errors.New("no keyring given: a bundle is only trusted against the admin's keys")
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("opening bundle: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("opening bundle: %w", err)
	}
	// Only the root's manifest and signature are read before the signature
	// is checked: what an untrusted image can make us hold is bounded by
	// those two files, not by how many entries it claims.
	root, err := iso.OpenRoot(f, fi.Size(), bundle.ManifestPath, bundle.ManifestSigPath)
	if err != nil {
		f.Close()
		if errors.Is(err, iso.ErrInconsistent) {
			return nil, nil, fmt.Errorf("%w: %s: %v", ErrFailed, path, err)
		}
		return nil, nil, fmt.Errorf("%w: %s is not a readable ISO image: %v", ErrFailed, path, err)
	}
	b := &Bundle{Path: path, Image: root, file: f}
	fail := func(p, format string, args ...any) (*Bundle, []Problem, error) {
		return b, []Problem{{Path: p, Reason: fmt.Sprintf(format, args...)}}, nil
	}
	data, err := readSmall(root, bundle.ManifestPath, bundle.MaxManifestSize)
	if err != nil {
		return fail(bundle.ManifestPath, "%v", err)
	}
	sig, err := readSmall(root, bundle.ManifestSigPath, maxSigSize)
	if errors.Is(err, fs.ErrNotExist) {
		return fail(bundle.ManifestSigPath, "missing: the bundle is not signed")
	}
	if err != nil {
		return fail(bundle.ManifestSigPath, "%v", err)
	}
	var signer *signing.Signature
	if opts.Installed {
		var since bool
		signer, since, err = ring.VerifyInstalled(data, sig, now)
		if since {
			b.Warnings = append(b.Warnings, fmt.Sprintf("the signing key %s has expired since it signed the bundle on %s", signer.Fingerprint, signer.Created.UTC().Format(time.RFC3339)))
		}
	} else {
		signer, err = ring.Verify(bytes.NewReader(data), sig, now)
	}
	if err != nil {
		return fail(bundle.ManifestSigPath, "%v (keyring: %v)", err, ring.Fingerprints())
	}
	b.Signer = signer
	m, err := bundle.ParseManifest(data)
	if err != nil {
		return fail(bundle.ManifestPath, "%v", err)
	}
	// Now every tree a reader might use must agree (iso.OpenStrict), read
	// with no more entries than the signed manifest lists.
	im, err := iso.OpenStrict(f, fi.Size(), iso.StrictOptions{MaxEntries: entryLimit(m)})
	if err != nil {
		var se *iso.StrictError
		if errors.As(err, &se) && se.Path != "" {
			return fail(strings.TrimPrefix(se.Path, "/"), "%v", err)
		}
		return fail(imageProblem, "%v", err)
	}
	if err := sameFile(root, im, bundle.ManifestPath); err != nil {
		return fail(bundle.ManifestPath, "%v", err)
	}
	b.Image = im
	sum := sha256.Sum256(data)
	b.Manifest, b.ManifestSHA256 = m, hex.EncodeToString(sum[:])
	b.files = m.FileMap()
	if p := b.checkValidity(ring, opts, now); p != nil {
		return b, []Problem{*p}, nil
	}
	return b, nil, nil
}

// checkValidity finds and checks the validity statement, sets ValidUntil
// and Expired, and returns the problem that makes the bundle unusable, if
// any: expired without an extension, or a statement that does not hold
// (for a new import; an installed bundle only gets a warning).
func (b *Bundle) checkValidity(ring *signing.Keyring, opts Options, now time.Time) *Problem {
	m := b.Manifest
	b.ValidUntil = m.Expires
	p := opts.ValidityFile
	if p == "" {
		if _, err := os.Stat(validity.Beside(b.Path)); err == nil {
			p = validity.Beside(b.Path)
		}
	}
	if p != "" {
		data, err := validity.ReadFile(p)
		var v *validity.Verified
		if err == nil {
			v, err = validity.Verify(data, ring, now, b.ManifestSHA256)
		}
		switch {
		case err != nil && opts.Installed:
			b.Warnings = append(b.Warnings, fmt.Sprintf("validity statement %s not used: %v", p, err))
		case err != nil:
			return &Problem{Path: p, Reason: err.Error()}
		default:
			// The publisher's latest word, even when it is shorter
			// than the manifest's own expiry.
			b.Validity, b.ValidityAt, b.ValidUntil = v, p, v.Expires
		}
	}
	b.Expired = !now.Before(b.ValidUntil)
	switch {
	case b.Expired && !opts.Installed:
		ext := "extend it with a validity statement (builder extend, then --validity) or use a newer bundle"
		if b.Validity != nil {
			return &Problem{Path: bundle.ManifestPath, Reason: fmt.Sprintf("the bundle's validity, extended by %s, ended on %s (created %s): %s", b.ValidityAt, b.ValidUntil.Format(time.RFC3339), m.Created.Format(time.RFC3339), ext)}
		}
		return &Problem{Path: bundle.ManifestPath, Reason: fmt.Sprintf("the bundle expired on %s (created %s): %s", m.Expires.Format(time.RFC3339), m.Created.Format(time.RFC3339), ext)}
	case b.Expired:
		b.Warnings = append(b.Warnings, fmt.Sprintf("the bundle's validity ended on %s: it is served and converged as installed, but no node can newly import, join or upgrade to it until it is extended (builder extend, installer bundle extend)", b.ValidUntil.Format(time.RFC3339)))
	case b.ValidUntil.Sub(now) < WarnBefore:
		b.Warnings = append(b.Warnings, fmt.Sprintf("the bundle's validity ends in %d days, on %s: extend it (builder extend) or roll out a newer bundle", int(b.ValidUntil.Sub(now).Hours()/24), b.ValidUntil.Format(time.RFC3339)))
	}
	return nil
}

// imageProblem is the Problem path of a fault of the image as a whole.
const imageProblem = "(iso image)"

// entryMargin is how many entries an image may hold beyond the manifest's
// files and their directories (manifest.json, its signature, and room for
// an empty directory or two).
const entryMargin = 64

// entryLimit is the most entries a bundle image may have per tree: the
// manifest's files, the directories they imply, and entryMargin.
func entryLimit(m *bundle.Manifest) int {
	dirs := map[string]bool{}
	for _, f := range m.Files {
		for d := path.Dir(f.Path); d != "." && d != "/" && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	return len(m.Files) + len(dirs) + entryMargin
}

// sameFile requires the full read of the image to find p where the root
// read found it (the bytes whose signature was checked).
func sameFile(root, full *iso.Image, p string) error {
	a, err := root.Stat(p)
	if err != nil {
		return err
	}
	b, err := full.Stat(p)
	if err != nil {
		return err
	}
	if a.Size != b.Size || len(a.Extents) != len(b.Extents) {
		return fmt.Errorf("changed between two reads of the image")
	}
	for i := range a.Extents {
		if a.Extents[i] != b.Extents[i] {
			return fmt.Errorf("changed between two reads of the image")
		}
	}
	return nil
}

// readSmall reads a whole file of the image, refusing more than limit bytes.
func readSmall(im *iso.Image, p string, limit int64) ([]byte, error) {
	fi, err := im.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("missing: %w", fs.ErrNotExist)
		}
		return nil, err
	}
	if !fi.Mode.IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", fi.Mode.Type())
	}
	if fi.Size > limit {
		return nil, fmt.Errorf("%d bytes, more than the limit of %d", fi.Size, limit)
	}
	r, err := im.Open(p)
	if err != nil {
		return nil, err
	}
	// One buffer of the file's size: its extents lie inside the image and
	// do not overlap (iso.OpenRoot), so the size is no larger than the
	// image, and a read that falls short fails.
	b := make([]byte, fi.Size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("reading: %w", err)
	}
	return b, nil
}

// Verify checks everything and reports every failing file. The error is nil
// only when the bundle is fully intact, signed by a key of the keyring and
// not expired; it wraps ErrFailed otherwise (the Report names each problem).
func Verify(ctx context.Context, opts Options) (*Report, error) {
	rep := &Report{ISO: opts.ISO}
	b, probs, err := open(opts.ISO, opts.Keyring, opts)
	if err != nil {
		return rep, err
	}
	defer b.Close()
	b.fillReport(rep)
	rep.Problems = probs
	// Files are checked even when the bundle expired; not when the manifest
	// itself is untrusted (its list would mean nothing).
	if b.Manifest != nil && b.Signer != nil {
		fileProbs := checkFiles(ctx, b, opts, rep, false)
		if len(fileProbs) == 0 {
			// Every file is the signed one: judge the images on them.
			fileProbs = b.checkImages(b.Image.FS())
		}
		rep.Problems = append(rep.Problems, fileProbs...)
	}
	sort.SliceStable(rep.Problems, func(i, j int) bool { return rep.Problems[i].Path < rep.Problems[j].Path })
	rep.OK = len(rep.Problems) == 0
	if !rep.OK {
		return rep, failed(opts.ISO, rep.Problems)
	}
	return rep, nil
}

// fillReport copies what the bundle's opening found into rep.
func (b *Bundle) fillReport(rep *Report) {
	if m := b.Manifest; m != nil {
		rep.Manifest, rep.Name, rep.Version, rep.KubernetesVersion = m, m.Name, m.Version, m.KubernetesVersion
		rep.Created, rep.Expires, rep.ValidUntil, rep.Expired = m.Created, m.Expires, b.ValidUntil, b.Expired
	}
	if v := b.Validity; v != nil {
		rep.Extension = &Extension{Path: b.ValidityAt, Issued: v.Issued, Expires: v.Expires, Signer: *v.Signer}
	}
	rep.Signer, rep.Warnings = b.Signer, b.Warnings
}

// checkImages applies images.CheckLayout, the rules the content service
// serves by, to the bundle's image layout (if it has one) read through
// fsys, whose files must be verified already.
func (b *Bundle) checkImages(fsys fs.FS) []Problem {
	index := path.Join(bundle.ImagesDir, imgspecv1.ImageIndexFile)
	if _, listed := b.files[index]; !listed && len(b.Manifest.Images) == 0 {
		return nil
	}
	_, err := images.CheckLayout(fsys, bundle.ImagesDir, func(name string) (int64, string, bool) {
		f, ok := b.files[name]
		return f.Size, f.SHA256, ok
	})
	if err != nil {
		return []Problem{{Path: index, Reason: err.Error()}}
	}
	return nil
}

// checkFiles checks listed == present, sizes and digests. With chunks, it
// also records every file's chunk sums in b for verified reading.
func checkFiles(ctx context.Context, b *Bundle, opts Options, rep *Report, chunks bool) []Problem {
	var probs []Problem
	listed := b.files
	present := map[string]iso.FileInfo{}
	for _, fi := range b.Image.Files() {
		switch {
		case fi.Mode&fs.ModeSymlink != 0:
			probs = append(probs, Problem{fi.Path, fmt.Sprintf("symbolic link to %q: bundles hold no links", fi.Target)})
		case fi.Mode.IsDir():
		case !fi.Mode.IsRegular():
			probs = append(probs, Problem{fi.Path, fmt.Sprintf("not a regular file (%s)", fi.Mode.Type())})
		case fi.Path == bundle.ManifestPath || fi.Path == bundle.ManifestSigPath:
		default:
			present[fi.Path] = fi
			if _, ok := listed[fi.Path]; !ok {
				probs = append(probs, Problem{fi.Path, "not listed in the manifest"})
			}
		}
	}
	var jobs []bundle.HashJob
	var total int64
	for _, f := range b.Manifest.Files {
		fi, ok := present[f.Path]
		switch {
		case !ok:
			probs = append(probs, Problem{f.Path, "listed in the manifest but missing from the ISO"})
		case fi.Size != f.Size:
			probs = append(probs, Problem{f.Path, fmt.Sprintf("size is %d bytes, the manifest says %d", fi.Size, f.Size)})
		default:
			jobs = append(jobs, bundle.HashJob{Path: f.Path, Size: f.Size, Chunks: chunks, Open: func() (io.ReadCloser, error) {
				r, err := b.Image.Open(f.Path)
				return io.NopCloser(r), err
			}})
			total += f.Size
		}
	}
	if opts.TotalBytes != nil {
		opts.TotalBytes(total)
	}
	if chunks {
		b.chunks = make(map[string][][32]byte, len(jobs))
	}
	for _, r := range bundle.HashFiles(ctx, jobs, opts.Workers, opts.Progress) {
		rep.Files++
		rep.Bytes += r.Size
		want := listed[r.Path]
		switch {
		case r.Err != nil:
			probs = append(probs, Problem{r.Path, r.Err.Error()})
		case r.SHA256 != want.SHA256:
			probs = append(probs, Problem{r.Path, fmt.Sprintf("sha256 is %s, the manifest says %s", r.SHA256, want.SHA256)})
		case chunks:
			b.chunks[r.Path] = r.Chunks
		}
	}
	return probs
}
