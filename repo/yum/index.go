package yum

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/ferry-k8s/ferry/internal/fetch"
	"github.com/ferry-k8s/ferry/repo"
	"github.com/ferry-k8s/ferry/signing"
)

// Repository is an upstream yum repository.
type Repository struct {
	// Name identifies it in errors and in what Resolve returns.
	Name string
	// BaseURL is the repository root (where repodata/ is): https:// or
	// file:///.
	BaseURL string
	// Keyring checks repodata/repomd.xml.asc when the repository has one.
	Keyring *signing.Keyring
}

// Index is what a repository offers.
type Index struct {
	Repo Repository
	// Packages of its primary metadata.
	Packages []*repo.Package
	// Signed is set when repomd.xml.asc was there and verified.
	Signed bool
	base   *url.URL
}

// Metadata bounds.
const (
	maxRepomdSize = 1 << 20
	maxSigSize    = 1 << 20
)

// Load reads the repository's repomd.xml (verifying repomd.xml.asc with the
// repository's keyring when the repository has that file) and its primary
// metadata, downloaded through c into its cache and checked against the
// checksum repomd.xml gives.
func Load(ctx context.Context, c *fetch.Client, r Repository) (*Index, error) {
	ix, err := load(ctx, c, r)
	if err != nil {
		return nil, fmt.Errorf("repository %s: %w", r.Name, err)
	}
	return ix, nil
}

func load(ctx context.Context, c *fetch.Client, r Repository) (*Index, error) {
	base, err := url.Parse(r.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("base URL: %w", err)
	}
	if !strings.HasSuffix(base.Path, "/") {
		base.Path += "/"
	}
	ix := &Index{Repo: r, base: base}
	md, err := c.Get(ctx, ix.url("repodata/repomd.xml"), maxRepomdSize)
	if err != nil {
		return nil, err
	}
	asc, err := c.Get(ctx, ix.url("repodata/repomd.xml.asc"), maxSigSize)
	switch {
	case errors.Is(err, fetch.ErrNotFound):
	case err != nil:
		return nil, err
	case r.Keyring == nil:
		return nil, errors.New("no key to check repodata/repomd.xml.asc with")
	default:
		if _, err := r.Keyring.Verify(bytes.NewReader(md), asc, time.Now()); err != nil {
			return nil, fmt.Errorf("repodata/repomd.xml.asc does not verify with the repository's gpgkey: %w", err)
		}
		ix.Signed = true
	}
	prim, err := repo.ParseRepomdPrimary(md)
	if err != nil {
		return nil, err
	}
	limits := repo.DefaultReadOptions()
	p, err := c.Fetch(ctx, fetch.Item{URL: ix.url(prim.Href), SHA256: prim.SHA256, Size: prim.Size, MaxSize: limits.MaxPrimarySize})
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if ix.Packages, err = repo.ReadPrimary(f, prim, limits); err != nil {
		return nil, err
	}
	return ix, nil
}

// url is the URL of href, a checked relative path, below the base.
func (ix *Index) url(href string) string {
	return ix.base.JoinPath(strings.Split(href, "/")...).String()
}

// URL is where the package's file is.
func (ix *Index) URL(p *repo.Package) string { return ix.url(p.Location) }
