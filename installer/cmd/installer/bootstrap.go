package main

import (
	"fmt"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ferry-k8s/ferry/installer/access"
	"github.com/ferry-k8s/ferry/installer/bootstrap"
	"github.com/ferry-k8s/ferry/installer/desired"
	"github.com/ferry-k8s/ferry/installer/joinfile"
	"github.com/ferry-k8s/ferry/installer/nodeagent"
	"github.com/ferry-k8s/ferry/installer/pki"
	"github.com/ferry-k8s/ferry/installer/rollout"
	"github.com/ferry-k8s/ferry/installer/upgrade"
	"github.com/ferry-k8s/ferry/internal/cliutil"
)

func convergeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "node", Usage: "this node's name in cluster.yaml (default: the node whose hostname is this host's)"},
		&cli.BoolFlag{Name: "dry-run", Usage: "print the plan, change nothing"},
		&cli.StringSliceFlag{Name: "ignore-preflight-errors", Usage: "kubeadm preflight checks to ignore (only where the environment needs it, e.g. Swap,SystemVerification on test machines)"},
		&cli.PathFlag{Name: "root-passphrase-file", Usage: "file whose first line protects the new root CA keys (R25); needed the first time", EnvVars: []string{"FERRY_ROOT_PASSPHRASE_FILE"}},
		cliutil.JSONFlag,
	}
}

// validityFlag is --validity on the commands that newly import a bundle.
var validityFlag = &cli.PathFlag{Name: "validity", Usage: "a signed validity statement (builder extend) extending an expired bundle (default: the .validity file beside the ISO, if any; join: also the one the content services serve)"}

func bootstrapCommand() *cli.Command {
	return &cli.Command{
		Name:      "bootstrap",
		Usage:     "install the first control-plane node from a bundle ISO (install == upgrade: run it again, it changes nothing)",
		UsageText: "installer bootstrap --iso ferry.iso --config cluster.yaml --keyring release.pub.asc --root-passphrase-file F",
		Description: `Verifies the ISO (signature, validity, every file) before changing anything,
imports it to /var/lib/ferry/bundles, then converges the node: PKI (one CA
chain per realm, DNS-only certificates), the content service, every host
binary as an RPM through dnf with gpgcheck, containerd, kubelet, kubeadm init
with Ferry's hardened configuration, labels and taints. Every step is
journaled in /var/lib/ferry/journal.jsonl; after a failure, the same command
continues. 'installer apply' re-runs the convergence later.

A bundle past its validity (its manifest's expires) is refused unless a
signed validity statement extends it (--validity, or the .validity file
beside the ISO); once installed, it is served and converged after it
expires, with a warning (see docs/validity.md).`,
		Flags: append(convergeFlags(),
			&cli.PathFlag{Name: "iso", Usage: "the bundle ISO", Required: true},
			&cli.PathFlag{Name: "config", Usage: "cluster.yaml (kind: Cluster)", Required: true},
			&cli.PathFlag{Name: "keyring", Usage: "public keys the bundle must be signed by", Required: true},
			validityFlag,
		),
		Action: func(c *cli.Context) error {
			return runConvergeWith(c, bootstrap.Options{ISO: c.Path("iso"), Config: c.Path("config"), Keyring: c.Path("keyring"), Validity: c.Path("validity")})
		},
	}
}

func applyCommand() *cli.Command {
	return &cli.Command{
		Name:      "apply",
		Usage:     "converge this node again to its bundle and cluster.yaml (0 changes when it already is)",
		UsageText: "installer apply [--dry-run] [--config cluster.yaml]",
		Description: `Converges the node to the bundle it imported. An imported bundle is
installed content: past its validity it is converged still, with a warning
(freeze protection only refuses new imports, joins and upgrades).`,
		Flags: append(convergeFlags(),
			&cli.PathFlag{Name: "config", Usage: "cluster.yaml (default: the one bootstrap kept in /etc/ferry)"},
		),
		Action: func(c *cli.Context) error { return runConvergeWith(c, bootstrap.Options{Config: c.Path("config")}) },
	}
}

