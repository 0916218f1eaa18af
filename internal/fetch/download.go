package fetch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// Download downloads rawURL (https only) into dst when no digest of its
// content is known, as a signed bundle whose signature the caller checks:
// at most max bytes, through dst+".partial", which is locked, resumed with
// a Range request and retried as Fetch's is, then renamed over dst. Nothing
// vouches for the bytes but the TLS connection: the caller verifies them.
func (c *Client) Download(ctx context.Context, rawURL, dst string, max int64) error {
	u, err := checkURL(rawURL)
	if err != nil {
		return err
	}
	if u.Scheme != "https" {
		return fmt.Errorf("download %s: only https:// URLs are downloaded without a digest", u.Redacted())
	}
	if max <= 0 {
		return fmt.Errorf("download %s: no bound given", u.Redacted())
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("creating the download directory: %w", err)
	}
	part, err := lockPartial(ctx, dst+".partial")
	if err != nil {
		return err
	}
	defer part.Close()
	it := Item{URL: rawURL, Size: -1, MaxSize: max}
	err = c.retry(ctx, rawURL, func(ctx context.Context, attempt int) error {
		_, err := c.transfer(ctx, u, it, part, max)
		return err
	})
	if err != nil {
		if st, serr := part.Stat(); serr == nil && st.Size() == 0 {
			_ = os.Remove(part.Name()) // nothing worth resuming
		}
		return fmt.Errorf("downloading %s: %w", rawURL, err)
	}
	if err := part.Sync(); err != nil {
		return err
	}
	if err := os.Rename(part.Name(), dst); err != nil {
		return fmt.Errorf("storing %s: %w", rawURL, err)
	}
	syncDir(filepath.Dir(dst))
	return nil
}
