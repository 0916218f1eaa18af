package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/signing"
)

// Options configure one build. The CLI only fills this struct.
type Options struct {
	// SpecPath is the bundle spec (YAML).
	SpecPath string
	// Output is the ISO to write. It appears only once complete.
	Output string
	// Signer signs repomd.xml, SHA256SUMS and manifest.json.
	Signer *signing.Signer
	// SourceDateEpoch is the one timestamp of the bundle (manifest created,
	// signatures, ISO dates). Zero: now, and the build is not reproducible.
	SourceDateEpoch time.Time
	// InstallerBinary, when set, is placed at /installer on the ISO.
	InstallerBinary string
	// WorkDir holds the content tree. Empty: a temporary directory next to
	// Output, removed at the end. A given WorkDir is kept.
	WorkDir string
	// KeepWorkDir keeps the temporary work directory (for debugging).
	KeepWorkDir bool
	// Phases, if set, runs only these phases; SkipPhases skips some.
	Phases, SkipPhases []string
	// Progress receives progress bars; nil draws none.
	Progress io.Writer
	// Log receives structured logs; nil discards them.
	Log *slog.Logger
	// Now is the clock a finished bundle's validity is compared with (a
	// warning when it has already ended); nil: time.Now.
	Now func() time.Time
	// Workers bounds parallel hashing and blob copies; 0: one per CPU.
	Workers int
	// Lock is the lock file pinning registry images named by tag; empty:
	// bundle.lock next to the spec, if it exists.
	Lock string
	// Registry configures access to docker:// sources.
	Registry RegistryOptions
	// CacheDir is shared across builds: downloads by digest, source builds
	// and built RPMs. Empty: no cache (source builds then need one).
	CacheDir string
	// Default builds the embedded default spec (a from-source distribution)
	// instead of SpecPath; KubernetesVersion picks its Kubernetes version
	// (empty: the newest supported) and BundleVersion its version.
	Default                          bool
	KubernetesVersion, BundleVersion string
}

// PhaseTiming is how long one phase took.
type PhaseTiming struct {
	Phase   string  `json:"phase"`
	Seconds float64 `json:"seconds"`
}

// Result describes a finished build.
type Result struct {
	Output       string              `json:"output"`
	SHA256       string              `json:"sha256,omitempty"`
	Size         int64               `json:"size"`
	Name         string              `json:"name"`
	Version      string              `json:"version"`
	Created      time.Time           `json:"created"`
	Expires      time.Time           `json:"expires"`
	Signer       string              `json:"signer"`
	Files        int                 `json:"files"`
	ContentBytes int64               `json:"contentBytes"`
	Images       []bundle.Image      `json:"images"`
	Repositories []bundle.Repository `json:"repositories"`
	Phases       []PhaseTiming       `json:"phases"`
	WorkDir      string              `json:"workDir,omitempty"`
}

// build is the state shared by the phases of one run.
type build struct {
	opts Options
	log  *slog.Logger
	spec *bundle.Spec
	pins map[int]string // image index → digest from the lock file
	// distroImages maps the name of an image the distro phase built to its
	// origin (recorded instead of its path in the work directory).
	distroImages map[string]string
	workDir      string
	tree         string // workDir/tree: becomes the ISO's root
	created      time.Time

	// blobsVerified is set by fetch in this run: every file under
	// images/blobs/sha256/ was then written or linked by images.Copy after
	// checking its content against its name, so manifest need not hash it
	// again (check re-hashes everything from the ISO at the end).
	blobsVerified bool

	result  Result
	timings []PhaseTiming
}

// Build runs the selected phases (all by default) and returns the result.
func Build(ctx context.Context, opts Options) (*Result, error) {
	phases, err := selectPhases(opts.Phases, opts.SkipPhases)
	if err != nil {
		return nil, err
	}
	if opts.SpecPath == "" && !opts.Default {
		return nil, errors.New("no spec given")
	}
	if opts.SpecPath != "" && opts.Default {
		return nil, errors.New("give either a spec or --default, not both")
	}
	if opts.Output == "" && containsPhase(phases, "iso", "check") {
		return nil, errors.New("no output path given")
	}
	if opts.Signer == nil && containsPhase(phases, "repodata", "manifest", "sign", "check") {
		return nil, errors.New("no signing key given")
	}
	b := &build{opts: opts, log: opts.Log, created: opts.SourceDateEpoch}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.created.IsZero() {
		b.created = time.Now()
		b.log.Warn("SOURCE_DATE_EPOCH is not set: using the current time, so this build is not reproducible")
	}
	b.created = b.created.UTC().Truncate(time.Second)
	if opts.Output != "" {
		if b.opts.Output, err = filepath.Abs(opts.Output); err != nil {
			return nil, err
		}
	}
	if err := b.prepareWorkDir(); err != nil {
		return nil, err
	}
	defer b.cleanup()
	// Every phase needs the spec; resolve also checks the sources, the others
	// only parse it.
	if !containsPhase(phases, "resolve") {
		if err := b.loadSpec(); err != nil {
			return nil, err
		}
		if err := b.addDistribution(); err != nil {
			return nil, err
		}
	}
	if err := b.runPhases(ctx, phases); err != nil {
		return nil, err
	}
	b.result.Phases = b.timings
	if opts.WorkDir != "" || opts.KeepWorkDir {
		b.result.WorkDir = b.workDir
	}
	return &b.result, nil
}

func containsPhase(phases []Phase, names ...string) bool {
	for _, p := range phases {
		for _, n := range names {
			if p.Name == n {
				return true
			}
		}
	}
	return false
}

func (b *build) prepareWorkDir() error {
	if b.opts.WorkDir != "" {
		b.workDir = b.opts.WorkDir
	} else {
		// Next to the output, so the final rename stays on one file system.
		dir, err := os.MkdirTemp(filepath.Dir(b.opts.Output), ".ferry-build-")
		if err != nil {
			return fmt.Errorf("creating work directory: %w", err)
		}
		b.workDir = dir
	}
	b.tree = filepath.Join(b.workDir, "tree")
	if err := os.MkdirAll(b.tree, 0o755); err != nil {
		return fmt.Errorf("creating work directory: %w", err)
	}
	return nil
}

func (b *build) cleanup() {
	if b.opts.WorkDir != "" || b.opts.KeepWorkDir {
		return
	}
	if err := os.RemoveAll(b.workDir); err != nil {
		b.log.Warn("removing work directory", slog.String("dir", b.workDir), slog.Any("error", err))
	}
}

// resetDir empties and recreates dir, so a phase re-run on a kept work
// directory starts from a clean slate and stays idempotent.
func resetDir(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.MkdirAll(dir, 0o755)
}
