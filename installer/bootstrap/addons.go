package bootstrap

import (
	"context"
	"fmt"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/ferry-k8s/ferry/installer/addon"
	"github.com/ferry-k8s/ferry/installer/addons"
	"github.com/ferry-k8s/ferry/installer/cluster"
	"github.com/ferry-k8s/ferry/installer/converge"
	"github.com/ferry-k8s/ferry/installer/layout"
)

// addonOp is one operation of a cluster add-on (installer/addon) in the
// node's plan: printed, journaled and counted with the node's own, as
// "add-on NAME: apply object …".
type addonOp struct {
	addon  string
	op     addon.Op
	client *addon.Client
}

func (o addonOp) Kind() string   { return "add-on " + o.addon }
func (o addonOp) Target() string { return o.op.String() }
func (o addonOp) Reason() string { return "" }
func (o addonOp) String() string { return o.Kind() + ": " + o.op.String() }

// Apply runs the add-on's operation through the API (the node-local
// proxy, R32); the host is not involved.
func (o addonOp) Apply(ctx context.Context, _ *converge.Host) error {
	return addon.ApplyOp(ctx, o.client, o.op, addon.ApplyOptions{})
}

// planAddons plans every registered add-on (installer/addons) on a
// control plane whose node has converged: the operations that make the
// cluster's add-ons as this node's bundle renders them ("0 changes" when
// they are), and notes worth printing (an add-on a newer bundle applied is
// left to it: the version guard). It reads the API, and changes nothing.
func planAddons(ctx context.Context, client *addon.Client, in addon.Input) ([]converge.Op, []string, error) {
	var ops []converge.Op
	var notes []string
	for _, a := range addons.All() {
		d, err := addon.Render(a, in)
		if err != nil {
			return nil, nil, err
		}
		o, err := addon.Observe(ctx, client, d)
		if err != nil {
			return nil, nil, fmt.Errorf("add-on %s: %w", a.Name(), err)
		}
		p := addon.MakePlan(d, o, addon.NewerSemver)
		for _, op := range p.Ops {
			ops = append(ops, addonOp{addon: a.Name(), op: op, client: client})
		}
		for _, n := range p.Notes {
			notes = append(notes, "add-on "+a.Name()+": "+n)
		}
	}
	return ops, notes, nil
}

// addonClient reaches the API with the node's admin credentials through
// the node-local API server proxy (R32).
func addonClient(root string, c *cluster.Cluster) (*addon.Client, error) {
	kubeconfig := root + layout.AdminConf
	overrides := &clientcmd.ConfigOverrides{}
	overrides.ClusterInfo.Server = layout.APIProxyServer
	overrides.ClusterInfo.TLSServerName = c.APIServerName()
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(&clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig}, overrides).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	cfg.Timeout = 30 * time.Second
	return addon.NewClient(cfg)
}
