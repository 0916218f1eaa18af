package upgrade

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ferry-k8s/ferry/bundle/verify"
	"github.com/ferry-k8s/ferry/installer/bootstrap"
	"github.com/ferry-k8s/ferry/installer/bundlestore"
	"github.com/ferry-k8s/ferry/installer/cluster"
	"github.com/ferry-k8s/ferry/installer/converge"
	"github.com/ferry-k8s/ferry/installer/layout"
	"github.com/ferry-k8s/ferry/installer/nodestate"
	"github.com/ferry-k8s/ferry/installer/rollout"
	"github.com/ferry-k8s/ferry/signing"
)

// Options configure `installer upgrade --iso NEW.iso`.
type Options struct {
	// ISO is the new bundle.
	ISO string
	// Validity is a signed validity statement extending it (builder
	// extend); empty: the .validity file beside the ISO, if any. It is
	// kept beside the imported ISO and served to the other nodes.
	Validity string
	// AllowDowngrade rolls out a bundle older than the installed one.
	AllowDowngrade bool
	// Force starts although a PodDisruptionBudget blocks an eviction now
	// (see rollout.Options.Force).
	Force bool
	// DrainTimeout and NodeTimeout bound each node's drain and its
	// convergence (rollout defaults when zero).
	DrainTimeout, NodeTimeout time.Duration
	// Root prefixes every path (tests).
	Root string
	Log  *slog.Logger
	Now  func() time.Time
}

// Run rolls a new bundle over the cluster from a control-plane node:
// verify it (signature, expiry, every file) and check it may follow the
// installed one, import it into this node's content service (the other
// nodes fetch it from there), then run the roll-out (rollout.Run): etcd
// snapshot, control planes one at a time, workers within maxUnavailable,
// each drained, converged by its own daemon, and uncordoned. Running it
// again resumes a roll-out that stopped, and reports nothing to do after
// one that finished.
func Run(ctx context.Context, o Options) (*rollout.Report, error) {
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
	c, err := cluster.Load(in(layout.ClusterConfig))
	if err != nil {
		return nil, fmt.Errorf("this is not a control-plane node of a Ferry cluster: %w", err)
	}
	c = c.Defaulted()
	node, err := nodestate.ThisNode(c, "")
	if err != nil {
		return nil, err
	}
	if !node.HasRole(cluster.RoleControlPlane) {
		return nil, fmt.Errorf("node %s is not a control-plane node: run installer upgrade on one", node.Name)
	}
	ring, err := signing.LoadKeyringFile(in(layout.KeyringFile))
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	log.Info("verifying the new bundle", slog.String("iso", o.ISO))
	// A bundle to upgrade to must be within its validity (or extended);
	// the installed one is only reported (R59).
	next, err := bundlestore.ReadFacts(ctx, o.ISO, ring, verify.Options{Now: o.Now(), Installed: bundlestore.AlreadyImported(o.Root, o.ISO), ValidityFile: o.Validity})
	if err != nil {
		return nil, err
	}
	curISO, err := bundlestore.Imported(o.Root)
	if err != nil {
		return nil, err
	}
	cur, err := bundlestore.ReadFacts(ctx, curISO, ring, verify.Options{Now: o.Now(), Installed: true})
	if err != nil {
		return nil, fmt.Errorf("the installed bundle %s: %w", curISO, err)
	}
	if err := bundlestore.MayFollow(cur.Release(), next.Release(), o.AllowDowngrade); err != nil {
		return nil, err
	}
	imported := filepath.Join(layout.BundlesDir, bundlestore.FileName(next.Name, next.Version))
	if err := checkSpace(o.ISO, in(imported), in(layout.SnapshotsDir)); err != nil {
		return nil, err
	}
	if _, err := bundlestore.Import(o.ISO, in(imported)); err != nil {
		return nil, fmt.Errorf("importing %s: %w", o.ISO, err)
	}
	if _, err := bundlestore.KeepValidity(in(imported), o.Validity, o.ISO, ring, o.Now(), next); err != nil {
		return nil, err
	}
	// This node's content service serves the new bundle too (the other
	// nodes fetch it from there); nothing else changes yet.
	if _, err := bootstrap.Run(ctx, bootstrap.Options{Root: o.Root, Log: log, Now: o.Now}); err != nil {
		return nil, fmt.Errorf("serving the new bundle on node %s: %w", node.Name, err)
	}
	// Through the node-local proxy (R32): the roll-out goes on while this
	// node's own API server restarts for its upgrade.
	client, err := converge.KubeClient(in(layout.AdminConf), layout.APIProxyServer, c.APIServerName())
	if err != nil {
		return nil, err
	}
	tlsConf, err := etcdClientTLS(o.Root)
	if err != nil {
		return nil, err
	}
	return rollout.Run(ctx, rollout.Options{
		Client:         client,
		Target:         rollout.Target{Version: next.Version, KubernetesVersion: next.KubernetesVersion},
		MaxUnavailable: c.Spec.Upgrade.MaxUnavailable,
		// localhost: the member's certificate names it (DNS only, R29).
		Snapshotter: &rollout.EtcdSnapshotter{Endpoint: "https://localhost:2379", TLS: tlsConf, Dir: in(layout.SnapshotsDir)},
		Force:       o.Force,
		// Older: the nodes move back only on the order this records.
		Rollback: bundlestore.Older(next.Version, cur.Version),
		Preflight: func(ctx context.Context) error {
			return checkAPIServers(ctx, apiServers(c), in(layout.ClusterCA))
		},
		DrainTimeout: o.DrainTimeout,
		NodeTimeout:  o.NodeTimeout,
		Log:          log,
	})
}

