package images

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"go.podman.io/image/v5/directory"
	"go.podman.io/image/v5/docker"
	dockerarchive "go.podman.io/image/v5/docker/archive"
	ociarchive "go.podman.io/image/v5/oci/archive"
	"go.podman.io/image/v5/oci/layout"
	"go.podman.io/image/v5/types"
)

// transportsByName are the transports a Source.Ref may use. They are imported
// one by one (rather than through transports/alltransports) so that neither
// containers-storage nor docker-daemon code is linked in.
var transportsByName = func() map[string]types.ImageTransport {
	m := map[string]types.ImageTransport{}
	for _, t := range []types.ImageTransport{
		layout.Transport,        // oci:DIR[:NAME]
		ociarchive.Transport,    // oci-archive:FILE[:NAME]
		dockerarchive.Transport, // docker-archive:FILE[:NAME:TAG|:@INDEX]
		directory.Transport,     // dir:DIR
		docker.Transport,        // docker://REGISTRY/REPO[:TAG|@DIGEST]
	} {
		m[t.Name()] = t
	}
	return m
}()

func supportedTransportNames() string {
	names := make([]string, 0, len(transportsByName))
	for n := range transportsByName {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// parseRef parses "transport:reference", like alltransports.ParseImageName,
// restricted to transportsByName.
func parseRef(s string) (types.ImageReference, error) {
	name, rest, ok := strings.Cut(s, ":")
	if !ok || name == "" {
		return nil, fmt.Errorf("invalid image reference %q: want TRANSPORT:REFERENCE (transports: %s)", s, supportedTransportNames())
	}
	t, ok := transportsByName[name]
	if !ok {
		return nil, fmt.Errorf("invalid image reference %q: unsupported transport %q (supported: %s)", s, name, supportedTransportNames())
	}
	ref, err := t.ParseReference(rest)
	if err != nil {
		return nil, fmt.Errorf("invalid image reference %q: %w", s, err)
	}
	return ref, nil
}

// ociLayoutDir returns the directory of an oci: reference, as the oci
// transport splits it (at the first ':'; paths with ':' are refused by it).
func ociLayoutDir(ref types.ImageReference) (string, bool) {
	if ref.Transport().Name() != layout.Transport.Name() {
		return "", false
	}
	dir, _, _ := strings.Cut(ref.StringWithinTransport(), ":")
	return dir, dir != ""
}

// layoutDestRef is the oci: reference of the bundle layout, whose destination
// also accepts Docker schema 2 manifests and manifest lists.
//
// The oci transport's destination advertises only OCI manifest types. With
// PreserveDigests, copy.Image still writes a single Docker schema 2 manifest
// as it is ("hoping for the best"), but refuses a Docker manifest list (it
// would have to be converted to an OCI index); and when a list is filtered
// (PreserveDigests off) it converts the list and its instances to OCI, which
// changes their digests and rewrites their configs. The OCI image layout
// itself can list any manifest type in index.json (the oci transport's source
// reads Docker schema 2 entries by name, and `docker save` writes them), and
// the oci destination stores manifests as opaque bytes with their guessed
// media type, so advertising the Docker types is all it takes to keep the
// source's bytes.
type layoutDestRef struct {
	types.ImageReference
}

func (r layoutDestRef) NewImageDestination(ctx context.Context, sys *types.SystemContext) (types.ImageDestination, error) {
	d, err := r.ImageReference.NewImageDestination(ctx, sys)
	if err != nil {
		return nil, err
	}
	return layoutDest{d}, nil
}

type layoutDest struct {
	types.ImageDestination
}

func (layoutDest) SupportedManifestMIMETypes() []string {
	return slices.Clone(supportedManifestTypes)
}

// openedSourceRef hands copy.Image an already opened source, so that the
// source is opened once per image: opening an oci-archive: extracts it and
// opening a docker-archive: scans it. Closing is left to the owner.
type openedSourceRef struct {
	types.ImageReference
	src types.ImageSource
}

func (r openedSourceRef) NewImageSource(context.Context, *types.SystemContext) (types.ImageSource, error) {
	return noCloseSource{r.src}, nil
}

type noCloseSource struct {
	types.ImageSource
}

func (noCloseSource) Close() error { return nil }
