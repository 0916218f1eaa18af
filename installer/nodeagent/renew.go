package nodeagent

import (
	"context"
	"log/slog"
	"os/exec"
	"path/filepath"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/ferry-k8s/ferry/installer/certrenew"
	"github.com/ferry-k8s/ferry/installer/cluster"
	"github.com/ferry-k8s/ferry/installer/converge"
	"github.com/ferry-k8s/ferry/installer/layout"
	"github.com/ferry-k8s/ferry/installer/nodeconfig"
	"github.com/ferry-k8s/ferry/installer/pki"
)

// DefaultMaintenanceInterval is how often the node daemon applies the
// node's configuration on its own: the same apply as `installer apply`,
// which renews a control plane's certificates once a third of their life
// is left (Ferry's leaves live 30 days) and puts back what drifted.
const DefaultMaintenanceInterval = time.Hour

// maintain is the daemon's upkeep, every watch round: a worker renews its
// kubelet's serving certificate and kube-proxy's client certificate
// through the API (installer/certrenew), a control plane signs the
// workers' renewal requests, and every MaintenanceInterval the node is
// applied.
func (d *Daemon) maintain(ctx context.Context, root string, c *cluster.Cluster, node *cluster.Node, nodeClient kubernetes.Interface) {
	in := func(p string) string { return filepath.Join(root, p) }
	apply := false
	if node.HasRole(cluster.RoleControlPlane) {
		if err := d.signRenewals(ctx, root, c); err != nil {
			d.log.Warn("signing the workers' certificate renewals", slog.Any("err", err))
		}
	} else {
		for _, r := range []struct {
			req     certrenew.Request
			restart func() error
		}{
			{certrenew.Request{Signer: certrenew.SignerKubeletServing, CertFile: in(nodeconfig.KubeletServingCert), KeyFile: in(nodeconfig.KubeletServingKey)},
				func() error { return exec.CommandContext(ctx, "systemctl", "restart", "kubelet.service").Run() }},
			// kube-proxy's kubeconfig embeds the pair: the apply writes it
			// anew and restarts kube-proxy.
			{certrenew.Request{Signer: certrenew.SignerKubeProxy, CertFile: in(layout.KubeProxyCert), KeyFile: in(layout.KubeProxyKey)},
				func() error { apply = true; return nil }},
		} {
			r.req.Node, r.req.Hostname, r.req.CAFile = node.Name, node.Hostname, in(layout.ClusterCA)
			renewed, err := certrenew.Renew(ctx, nodeClient, r.req)
			if err != nil {
				d.log.Warn("renewing a certificate", slog.String("signer", r.req.Signer), slog.Any("err", err))
				continue
			}
			if renewed {
				d.log.Info("certificate renewed", slog.String("signer", r.req.Signer), slog.String("file", r.req.CertFile))
				if err := r.restart(); err != nil {
					d.log.Warn("restarting after a renewal", slog.String("signer", r.req.Signer), slog.Any("err", err))
				}
			}
		}
	}
	interval := d.opts.MaintenanceInterval
	if interval <= 0 {
		interval = DefaultMaintenanceInterval
	}
	if !apply && time.Since(d.lastMaintenance) < interval {
		return
	}
	res, ran, err := d.tryApply(ctx)
	if !ran {
		return // an apply runs; the next round
	}
	d.lastMaintenance = time.Now()
	if err != nil {
		d.log.Warn("maintenance apply", slog.Any("err", err))
	} else if res.Changes > 0 {
		d.log.Info("maintenance apply", slog.Int("changes", res.Changes))
	}
}

// signRenewals signs the pending renewal requests of the workers of
// cluster.yaml with the cluster's online CA, and denies the others.
func (d *Daemon) signRenewals(ctx context.Context, root string, c *cluster.Cluster) error {
	in := func(p string) string { return filepath.Join(root, p) }
	workers := map[string]string{}
	for _, n := range c.Spec.Nodes {
		if !n.HasRole(cluster.RoleControlPlane) {
			workers[n.Name] = n.Hostname
		}
	}
	if len(workers) == 0 {
		return nil
	}
	admin, err := converge.KubeClient(in(layout.AdminConf), layout.APIProxyServer, c.APIServerName())
	if err != nil {
		return err
	}
	realm := func() (*pki.Realm, error) {
		return pki.LoadRealm(in(filepath.Join(layout.PKIDir, pki.RealmKubernetes)), nil, pki.Options{Organization: c.Metadata.Name})
	}
	s := &certrenew.Signer{Realm: realm, Nodes: workers, Log: d.log}
	res, err := s.Process(ctx, admin)
	if err != nil {
		return err
	}
	if res.Signed+res.Denied > 0 {
		d.log.Info("certificate renewals", slog.Int("signed", res.Signed), slog.Int("denied", res.Denied))
	}
	return nil
}
