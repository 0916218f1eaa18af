package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ferry-k8s/ferry/bundle/validity"
	"github.com/ferry-k8s/ferry/bundle/verify"
	"github.com/ferry-k8s/ferry/installer/bundlefetch"
	"github.com/ferry-k8s/ferry/installer/cluster"
	"github.com/ferry-k8s/ferry/installer/content"
	"github.com/ferry-k8s/ferry/installer/converge"
	"github.com/ferry-k8s/ferry/installer/desired"
	"github.com/ferry-k8s/ferry/installer/joinfile"
	"github.com/ferry-k8s/ferry/installer/layout"
	"github.com/ferry-k8s/ferry/installer/nodestate"
	"github.com/ferry-k8s/ferry/installer/pki"
	"github.com/ferry-k8s/ferry/internal/atomicfile"
	"github.com/ferry-k8s/ferry/internal/version"
	"github.com/ferry-k8s/ferry/signing"
)

// Options configure `installer bootstrap` and `installer apply`.
type Options struct {
	// ISO is the bundle to install; empty for apply: the one imported.
	ISO string
	// Validity is a signed validity statement (builder extend) that
	// extends the bundle to install or join; empty: the .validity file
	// beside the ISO, or the one the content services serve for a
	// fetched bundle. It is kept beside the imported ISO.
	Validity string
	// Config is cluster.yaml; empty for apply: the one bootstrap kept.
	Config string
	// Keyring holds the keys bundles must be signed by; empty for apply:
	// the one bootstrap kept.
	Keyring string
	// JoinFile joins the node to a cluster (installer join): the file
	// installer token create made on a control-plane node. It gives the
	// configuration and keyring; without ISO the bundle is fetched from
	// the cluster's content services and verified here.
	JoinFile string
	// CertificateKey is the join file's key (hex; what installer token
	// create printed with it): it authenticates the file, and opens a
	// control-plane join file's secrets. Required with JoinFile.
	CertificateKey string
	// Node is this node's name in cluster.yaml; empty: the node whose
	// hostname is this host's.
	Node string
	// RootPassphrase protects new root CA keys (R25).
	RootPassphrase pki.Passphrase
	// Root prefixes every path (tests); "/" on a node.
	Root string
	// DryRun prints the plan and changes nothing.
	DryRun bool
	// IgnorePreflightErrors are passed to kubeadm (documented per
	// environment: the systemd-nspawn test machines need some).
	IgnorePreflightErrors []string
	Log                   *slog.Logger
	Now                   func() time.Time
	// Out receives the plan.
	Out io.Writer

	join    *joinfile.File // read from JoinFile
	joinKey []byte         // CertificateKey, decoded
}

// maxRounds bounds observe → plan → apply: the first round converges
// the node, later ones finish what depended on it (the objects of a
// freshly started API server, an etcd member's promotion), the last the
// cluster's add-ons once the node has converged.
const maxRounds = 6

// Result says what a run did.
type Result struct {
	Node    string        `json:"node"`
	Bundle  string        `json:"bundle"`
	Changes int           `json:"changes"`
	Rounds  int           `json:"rounds"`
	Plan    []string      `json:"plan"`
	Took    time.Duration `json:"took"`
}

