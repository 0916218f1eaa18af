package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ferry-k8s/ferry/bundle/verify"
	"github.com/ferry-k8s/ferry/installer/bundlefetch"
	"github.com/ferry-k8s/ferry/installer/bundlestore"
	"github.com/ferry-k8s/ferry/installer/cluster"
	"github.com/ferry-k8s/ferry/installer/converge"
	"github.com/ferry-k8s/ferry/installer/desired"
	"github.com/ferry-k8s/ferry/installer/joinfile"
	"github.com/ferry-k8s/ferry/installer/layout"
	"github.com/ferry-k8s/ferry/installer/nodestate"
	"github.com/ferry-k8s/ferry/installer/pki"
	"github.com/ferry-k8s/ferry/internal/fileutil"
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

// Run bootstraps (Options.ISO set), joins (Options.JoinFile) or re-applies
// the node:
//
//	read the join file ─► load cluster.yaml, the node, the keyring
//	  ─► the bundle (given, imported, or fetched) ─► verify it in full
//	  ─► lock the node ─► import it as the target ─► the node's records
//	     (mode, kubeadm's preflight exceptions, a control plane's secrets)
//	  ─► rounds of nodestate.Observe → desired.Node → converge.Plan (and the
//	     cluster's add-ons once the node has converged) → Host.Apply,
//	     until a plan is empty (at most maxRounds)
//
// Nothing changes before the bundle is verified; a dry run changes
// nothing at all.
func Run(ctx context.Context, o Options) (*Result, error) {
	r := &run{Options: o, start: time.Now()}
	r.defaults()
	if err := r.readJoinFile(); err != nil {
		return nil, err
	}
	defer r.cleanup()
	if err := r.load(); err != nil {
		return nil, err
	}
	if err := r.fetch(ctx); err != nil {
		return nil, err
	}
	if err := r.verify(ctx); err != nil {
		return nil, err
	}
	// Verified: the node may change from here.
	if !r.DryRun {
		// One convergence at a time on a node: the daemon's (a roll-out)
		// and the command line's take turns.
		unlock, err := lockNode(ctx, r.in(layout.ApplyLock), r.log)
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	r.res = &Result{Node: r.node.Name, Bundle: r.facts.Name + " " + r.facts.Version}
	if err := r.importBundle(); err != nil {
		return nil, err
	}
	if err := r.records(); err != nil {
		return nil, err
	}
	if err := r.converge(ctx); err != nil {
		return r.res, err
	}
	r.res.Took = time.Since(r.start)
	return r.res, nil
}

// run is one Run: its options and what each phase found.
type run struct {
	Options
	start time.Time
	log   *slog.Logger
	// bootstrap: the node takes a bundle (bootstrap or join), not only
	// re-applies the one it has.
	bootstrap bool
	c         *cluster.Cluster
	node      *cluster.Node
	ring      *signing.Keyring
	// isoPath is the bundle to verify and install; installed says it is
	// the one the node has (its expiry reported, never refused: R59).
	isoPath   string
	installed bool
	facts     *bundlestore.Facts
	// imported is the bundle's path among the node's bundles.
	imported string
	mode     string
	res      *Result
	cleanups []func()
}

func (r *run) in(p string) string { return filepath.Join(r.Root, p) }

func (r *run) cleanup() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

func (r *run) defaults() {
	if r.Root == "" {
		r.Root = "/"
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	r.log = r.Log
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
}

// readJoinFile authenticates the join file with its key; its cluster.yaml
// and keyring are the run's.
func (r *run) readJoinFile() error {
	if r.JoinFile == "" {
		return nil
	}
	if strings.TrimSpace(r.CertificateKey) == "" {
		return fmt.Errorf("join file %s: give --certificate-key, the key installer token create printed with the file: it authenticates the file (and opens a control plane's secrets)", r.JoinFile)
	}
	key, err := joinfile.ParseCertificateKey(r.CertificateKey)
	if err != nil {
		return fmt.Errorf("--certificate-key: %w", err)
	}
	jf, err := joinfile.Read(r.JoinFile, r.Now(), key)
	if err != nil {
		return err
	}
	if r.Node != "" && r.Node != jf.Node {
		return fmt.Errorf("join file %s is for node %s, not %s", r.JoinFile, jf.Node, r.Node)
	}
	r.Node, r.join, r.joinKey = jf.Node, jf, key
	tmp, err := os.MkdirTemp("", "ferry-join-")
	if err != nil {
		return err
	}
	r.cleanups = append(r.cleanups, func() { os.RemoveAll(tmp) })
	r.Config, r.Keyring = filepath.Join(tmp, "cluster.yaml"), filepath.Join(tmp, "keyring.asc")
	if err := os.WriteFile(r.Config, []byte(jf.ClusterConfig), 0o600); err != nil {
		return err
	}
	return os.WriteFile(r.Keyring, []byte(jf.Keyring), 0o600)
}

// load reads cluster.yaml, finds this node in it, and loads the keyring.
func (r *run) load() error {
	r.bootstrap = r.ISO != "" || r.join != nil
	if r.Config == "" {
		r.Config = r.in(layout.ClusterConfig)
	}
	if r.Keyring == "" {
		r.Keyring = r.in(layout.KeyringFile)
	}
	c, err := cluster.Load(r.Config)
	if err != nil {
		return err
	}
	r.c = c.Defaulted()
	if r.node, err = nodestate.ThisNode(r.c, r.Node); err != nil {
		return err
	}
	if r.ring, err = signing.LoadKeyringFile(r.Keyring); err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	return nil
}

// fetch finds the bundle: the one given, the one imported (apply), or
// the join file's, fetched from the cluster's content services (with the
// validity statement they serve beside it) unless imported already.
func (r *run) fetch(ctx context.Context) error {
	r.isoPath = r.ISO
	var err error
	switch {
	case !r.bootstrap:
		r.isoPath, err = bundlestore.Imported(r.Root)
		return err
	case r.join == nil || r.isoPath != "":
		return nil
	}
	if r.join.BundleSHA256 == "" {
		return fmt.Errorf("join file %s names no bundle digest: give the bundle with --iso", r.JoinFile)
	}
	// Imported already (a join run again): not fetched again.
	here := r.in(filepath.Join(layout.BundlesDir, r.join.Bundle))
	if sum, _, err := fileutil.SHA256(here); err == nil && sum == r.join.BundleSHA256 {
		r.isoPath = here
		return nil
	}
	fetcher := &bundlefetch.Fetcher{Services: r.join.ContentServices, CA: []byte(r.join.ContentCA), Dir: r.in(layout.DownloadsDir), Log: r.log}
	if r.isoPath, err = fetcher.Fetch(ctx, bundlefetch.Bundle{File: r.join.Bundle, SHA256: r.join.BundleSHA256, Size: r.join.BundleSize}); err != nil {
		return err
	}
	p := r.isoPath
	r.cleanups = append(r.cleanups, func() { os.Remove(p) })
	if r.Validity == "" {
		// The statement that extends the bundle, if the content services
		// have one: checked like one given by hand.
		v, err := fetcher.Validity(ctx, r.join.Bundle)
		if err != nil {
			return err
		}
		if v != "" {
			r.cleanups = append(r.cleanups, func() { os.Remove(v) })
			r.Validity = v
		}
	}
	return nil
}

// verify checks the bundle in full before any change: a wrong key, an
// expired or tampered bundle stop here. What the node runs already
// (apply, or a bootstrap or join run again with the bundle it imported)
// is installed content: its expiry is reported, never refused (R59).
func (r *run) verify(ctx context.Context) error {
	r.installed = !r.bootstrap || bundlestore.AlreadyImported(r.Root, r.isoPath)
	r.log.Info("verifying bundle", slog.String("iso", r.isoPath))
	facts, err := bundlestore.ReadFacts(ctx, r.isoPath, r.ring, r.verifyOptions())
	if err != nil {
		return err
	}
	r.facts = facts
	for _, w := range facts.Warnings {
		r.log.Warn("bundle validity", slog.String("bundle", facts.Name+" "+facts.Version), slog.String("warning", w))
	}
	r.imported = filepath.Join(layout.BundlesDir, bundlestore.FileName(facts.Name, facts.Version))
	return nil
}

func (r *run) verifyOptions() verify.Options {
	return verify.Options{Now: r.Now(), Installed: r.installed, ValidityFile: r.Validity}
}

// importBundle makes the bundle the node's target (bootstrap and join;
// a dry run only checks that it may).
func (r *run) importBundle() error {
	if !r.bootstrap {
		return nil
	}
	// Run again on a node that runs another bundle: the same rules as a
	// roll-out (no silent downgrade, minUpgradeFrom, Kubernetes skew).
	if err := bundlestore.MayReplaceTarget(r.Root, r.facts); err != nil {
		return fmt.Errorf("node %s: %w", r.node.Name, err)
	}
	if r.DryRun {
		return nil
	}
	changed, err := bundlestore.Import(r.isoPath, r.in(r.imported))
	if err != nil {
		return err
	}
	if changed {
		r.res.Changes++
		r.log.Info("bundle imported", slog.String("path", r.imported))
	}
	changed, err = bundlestore.KeepValidity(r.in(r.imported), r.Validity, r.isoPath, r.ring, r.Now(), r.facts)
	if err != nil {
		return err
	}
	if changed {
		r.res.Changes++
	}
	return bundlestore.SetTarget(r.Root, filepath.Base(r.imported))
}

// records keeps or reads the node's records: kubeadm's preflight
// exceptions, how the node came into the cluster, and a joining control
// plane's shared secrets.
func (r *run) records() error {
	if len(r.IgnorePreflightErrors) > 0 && !r.DryRun {
		if err := writeState(r.Root, layout.IgnorePreflightFile, strings.Join(r.IgnorePreflightErrors, ",")); err != nil {
			return err
		}
	} else if data, err := os.ReadFile(r.in(layout.IgnorePreflightFile)); err == nil && len(bytes.TrimSpace(data)) > 0 {
		r.IgnorePreflightErrors = strings.Split(strings.TrimSpace(string(data)), ",")
	}
	mode, err := nodeMode(r.Root, r.bootstrap, r.join != nil)
	if err != nil {
		return fmt.Errorf("node %s: %w", r.node.Name, err)
	}
	r.mode = mode
	if r.bootstrap && !r.DryRun {
		if err := recordMode(r.Root, mode); err != nil {
			return err
		}
	}
	if r.join == nil || !r.node.HasRole(cluster.RoleControlPlane) {
		return nil
	}
	secrets, err := r.join.OpenSecrets(r.joinKey)
	if err != nil {
		return err
	}
	if r.DryRun {
		return nil
	}
	n, err := installSecrets(r.Root, secrets)
	if err != nil {
		return fmt.Errorf("node %s: %w", r.node.Name, err)
	}
	r.res.Changes += n
	return nil
}

// converge runs observe → desired → plan → apply rounds until a plan is
// empty: the first round converges the node, later ones finish what
// depended on it, the last the cluster's add-ons.
func (r *run) converge(ctx context.Context) error {
	// Ferry's API steps go through the node-local proxy (R32): they work
	// while any API server does, whatever the endpoint's name resolves to.
	host := &converge.Host{Root: r.Root, NodeName: r.node.Name, Kubeconfig: layout.AdminConf, StateDir: layout.StateDir, Log: r.log,
		Server: layout.APIProxyServer, TLSServerName: r.c.APIServerName()}
	observe := nodestate.Options{Root: r.Root, Cluster: r.c, Node: r.node, ClusterConfig: r.Config, Keyring: r.Keyring,
		Bundle: r.facts.Desired(), Mode: r.mode, Imported: r.imported, IgnorePreflightErrors: r.IgnorePreflightErrors,
		Passphrase: r.RootPassphrase, Now: r.Now, Version: versionString()}
	if r.join != nil {
		observe.Join = &nodestate.Join{ContentCA: []byte(r.join.ContentCA), Discovery: []byte(r.join.Discovery)}
		for _, e := range r.join.Files {
			observe.Join.Files = append(observe.Join.Files, converge.File{Path: e.Path, Mode: e.Mode, Content: e.Content})
		}
	}
	for round := 1; round <= maxRounds; round++ {
		ops, done, err := r.plan(ctx, round, host, observe)
		if err != nil || done {
			return err
		}
		if err := r.dnf(ctx, host, ops); err != nil {
			return err
		}
		n, err := host.Apply(ctx, ops)
		r.res.Changes += n
		if err != nil {
			return fmt.Errorf("node %s: %w (the journal is %s; run the same command again to continue)", r.node.Name, err, layout.Journal)
		}
	}
	return nil
}

// plan is one round's plan, printed; done when there is nothing to apply
// (converged, or a dry run).
func (r *run) plan(ctx context.Context, round int, host *converge.Host, observe nodestate.Options) ([]converge.Op, bool, error) {
	in, err := nodestate.Observe(ctx, observe)
	if err != nil {
		return nil, false, err
	}
	d, warnings, err := desired.Node(in)
	if err != nil {
		return nil, false, err
	}
	if round == 1 {
		for _, w := range warnings {
			r.log.Warn(w)
		}
	}
	if round > 1 && d.NeedsAPI() && !r.DryRun {
		// The last round may have restarted the API server (kubeadm init,
		// a reconfiguration): give it time before reading.
		if err := host.WaitAPI(ctx, 3*time.Minute); err != nil {
			r.log.Warn("waiting for the API server", slog.Any("err", err))
		}
	}
	obs, err := host.Observe(ctx, d)
	if err != nil {
		return nil, false, err
	}
	ops := converge.Plan(d, obs)
	if len(ops) == 0 && d.Kubeadm != nil && !obs.APIUnknown {
		// The node has converged: the cluster's add-ons, as this control
		// plane's bundle renders them.
		client, err := addonClient(r.Root, r.c)
		if err != nil {
			return nil, false, fmt.Errorf("node %s: add-ons: %w", r.node.Name, err)
		}
		addonOps, notes, err := planAddons(ctx, client, r.c, r.node.Name, desired.AddonInput(r.c, in.Bundle))
		if err != nil {
			return nil, false, fmt.Errorf("node %s: %w", r.node.Name, err)
		}
		for _, n := range notes {
			r.log.Info(n)
		}
		ops = addonOps
	}
	r.res.Rounds = round
	for _, op := range ops {
		r.res.Plan = append(r.res.Plan, op.String())
	}
	if r.Out != nil && (len(ops) > 0 || round == 1) {
		fmt.Fprintf(r.Out, "node %s, bundle %s %s, round %d:\n%s", r.node.Name, r.facts.Name, r.facts.Version, round, converge.Format(ops))
	}
	if obs.APIUnknown && d.NeedsAPI() && (len(ops) == 0 || r.DryRun) {
		msg := fmt.Sprintf("node %s: the API server does not answer, or has no Node %s: its labels, taints and the cluster's add-ons are not checked", r.node.Name, r.node.Name)
		if !r.DryRun {
			return nil, false, errors.New(msg + " (run the same command again when it does)")
		}
		if r.Out != nil {
			fmt.Fprintln(r.Out, msg)
		}
	}
	if len(ops) == 0 || r.DryRun {
		if r.DryRun {
			r.res.Changes += len(ops)
		}
		return ops, true, nil
	}
	return ops, false, nil
}

// dnf confines dnf to the bundle's repository. On a node that takes a
// bundle, the first install reads the repository straight from the
// verified ISO: the repository file names the content service, which runs
// from these very packages.
func (r *run) dnf(ctx context.Context, host *converge.Host, ops []converge.Op) error {
	if !converge.Installs(ops) || !r.bootstrap {
		host.DNFArgs = r.facts.DNFArgs()
		return nil
	}
	dir, cleanup, err := bundlestore.ExtractRepo(ctx, r.isoPath, r.ring, r.facts, r.verifyOptions())
	if err != nil {
		return err
	}
	r.cleanups = append(r.cleanups, cleanup)
	host.DNFArgs = append(r.facts.DNFArgs(), "--setopt="+r.facts.RepoID()+".baseurl=file://"+dir)
	return nil
}