func joinCommand() *cli.Command {
	return &cli.Command{
		Name:      "join",
		Usage:     "install this node and join it to the cluster, from a join file (install == upgrade: run it again, it changes nothing)",
		UsageText: "installer join --join-file node2.join --certificate-key KEY [--iso ferry.iso]",
		Description: `The join file comes from 'installer token create --node NAME' on a
control-plane node. It carries the cluster's configuration, keyring and
content CA, a short-lived bootstrap token and the node's own certificates
(a worker's) or the cluster's online CAs (a control plane's, which issues
its own). token create prints the file's certificate key: every field of
the file is authenticated with it (a file altered in any way is refused
before it is used) and a control plane's CAs are sealed with it. Carry the
file to the node once, the key apart from it (another channel), and delete
the file after.

Without --iso, the bundle is fetched from the control planes' content
services (TLS verified with the content CA only, resumable, checked against
the digest in the join file) and verified in full with the keyring before
anything changes. Then the node converges like the first one: RPMs through
dnf with gpgcheck, containerd mirroring the cluster's registry, the pod
routes and the host firewall, and kubeadm join.

A bundle past its validity is refused unless a signed validity statement
extends it: --validity, or the one the content services serve beside the
bundle (installer bundle extend on a control plane).`,
		Flags: append(convergeFlags(),
			&cli.PathFlag{Name: "join-file", Usage: "the join file (installer token create)", Required: true},
			&cli.PathFlag{Name: "iso", Usage: "the bundle ISO, when it is at hand (default: fetched from the content services)"},
			&cli.StringFlag{Name: "certificate-key", Aliases: []string{"join-key"}, Usage: "the join file's key, printed by token create with it (carry it apart from the file): it authenticates the file and opens a control plane's secrets (required)", EnvVars: []string{"FERRY_CERTIFICATE_KEY"}},
			validityFlag,
		),
		Action: func(c *cli.Context) error {
			return runConvergeWith(c, bootstrap.Options{ISO: c.Path("iso"), JoinFile: c.Path("join-file"), CertificateKey: c.String("certificate-key"), Validity: c.Path("validity")})
		},
	}
}

func tokenCommand() *cli.Command {
	return &cli.Command{
		Name:  "token",
		Usage: "make join files for new nodes (on a control-plane node)",
		Subcommands: []*cli.Command{{
			Name:      "create",
			Usage:     "write a join file for a node of cluster.yaml: a bootstrap token, the node's certificates, the cluster's CA and keyring",
			UsageText: "installer token create --node worker1 [--ttl 2h] [--out worker1.join]",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "node", Usage: "the node's name in cluster.yaml", Required: true},
				&cli.DurationFlag{Name: "ttl", Value: access.DefaultJoinTTL, Usage: "how long the file and its token are good"},
				&cli.PathFlag{Name: "out", Usage: "where to write the join file (mode 0600, replacing a file there; not a symbolic link; default: NODE.join)"},
			},
			Action: func(c *cli.Context) error {
				out := c.Path("out")
				if out == "" {
					out = c.String("node") + ".join"
				}
				// Before a bootstrap token is made for nothing.
				if err := joinfile.CheckOut(out); err != nil {
					return err
				}
				jf, err := access.CreateJoinFile(c.Context, access.TokenOptions{Node: c.String("node"), TTL: c.Duration("ttl")})
				if err != nil {
					return err
				}
				if err := joinfile.Write(out, jf); err != nil {
					return err
				}
				fmt.Fprintf(c.App.Writer, "join file for node %s written to %s (expires %s)\n", jf.Node, out, jf.Expires.Format("2006-01-02 15:04:05Z"))
				// The file's key (it authenticates the file, and opens a
				// control plane's CAs): printed once, never written next
				// to the file.
				fmt.Fprintf(c.App.Writer, "certificate key (carry it apart from the file): %s\non the node: installer join --join-file %s --certificate-key KEY\n", jf.CertificateKey, filepath.Base(out))
				return nil
			},
		}},
	}
}