// Run bootstraps (Options.ISO set) or re-applies the node: verify the
// bundle, import it, then observe → plan → apply until the plan is empty
// (at most maxRounds: the first converges, later ones finish what
// depended on the first, like objects of a freshly started API server,
// and the cluster's add-ons once the node has converged).
func Run(ctx context.Context, o Options) (*Result, error) {
	start := time.Now()
	if o.Root == "" {
		o.Root = "/"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	in := func(p string) string { return filepath.Join(o.Root, p) }
	if o.JoinFile != "" {
		if strings.TrimSpace(o.CertificateKey) == "" {
			return nil, fmt.Errorf("join file %s: give --certificate-key, the key installer token create printed with the file: it authenticates the file (and opens a control plane's secrets)", o.JoinFile)
		}
		key, err := joinfile.ParseCertificateKey(o.CertificateKey)
		if err != nil {
			return nil, fmt.Errorf("--certificate-key: %w", err)
		}
		jf, err := joinfile.Read(o.JoinFile, o.Now(), key)
		if err != nil {
			return nil, err
		}
		if o.Node != "" && o.Node != jf.Node {
			return nil, fmt.Errorf("join file %s is for node %s, not %s", o.JoinFile, jf.Node, o.Node)
		}
		o.Node, o.join, o.joinKey = jf.Node, jf, key
		tmp, err := os.MkdirTemp("", "ferry-join-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		o.Config, o.Keyring = filepath.Join(tmp, "cluster.yaml"), filepath.Join(tmp, "keyring.asc")
		if err := os.WriteFile(o.Config, []byte(jf.ClusterConfig), 0o600); err != nil {
			return nil, err
		}
		if err := os.WriteFile(o.Keyring, []byte(jf.Keyring), 0o600); err != nil {
			return nil, err
		}
	}
	bootstrap := o.ISO != "" || o.join != nil
	if o.Config == "" {
		o.Config = in(ClusterConfig)
	}
	if o.Keyring == "" {
		o.Keyring = in(KeyringFile)
	}
	c, err := cluster.Load(o.Config)
	if err != nil {
		return nil, err
	}
	c = c.Defaulted()
	node, err := pickNode(c, o.Node)
	if err != nil {
		return nil, err
	}
	ring, err := signing.LoadKeyringFile(o.Keyring)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	isoPath := o.ISO
	switch {
	case !bootstrap:
		if isoPath, err = importedISO(o.Root); err != nil {
			return nil, err
		}
	case o.join != nil && isoPath == "":
		if o.join.BundleSHA256 == "" {
			return nil, fmt.Errorf("join file %s names no bundle digest: give the bundle with --iso", o.JoinFile)
		}
		// Imported already (a join run again): not fetched again.
		if sum, _, err := fileSHA256(in(filepath.Join(BundlesDir, o.join.Bundle))); err == nil && sum == o.join.BundleSHA256 {
			isoPath = in(filepath.Join(BundlesDir, o.join.Bundle))
			break
		}
		fetcher := &bundlefetch.Fetcher{Services: o.join.ContentServices, CA: []byte(o.join.ContentCA), Dir: in(filepath.Join(StateDir, "downloads")), Log: log}
		if isoPath, err = fetcher.Fetch(ctx, bundlefetch.Bundle{File: o.join.Bundle, SHA256: o.join.BundleSHA256, Size: o.join.BundleSize}); err != nil {
			return nil, err
		}
		defer os.Remove(isoPath)
		if o.Validity == "" {
			// The statement that extends the bundle, if the content
			// services have one: checked below like one given by hand.
			p, err := fetcher.Validity(ctx, o.join.Bundle)
			if err != nil {
				return nil, err
			}
			if p != "" {
				defer os.Remove(p)
				o.Validity = p
			}
		}
	}
	// Verify before any change: a wrong key, an expired or tampered bundle
	// stop here. What the node runs already (apply, or a bootstrap or join
	// run again with the bundle it imported) is installed content: its
	// expiry is reported, never refused (R59).
	installed := !bootstrap || alreadyImported(o.Root, isoPath)
	log.Info("verifying bundle", slog.String("iso", isoPath))
	facts, err := ReadFacts(ctx, isoPath, ring, verify.Options{Now: o.Now(), Installed: installed, ValidityFile: o.Validity})
	if err != nil {
		return nil, err
	}
	for _, w := range facts.Warnings {
		log.Warn("bundle validity", slog.String("bundle", facts.Name+" "+facts.Version), slog.String("warning", w))
	}
	// Verified: the node may change from here.
	if !o.DryRun {
		// One convergence at a time on a node: the daemon's (a roll-out)
		// and the command line's take turns.
		unlock, err := lockNode(ctx, in(filepath.Join(StateDir, "apply.lock")), log)
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	res := &Result{Node: node.Name, Bundle: facts.Name + " " + facts.Version}
	imported := filepath.Join(BundlesDir, facts.Name+"-"+facts.Version+".iso")
	if bootstrap {
		// Run again on a node that runs another bundle: the same rules as
		// a roll-out (no silent downgrade, minUpgradeFrom, Kubernetes
		// skew).
		if err := mayReplaceTarget(o.Root, facts); err != nil {
			return nil, fmt.Errorf("node %s: %w", node.Name, err)
		}
	}
	if bootstrap && !o.DryRun {
		changed, err := importISO(isoPath, in(imported))
		if err != nil {
			return nil, err
		}
		if changed {
			res.Changes++
			log.Info("bundle imported", slog.String("path", imported))
		}
		changed, err = keepValidity(in(imported), o.Validity, isoPath, ring, o.Now(), facts)
		if err != nil {
			return nil, err
		}
		if changed {
			res.Changes++
		}
		if err := writeState(o.Root, TargetFile, filepath.Base(imported)); err != nil {
			return nil, err
		}
	}
	if len(o.IgnorePreflightErrors) > 0 && !o.DryRun {
		if err := writeState(o.Root, IgnorePreflightFile, strings.Join(o.IgnorePreflightErrors, ",")); err != nil {
			return nil, err
		}
	} else if data, err := os.ReadFile(in(IgnorePreflightFile)); err == nil && len(bytes.TrimSpace(data)) > 0 {
		o.IgnorePreflightErrors = strings.Split(strings.TrimSpace(string(data)), ",")
	}
	mode, err := nodeMode(o.Root, bootstrap, o.join != nil)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", node.Name, err)
	}
	if bootstrap && !o.DryRun {
		if err := recordMode(o.Root, mode); err != nil {
			return nil, err
		}
	}
	if o.join != nil && node.HasRole(cluster.RoleControlPlane) {
		secrets, err := o.join.OpenSecrets(o.joinKey)
		if err != nil {
			return nil, err
		}
		if !o.DryRun {
			n, err := installSecrets(o.Root, secrets)
			if err != nil {
				return nil, fmt.Errorf("node %s: %w", node.Name, err)
			}
			res.Changes += n
		}
	}
	// Ferry's API steps go through the node-local proxy (R32): they work
	// while any API server does, whatever the endpoint's name resolves to.
	host := &converge.Host{Root: o.Root, NodeName: node.Name, Kubeconfig: layout.AdminConf, StateDir: StateDir, Log: log,
		Server: APIProxyServer, TLSServerName: c.APIServerName()}
	observe := nodestate.Options{Root: o.Root, Cluster: c, Node: node, ClusterConfig: o.Config, Keyring: o.Keyring,
		Bundle: facts.desired(), Mode: mode, Imported: imported, IgnorePreflightErrors: o.IgnorePreflightErrors,
		Passphrase: o.RootPassphrase, Now: o.Now, Version: versionString()}
	if o.join != nil {
		observe.Join = &nodestate.Join{ContentCA: []byte(o.join.ContentCA), Discovery: []byte(o.join.Discovery)}
		for _, e := range o.join.Files {
			observe.Join.Files = append(observe.Join.Files, converge.File{Path: e.Path, Mode: e.Mode, Content: e.Content})
		}
	}
	for round := 1; round <= maxRounds; round++ {
		// observe → desired → plan → apply, until nothing is left to do.
		in, err := nodestate.Observe(ctx, observe)
		if err != nil {
			return nil, err
		}
		d, warnings, err := desired.Node(in)
		if err != nil {
			return nil, err
		}
		if round == 1 {
			for _, w := range warnings {
				log.Warn(w)
			}
		}
		if round > 1 && d.NeedsAPI() && !o.DryRun {
			// The last round may have restarted the API server (kubeadm
			// init, a reconfiguration): give it time before reading.
			if err := host.WaitAPI(ctx, 3*time.Minute); err != nil {
				log.Warn("waiting for the API server", slog.Any("err", err))
			}
		}
		obs, err := host.Observe(ctx, d)
		if err != nil {
			return nil, err
		}
		ops := converge.Plan(d, obs)
		if len(ops) == 0 && d.Kubeadm != nil && !obs.APIUnknown {
			// The node has converged: the cluster's add-ons, as this
			// control plane's bundle renders them.
			client, err := addonClient(o.Root, c)
			if err != nil {
				return res, fmt.Errorf("node %s: add-ons: %w", node.Name, err)
			}
			addonOps, notes, err := planAddons(ctx, client, desired.AddonInput(c, in.Bundle))
			if err != nil {
				return res, fmt.Errorf("node %s: %w", node.Name, err)
			}
			for _, n := range notes {
				log.Info(n)
			}
			ops = addonOps
		}
		res.Rounds = round
		for _, op := range ops {
			res.Plan = append(res.Plan, op.String())
		}
		if o.Out != nil && (len(ops) > 0 || round == 1) {
			fmt.Fprintf(o.Out, "node %s, bundle %s %s, round %d:\n%s", node.Name, facts.Name, facts.Version, round, converge.Format(ops))
		}
		if obs.APIUnknown && d.NeedsAPI() && (len(ops) == 0 || o.DryRun) {
			msg := fmt.Sprintf("node %s: the API server does not answer, or has no Node %s: its labels, taints and the cluster's add-ons are not checked", node.Name, node.Name)
			if !o.DryRun {
				return res, errors.New(msg + " (run the same command again when it does)")
			}
			if o.Out != nil {
				fmt.Fprintln(o.Out, msg)
			}
		}
		if len(ops) == 0 || o.DryRun {
			if o.DryRun {
				res.Changes += len(ops)
			}
			break
		}
		if converge.Installs(ops) && bootstrap {
			// The repository file names the content service, which runs
			// from these very packages: the first install reads the
			// repository straight from the verified ISO.
			dir, cleanup, err := extractRepo(ctx, isoPath, ring, facts, verify.Options{Now: o.Now(), Installed: installed, ValidityFile: o.Validity})
			if err != nil {
				return nil, err
			}
			defer cleanup()
			host.DNFArgs = append(dnfArgs(facts), "--setopt="+repoID(facts)+".baseurl=file://"+dir)
		} else {
			host.DNFArgs = dnfArgs(facts)
		}
		n, err := host.Apply(ctx, ops)
		res.Changes += n
		if err != nil {
			return res, fmt.Errorf("node %s: %w (the journal is %s; run the same command again to continue)", node.Name, err, layout.Journal)
		}
	}
	res.Took = time.Since(start)
	return res, nil
}

func pickNode(c *cluster.Cluster, name string) (*cluster.Node, error) {
	if name != "" {
		if n := c.Node(name); n != nil {
			return n, nil
		}
		return nil, fmt.Errorf("node %q is not in the cluster configuration", name)
	}
	host, err := os.Hostname()
	if err != nil {
		return nil, err
	}
	for i := range c.Spec.Nodes {
		n := &c.Spec.Nodes[i]
		if n.Hostname == host || n.Name == host || strings.SplitN(n.Hostname, ".", 2)[0] == host {
			return n, nil
		}
	}
	return nil, fmt.Errorf("this host (%s) is not a node of the cluster configuration: give --node", host)
}

// importedISO is the bundle bootstrap imported (the newest there).
func importedISO(root string) (string, error) {
	if data, err := os.ReadFile(filepath.Join(root, TargetFile)); err == nil {
		name := strings.TrimSpace(string(data))
		if name == "" || name != filepath.Base(name) {
			return "", fmt.Errorf("%s: %q is not a bundle file name", TargetFile, name)
		}
		return filepath.Join(root, BundlesDir, name), nil
	}
	entries, err := filepath.Glob(filepath.Join(root, BundlesDir, "*.iso"))
	if err != nil || len(entries) == 0 {
		return "", fmt.Errorf("no imported bundle in %s: run installer bootstrap first", BundlesDir)
	}
	slices.Sort(entries)
	return entries[len(entries)-1], nil
}

// importISO copies the verified ISO into the bundle store (atomically).
// An ISO already there with the same size and manifest is left as is.
func importISO(src, dst string) (bool, error) {
	si, err := os.Stat(src)
	if err != nil {
		return false, err
	}
	if di, err := os.Stat(dst); err == nil && di.Size() == si.Size() {
		same, err := sameManifest(src, dst)
		if err == nil && same {
			return false, nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return false, err
	}
	in, err := os.Open(src)
	if err != nil {
		return false, err
	}
	defer in.Close()
	err = atomicfile.Write(dst, 0o644, func(f *os.File) error {
		_, err := io.Copy(f, in)
		return err
	})
	return err == nil, err
}

// alreadyImported says the node holds this very bundle (the same signed
// manifest) among its imported bundles: a bootstrap or join run again.
func alreadyImported(root, isoPath string) bool {
	m, err := content.ReadManifestUnverified(isoPath)
	if err != nil {
		return false
	}
	same, err := sameManifest(isoPath, filepath.Join(root, BundlesDir, m.Name+"-"+m.Version+".iso"))
	return err == nil && same
}

// keepValidity keeps the validity statement that came with a bundle
// (explicit, else the file beside srcISO, if any) beside the imported ISO,
// where the content service and later runs find it; it refuses one older
// than the statement already there, and reports a change.
func keepValidity(importedISO, explicit, srcISO string, ring *signing.Keyring, now time.Time, f *BundleFacts) (bool, error) {
	p := explicit
	if p == "" {
		if _, err := os.Stat(validity.Beside(srcISO)); err == nil {
			p = validity.Beside(srcISO)
		}
	}
	if p == "" || p == validity.Beside(importedISO) {
		return false, nil
	}
	data, err := validity.ReadFile(p)
	if err != nil {
		return false, err
	}
	_, changed, err := validity.Install(importedISO, data, ring, now, f.ManifestSHA256)
	if err != nil {
		return false, fmt.Errorf("bundle %s %s: %s: %w", f.Name, f.Version, p, err)
	}
	return changed, nil
}

func sameManifest(a, b string) (bool, error) {
	ma, err := readManifestBytes(a)
	if err != nil {
		return false, err
	}
	mb, err := readManifestBytes(b)
	if err != nil {
		return false, err
	}
	return string(ma) == string(mb), nil
}

func readManifestBytes(p string) ([]byte, error) {
	m, err := content.ReadManifestUnverified(p)
	if err != nil {
		return nil, err
	}
	return m.Marshal()
}

// repoID is the dnf repository id of the distribution's repository.
func repoID(f *BundleFacts) string { return "ferry-" + f.Repo }

// dnfArgs confine dnf to Ferry's repository: an air-gapped node must not
// try any other.
func dnfArgs(f *BundleFacts) []string {
	return []string{"--disablerepo=*", "--enablerepo=" + repoID(f), "--releasever=1", "--setopt=" + repoID(f) + ".skip_if_unavailable=False"}
}

// extractRepo copies the distribution's repository out of the verified ISO
// (each chunk checked as it is read) for the first install.
func extractRepo(ctx context.Context, isoPath string, ring *signing.Keyring, f *BundleFacts, opts verify.Options) (string, func(), error) {
	b, _, err := verify.OpenVerified(ctx, isoPath, ring, opts)
	if err != nil {
		return "", nil, err
	}
	defer b.Close()
	dir, err := os.MkdirTemp("", "ferry-repo-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	prefix := "packages/" + f.Repo + "/"
	fsys := b.FS()
	for _, file := range b.Manifest.Files {
		if !strings.HasPrefix(file.Path, prefix) {
			continue
		}
		dst := filepath.Join(dir, strings.TrimPrefix(file.Path, prefix))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			cleanup()
			return "", nil, err
		}
		if err := copyVerified(fsys, file.Path, dst); err != nil {
			cleanup()
			return "", nil, err
		}
	}
	return dir, cleanup, nil
}

func copyVerified(fsys fs.FS, name, dst string) error {
	in, err := fsys.Open(name)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("%s: %w", name, err)
	}
	return out.Close()
}

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
	data, err := os.ReadFile(filepath.Join(root, ModeFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	recorded := strings.TrimSpace(string(data))
	if recorded == "" {
		// Nodes installed before the mode was recorded.
		switch {
		case fileExists(filepath.Join(root, "/etc/kubernetes/super-admin.conf")):
			recorded = "bootstrap"
		case fileExists(filepath.Join(root, "/etc/kubernetes/kubelet.conf")):
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

func recordMode(root, mode string) error { return writeState(root, ModeFile, mode) }

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
		if filepath.Dir(e.Path) == filepath.Dir(EncryptionKey) {
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
	p := filepath.Join(root, name)
	if data, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(data)) == content {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(p, []byte(content+"\n"), 0o644)
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
