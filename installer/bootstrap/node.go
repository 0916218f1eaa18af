package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ferry-k8s/ferry/installer/joinfile"
	"github.com/ferry-k8s/ferry/installer/layout"
	"github.com/ferry-k8s/ferry/internal/atomicfile"
	"github.com/ferry-k8s/ferry/internal/version"
)

// versionString is Ferry's version for the R19 headers.
func versionString() string {
	if version.Version == "" {
		return "dev"
	}
	return strings.ReplaceAll(version.Version, " ", "-")
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// nodeMode is how the node came (or comes) into the cluster: bootstrap
// or join, from the command and what the node recorded.
func nodeMode(root string, bootstrap, join bool) (string, error) {
	data, err := os.ReadFile(filepath.Join(root, layout.ModeFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	recorded := strings.TrimSpace(string(data))
	if recorded == "" {
		// Nodes installed before the mode was recorded.
		switch {
		case fileExists(filepath.Join(root, layout.SuperAdminConf)):
			recorded = "bootstrap"
		case fileExists(filepath.Join(root, layout.KubeletConf)):
			recorded = "join"
		}
	}
	want := ""
	switch {
	case join:
		want = "join"
	case bootstrap:
		want = "bootstrap"
	}
	switch {
	case want == "" && recorded == "":
		return "", errors.New("the node was neither bootstrapped nor joined: run installer bootstrap (the first node) or installer join")
	case want == "":
		return recorded, nil
	case recorded != "" && recorded != want:
		return "", fmt.Errorf("the node was made by installer %s: it cannot be made again by installer %s", recorded, want)
	}
	return want, nil
}

func recordMode(root, mode string) error { return writeState(root, layout.ModeFile, mode) }

// installSecrets writes a control-plane join file's secrets (the shared
// CAs and keys) where they are missing. One already there with other
// content means the node belongs to another cluster: refused.
func installSecrets(root string, entries []joinfile.Entry) (int, error) {
	n := 0
	for _, e := range entries {
		p := filepath.Join(root, e.Path)
		have, err := os.ReadFile(p)
		if err == nil {
			if !bytes.Equal(have, e.Content) {
				return n, fmt.Errorf("%s differs from the cluster's: this node has another cluster's PKI (remove it first, or use the right join file)", e.Path)
			}
			continue
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return n, err
		}
		// Directories as the apply keeps them: the secrets' private.
		dirMode := fs.FileMode(0o755)
		if filepath.Dir(e.Path) == filepath.Dir(layout.EncryptionKey) {
			dirMode = 0o700
		}
		if err := os.MkdirAll(filepath.Dir(p), dirMode); err != nil {
			return n, err
		}
		if err := atomicfile.WriteFile(p, e.Content, e.Mode.Perm()); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// writeState writes one of the node's state files (atomically; unchanged
// content is not rewritten).
func writeState(root, name, content string) error {
	return atomicfile.WriteLine(filepath.Join(root, name), content, 0o644)
}

// lockNode takes the node's apply lock, waiting while another process
// holds it (until ctx is done).
func lockNode(ctx context.Context, path string, log *slog.Logger) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	for waited := false; ; {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if !waited {
			log.Info("another apply runs on this node: waiting for it", slog.String("lock", path))
			waited = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
