package cluster

import (
	"fmt"
	"strings"
)

// Taint effects.
const (
	EffectNoSchedule       = "NoSchedule"
	EffectPreferNoSchedule = "PreferNoSchedule"
	EffectNoExecute        = "NoExecute"
)

// ControlPlaneTaint is the taint of a control-plane node that does not run
// workloads (as kubeadm sets it).
const ControlPlaneTaint = "node-role.kubernetes.io/control-plane:NoSchedule"

// Taint is a parsed node taint.
type Taint struct {
	Key    string
	Value  string
	Effect string
}

// String is the kubectl form, key[=value]:Effect.
func (t Taint) String() string {
	if t.Value == "" {
		return t.Key + ":" + t.Effect
	}
	return t.Key + "=" + t.Value + ":" + t.Effect
}

// ParseTaint reads a taint written key[=value]:Effect, as kubectl taint does.
func ParseTaint(s string) (Taint, error) {
	kv, effect, ok := strings.Cut(s, ":")
	if !ok || strings.Contains(effect, ":") {
		return Taint{}, fmt.Errorf("taint %q: want key[=value]:Effect", s)
	}
	key, value, _ := strings.Cut(kv, "=")
	t := Taint{Key: key, Value: value, Effect: effect}
	if err := checkLabelKey(key); err != nil {
		return Taint{}, fmt.Errorf("taint %q: %w", s, err)
	}
	if err := checkLabelValue(value); err != nil {
		return Taint{}, fmt.Errorf("taint %q: %w", s, err)
	}
	switch effect {
	case EffectNoSchedule, EffectPreferNoSchedule, EffectNoExecute:
	default:
		return Taint{}, fmt.Errorf("taint %q: effect must be NoSchedule, PreferNoSchedule or NoExecute, got %q", s, effect)
	}
	return t, nil
}

// ParsedTaints are the node's taints, parsed; the first bad one is an error.
func (n *Node) ParsedTaints() ([]Taint, error) {
	out := make([]Taint, 0, len(n.Taints))
	for _, s := range n.Taints {
		t, err := ParseTaint(s)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}
