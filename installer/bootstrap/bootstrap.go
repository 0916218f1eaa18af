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
		o.Config = in(layout.ClusterConfig)
	}
	if o.Keyring == "" {
		o.Keyring = in(layout.KeyringFile)
	}
	c, err := cluster.Load(o.Config)
	if err != nil {
		return nil, err
	}
	c = c.Defaulted()
	node, err := nodestate.ThisNode(c, o.Node)
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
		if isoPath, err = bundlestore.Imported(o.Root); err != nil {
			return nil, err
		}
	case o.join != nil && isoPath == "":
		if o.join.BundleSHA256 == "" {
			return nil, fmt.Errorf("join file %s names no bundle digest: give the bundle with --iso", o.JoinFile)
		}
		// Imported already (a join run again): not fetched again.
		if sum, _, err := fileutil.SHA256(in(filepath.Join(layout.BundlesDir, o.join.Bundle))); err == nil && sum == o.join.BundleSHA256 {
			isoPath = in(filepath.Join(layout.BundlesDir, o.join.Bundle))
			break
		}
		fetcher := &bundlefetch.Fetcher{Services: o.join.ContentServices, CA: []byte(o.join.ContentCA), Dir: in(layout.DownloadsDir), Log: log}
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
	installed := !bootstrap || bundlestore.AlreadyImported(o.Root, isoPath)
	log.Info("verifying bundle", slog.String("iso", isoPath))
	facts, err := bundlestore.ReadFacts(ctx, isoPath, ring, verify.Options{Now: o.Now(), Installed: installed, ValidityFile: o.Validity})
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
		unlock, err := lockNode(ctx, in(layout.ApplyLock), log)
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	res := &Result{Node: node.Name, Bundle: facts.Name + " " + facts.Version}
	imported := filepath.Join(layout.BundlesDir, bundlestore.FileName(facts.Name, facts.Version))
	if bootstrap {
		// Run again on a node that runs another bundle: the same rules as
		// a roll-out (no silent downgrade, minUpgradeFrom, Kubernetes
		// skew).
		if err := bundlestore.MayReplaceTarget(o.Root, facts); err != nil {
			return nil, fmt.Errorf("node %s: %w", node.Name, err)
		}
	}
	if bootstrap && !o.DryRun {
		changed, err := bundlestore.Import(isoPath, in(imported))
		if err != nil {
			return nil, err
		}
		if changed {
			res.Changes++
			log.Info("bundle imported", slog.String("path", imported))
		}
		changed, err = bundlestore.KeepValidity(in(imported), o.Validity, isoPath, ring, o.Now(), facts)
		if err != nil {
			return nil, err
		}
		if changed {
			res.Changes++
		}
		if err := bundlestore.SetTarget(o.Root, filepath.Base(imported)); err != nil {
			return nil, err
		}
	}
	if len(o.IgnorePreflightErrors) > 0 && !o.DryRun {
		if err := writeState(o.Root, layout.IgnorePreflightFile, strings.Join(o.IgnorePreflightErrors, ",")); err != nil {
			return nil, err
		}
	} else if data, err := os.ReadFile(in(layout.IgnorePreflightFile)); err == nil && len(bytes.TrimSpace(data)) > 0 {
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
	host := &converge.Host{Root: o.Root, NodeName: node.Name, Kubeconfig: layout.AdminConf, StateDir: layout.StateDir, Log: log,
		Server: layout.APIProxyServer, TLSServerName: c.APIServerName()}
	observe := nodestate.Options{Root: o.Root, Cluster: c, Node: node, ClusterConfig: o.Config, Keyring: o.Keyring,
		Bundle: facts.Desired(), Mode: mode, Imported: imported, IgnorePreflightErrors: o.IgnorePreflightErrors,
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
			dir, cleanup, err := bundlestore.ExtractRepo(ctx, isoPath, ring, facts, verify.Options{Now: o.Now(), Installed: installed, ValidityFile: o.Validity})
			if err != nil {
				return nil, err
			}
			defer cleanup()
			host.DNFArgs = append(facts.DNFArgs(), "--setopt="+facts.RepoID()+".baseurl=file://"+dir)
		} else {
			host.DNFArgs = facts.DNFArgs()
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
