package rollout

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Snapshotter takes the etcd snapshot a roll-out starts with (R46).
type Snapshotter interface {
	// Snapshot saves a snapshot of the cluster's etcd, kept with the
	// bundle version the roll-out goes to, and verifies it.
	Snapshot(ctx context.Context, bundleVersion string) (*SnapshotRecord, error)
}

// SnapshotRecord is a taken snapshot, as the ConfigMap records it.
type SnapshotRecord struct {
	Path        string    `json:"path"`
	SHA256      string    `json:"sha256"`
	Size        int64     `json:"size"`
	Revision    int64     `json:"revision"`
	EtcdVersion string    `json:"etcdVersion,omitempty"`
	Taken       time.Time `json:"taken"`
	// Verified is true when the snapshot was restored into a scratch data
	// directory without error.
	Verified bool `json:"verified"`
}

// snapshotTimeout bounds taking and verifying one snapshot.
const snapshotTimeout = 10 * time.Minute

// EtcdSnapshotter saves snapshots with etcd's maintenance API and
// verifies each by restoring it with etcdutl into a scratch directory.
type EtcdSnapshotter struct {
	// Endpoint is one etcd member ("https://localhost:2379"): a snapshot
	// is the point-in-time state of the member it is taken from.
	Endpoint string
	// TLS authenticates both ends (the etcd realm's CA and a client
	// certificate).
	TLS *tls.Config
	// Dir keeps the snapshots, as etcd-<bundle version>-<time>.db.
	Dir string
	// Etcdutl is the etcdutl program; empty: etcdutl from PATH.
	Etcdutl string
}

// Snapshot implements Snapshotter.
func (e *EtcdSnapshotter) Snapshot(ctx context.Context, bundleVersion string) (*SnapshotRecord, error) {
	if err := checkVersion(bundleVersion); err != nil {
		return nil, err
	}
	if e.Endpoint == "" || e.Dir == "" {
		return nil, fmt.Errorf("etcd snapshot: no endpoint or directory")
	}
	if err := os.MkdirAll(e.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("etcd snapshot: %w", err)
	}
	// A member that does not answer (or a TLS name that does not match)
	// fails the snapshot instead of waiting for ever.
	ctx, cancel := context.WithTimeout(ctx, snapshotTimeout)
	defer cancel()
	now := time.Now().UTC()
	path := filepath.Join(e.Dir, "etcd-"+bundleVersion+"-"+now.Format("20060102T150405Z")+".db")
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint}, TLS: e.TLS, DialTimeout: 10 * time.Second, Logger: zap.NewNop(), Context: ctx})
	if err != nil {
		return nil, fmt.Errorf("etcd snapshot: connecting to %s: %w", e.Endpoint, err)
	}
	defer cli.Close()
	// The snapshot holds at least this revision.
	status, err := cli.Status(ctx, e.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("etcd snapshot: status of %s: %w", e.Endpoint, err)
	}
	resp, err := cli.SnapshotWithVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("etcd snapshot from %s: %w", e.Endpoint, err)
	}
	defer resp.Snapshot.Close()
	rec := &SnapshotRecord{Path: path, EtcdVersion: resp.Version, Taken: now, Revision: status.Header.GetRevision()}
	if resp.Header != nil && resp.Header.Revision > rec.Revision {
		rec.Revision = resp.Header.Revision
	}
	part := path + ".part"
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("etcd snapshot: %w", err)
	}
	defer os.Remove(part)
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), resp.Snapshot)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("etcd snapshot: writing %s: %w", part, err)
	}
	// etcd appends the sha256 of the database: a complete snapshot is
	// whole pages plus those 32 bytes.
	if n%512 != sha256.Size {
		return nil, fmt.Errorf("etcd snapshot from %s: %d bytes, not a database with its checksum (truncated?)", e.Endpoint, n)
	}
	if err := os.Rename(part, path); err != nil {
		return nil, fmt.Errorf("etcd snapshot: %w", err)
	}
	rec.Size, rec.SHA256 = n, hex.EncodeToString(h.Sum(nil))
	if err := e.verify(ctx, path); err != nil {
		return nil, err
	}
	rec.Verified = true
	return rec, nil
}

// verify restores the snapshot into a scratch data directory (etcdutl
// checks the snapshot's checksum and rebuilds the member from it).
func (e *EtcdSnapshotter) verify(ctx context.Context, path string) error {
	etcdutl := e.Etcdutl
	if etcdutl == "" {
		etcdutl = "etcdutl"
	}
	scratch, err := os.MkdirTemp(e.Dir, ".restore-")
	if err != nil {
		return fmt.Errorf("verifying etcd snapshot %s: %w", path, err)
	}
	defer os.RemoveAll(scratch)
	cmd := exec.CommandContext(ctx, etcdutl, "snapshot", "restore", path, "--data-dir", filepath.Join(scratch, "data"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("verifying etcd snapshot %s: etcdutl snapshot restore: %w: %s", path, err, tail(string(out), 2000))
	}
	if _, err := os.Stat(filepath.Join(scratch, "data", "member", "snap", "db")); err != nil {
		return fmt.Errorf("verifying etcd snapshot %s: the restored data directory has no database: %w", path, err)
	}
	return nil
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// checkVersion accepts a bundle version that is safe in a file name and an
// annotation value: 1–63 of [A-Za-z0-9._+-], starting with an alphanumeric.
func checkVersion(v string) error {
	if v == "" || len(v) > 63 {
		return fmt.Errorf("bundle version %q: must be 1–63 characters", v)
	}
	for i, c := range v {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !ok && (i == 0 || !strings.ContainsRune("._+-", c)) {
			return fmt.Errorf("bundle version %q: character %q at %d is not allowed (letters, digits and ._+- only)", v, c, i)
		}
	}
	return nil
}
