package bootstrap

import (
	"context"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ferry-k8s/ferry/installer/addon"
	"github.com/ferry-k8s/ferry/installer/addons"
	"github.com/ferry-k8s/ferry/installer/cluster"
	"github.com/ferry-k8s/ferry/installer/converge"
	"github.com/ferry-k8s/ferry/installer/layout"
	"github.com/ferry-k8s/ferry/installer/rollout"
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
//
// Add-ons follow the control plane in a roll-out: while another control
// plane still reports an older bundle (rollout.AnnotationVersion), this
// one plans none and says why; the last control plane to converge to the
// new bundle applies them, before the workers are rolled.
func planAddons(ctx context.Context, client *addon.Client, c *cluster.Cluster, self string, in addon.Input) ([]converge.Op, []string, error) {
	behind, err := controlPlanesBehind(ctx, client, c, self, in.BundleVersion)
	if err != nil {
		return nil, nil, err
	}
	if len(behind) > 0 {
		return nil, []string{fmt.Sprintf("add-ons: left as they are until every control plane runs bundle %s (%s)", in.BundleVersion, strings.Join(behind, ", "))}, nil
	}
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

// controlPlanesBehind are the other control planes whose Node reports
// an older bundle than version ("cp2 runs 1.1.0"). A control plane whose
// Node does not exist yet, or reports no version, is not behind: it joins
// with the bundle it is given.
func controlPlanesBehind(ctx context.Context, client *addon.Client, c *cluster.Cluster, self, version string) ([]string, error) {
	nodes := client.Dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "nodes"})
	var behind []string
	for i := range c.Spec.Nodes {
		n := &c.Spec.Nodes[i]
		if n.Name == self || !n.HasRole(cluster.RoleControlPlane) {
			continue
		}
		obj, err := nodes.Get(ctx, n.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading node %s: %w", n.Name, err)
		}
		if v := obj.GetAnnotations()[rollout.AnnotationVersion]; v != "" && addon.NewerSemver(version, v) {
			behind = append(behind, n.Name+" runs "+v)
		}
	}
	return behind, nil
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
