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
	"slices"
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
	// Server and TLSServerName, when set, override the kubeconfig's
	// cluster: the API steps go through the node-local API server proxy
	// (R32) and verify the API server's certificate for the endpoint's
	// name, so that they work while any API server does.
	Server, TLSServerName string
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
			return o, fmt.Errorf("reading the applied-manifest record: %w", err)
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
	case KindStart, KindRestart:
		verb := map[string]string{KindStart: "start", KindRestart: "restart"}[op.Kind]
		args := []string{verb, op.Unit}
		if op.NoBlock {
			args = []string{"--no-block", verb, op.Unit}
		}
		_, err := h.run(ctx, "systemctl", args...)
		return err
	case KindKubeconfig:
		if err := pointKubeconfig(h.path(op.Kubeconfig.Path), op.Kubeconfig.Server, op.Kubeconfig.TLSServerName); err != nil {
			return err
		}
		for _, u := range op.Kubeconfig.Restarts {
			if _, err := h.run(ctx, "systemctl", "restart", u); err != nil {
				return err
			}
		}
		return nil
	case KindKubeadm:
		for _, phase := range [][]string{{"certs", "all"}, {"kubeconfig", "all"}} {
			if _, err := h.run(ctx, "kubeadm", append(append([]string{"init", "phase"}, phase...), "--config", op.Kubeadm.Config)...); err != nil {
				return err
			}
		}
		if err := h.serversAndOwners(op.Kubeadm.Servers, op.Kubeadm.Owned, chown); err != nil {
			return err
		}
		args := []string{"init", "--config", op.Kubeadm.Config, "--skip-phases", strings.Join(append([]string{"certs", "kubeconfig"}, op.Kubeadm.SkipPhases...), ",")}
		if len(op.Kubeadm.IgnorePreflightErrors) > 0 {
			args = append(args, "--ignore-preflight-errors", strings.Join(op.Kubeadm.IgnorePreflightErrors, ","))
		}
		if _, err := h.run(ctx, "kubeadm", args...); err != nil {
			return err
		}
		if err := h.recordApplied(VersionRecord, d.KubernetesVersion); err != nil {
			return err
		}
		return h.recordApplied(KubeadmRecord, op.Kubeadm.InputDigest)
	case KindUpgrade:
		return h.upgrade(ctx, d, op.Upgrade)
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
		ignore := op.Join.IgnorePreflightErrors
		if op.Join.ControlPlane {
			// Ferry's kubeconfigs first (kubeadm's, pointed at names and
			// readable by the control plane's users), and etcd's static
			// Pod for the member Ferry added.
			if _, err := h.run(ctx, "kubeadm", "join", "phase", "control-plane-prepare", "kubeconfig", "--config", op.Join.Config); err != nil {
				return err
			}
			if err := h.serversAndOwners(op.Join.Servers, op.Join.Owned, chown); err != nil {
				return err
			}
			if _, err := h.run(ctx, "kubeadm", "init", "phase", "etcd", "local", "--config", op.Join.InitConfig); err != nil {
				return err
			}
			// kubeadm's etcd-join is Ferry's (the member by name, as a
			// learner); what waits for the local API server is skipped:
			// it answers once that member is promoted (below), and the
			// node's kubelet bootstraps against it then. Roles and taints
			// are applied through the API afterwards, like labels.
			args = append(args, "--skip-phases", "control-plane-prepare/download-certs,control-plane-prepare/certs,control-plane-prepare/kubeconfig,etcd-join,kubelet-wait-bootstrap,control-plane-join,wait-control-plane")
			ignore = append(slices.Clone(ignore), "FileAvailable--etc-kubernetes-manifests-etcd.yaml")
		}
		if len(ignore) > 0 {
			args = append(args, "--ignore-preflight-errors", strings.Join(ignore, ","))
		}
		if _, err := h.run(ctx, "kubeadm", args...); err != nil {
			return err
		}
		if op.Etcd != nil {
			if err := h.promoteEtcdMember(ctx, op.Etcd); err != nil {
				return err
			}
		}
		if err := h.recordApplied(VersionRecord, d.KubernetesVersion); err != nil {
			return err
		}
		if op.Join.InputDigest != "" {
			return h.recordApplied(KubeadmRecord, op.Join.InputDigest)
		}
		return nil
	case KindEtcdAdd:
		return h.addEtcdMember(ctx, op.Etcd)
	case KindEtcdPromote:
		return h.promoteEtcdMember(ctx, op.Etcd)
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
		if _, err := h.run(ctx, "kubectl", h.kubectlArgs("apply", "--server-side", "--field-manager=ferry", "--force-conflicts", "-f", tmp.Name())...); err != nil {
			return err
		}
		return h.recordApplied(op.Manifest, Digest(d.Manifests[op.Manifest]))
	case KindLabel:
		args := h.kubectlArgs("label", "node", h.NodeName, "--overwrite")
		for _, k := range sortedKeys(op.Labels) {
			args = append(args, k+"="+op.Labels[k])
		}
		_, err := h.run(ctx, "kubectl", args...)
		return err
	case KindRemoveNode:
		return h.removeNode(ctx, d, op.Target)
	case KindTaint:
		_, err := h.run(ctx, "kubectl", h.kubectlArgs("taint", "node", h.NodeName, "--overwrite", op.Taint)...)
		return err
	case KindUntaint:
		_, err := h.run(ctx, "kubectl", h.kubectlArgs("taint", "node", h.NodeName, op.Taint+"-")...)
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

