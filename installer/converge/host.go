package converge

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	"github.com/ferry-k8s/ferry/internal/fileutil"
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
	// Server and TLSServerName, when set, override the kubeconfig's
	// cluster: the API steps go through the node-local API server proxy
	// (R32) and verify the API server's certificate for the endpoint's
	// name, so that they work while any API server does.
	Server, TLSServerName string
	// DNFArgs are extra dnf arguments (the bootstrap passes the repository
	// served by the bootstrap's own content service).
	DNFArgs []string
	// StateDir holds the journal and the applied record (applied.json:
	// what kubeadm last set the node up with).
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
			sum, err := fileutil.Digest(h.path(p))
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
		// A unit on its way up (a Type=notify unit not ready yet, one
		// restarting after a failure) is running as far as a plan goes:
		// starting it again changes nothing.
		state := strings.TrimSpace(string(active))
		o.Units[u.Name] = UnitState{Enabled: strings.TrimSpace(string(enabled)) == "enabled", Active: state == "active" || state == "activating" || state == "reloading"}
	}
	if d.Kubeadm != nil {
		_, e1 := os.Stat(h.path("/etc/kubernetes/admin.conf"))
		_, e2 := os.Stat(h.path("/etc/kubernetes/manifests/kube-apiserver.yaml"))
		o.KubeadmDone = e1 == nil && e2 == nil
	}
	if d.Join != nil {
		// A control plane has joined once kubeadm wrote its static Pods
		// (its kubelet bootstraps afterwards, against its own API server);
		// a worker once its kubelet has its kubeconfig.
		joined := "/etc/kubernetes/kubelet.conf"
		if d.Join.ControlPlane {
			joined = "/etc/kubernetes/manifests/kube-apiserver.yaml"
		}
		o.Joined = fileExists(h.path(joined))
	}
	if d.EtcdMember != nil {
		o.EtcdMemberAdded = fileExists(h.path(d.EtcdMember.StateFile))
		o.EtcdPromoted = fileExists(h.path(d.EtcdMember.PromotedFile))
	}
	for _, kc := range d.Kubeconfigs {
		if o.Kubeconfigs == nil {
			o.Kubeconfigs = map[string]KubeconfigState{}
		}
		st, err := observeKubeconfig(h.path(kc.Path))
		if err != nil {
			return o, err
		}
		o.Kubeconfigs[kc.Path] = st
	}
	if data, err := os.ReadFile(h.path(filepath.Join(h.StateDir, "applied.json"))); err == nil {
		if err := json.Unmarshal(data, &o.Applied); err != nil {
			return o, fmt.Errorf("reading the applied record: %w", err)
		}
	}
	if d.NeedsAPI() {
		o.APIUnknown = true
	}
	if d.NeedsAPI() && h.Kubeconfig != "" && fileExists(h.path(h.Kubeconfig)) {
		out, err := h.run(ctx, "kubectl", h.kubectlArgs("--request-timeout=10s", "get", "node", h.NodeName, "-o", "json")...)
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
	if d.ClusterNodes != nil && !o.APIUnknown {
		// The Nodes Ferry manages (its daemons report their version).
		out, err := h.run(ctx, "kubectl", h.kubectlArgs("--request-timeout=10s", "get", "nodes", "-o",
			`jsonpath={range .items[?(@.metadata.annotations.ferry\.dev/version)]}{.metadata.name}{"\n"}{end}`)...)
		if err != nil {
			o.APIUnknown = true
		} else {
			o.ClusterNodes = strings.Fields(string(out))
		}
	}
	return o, nil
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

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

// chown gives the node's path p (under Root) to the user and group named
// own and grp ("" is root), as the node's /etc/passwd and /etc/group say.
func (h *Host) chown(p, own, grp string) error {
	users, groups := h.names()
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
func (h *Host) Apply(ctx context.Context, ops []Op) (int, error) {
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
		if err := op.Apply(ctx, h); err != nil {
			record(op, "failed", err)
			return i, fmt.Errorf("step %d of %d, %s: %w", i+1, len(ops), op, err)
		}
		record(op, "done", nil)
	}
	return len(ops), nil
}

// recordApplied sets name to digest in the node's applied record
// (Observed.Applied).
func (h *Host) recordApplied(name, digest string) error {
	p := h.path(filepath.Join(h.StateDir, "applied.json"))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
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

// kubectlArgs are kubectl's arguments: the kubeconfig, the proxy when
// set, then args.
func (h *Host) kubectlArgs(args ...string) []string {
	base := []string{"--kubeconfig", h.Kubeconfig}
	if h.Server != "" {
		base = append(base, "--server", h.Server)
	}
	if h.TLSServerName != "" {
		base = append(base, "--tls-server-name", h.TLSServerName)
	}
	return append(base, args...)
}

// WaitAPI waits until the API server answers through the node's
// kubeconfig (after kubeadm restarted it) with the node's Node object (a
// node that has just joined registers when its kubelet has bootstrapped),
// at most timeout.
func (h *Host) WaitAPI(ctx context.Context, timeout time.Duration) error {
	if !fileExists(h.path(h.Kubeconfig)) {
		return fmt.Errorf("no %s yet", h.Kubeconfig)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var err error
	for {
		if _, err = h.run(ctx, "kubectl", h.kubectlArgs("--request-timeout=5s", "get", "node", h.NodeName, "-o", "name")...); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the API server does not answer within %s: %w", timeout, err)
		case <-time.After(2 * time.Second):
		}
	}
}

func (h *Host) writeState(p, content string) error {
	if err := os.MkdirAll(filepath.Dir(h.path(p)), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(h.path(p), []byte(content+"\n"), 0o600)
}
