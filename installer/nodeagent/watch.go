package nodeagent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/ferry-k8s/ferry/bundle/verify"
	"github.com/ferry-k8s/ferry/installer/bundlestore"
	"github.com/ferry-k8s/ferry/installer/cluster"
	"github.com/ferry-k8s/ferry/installer/content"
	"github.com/ferry-k8s/ferry/installer/converge"
	"github.com/ferry-k8s/ferry/installer/layout"
	"github.com/ferry-k8s/ferry/installer/nodestate"
	"github.com/ferry-k8s/ferry/installer/rollout"
	"github.com/ferry-k8s/ferry/signing"
)

// DefaultWatchInterval is how often the node daemon reads its Node's
// desired bundle version.
const DefaultWatchInterval = 10 * time.Second

// watch is the node side of roll-outs: the daemon reads its own Node
// (with the kubelet's credentials) and, when the roll-out sets another
// desired version (rollout.AnnotationDesiredVersion), makes that bundle
// its target (fetched from the content services and verified when it is
// not here), converges the node to it (the same apply as install), and
// reports the version it runs (rollout.AnnotationVersion) once converged.
func (d *Daemon) watch(ctx context.Context) {
	interval := d.opts.WatchInterval
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := d.watchOnce(ctx); err != nil {
			d.log.Warn("roll-out watch", slog.Any("err", err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (d *Daemon) watchOnce(ctx context.Context) error {
	root := d.opts.Apply.Root
	if root == "" {
		root = "/"
	}
	in := func(p string) string { return filepath.Join(root, p) }
	kubeconfig := in(layout.KubeletConf)
	if _, err := os.Stat(kubeconfig); err != nil {
		return nil // not joined yet
	}
	c, err := cluster.Load(in(layout.ClusterConfig))
	if err != nil {
		return err
	}
	c = c.Defaulted()
	node, err := nodestate.ThisNode(c, d.opts.Apply.Node)
	if err != nil {
		return err
	}
	client, err := converge.KubeClient(kubeconfig, "", "")
	if err != nil {
		return err
	}
	d.maintain(ctx, root, c, node, client)
	n, err := client.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading node %s: %w", node.Name, err)
	}
	name, current, err := bundlestore.Target(root)
	if err != nil {
		return err
	}
	seen := rollout.ObserveNodeInput(n, current)
	changes := 0 // the apply's, for the log
	// A round is a few steps (rollout.NodeStep); more is a bug in them.
	for range rollout.MaxNodeSteps {
		a := rollout.NodeStep(seen)
		var r rollout.NodeResult
		switch a.Kind {
		case rollout.NodeIdle:
			return nil
		case rollout.NodeFail:
			return a.Err
		case rollout.NodeStage:
			d.log.Info("roll-out: staging", slog.String("version", a.Version))
			err := d.stage(ctx, root, c, node, name, a.Version)
			switch {
			case errors.Is(err, errApplyBusy):
				r.Busy = true
			case err != nil:
				d.log.Warn("roll-out: staging failed", slog.String("version", a.Version), slog.Any("err", err))
				r.Err = err
			default:
				d.log.Info("roll-out: staged", slog.String("version", a.Version))
			}
		case rollout.NodeReportStaged, rollout.NodeReportStageError:
			if err := patchAnnotations(ctx, client, node.Name, a.Patch); err != nil {
				return fmt.Errorf("reporting the staging of %s: %w", a.Version, err)
			}
			return nil
		case rollout.NodeFetch:
			ring, err := signing.LoadKeyringFile(in(layout.KeyringFile))
			if err != nil {
				return err
			}
			d.log.Info("roll-out: new target", slog.String("from", current), slog.String("to", a.Version))
			if r.File, _, err = bundlestore.Stage(ctx, root, c, ring, name, a.Version, d.now(), d.log); err != nil {
				return fmt.Errorf("bundle %s %s: %w", name, a.Version, err)
			}
			refused, err := mayMove(ctx, client, root, r.File)
			if err != nil {
				return fmt.Errorf("bundle %s %s: %w", name, a.Version, err)
			}
			if refused != nil {
				r.Refused = refused.Error()
			}
		case rollout.NodeRefuse:
			// The desired version is written with the kubelet's own
			// credentials: no move back without the orchestrator's order.
			d.log.Warn("roll-out: refusing the desired version", slog.String("version", a.Version), slog.String("err", a.Reason))
			if a.Patch != nil {
				if err := patchAnnotations(ctx, client, node.Name, a.Patch); err != nil {
					return fmt.Errorf("reporting the refusal of %s: %w", a.Version, err)
				}
			}
			return nil
		case rollout.NodeMove, rollout.NodeApply:
			if a.Kind == rollout.NodeMove {
				if err := bundlestore.SetTarget(root, a.File); err != nil {
					return err
				}
			}
			res, ran, err := d.tryApply(ctx)
			r.Busy, r.Err = !ran, err
			if ran && err == nil {
				changes = res.Changes
			}
		case rollout.NodeReportVersion:
			if err := patchAnnotations(ctx, client, node.Name, a.Patch); err != nil {
				return fmt.Errorf("reporting version %s: %w", a.Version, err)
			}
			d.log.Info("roll-out: node converged", slog.String("version", a.Version), slog.Int("changes", changes))
			return nil
		default:
			return fmt.Errorf("roll-out: unknown step %q", a.Kind)
		}
		seen.Record(a, r)
	}
	return fmt.Errorf("roll-out: no decision after %d steps", rollout.MaxNodeSteps)
}

// patchAnnotations writes annotations (a merge patch: nil removes one)
// on the node, as the daemon's field manager.
func patchAnnotations(ctx context.Context, client kubernetes.Interface, node string, annotations map[string]any) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": annotations}})
	if err != nil {
		return err
	}
	_, err = client.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "ferry-node"})
	return err
}