func upgradeCommand() *cli.Command {
	return &cli.Command{
		Name:      "upgrade",
		Usage:     "roll a new bundle over the cluster, node by node (on a control-plane node; run it again to resume)",
		UsageText: "installer upgrade --iso ferry-kubernetes-1.1.0.iso [--force] [--allow-downgrade]",
		Description: `Verifies the new ISO (signature, validity, every file) and that it may follow
the installed bundle (newer, Kubernetes at most one minor ahead), imports it
into this node's content service (after checking there is room for it), and
runs the roll-out. Preflight: every API server ready, etcd healthy (every
member started, voting and answering, a leader, no alarm), a dry-run of
every eviction (PodDisruptionBudgets that would block are reported and
nothing changes, unless --force). Staging: every node fetches and verifies
the bundle, control planes serve it, every node pulls its new images; a node
that cannot stops the roll-out before anything is drained. Then an etcd
snapshot restore-tested and kept in /var/lib/ferry/snapshots, then
control-plane nodes one at a time and workers
within spec.upgrade.maxUnavailable: cordon, drain (evictions only), the
node's daemon converges it to the new bundle (kubeadm upgrade apply on the
first control plane, kubeadm upgrade node elsewhere), Ready at the new
version, uncordon. Progress lives in the cluster (ConfigMap
kube-system/ferry-rollout and node annotations): killed at any point, the
same command resumes; after a finished roll-out it reports nothing to do.`,
		Flags: []cli.Flag{
			&cli.PathFlag{Name: "iso", Usage: "the new bundle ISO", Required: true},
			validityFlag,
			&cli.BoolFlag{Name: "force", Usage: "start although a PodDisruptionBudget blocks an eviction now (the drain still never breaks a budget)"},
			&cli.BoolFlag{Name: "allow-downgrade", Usage: "roll out a bundle older than the installed one"},
			&cli.DurationFlag{Name: "drain-timeout", Usage: "bound of each node's drain (default 5m; a Pod's ferry.dev/drain-timeout may extend it)"},
			&cli.DurationFlag{Name: "node-timeout", Usage: "bound of each node's convergence to Ready at the new version, and of the staging (default 30m)"},
			cliutil.JSONFlag,
		},
		Action: func(c *cli.Context) error {
			log, err := cliutil.Logger(c)
			if err != nil {
				return err
			}
			rep, err := upgrade.Run(c.Context, upgrade.Options{ISO: c.Path("iso"), Validity: c.Path("validity"), Force: c.Bool("force"), AllowDowngrade: c.Bool("allow-downgrade"),
				DrainTimeout: c.Duration("drain-timeout"), NodeTimeout: c.Duration("node-timeout"), Log: log})
			if rep != nil {
				if c.Bool("json") {
					if jerr := cliutil.PrintJSON(c, rep); jerr != nil {
						return jerr
					}
				} else {
					if rep.NothingToDo {
						fmt.Fprintf(c.App.Writer, "every node runs %s: nothing to do\n", rep.Target.Version)
					}
					_ = rollout.WriteTable(c.App.Writer, rep.Rows)
				}
			}
			return err
		},
	}
}

func userCommand() *cli.Command {
	return &cli.Command{
		Name:  "user",
		Usage: "credentials for the static users of cluster.yaml (on a control-plane node)",
		Subcommands: []*cli.Command{{
			Name:      "kubeconfig",
			Usage:     "issue a static user's client certificate (CN the user, O its groups) and write a kubeconfig with it",
			UsageText: "installer user kubeconfig --name alice [--out alice.kubeconfig]",
			Description: `Only users listed in spec.authentication.staticUsers get a certificate.
It is short-lived like every leaf of the kubernetes realm: issue a new one
when it expires. Authorization is RBAC's: bind the user or its groups to
roles (groups like system:masters are refused by cluster.yaml validation).`,
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "name", Usage: "the user's name in spec.authentication.staticUsers", Required: true},
				&cli.PathFlag{Name: "out", Usage: "where to write the kubeconfig (mode 0600; default: NAME.kubeconfig)"},
			},
			Action: func(c *cli.Context) error {
				kc, expires, err := access.UserKubeconfig(access.UserOptions{Name: c.String("name")})
				if err != nil {
					return err
				}
				out := c.Path("out")
				if out == "" {
					out = c.String("name") + ".kubeconfig"
				}
				if err := joinfile.WriteSecretFile("kubeconfig", out, kc); err != nil {
					return err
				}
				fmt.Fprintf(c.App.Writer, "kubeconfig for %s written to %s (certificate expires %s)\n", c.String("name"), out, expires.UTC().Format("2006-01-02 15:04:05Z"))
				return nil
			},
		}},
	}
}