// serversAndOwners points kubeconfigs at names and gives the control
// plane's files to their users.
func (h *Host) serversAndOwners(servers map[string]string, owned []Owned, chown func(p, own, grp string) error) error {
	for _, kc := range sortedKeys(servers) {
		if err := rewriteServer(h.path(kc), servers[kc]); err != nil {
			return err
		}
	}
	for _, o := range owned {
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
	return nil
}

// etcdMembers is `etcdctl member list -w json`.
type etcdMembers struct {
	Members []struct {
		ID        uint64   `json:"ID"`
		Name      string   `json:"name"`
		PeerURLs  []string `json:"peerURLs"`
		IsLearner bool     `json:"isLearner"`
	} `json:"members"`
}

// etcdctl runs etcdctl against m's endpoints, tried again while etcd
// fails (a busy member: its disk or CPU shared with the node's other
// work; a learner not yet in sync) up to attempts times.
func (h *Host) etcdctl(ctx context.Context, m *EtcdMember, attempts int, args ...string) ([]byte, error) {
	base := []string{"--endpoints=" + strings.Join(m.Endpoints, ","), "--cacert=" + h.path(m.CACert), "--cert=" + h.path(m.Cert), "--key=" + h.path(m.Key),
		"--dial-timeout=10s", "--command-timeout=30s"}
	for attempt := 1; ; attempt++ {
		out, err := h.run(ctx, "etcdctl", append(base, args...)...)
		if err == nil || attempt >= attempts {
			return out, err
		}
		h.log().Warn("etcdctl failed, trying again", slog.Int("attempt", attempt), slog.Any("err", err))
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(min(attempt, 4)) * 5 * time.Second):
		}
	}
}

func (h *Host) etcdMembers(ctx context.Context, m *EtcdMember) (etcdMembers, error) {
	var ms etcdMembers
	out, err := h.etcdctl(ctx, m, 5, "member", "list", "-w", "json")
	if err != nil {
		return ms, err
	}
	if err := json.Unmarshal(out, &ms); err != nil {
		return ms, fmt.Errorf("etcdctl member list: %w", err)
	}
	return ms, nil
}

// addEtcdMember adds m as a learner unless a member has its peer URL
// already, then records the membership the new member starts into.
func (h *Host) addEtcdMember(ctx context.Context, m *EtcdMember) error {
	ms, err := h.etcdMembers(ctx, m)
	if err != nil {
		return err
	}
	has := func(ms etcdMembers) bool {
		for _, x := range ms.Members {
			if slices.Contains(x.PeerURLs, m.PeerURL) {
				return true
			}
		}
		return false
	}
	if !has(ms) {
		if _, err := h.etcdctl(ctx, m, 1, "member", "add", m.Name, "--learner", "--peer-urls="+m.PeerURL); err != nil {
			// A timed-out add may have been applied: the next list says.
			if ms2, lerr := h.etcdMembers(ctx, m); lerr != nil || !has(ms2) {
				return err
			}
		}
		if ms, err = h.etcdMembers(ctx, m); err != nil {
			return err
		}
	}
	var cluster []string
	for _, x := range ms.Members {
		name := x.Name
		if slices.Contains(x.PeerURLs, m.PeerURL) {
			name = m.Name
		}
		if name == "" {
			return fmt.Errorf("etcd has another member that has not started yet (%s): join one control-plane node at a time", strings.Join(x.PeerURLs, ","))
		}
		for _, u := range x.PeerURLs {
			cluster = append(cluster, name+"="+u)
		}
	}
	slices.Sort(cluster)
	return h.writeState(m.StateFile, strings.Join(cluster, ","))
}

// promoteEtcdMember promotes m from learner to voting member once it has
// caught up with the leader (etcd refuses before: tried again for about
// three minutes), and records it.
func (h *Host) promoteEtcdMember(ctx context.Context, m *EtcdMember) error {
	ms, err := h.etcdMembers(ctx, m)
	if err != nil {
		return err
	}
	for _, x := range ms.Members {
		if !slices.Contains(x.PeerURLs, m.PeerURL) {
			continue
		}
		if x.IsLearner {
			if _, err := h.etcdctl(ctx, m, 12, "member", "promote", strconv.FormatUint(x.ID, 16)); err != nil {
				return err
			}
		}
		return h.writeState(m.PromotedFile, strconv.FormatUint(x.ID, 16))
	}
	return fmt.Errorf("etcd has no member with peer URL %s: it was removed; remove %s and join the node again", m.PeerURL, m.StateFile)
}

