package addons

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/ferry-k8s/ferry/installer/addon"
	"github.com/ferry-k8s/ferry/installer/rollout"
)

// NodeRBAC is Ferry's RBAC for its node daemons: the Role and RoleBinding
// rollout.RollbackReader that let nodes read the rollback order (the one
// definition rollout.OrderRollback applies too, for clusters set up before
// add-ons).
type NodeRBAC struct{}

func (NodeRBAC) Name() string { return "node-rbac" }

func (NodeRBAC) Render(addon.Input) (*addon.Rendered, error) {
	role, binding := rollout.RollbackReaderRBAC()
	r := &addon.Rendered{}
	for _, typed := range []runtime.Object{role, binding} {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(typed)
		if err != nil {
			return nil, fmt.Errorf("converting %T: %w", typed, err)
		}
		r.Objects = append(r.Objects, &unstructured.Unstructured{Object: m})
	}
	return r, nil
}
