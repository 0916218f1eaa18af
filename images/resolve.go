package images

import (
	"context"
	"fmt"
	"os"

	digest "github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/types"
)

// Resolved is what a source reference points to now: its manifest digest
// and, for an index, the instances kept for the requested platforms.
type Resolved struct {
	Digest    digest.Digest
	MediaType string
	// Instances maps each kept platform ("linux/amd64") of an index to its
	// instance's digest; nil for a single image.
	Instances map[string]digest.Digest
}

// Resolve reads the manifest ref (a containers-transports reference, such
// as "docker://registry.example/app:1.0") points to and selects the
// instances of platforms (all when empty) as Copy would, without copying
// blobs. sys is as CopyOptions.SystemContext; an archive source is
// unpacked in sys.BigFilesTemporaryDir, else os.TempDir().
func Resolve(ctx context.Context, ref string, platforms []string, sys *types.SystemContext) (*Resolved, error) {
	sys = withBigFilesDir(sys, os.TempDir())
	r, err := parseRef(ref)
	if err != nil {
		return nil, err
	}
	var want []platform
	for _, p := range platforms {
		pp, err := parsePlatform(p)
		if err != nil {
			return nil, err
		}
		want = append(want, pp)
	}
	src, err := r.NewImageSource(ctx, sys)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	pl, err := inspectSource(ctx, src, want)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	res := &Resolved{Digest: pl.originalDigest, MediaType: pl.mediaType}
	if pl.allInstances > 0 {
		res.Instances = map[string]digest.Digest{}
		for i, d := range pl.instances {
			res.Instances[pl.platforms[i].String()] = d
		}
	}
	return res, nil
}
