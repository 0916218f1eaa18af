package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"time"

	"github.com/ferry-k8s/ferry/bundle"
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
	ISO               string             `json:"iso"`
	OK                bool               `json:"ok"`
	Name              string             `json:"name,omitempty"`
	Version           string             `json:"version,omitempty"`
	KubernetesVersion string             `json:"kubernetesVersion,omitempty"`
	Created           time.Time          `json:"created,omitzero"`
	Expires           time.Time          `json:"expires,omitzero"`
	Signer            *signing.Signature `json:"signer,omitempty"`
	Files             int                `json:"files"`
	Bytes             int64              `json:"bytes"`
	Problems          []Problem          `json:"problems,omitempty"`
	Manifest          *bundle.Manifest   `json:"-"`
}

// Bundle is an opened ISO whose manifest is signed by a trusted key, parsed
// and not expired. After Open, file contents are not checked yet; after
// OpenVerified they are, and File/NewReader re-check each chunk as it is
// read.
type Bundle struct {
	Path     string
	Image    *iso.Image
	Manifest *bundle.Manifest
	Signer   *signing.Signature
	file     *os.File
	// chunks holds, after OpenVerified, each listed file's chunk sums.
	chunks map[string][][32]byte
	// files indexes the manifest by path (per-request lookups).
	files map[string]bundle.File
}

// Close releases the ISO file.
func (b *Bundle) Close() error { return b.file.Close() }

// Open opens the ISO at path and trusts its manifest if the signature checks
// against ring at now and the bundle has not expired.
func Open(path string, ring *signing.Keyring, now time.Time) (*Bundle, error) {
	b, probs, err := open(path, ring, now)
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
func open(path string, ring *signing.Keyring, now time.Time) (*Bundle, []Problem, error) {
	if ring == nil {
		return nil, nil, errors.New("no keyring given: a bundle is only trusted against the admin's keys")
	}
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
	im, err := iso.Open(f, fi.Size())
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%w: %s is not a readable ISO image: %v", ErrFailed, path, err)
	}
	b := &Bundle{Path: path, Image: im, file: f}
	fail := func(p, format string, args ...any) (*Bundle, []Problem, error) {
		return b, []Problem{{Path: p, Reason: fmt.Sprintf(format, args...)}}, nil
	}
	data, err := readSmall(im, bundle.ManifestPath, bundle.MaxManifestSize)
	if err != nil {
		return fail(bundle.ManifestPath, "%v", err)
	}
	sig, err := readSmall(im, bundle.ManifestSigPath, maxSigSize)
	if errors.Is(err, fs.ErrNotExist) {
		return fail(bundle.ManifestSigPath, "missing: the bundle is not signed")
	}
	if err != nil {
		return fail(bundle.ManifestSigPath, "%v", err)
	}
	signer, err := ring.Verify(bytes.NewReader(data), sig, now)
	if err != nil {
		return fail(bundle.ManifestSigPath, "%v (keyring: %v)", err, ring.Fingerprints())
	}
	b.Signer = signer
	m, err := bundle.ParseManifest(data)
	if err != nil {
		return fail(bundle.ManifestPath, "%v", err)
	}
	b.Manifest = m
	b.files = m.FileMap()
	if m.Expired(now) {
		return fail(bundle.ManifestPath, "the bundle expired on %s (created %s)", m.Expires.Format(time.RFC3339), m.Created.Format(time.RFC3339))
	}
	return b, nil, nil
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
	return io.ReadAll(io.LimitReader(r, limit))
}

// Verify checks everything and reports every failing file. The error is nil
// only when the bundle is fully intact, signed by a key of the keyring and
// not expired; it wraps ErrFailed otherwise (the Report names each problem).
func Verify(ctx context.Context, opts Options) (*Report, error) {
	rep := &Report{ISO: opts.ISO}
	b, probs, err := open(opts.ISO, opts.Keyring, opts.Now)
	if err != nil {
		return rep, err
	}
	defer b.Close()
	if m := b.Manifest; m != nil {
		rep.Manifest, rep.Name, rep.Version, rep.KubernetesVersion = m, m.Name, m.Version, m.KubernetesVersion
		rep.Created, rep.Expires = m.Created, m.Expires
	}
	rep.Signer = b.Signer
	rep.Problems = probs
	// Files are checked even when the bundle expired; not when the manifest
	// itself is untrusted (its list would mean nothing).
	if b.Manifest != nil && b.Signer != nil {
		rep.Problems = append(rep.Problems, checkFiles(ctx, b, opts, rep, false)...)
	}
	sort.SliceStable(rep.Problems, func(i, j int) bool { return rep.Problems[i].Path < rep.Problems[j].Path })
	rep.OK = len(rep.Problems) == 0
	if !rep.OK {
		return rep, failed(opts.ISO, rep.Problems)
	}
	return rep, nil
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
