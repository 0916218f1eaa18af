package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// A node's daemon moves its node to whatever bundle version its own Node
// object names (AnnotationDesiredVersion), and a kubelet's credentials
// may write that annotation: NodeRestriction lets a node edit its own
// Node's annotations. So the daemon never moves to an older bundle on the
// annotation's word alone. A rollback must also be ordered where no node
// can write: the ConfigMap RollbackConfigMap, which the orchestrator
// (installer upgrade --allow-downgrade, an administrator) writes before
// the first node changes and deletes once the roll-out is complete. Nodes
// may read that one ConfigMap and nothing else of kube-system (the Role
// and RoleBinding RollbackReader, for the group system:nodes; the Node
// authorizer has no opinion on it, RBAC decides).
const (
	// RollbackConfigMap (in ConfigMapNamespace) records an ordered
	// rollback: its data's RollbackKeyVersion is the version nodes may
	// move back to.
	RollbackConfigMap = "ferry-rollback"
	// RollbackReader names the Role and RoleBinding that let nodes read
	// RollbackConfigMap.
	RollbackReader = "ferry:rollback-reader"
	// The keys of RollbackConfigMap's data.
	RollbackKeyVersion = "version"
	RollbackKeyOrdered = "ordered"
	RollbackKeyHolder  = "holder"

	// AnnotationTargetRefused is a node daemon's report that it refuses
	// the desired version: "<version>: <reason>". The orchestrator stops
	// the node with that reason instead of waiting out its timeout.
	AnnotationTargetRefused = "ferry.dev/target-refused"
)

// OrderRollback records that nodes may move back to version (an
// administrator's client): RollbackConfigMap, and the Role and RoleBinding
// that let nodes read it. holder names the orchestrator's run.
func OrderRollback(ctx context.Context, c kubernetes.Interface, version, holder string, now time.Time) error {
	if err := checkVersion(version); err != nil {
		return fmt.Errorf("rollback order: %w", err)
	}
	role, binding := RollbackReaderRBAC()
	// Server-side apply under a field manager of its own: the node-rbac
	// add-on (installer/addons) applies the same objects with its labels;
	// this leaves them in place.
	force := true
	opts := metav1.PatchOptions{FieldManager: rollbackFieldManager, Force: &force}
	data, err := json.Marshal(role)
	if err == nil {
		_, err = c.RbacV1().Roles(ConfigMapNamespace).Patch(ctx, RollbackReader, types.ApplyPatchType, data, opts)
	}
	if err != nil {
		return fmt.Errorf("rollback order: role %s: %w", RollbackReader, err)
	}
	data, err = json.Marshal(binding)
	if err == nil {
		_, err = c.RbacV1().RoleBindings(ConfigMapNamespace).Patch(ctx, RollbackReader, types.ApplyPatchType, data, opts)
	}
	if err != nil {
		return fmt.Errorf("rollback order: rolebinding %s: %w", RollbackReader, err)
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: RollbackConfigMap, Namespace: ConfigMapNamespace, Labels: role.Labels},
		Data:       map[string]string{RollbackKeyVersion: version, RollbackKeyOrdered: now.UTC().Format(time.RFC3339), RollbackKeyHolder: holder},
	}
	cms := c.CoreV1().ConfigMaps(ConfigMapNamespace)
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); apierrors.IsNotFound(err) {
		_, err = cms.Create(ctx, cm, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("rollback order: configmap %s/%s: %w", ConfigMapNamespace, RollbackConfigMap, err)
		}
	} else if err != nil {
		return fmt.Errorf("rollback order: configmap %s/%s: %w", ConfigMapNamespace, RollbackConfigMap, err)
	}
	return nil
}

// rollbackFieldManager is OrderRollback's server-side apply field manager.
const rollbackFieldManager = "ferry-rollout"

// RollbackReaderRBAC is the Role and RoleBinding RollbackReader that let
// nodes (the group system:nodes) read RollbackConfigMap and nothing else
// of kube-system: the one definition OrderRollback and the node-rbac
// add-on (installer/addons) both apply.
func RollbackReaderRBAC() (*rbacv1.Role, *rbacv1.RoleBinding) {
	meta := func() metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: RollbackReader, Namespace: ConfigMapNamespace, Labels: map[string]string{"app.kubernetes.io/managed-by": "ferry"}}
	}
	role := &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "Role"},
		ObjectMeta: meta(),
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{RollbackConfigMap}, Verbs: []string{"get"},
		}},
	}
	binding := &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "RoleBinding"},
		ObjectMeta: meta(),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: RollbackReader},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "system:nodes"}},
	}
	return role, binding
}

// WithdrawRollback deletes the rollback order (the roll-out back is
// complete, or none is ordered): nodes may no longer move back.
func WithdrawRollback(ctx context.Context, c kubernetes.Interface) error {
	err := c.CoreV1().ConfigMaps(ConfigMapNamespace).Delete(ctx, RollbackConfigMap, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("withdrawing the rollback order: configmap %s/%s: %w", ConfigMapNamespace, RollbackConfigMap, err)
	}
	return nil
}

// RollbackOrdered says whether the orchestrator ordered a rollback to
// version (read with a node's credentials; RBAC lets nodes read the order
// and nothing else of kube-system).
func RollbackOrdered(ctx context.Context, c kubernetes.Interface, version string) (bool, error) {
	cm, err := c.CoreV1().ConfigMaps(ConfigMapNamespace).Get(ctx, RollbackConfigMap, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		// Forbidden too: no order was ever written (the Role comes with
		// the first), or a restarted API server's authorizer has not
		// synced yet. Not a refusal: the daemon asks again next round.
		return false, fmt.Errorf("reading the rollback order %s/%s: %w", ConfigMapNamespace, RollbackConfigMap, err)
	}
	return cm.Data[RollbackKeyVersion] == version, nil
}

// refusal is the reason a node's daemon gave for refusing version
// (AnnotationTargetRefused), or "".
func refusal(n *corev1.Node, version string) string {
	v, ok := n.Annotations[AnnotationTargetRefused]
	if !ok {
		return ""
	}
	if reason, found := strings.CutPrefix(v, version+": "); found {
		return reason
	}
	return ""
}

// ErrRefused: a node's daemon refused the target version.
var ErrRefused = errors.New("the node refuses the target version")
