package converge

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// RemoveNode drains a node that is no longer in the cluster's
// configuration (evictions: its PodDisruptionBudgets hold), deletes its
// Node, and removes its etcd member through Etcd (the local member's
// client endpoint and certificates) when it has one (R50).
type RemoveNode struct {
	Name string
	Etcd *EtcdMember
	Because
}

func (RemoveNode) Kind() string      { return KindRemoveNode }
func (op RemoveNode) Target() string { return op.Name }
func (op RemoveNode) String() string { return describe(op) }
func (op RemoveNode) Apply(ctx context.Context, h *Host) error {
	name := op.Name
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
	if op.Etcd == nil {
		return nil
	}
	ms, err := h.etcdMembers(ctx, op.Etcd)
	if err != nil {
		return err
	}
	for _, m := range ms.Members {
		if m.Name == name {
			if _, err := h.etcdctl(ctx, op.Etcd, 3, "member", "remove", strconv.FormatUint(m.ID, 16)); err != nil {
				return fmt.Errorf("removing %s's etcd member: %w", name, err)
			}
		}
	}
	return nil
}

// LabelNode sets labels on the node's Node object (R10).
type LabelNode struct {
	Labels map[string]string
	Because
}

func (LabelNode) Kind() string      { return KindLabel }
func (op LabelNode) Target() string { return strings.Join(sortedKeys(op.Labels), ",") }
func (op LabelNode) String() string { return describe(op) }
func (op LabelNode) Apply(ctx context.Context, h *Host) error {
	args := h.kubectlArgs("label", "node", h.NodeName, "--overwrite")
	for _, k := range sortedKeys(op.Labels) {
		args = append(args, k+"="+op.Labels[k])
	}
	_, err := h.run(ctx, "kubectl", args...)
	return err
}

// TaintNode adds a taint ("key[=value]:Effect") to the node's Node (R47).
type TaintNode struct {
	Taint string
	Because
}

func (TaintNode) Kind() string      { return KindTaint }
func (op TaintNode) Target() string { return op.Taint }
func (op TaintNode) String() string { return describe(op) }
func (op TaintNode) Apply(ctx context.Context, h *Host) error {
	_, err := h.run(ctx, "kubectl", h.kubectlArgs("taint", "node", h.NodeName, "--overwrite", op.Taint)...)
	return err
}

// UntaintNode removes a taint ("key:Effect") from the node's Node (R4).
type UntaintNode struct {
	Taint string
	Because
}

func (UntaintNode) Kind() string      { return KindUntaint }
func (op UntaintNode) Target() string { return op.Taint }
func (op UntaintNode) String() string { return describe(op) }
func (op UntaintNode) Apply(ctx context.Context, h *Host) error {
	_, err := h.run(ctx, "kubectl", h.kubectlArgs("taint", "node", h.NodeName, op.Taint+"-")...)
	return err
}

// planRemovedNodes removes the Nodes Ferry manages that the cluster's
// configuration no longer lists (checked on control planes: ClusterNodes
// set), when the API answered.
func planRemovedNodes(d Desired, o Observed) []Op {
	if d.ClusterNodes == nil || o.APIUnknown {
		return nil
	}
	var ops []Op
	for _, n := range o.ClusterNodes {
		if !slices.Contains(d.ClusterNodes, n) {
			ops = append(ops, RemoveNode{Name: n, Etcd: d.LocalEtcd, Because: "not in the cluster configuration"})
		}
	}
	return ops
}

// planNodeObject plans the node's labels and taints: the labels missing
// or different in one operation, each missing taint, each taint to
// remove; nothing while the API does not answer.
func planNodeObject(d Desired, o Observed) []Op {
	if o.APIUnknown {
		return nil
	}
	var ops []Op
	missing := map[string]string{}
	for k, v := range d.Labels {
		if have, ok := o.NodeLabels[k]; !ok || have != v {
			missing[k] = v
		}
	}
	if len(missing) > 0 {
		ops = append(ops, LabelNode{Labels: missing, Because: "missing or different"})
	}
	for _, t := range d.Taints {
		key, effect := taintKeyEffect(t)
		if !slices.Contains(o.NodeTaints, key+":"+effect) {
			ops = append(ops, TaintNode{Taint: t, Because: "missing"})
		}
	}
	for _, t := range d.RemoveTaints {
		for _, have := range o.NodeTaints {
			if have == t {
				ops = append(ops, UntaintNode{Taint: t, Because: "single server runs workloads (R4)"})
			}
		}
	}
	return ops
}
