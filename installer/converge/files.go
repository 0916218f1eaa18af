package converge

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ferry-k8s/ferry/internal/atomicfile"
)

// CreateDir creates a directory with its mode and owner. A file in the
// way is not removed: the operation fails, saying so.
type CreateDir struct {
	Dir Dir
	Because
}

func (CreateDir) Kind() string      { return KindDir }
func (op CreateDir) Target() string { return op.Dir.Path }
func (op CreateDir) String() string { return describe(op) }
func (op CreateDir) Apply(_ context.Context, h *Host) error {
	p := h.path(op.Dir.Path)
	if fi, err := os.Lstat(p); err == nil && !fi.IsDir() {
		return fmt.Errorf("%s exists and is not a directory: not removing it", op.Dir.Path)
	}
	if err := os.MkdirAll(p, op.Dir.Mode.Perm()); err != nil {
		return err
	}
	if err := os.Chmod(p, op.Dir.Mode); err != nil {
		return err
	}
	return h.chown(p, op.Dir.Owner, op.Dir.Group)
}

// WriteFile replaces a file atomically with its content, mode and owner
// (its parent directories are made when missing).
type WriteFile struct {
	File File
	Because
}

func (WriteFile) Kind() string      { return KindFile }
func (op WriteFile) Target() string { return op.File.Path }
func (op WriteFile) String() string { return describe(op) }
func (op WriteFile) Apply(_ context.Context, h *Host) error {
	p := h.path(op.File.Path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(p, op.File.Content, op.File.Mode.Perm()); err != nil {
		return err
	}
	if err := os.Chmod(p, op.File.Mode); err != nil {
		return err
	}
	return h.chown(p, op.File.Owner, op.File.Group)
}

// FixPerms sets the mode and owner of a path that exists (a Dir, a File
// whose content is right, an Owned path).
type FixPerms struct {
	Path         string
	Mode         fs.FileMode
	Owner, Group string
	Because
}

func (FixPerms) Kind() string      { return KindPermFixup }
func (op FixPerms) Target() string { return op.Path }
func (op FixPerms) String() string { return describe(op) }
func (op FixPerms) Apply(_ context.Context, h *Host) error {
	if err := os.Chmod(h.path(op.Path), op.Mode); err != nil {
		return err
	}
	return h.chown(h.path(op.Path), op.Owner, op.Group)
}

// planFiles plans the directories and files owned by root (rootOwned) or
// by the system users the packages create (!rootOwned): created or
// written when missing or different, their mode and owner set when only
// those differ.
func planFiles(d Desired, o Observed, rootOwned bool) []Op {
	var ops []Op
	for _, dir := range d.Dirs {
		if (owner(dir.Owner) == "root" && owner(dir.Group) == "root") != rootOwned {
			continue
		}
		st, ok := o.Files[dir.Path]
		switch {
		case !ok || !st.Exists:
			ops = append(ops, CreateDir{Dir: dir, Because: "missing"})
		case !st.Dir:
			ops = append(ops, CreateDir{Dir: dir, Because: "a file is in the way"})
		case st.Mode.Perm() != dir.Mode.Perm() || st.Owner != owner(dir.Owner) || st.Group != owner(dir.Group):
			ops = append(ops, FixPerms{Path: dir.Path, Mode: dir.Mode, Owner: dir.Owner, Group: dir.Group,
				Because: Because(permReason(st, dir.Mode, dir.Owner, dir.Group))})
		}
	}
	for _, f := range d.Files {
		if (owner(f.Owner) == "root" && owner(f.Group) == "root") != rootOwned {
			continue
		}
		st := o.Files[f.Path]
		reason := ""
		switch {
		case !st.Exists:
			reason = "missing"
		case st.Dir:
			reason = "a directory is in the way"
		case st.SHA256 != Digest(f.Content):
			reason = "content differs"
		}
		if reason != "" {
			ops = append(ops, WriteFile{File: f, Because: Because(reason)})
			continue
		}
		if st.Mode.Perm() != f.Mode.Perm() || st.Owner != owner(f.Owner) || st.Group != owner(f.Group) {
			ops = append(ops, FixPerms{Path: f.Path, Mode: f.Mode, Owner: f.Owner, Group: f.Group,
				Because: Because(permReason(st, f.Mode, f.Owner, f.Group))})
		}
	}
	return ops
}

// planOwned keeps the owner and mode of the Owned paths that exist; on
// the first control-plane node, once kubeadm init has written them (its
// operation sets them itself).
func planOwned(d Desired, o Observed) []Op {
	if d.Kubeadm != nil && !o.KubeadmDone {
		return nil
	}
	var ops []Op
	for _, w := range d.Owned {
		st, ok := o.Files[w.Path]
		if !ok || !st.Exists {
			continue
		}
		if st.Mode.Perm() != w.Mode.Perm() || st.Owner != owner(w.Owner) || st.Group != owner(w.Group) {
			ops = append(ops, FixPerms{Path: w.Path, Mode: w.Mode, Owner: w.Owner, Group: w.Group,
				Because: Because(permReason(st, w.Mode, w.Owner, w.Group))})
		}
	}
	return ops
}