// etcdClientTLS authenticates to the local etcd member with the health
// check client certificate.
func etcdClientTLS(root string) (*tls.Config, error) {
	p := func(n string) string { return filepath.Join(root, layout.KubernetesPKI, "etcd", n) }
	cert, err := tls.LoadX509KeyPair(p("healthcheck-client.crt"), p("healthcheck-client.key"))
	if err != nil {
		return nil, fmt.Errorf("etcd client certificate: %w", err)
	}
	ca, err := os.ReadFile(p("ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("%s holds no certificate", p("ca.crt"))
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// checkAPIServers asks every control plane's API server for /readyz (by
// its hostname, verified with the cluster's CA; the check is anonymous):
// a roll-out restarts them in turn, and one already down would leave the
// cluster without an API server while another restarts.
func checkAPIServers(ctx context.Context, servers map[string]string, caFile string) error {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return fmt.Errorf("the cluster's CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return fmt.Errorf("%s holds no certificate", caFile)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	defer client.CloseIdleConnections()
	var problems []string
	for _, name := range slices.Sorted(maps.Keys(servers)) {
		if err := getOK(ctx, client, "https://"+servers[name]+"/readyz"); err != nil {
			problems = append(problems, fmt.Sprintf("node %s: %v", name, err))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("API servers not ready: %s", strings.Join(problems, "; "))
	}
	return nil
}

// apiServers are the control planes' API servers by node name, host:port.
func apiServers(c *cluster.Cluster) map[string]string {
	out := map[string]string{}
	for _, n := range c.Spec.Nodes {
		if n.HasRole(cluster.RoleControlPlane) {
			out[n.Name] = net.JoinHostPort(n.Hostname, strconv.Itoa(cluster.APIServerPort))
		}
	}
	return out
}

func getOK(ctx context.Context, client *http.Client, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, lastLine(body))
	}
	return nil
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// spaceMargin is what an upgrade wants free beyond the new ISO: the etcd
// snapshot and the scratch directory its restore test writes.
const spaceMargin = 1 << 30

// checkSpace: the file system of the bundles (and that of the snapshots)
// has room for the ISO and the snapshot, unless the ISO is imported
// already.
func checkSpace(iso, dst, snapshots string) error {
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	fi, err := os.Stat(iso)
	if err != nil {
		return err
	}
	need := uint64(fi.Size()) + spaceMargin
	for _, dir := range []string{filepath.Dir(dst), snapshots} {
		d := dir
		for {
			if _, err := os.Stat(d); err == nil || d == filepath.Dir(d) {
				break
			}
			d = filepath.Dir(d)
		}
		var st syscall.Statfs_t
		if err := syscall.Statfs(d, &st); err != nil {
			return fmt.Errorf("free space in %s: %w", d, err)
		}
		if avail := st.Bavail * uint64(st.Bsize); avail < need {
			return fmt.Errorf("%s has %d MiB free; the new bundle (%d MiB) and the etcd snapshot want %d MiB: free some space first", dir, avail>>20, fi.Size()>>20, need>>20)
		}
	}
	return nil
}