func runConvergeWith(c *cli.Context, o bootstrap.Options) error {
	log, err := cliutil.Logger(c)
	if err != nil {
		return err
	}
	o.Node, o.DryRun, o.IgnorePreflightErrors, o.Log = c.String("node"), c.Bool("dry-run"), c.StringSlice("ignore-preflight-errors"), log
	if !c.Bool("json") {
		o.Out = c.App.Writer
	}
	if f := c.Path("root-passphrase-file"); f != "" {
		if o.RootPassphrase, err = pki.ReadPassphraseFile(f); err != nil {
			return err
		}
	}
	res, err := bootstrap.Run(c.Context, o)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return cliutil.PrintJSON(c, res)
	}
	fmt.Fprintf(c.App.Writer, "node %s converged to %s: %d changes in %d round(s), %s\n", res.Node, res.Bundle, res.Changes, res.Rounds, res.Took.Round(1e6))
	return nil
}

// until says when t is, from now: "valid until DATE (N days)" or "EXPIRED on DATE".
func until(t, now time.Time) string {
	if !now.Before(t) {
		return "EXPIRED on " + t.Format(time.DateOnly)
	}
	return fmt.Sprintf("valid until %s (%d days)", t.Format(time.DateOnly), int(t.Sub(now).Hours()/24))
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show this node: installed versions, imported bundles, the last apply",
		UsageText: "installer status [--json]",
		Flags:     []cli.Flag{cliutil.JSONFlag},
		Action: func(c *cli.Context) error {
			st, err := nodeagent.ReadStatus(c.Context, "/")
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return cliutil.PrintJSON(c, st)
			}
			w := c.App.Writer
			fmt.Fprintf(w, "kubeadm initialized: %v\n", st.Initialized)
			fmt.Fprintln(w, "packages:")
			for _, p := range desired.NodePackages {
				v := st.Packages[p]
				if v == "" {
					v = "(not installed)"
				}
				fmt.Fprintf(w, "  %-16s %s\n", p, v)
			}
			fmt.Fprintln(w, "bundles:")
			now := time.Now()
			for _, b := range st.Bundles {
				fmt.Fprintf(w, "  %s %s (Kubernetes %s) %s, %s\n", b.Name, b.Version, b.KubernetesVersion, b.Path, until(b.ValidUntil, now))
			}
			fmt.Fprintln(w, "nearest expiries:")
			for i, e := range st.Expiries {
				if i == 5 {
					fmt.Fprintf(w, "  … %d more (--json lists them)\n", len(st.Expiries)-5)
					break
				}
				fmt.Fprintf(w, "  %-11s %s  %s\n", e.Kind, until(e.NotAfter, now), e.Path)
			}
			if st.LastApply != nil {
				fmt.Fprintf(w, "last apply: %s %s %s\n", st.LastApply.Time.Format("2006-01-02 15:04:05Z"), st.LastApply.Status, st.LastApply.Op)
				if st.LastApply.Error != "" {
					fmt.Fprintf(w, "  error: %s\n", st.LastApply.Error)
				}
			}
			return nil
		},
	}
}

func daemonCommand() *cli.Command {
	return &cli.Command{
		Name:      "daemon",
		Usage:     "the node daemon: converge this node on demand, serve its status (a systemd unit, Type=notify)",
		UsageText: "installer daemon [--socket /run/ferry/node/node.sock]",
		Description: `Serves on a Unix socket only root can reach:
   GET  /status   installed versions, imported bundles, the last apply
   POST /apply    converge now (?dryRun=true for the plan only)
Run by ferry-node.service; 'installer apply' does the same in the foreground.`,
		Flags: []cli.Flag{
			&cli.PathFlag{Name: "socket", Value: nodeagent.DefaultSocket, Usage: "the Unix socket to serve on"},
			&cli.StringFlag{Name: "node", Usage: "this node's name in cluster.yaml (default: by hostname)"},
			&cli.BoolFlag{Name: "watch", Value: true, Usage: "follow roll-outs: converge to the bundle version the Node's ferry.dev/desired-version names"},
		},
		Action: func(c *cli.Context) error {
			log, err := cliutil.Logger(c)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			d := nodeagent.New(nodeagent.Options{Socket: c.Path("socket"), Apply: bootstrap.Options{Node: c.String("node"), Log: log}, Log: log, Watch: c.Bool("watch")})
			return d.Serve(ctx)
		},
	}
}
