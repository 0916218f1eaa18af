package converge

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ferry-k8s/ferry/internal/atomicfile"
)

// Host is the node: it observes it and applies operations to it. Every
// external system is a command (rpm, dnf, systemctl, kubeadm, kubectl)
// run by Run, and every path is under Root.
type Host struct {
	// Root is "/" on a node; tests use a directory.
	Root string
	// NodeName is the Node object's name (for labels and taints).
	NodeName string
	// Kubeconfig is used for the API steps (admin.conf on a control plane).
	Kubeconfig string
	// DNFArgs are extra dnf arguments (the bootstrap passes the repository
	// served by the bootstrap's own content service).
	DNFArgs []string
	// StateDir holds the journal and the applied-manifest record.
	StateDir string
	// Run runs a command; nil: exec. Output is returned combined.
	Run func(ctx context.Context, name string, args ...string) ([]byte, error)
	Log *slog.Logger
}

func (h *Host) path(p string) string { return filepath.Join(h.Root, p) }

func (h *Host) log() *slog.Logger {
	if h.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return h.Log
}

func (h *Host) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	if h.Run != nil {
		return h.Run(ctx, name, args...)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, lastLines(out, 20))
	}
	return out, nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Observe reads the parts of the node that d talks about.
func (h *Host) Observe(ctx context.Context, d Desired) (Observed, error) {
	o := Observed{Packages: map[string]string{}, Files: map[string]FileState{}, Units: map[string]UnitState{}, Applied: map[string]string{}}
	if len(d.Packages)+len(d.LocalPackages) > 0 {
		out, err := h.run(ctx, "rpm", "--root", h.Root, "-qa", "--qf", "%{NAME} %{VERSION}-%{RELEASE}\n")
		if err != nil {
			return o, fmt.Errorf("observing packages: %w", err)
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 2 {
				o.Packages[f[0]] = f[1]
			}
		}
	}
	users, groups := h.names()
	stat := func(p string) error {
		fi, err := os.Lstat(h.path(p))
		if errors.Is(err, fs.ErrNotExist) {
			o.Files[p] = FileState{}
			return nil
		}
		if err != nil {
			return fmt.Errorf("observing %s: %w", p, err)
		}
		st := FileState{Exists: true, Dir: fi.IsDir(), Mode: fi.Mode()}
		if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
			st.Owner, st.Group = users.name(sys.Uid), groups.name(sys.Gid)
		}
		if fi.Mode().IsRegular() {
			sum, err := fileDigest(h.path(p))
			if err != nil {
				return err
			}
			st.SHA256 = sum
		}
		o.Files[p] = st
		return nil
	}
	for _, dir := range d.Dirs {
		if err := stat(dir.Path); err != nil {
			return o, err
		}
	}
	for _, f := range d.Files {
		if err := stat(f.Path); err != nil {
			return o, err
		}
	}
	for _, w := range d.Owned {
		if err := stat(w.Path); err != nil {
			return o, err
		}
	}
	for _, u := range d.Units {
		enabled, _ := h.run(ctx, "systemctl", "is-enabled", u.Name)
		active, _ := h.run(ctx, "systemctl", "is-active", u.Name)
		o.Units[u.Name] = UnitState{Enabled: strings.TrimSpace(string(enabled)) == "enabled", Active: strings.TrimSpace(string(active)) == "active"}
	}
	if d.Kubeadm != nil {
		_, e1 := os.Stat(h.path("/etc/kubernetes/admin.conf"))
		_, e2 := os.Stat(h.path("/etc/kubernetes/manifests/kube-apiserver.yaml"))
		o.KubeadmDone = e1 == nil && e2 == nil
	}
	if d.Join != nil {
		o.Joined = fileExists(h.path("/etc/kubernetes/kubelet.conf"))
	}
	if data, err := os.ReadFile(h.path(filepath.Join(h.StateDir, "applied.json"))); err == nil {
		if err := json.Unmarshal(data, &o.Applied); err != nil {
			return o, fmt.Errorf("reading the applied-manifest record: %w", err)
		}
	}
	if d.NeedsAPI() {
		o.APIUnknown = true
	}
	if d.NeedsAPI() && h.Kubeconfig != "" && fileExists(h.path(h.Kubeconfig)) {
		out, err := h.run(ctx, "kubectl", "--kubeconfig", h.Kubeconfig, "--request-timeout=10s", "get", "node", h.NodeName, "-o", "json")
		if err == nil {
			o.APIUnknown = false
			var n struct {
				Metadata struct{ Labels map[string]string }
				Spec     struct {
					Taints []struct{ Key, Value, Effect string }
				}
			}
			if json.Unmarshal(out, &n) == nil {
				o.NodeLabels = n.Metadata.Labels
				for _, t := range n.Spec.Taints {
					o.NodeTaints = append(o.NodeTaints, t.Key+":"+t.Effect)
				}
			}
		}
	}
	return o, nil
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func fileDigest(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// idNames maps ids to names from the node's /etc/passwd or /etc/group.
type idNames map[uint32]string

func (m idNames) name(id uint32) string {
	if n, ok := m[id]; ok {
		return n
	}
	return strconv.FormatUint(uint64(id), 10)
}

func (h *Host) names() (users, groups idNames) {
	return readIDs(h.path("/etc/passwd")), readIDs(h.path("/etc/group"))
}

func readIDs(p string) idNames {
	m := idNames{0: "root"}
	data, err := os.ReadFile(p)
	if err != nil {
		return m
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 3 {
			continue
		}
		if id, err := strconv.ParseUint(f[2], 10, 32); err == nil {
			if _, dup := m[uint32(id)]; !dup {
				m[uint32(id)] = f[0]
			}
		}
	}
	return m
}

func (m idNames) id(name string) (int, error) {
	if name == "" || name == "root" {
		return 0, nil
	}
	for id, n := range m {
		if n == name {
			return int(id), nil
		}
	}
	return 0, fmt.Errorf("no user or group %q on the node", name)
}

// Record is one line of the journal: every operation is recorded before
// it runs and when it ends, so an interrupted apply can be read back.
type Record struct {
	Time   time.Time `json:"time"`
	Op     string    `json:"op"`
	Status string    `json:"status"` // started | done | failed
	Error  string    `json:"error,omitempty"`
}

// Apply runs ops in order, journaling each. It stops at the first failure
// and says which operation failed and why; running observe → plan →
// apply again continues from there, since every operation is idempotent.
func (h *Host) Apply(ctx context.Context, d Desired, ops []Op) (int, error) {
	journal := h.path(filepath.Join(h.StateDir, "journal.jsonl"))
	if err := os.MkdirAll(filepath.Dir(journal), 0o700); err != nil {
		return 0, err
	}
	jf, err := os.OpenFile(journal, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, fmt.Errorf("opening the journal: %w", err)
	}
	defer jf.Close()
	record := func(op Op, status string, err error) {
		r := Record{Time: time.Now().UTC(), Op: op.String(), Status: status}
		if err != nil {
			r.Error = err.Error()
		}
		line, _ := json.Marshal(r)
		_, _ = jf.Write(append(line, '\n'))
		_ = jf.Sync()
	}
	for i, op := range ops {
		if err := ctx.Err(); err != nil {
			return i, err
		}
		record(op, "started", nil)
		h.log().Info("applying", slog.Int("step", i+1), slog.Int("of", len(ops)), slog.String("op", op.String()))
		if err := h.apply(ctx, d, op); err != nil {
			record(op, "failed", err)
			return i, fmt.Errorf("step %d of %d, %s: %w", i+1, len(ops), op, err)
		}
		record(op, "done", nil)
	}
	return len(ops), nil
}

func (h *Host) apply(ctx context.Context, d Desired, op Op) error {
	users, groups := h.names()
	chown := func(p, own, grp string) error {
		uid, err := users.id(own)
		if err != nil {
			return err
		}
		gid, err := groups.id(grp)
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	}
	switch op.Kind {
	case KindDir:
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
		return chown(p, op.Dir.Owner, op.Dir.Group)
	case KindFile:
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
		return chown(p, op.File.Owner, op.File.Group)
	case KindPermFixup:
		p, mode, own, grp := "", fs.FileMode(0), "", ""
		if op.File != nil {
			p, mode, own, grp = op.File.Path, op.File.Mode, op.File.Owner, op.File.Group
		} else {
			p, mode, own, grp = op.Dir.Path, op.Dir.Mode, op.Dir.Owner, op.Dir.Group
		}
		if err := os.Chmod(h.path(p), mode); err != nil {
			return err
		}
		return chown(h.path(p), own, grp)
	case KindInstall:
		args := append([]string{"--installroot", h.Root, "-y", "--setopt=install_weak_deps=False"}, h.DNFArgs...)
		args = append(append(args, "install"), op.Packages...)
		_, err := h.run(ctx, "dnf", args...)
		return err
	case KindRun:
		_, err := h.run(ctx, op.Command[0], op.Command[1:]...)
		return err
	case KindReload:
		_, err := h.run(ctx, "systemctl", "daemon-reload")
		return err
	case KindEnable:
		_, err := h.run(ctx, "systemctl", "enable", op.Unit)
		return err
	case KindStart:
		_, err := h.run(ctx, "systemctl", "start", op.Unit)
		return err
	case KindRestart:
		_, err := h.run(ctx, "systemctl", "restart", op.Unit)
		return err
	case KindKubeadm:
		for _, phase := range [][]string{{"certs", "all"}, {"kubeconfig", "all"}} {
			if _, err := h.run(ctx, "kubeadm", append(append([]string{"init", "phase"}, phase...), "--config", op.Kubeadm.Config)...); err != nil {
				return err
			}
		}
		for _, kc := range sortedKeys(op.Kubeadm.Servers) {
			if err := rewriteServer(h.path(kc), op.Kubeadm.Servers[kc]); err != nil {
				return err
			}
		}
		for _, o := range op.Kubeadm.Owned {
			p := h.path(o.Path)
			if o.Dir {
				if err := os.MkdirAll(p, o.Mode.Perm()); err != nil {
					return err
				}
			} else if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err := os.Chmod(p, o.Mode); err != nil {
				return err
			}
			if err := chown(p, o.Owner, o.Group); err != nil {
				return fmt.Errorf("%s: %w", o.Path, err)
			}
		}
		args := []string{"init", "--config", op.Kubeadm.Config, "--skip-phases", strings.Join(append([]string{"certs", "kubeconfig"}, op.Kubeadm.SkipPhases...), ",")}
		if len(op.Kubeadm.IgnorePreflightErrors) > 0 {
			args = append(args, "--ignore-preflight-errors", strings.Join(op.Kubeadm.IgnorePreflightErrors, ","))
		}
		if _, err := h.run(ctx, "kubeadm", args...); err != nil {
			return err
		}
		return h.recordApplied(KubeadmRecord, op.Kubeadm.InputDigest)
	case KindKubeadmRe:
		// The phases that render from the configuration and change nothing
		// else: etcd's and the control plane's static Pods (the kubelet
		// restarts a Pod whose manifest changed, only that one), then the
		// kubelet's configuration and flags (kubelet-start restarts it).
		// Certificates and kubeconfigs are Ferry's (written above).
		for _, phase := range [][]string{{"etcd", "local"}, {"control-plane", "all"}, {"kubelet-start"}} {
			if _, err := h.run(ctx, "kubeadm", append(append([]string{"init", "phase"}, phase...), "--config", op.Kubeadm.Config)...); err != nil {
				return err
			}
		}
		return h.recordApplied(KubeadmRecord, op.Kubeadm.InputDigest)
	case KindJoin:
		if op.Join.DiscoveryContent == nil {
			return errors.New("the node has not joined the cluster and there is no join file: run installer join --join-file (made by installer token create on a control-plane node)")
		}
		disc := h.path(op.Join.Discovery)
		if err := os.MkdirAll(filepath.Dir(disc), 0o700); err != nil {
			return err
		}
		if err := atomicfile.WriteFile(disc, op.Join.DiscoveryContent, 0o600); err != nil {
			return err
		}
		// The bootstrap token is not left on the node.
		defer os.Remove(disc)
		args := []string{"join", "--config", op.Join.Config}
		if len(op.Join.IgnorePreflightErrors) > 0 {
			args = append(args, "--ignore-preflight-errors", strings.Join(op.Join.IgnorePreflightErrors, ","))
		}
		_, err := h.run(ctx, "kubeadm", args...)
		return err
	case KindManifest:
		tmp, err := os.CreateTemp("", "ferry-manifest-*.yaml")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		if _, err := tmp.Write(d.Manifests[op.Manifest]); err != nil {
			tmp.Close()
			return err
		}
		tmp.Close()
		if _, err := h.run(ctx, "kubectl", "--kubeconfig", h.Kubeconfig, "apply", "--server-side", "--field-manager=ferry", "--force-conflicts", "-f", tmp.Name()); err != nil {
			return err
		}
		return h.recordApplied(op.Manifest, Digest(d.Manifests[op.Manifest]))
	case KindLabel:
		args := []string{"--kubeconfig", h.Kubeconfig, "label", "node", h.NodeName, "--overwrite"}
		for _, k := range sortedKeys(op.Labels) {
			args = append(args, k+"="+op.Labels[k])
		}
		_, err := h.run(ctx, "kubectl", args...)
		return err
	case KindUntaint:
		_, err := h.run(ctx, "kubectl", "--kubeconfig", h.Kubeconfig, "taint", "node", h.NodeName, op.Taint+"-")
		return err
	}
	return fmt.Errorf("unknown operation %q", op.Kind)
}

func (h *Host) recordApplied(name, digest string) error {
	p := h.path(filepath.Join(h.StateDir, "applied.json"))
	m := map[string]string{}
	if data, err := os.ReadFile(p); err == nil {
		_ = json.Unmarshal(data, &m)
	}
	m[name] = digest
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(p, data, 0o600)
}

// rewriteServer sets every "server:" of a kubeconfig to url.
func rewriteServer(p, url string) error {
	data, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	lines := strings.Split(string(data), "\n")
	n := 0
	for i, l := range lines {
		if t := strings.TrimSpace(l); strings.HasPrefix(t, "server: ") {
			lines[i] = l[:len(l)-len(strings.TrimLeft(l, " "))] + "server: " + url
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("%s names no server", p)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(p, []byte(strings.Join(lines, "\n")), fi.Mode().Perm())
}

// WaitAPI waits until the API server answers /readyz through the node's
// kubeconfig (after kubeadm restarted it), at most timeout.
func (h *Host) WaitAPI(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var err error
	for {
		if _, err = h.run(ctx, "kubectl", "--kubeconfig", h.Kubeconfig, "--request-timeout=5s", "get", "--raw", "/readyz"); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the API server does not answer within %s: %w", timeout, err)
		case <-time.After(2 * time.Second):
		}
	}
}