// mayMove decides whether the node may move from the bundle it runs to
// file (in layout.BundlesDir, verified when it was stored there): refused says
// why not (reported on the Node), err is a failure to decide (tried again
// next round). Moving back needs the orchestrator's order
// (rollout.RollbackOrdered), which no node can write.
func mayMove(ctx context.Context, client kubernetes.Interface, root, file string) (refused, err error) {
	curISO, err := bundlestore.Imported(root)
	if err != nil {
		return nil, err
	}
	curM, err := content.ReadManifestUnverified(curISO)
	if err != nil {
		return nil, fmt.Errorf("the bundle this node runs, %s: %w", curISO, err)
	}
	nextM, err := content.ReadManifestUnverified(filepath.Join(root, layout.BundlesDir, file))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	cur, next := bundlestore.ManifestRelease(curM), bundlestore.ManifestRelease(nextM)
	back := false
	if bundlestore.Older(next.Version, cur.Version) {
		if back, err = rollout.RollbackOrdered(ctx, client, next.Version); err != nil {
			return nil, err
		}
		if !back {
			return fmt.Errorf("bundle %s is older than the installed %s, and no rollback to it is ordered (configmap %s/%s): a node moves back only in a roll-out ordered with installer upgrade --allow-downgrade",
				next.Version, cur.Version, rollout.ConfigMapNamespace, rollout.RollbackConfigMap), nil
		}
	}
	return bundlestore.MayFollow(cur, next, back), nil
}

// errApplyBusy: an apply runs; the staging waits for the next round.
var errApplyBusy = errors.New("an apply is running")

// stage readies the node for version before the roll-out drains any node:
// the bundle fetched and verified (bundlestore.Stage); on a control plane,
// served by its content service (an apply of the current target, whose
// content service serves every bundle the node has); and the images the
// node will run pulled through containerd (control planes: every image of
// the distribution; workers: the pod sandbox and CoreDNS).
func (d *Daemon) stage(ctx context.Context, root string, c *cluster.Cluster, node *cluster.Node, name, version string) error {
	in := func(p string) string { return filepath.Join(root, p) }
	ring, err := signing.LoadKeyringFile(in(layout.KeyringFile))
	if err != nil {
		return err
	}
	file, facts, err := bundlestore.Stage(ctx, root, c, ring, name, version, d.now(), d.log)
	if err != nil {
		return fmt.Errorf("fetching %s: %w", bundlestore.FileName(name, version), err)
	}
	if facts == nil { // here already (imported by installer upgrade)
		if facts, err = bundlestore.ReadFacts(ctx, in(filepath.Join(layout.BundlesDir, file)), ring, verify.Options{Now: d.now(), Installed: true}); err != nil {
			return err
		}
	}
	images := facts.Images
	if node.HasRole(cluster.RoleControlPlane) {
		_, ran, err := d.tryApply(ctx)
		if !ran {
			return errApplyBusy
		}
		if err != nil {
			return fmt.Errorf("serving %s: %w", file, err)
		}
	} else {
		images = nil
		for _, base := range []string{"pause", "coredns"} {
			if im, ok := facts.Image(base); ok {
				images = append(images, im)
			}
		}
	}
	for _, im := range images {
		pull := exec.CommandContext(ctx, "crictl", "--runtime-endpoint", "unix:///run/containerd/containerd.sock", "--timeout", "10m", "pull", im)
		if out, err := pull.CombinedOutput(); err != nil {
			return fmt.Errorf("pulling %s: %w: %s", im, err, bytes.TrimSpace(out))
		}
	}
	return nil
}
