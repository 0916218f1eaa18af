package compose

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"time"

	"github.com/klauspost/compress/gzip"
	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-k8s/ferry/images"
)

// writeLayer writes nodes (sorted, parents first) as a gzip-compressed tar
// blob into the layout's blob directory and returns its descriptor and
// DiffID, both computed in the same pass.
//
// The tar is deterministic: entries in path order, every mtime = mtime, no
// user or group names, no atime/ctime, USTAR headers unless a name or value
// needs PAX. gzip (klauspost/compress, about twice as fast as compress/gzip
// at the same ratio) writes no name and a zero mtime.
func writeLayer(ctx context.Context, l *images.LayoutDir, nodes []*node, sp *spool, mtime time.Time) (imgspecv1.Descriptor, digest.Digest, error) {
	var diffID digest.Digest
	desc, err := l.WriteBlob(imgspecv1.MediaTypeImageLayerGzip, func(w io.Writer) error {
		zw, err := gzip.NewWriterLevel(w, gzip.DefaultCompression)
		if err != nil {
			return err
		}
		// MTIME 0 ("no time stamp"); klauspost/compress writes the zero
		// time.Time's Unix() truncated to 32 bits otherwise.
		zw.ModTime = time.Unix(0, 0)
		uh := sha256.New()
		bw := bufio.NewWriterSize(io.MultiWriter(zw, uh), 1<<16)
		if err := writeTar(ctx, bw, nodes, sp, mtime); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		diffID = digest.NewDigest(digest.SHA256, uh)
		return nil
	})
	if err != nil {
		return imgspecv1.Descriptor{}, "", fmt.Errorf("writing layer: %w", err)
	}
	return desc, diffID, nil
}

func writeTar(ctx context.Context, w io.Writer, nodes []*node, sp *spool, mtime time.Time) error {
	tw := tar.NewWriter(w)
	firstOf := map[int]string{} // hard-link group → name of its first entry
	buf := make([]byte, 1<<20)
	for _, nd := range nodes {
		if err := ctx.Err(); err != nil {
			return err
		}
		h := &tar.Header{
			Name:    nd.path,
			Mode:    int64(nd.perm),
			Uid:     nd.uid,
			Gid:     nd.gid,
			ModTime: mtime,
		}
		var content io.Reader
		switch nd.kind {
		case kindDir:
			h.Typeflag, h.Name = tar.TypeDir, nd.path+"/"
		case kindSymlink:
			h.Typeflag, h.Linkname = tar.TypeSymlink, nd.link
		case kindReg:
			if first, ok := firstOf[nd.hardlink]; ok && nd.hardlink > 0 {
				h.Typeflag, h.Linkname = tar.TypeLink, first
				break
			}
			if nd.hardlink > 0 {
				firstOf[nd.hardlink] = nd.path
			}
			h.Typeflag, h.Size = tar.TypeReg, nd.size
			if nd.body != nil || nd.size == 0 {
				content = bytes.NewReader(nd.body)
			} else {
				content = sp.section(nd.off, nd.size)
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("/%s: %w", nd.path, err)
		}
		if content != nil {
			if _, err := io.CopyBuffer(tw, content, buf); err != nil {
				return fmt.Errorf("/%s: %w", nd.path, err)
			}
		}
	}
	return tw.Close()
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }
