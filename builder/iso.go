package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/ferry-k8s/ferry/internal/atomicfile"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/bundle/verify"
	"github.com/ferry-k8s/ferry/internal/progress"
	"github.com/ferry-k8s/ferry/iso"
	"github.com/ferry-k8s/ferry/signing"
)

// writeISO writes the tree as an ISO image to a temporary file next to the
// output and renames it into place once synced: the output path never holds
// a partial image.
func (b *build) writeISO(ctx context.Context) error {
	bar := progress.New(b.opts.Progress, b.opts.Progress != nil, "writing ISO", 0)
	opts := iso.WriteOptions{
		VolumeID:  volumeID(b.spec.Metadata.Name, b.spec.Metadata.Version),
		Publisher: "Ferry",
		ModTime:   b.created,
		Progress:  bar.Set,
	}
	var sum string
	err := atomicfile.Write(b.opts.Output, 0o644, func(w *os.File) error {
		h := newAsyncHasher(sha256.New())
		cw := &countingWriter{w: io.MultiWriter(w, h), ctx: ctx}
		entries, err := isoEntries(b.tree)
		if err != nil {
			return err
		}
		err = iso.Write(cw, entries, opts)
		sum = h.Close()
		b.result.Size = cw.n
		return err
	})
	bar.Finish()
	if err != nil {
		return fmt.Errorf("writing %s: %w", b.opts.Output, err)
	}
	b.result.Output, b.result.SHA256 = b.opts.Output, sum
	b.log.Info("ISO written", slog.String("path", b.opts.Output), slog.Int64("bytes", b.result.Size), slog.String("sha256", sum))
	return nil
}

// isoEntries lists the tree for the ISO writer. Modes are decided here, not
// taken from the host: RPMs and blobs are hard links to the inputs, whose
// modes are not part of the bundle; only the installer is executable.
func isoEntries(tree string) ([]iso.Entry, error) {
	jobs, err := treeJobs(tree)
	if err != nil {
		return nil, err
	}
	entries := make([]iso.Entry, 0, len(jobs)+len(reservedTop))
	for _, j := range jobs {
		entries = append(entries, iso.Entry{Path: j.Path, Source: filepath.Join(tree, filepath.FromSlash(j.Path)), Size: j.Size, Executable: j.Path == bundle.InstallerPath})
	}
	for name := range reservedTop {
		fi, err := os.Stat(filepath.Join(tree, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		entries = append(entries, iso.Entry{Path: name, Source: filepath.Join(tree, name), Size: fi.Size()})
	}
	return entries, nil
}

var volumeUnsafe = regexp.MustCompile(`[^A-Z0-9_]`)

// volumeID is the ISO volume label: FERRY_<NAME>_<VERSION>, as far as 32
// d-characters allow.
func volumeID(name, version string) string {
	id := volumeUnsafe.ReplaceAllString(strings.ToUpper("FERRY_"+name+"_"+version), "_")
	return id[:min(len(id), 32)]
}

// countingWriter counts bytes and stops a long write when ctx ends.
type countingWriter struct {
	w   io.Writer
	n   int64
	ctx context.Context
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// asyncHasher hashes on its own goroutine, so hashing the ISO costs the
// writer no time on a machine with a second core.
type asyncHasher struct {
	h    hash.Hash
	ch   chan []byte
	done chan struct{}
}

func newAsyncHasher(h hash.Hash) *asyncHasher {
	a := &asyncHasher{h: h, ch: make(chan []byte, 8), done: make(chan struct{})}
	go func() {
		for p := range a.ch {
			a.h.Write(p)
		}
		close(a.done)
	}()
	return a
}

func (a *asyncHasher) Write(p []byte) (int, error) {
	a.ch <- append([]byte(nil), p...)
	return len(p), nil
}

// Close waits for the hash and returns it in hex.
func (a *asyncHasher) Close() string {
	close(a.ch)
	<-a.done
	return hex.EncodeToString(a.h.Sum(nil))
}

// check verifies the written ISO exactly as an installer would, with the
// signing key's public half as the keyring.
func (b *build) check(ctx context.Context) error {
	pub, err := b.opts.Signer.PublicKey()
	if err != nil {
		return err
	}
	ring, err := signing.ReadKeyring(strings.NewReader(string(pub)))
	if err != nil {
		return err
	}
	// Checked at the bundle's own time (not now), so a reproducible rebuild
	// of an old bundle still checks; signatures cannot predate the key.
	at := b.created
	if kc := b.opts.Signer.Created(); at.Before(kc) {
		at = kc
	}
	rep, err := verify.Verify(ctx, verify.Options{ISO: b.opts.Output, Keyring: ring, Now: at, Workers: b.opts.Workers})
	if err != nil {
		// The output is wrong: do not leave it for someone to ship.
		if rmErr := os.Remove(b.opts.Output); rmErr != nil {
			b.log.Error("removing the failed ISO", slog.Any("error", rmErr))
		}
		return fmt.Errorf("the written ISO does not verify (removed): %w", err)
	}
	m := rep.Manifest
	b.result.Output = b.opts.Output
	b.result.Name, b.result.Version = m.Name, m.Version
	b.result.Created, b.result.Expires = m.Created, m.Expires
	b.result.Signer = rep.Signer.Fingerprint
	b.result.Files = len(m.Files)
	b.result.ContentBytes = rep.Bytes
	b.result.Images, b.result.Repositories = m.Images, m.Repositories
	now := time.Now
	if b.opts.Now != nil {
		now = b.opts.Now
	}
	if !now().Before(m.Expires) {
		// Reproducible rebuilds of old bundles are legitimate; shipping
		// one is not: installers refuse it as new content.
		b.log.Warn("the bundle's validity has already ended: installers will refuse to import, join or upgrade to it (a later SOURCE_DATE_EPOCH, a longer spec.expiresAfter, or builder extend)",
			slog.String("iso", b.opts.Output), slog.Time("created", m.Created), slog.Time("expires", m.Expires))
	}
	return nil
}