func (h *Host) writeState(p, content string) error {
	if err := os.MkdirAll(filepath.Dir(h.path(p)), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(h.path(p), []byte(content+"\n"), 0o600)
}

// upgrade runs kubeadm's upgrade for the node: on the first control-plane
// node of a roll-out (the cluster's kubeadm-config does not say it was
// upgraded to this version), the node's ClusterConfiguration is uploaded
// (the bundle's image tags and settings) and `kubeadm upgrade apply` runs,
// then kubeadm-config is marked; every other node runs `kubeadm upgrade
// node`. Then the kubelet, whose package was upgraded before, restarts.
func (h *Host) upgrade(ctx context.Context, d Desired, u *KubeadmUpgrade) error {
	args := []string{"upgrade", "node", "--config", u.Config}
	first := false
	if u.ControlPlane {
		out, err := h.run(ctx, "kubectl", h.kubectlArgs("--request-timeout=20s", "-n", "kube-system", "get", "configmap", "kubeadm-config",
			"-o", `jsonpath={.metadata.annotations.ferry\.dev/upgraded-to}`)...)
		if err != nil {
			return fmt.Errorf("reading the cluster's kubeadm configuration: %w", err)
		}
		if strings.TrimSpace(string(out)) != d.KubernetesVersion {
			first = true
			if _, err := h.run(ctx, "kubeadm", "init", "phase", "upload-config", "kubeadm", "--config", u.InitConfig); err != nil {
				return err
			}
			args = []string{"upgrade", "apply", "--config", u.Config, "--yes"}
		}
	}
	if len(u.IgnorePreflightErrors) > 0 {
		args = append(args, "--ignore-preflight-errors", strings.Join(u.IgnorePreflightErrors, ","))
	}
	if _, err := h.run(ctx, "kubeadm", args...); err != nil {
		return err
	}
	if first {
		if _, err := h.run(ctx, "kubectl", h.kubectlArgs("--request-timeout=20s", "-n", "kube-system", "annotate", "--overwrite",
			"configmap", "kubeadm-config", UpgradedAnnotation+"="+d.KubernetesVersion)...); err != nil {
			return err
		}
	}
	if _, err := h.run(ctx, "systemctl", "restart", "kubelet.service"); err != nil {
		return err
	}
	if d.Kubeadm != nil && d.Kubeadm.InputDigest != "" {
		if err := h.recordApplied(KubeadmRecord, d.Kubeadm.InputDigest); err != nil {
			return err
		}
	}
	return h.recordApplied(VersionRecord, d.KubernetesVersion)
}

// removeNode drains a node that is no longer in the cluster's
// configuration (evictions: its PodDisruptionBudgets hold), deletes its
// Node, and removes its etcd member when it has one (R50).
func (h *Host) removeNode(ctx context.Context, d Desired, name string) error {
	out, _ := h.run(ctx, "kubectl", h.kubectlArgs("get", "node", name, "--ignore-not-found", "-o", `jsonpath={.metadata.name} {.status.conditions[?(@.type=="Ready")].status}`)...)
	if f := strings.Fields(string(out)); len(f) > 0 {
		// Pods' deletions that are not confirmed within a minute are not
		// waited for. On a node that is down (Ready not True) nothing runs
		// their grace period or preStop hooks: they are deleted at once
		// (the Pods' controllers replace them elsewhere right away).
		args := []string{"drain", name, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=5m", "--skip-wait-for-delete-timeout=60"}
		if len(f) < 2 || f[1] != "True" {
			args = []string{"drain", name, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=5m", "--grace-period=1", "--skip-wait-for-delete-timeout=1"}
		}
		if _, err := h.run(ctx, "kubectl", h.kubectlArgs(args...)...); err != nil {
			return fmt.Errorf("draining %s: %w", name, err)
		}
		if _, err := h.run(ctx, "kubectl", h.kubectlArgs("delete", "node", name, "--ignore-not-found")...); err != nil {
			return err
		}
	}
	if d.LocalEtcd == nil {
		return nil
	}
	ms, err := h.etcdMembers(ctx, d.LocalEtcd)
	if err != nil {
		return err
	}
	for _, m := range ms.Members {
		if m.Name == name {
			if _, err := h.etcdctl(ctx, d.LocalEtcd, 3, "member", "remove", strconv.FormatUint(m.ID, 16)); err != nil {
				return fmt.Errorf("removing %s's etcd member: %w", name, err)
			}
		}
	}
	return nil
}
