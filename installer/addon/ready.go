package addon

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// readyFor says what an applied object of kind gk is waited for; "" for
// kinds that are ready once they exist.
func readyFor(gk schema.GroupKind) string {
	switch gk {
	case schema.GroupKind{Group: "apps", Kind: "Deployment"}:
		return "available"
	case schema.GroupKind{Group: "apps", Kind: "StatefulSet"}, schema.GroupKind{Group: "apps", Kind: "DaemonSet"}:
		return "ready"
	case gkCRD:
		return "established"
	case schema.GroupKind{Group: "batch", Kind: "Job"}:
		return "complete"
	}
	return ""
}

// ready reads whether obj is ready (readyFor), with its state in words
// for a timeout's error; err: it never will be (a failed Job).
func ready(obj *unstructured.Unstructured) (ok bool, state string, err error) {
	i := func(path ...string) int64 {
		v, _, _ := unstructured.NestedInt64(obj.Object, path...)
		return v
	}
	gk := RefOf(obj).GroupKind()
	// The apps controllers' status describes the generation they observed.
	if gen, observed := obj.GetGeneration(), i("status", "observedGeneration"); gk.Group == "apps" && gen > observed {
		return false, fmt.Sprintf("generation %d not yet observed (status.observedGeneration %d)", gen, observed), nil
	}
	replicas := func() int64 {
		if r, found, _ := unstructured.NestedInt64(obj.Object, "spec", "replicas"); found {
			return r
		}
		return 1
	}
	switch gk {
	case schema.GroupKind{Group: "apps", Kind: "Deployment"}:
		want, updated, available := replicas(), i("status", "updatedReplicas"), i("status", "availableReplicas")
		return updated >= want && available >= want, fmt.Sprintf("%d of %d replicas updated, %d available", updated, want, available), nil
	case schema.GroupKind{Group: "apps", Kind: "StatefulSet"}:
		want, updated, readyN := replicas(), i("status", "updatedReplicas"), i("status", "readyReplicas")
		if t, _, _ := unstructured.NestedString(obj.Object, "spec", "updateStrategy", "type"); t == "OnDelete" {
			updated = want
		}
		return updated >= want && readyN >= want, fmt.Sprintf("%d of %d replicas updated, %d ready", updated, want, readyN), nil
	case schema.GroupKind{Group: "apps", Kind: "DaemonSet"}:
		want, updated, available := i("status", "desiredNumberScheduled"), i("status", "updatedNumberScheduled"), i("status", "numberAvailable")
		return updated >= want && available >= want, fmt.Sprintf("%d of %d pods updated, %d available", updated, want, available), nil
	case gkCRD:
		if condition(obj, "Established") {
			return true, "established", nil
		}
		return false, "condition Established is not True", nil
	case schema.GroupKind{Group: "batch", Kind: "Job"}:
		if condition(obj, "Failed") {
			return false, "failed", fmt.Errorf("the job failed")
		}
		if condition(obj, "Complete") {
			return true, "complete", nil
		}
		return false, fmt.Sprintf("%d pods succeeded", i("status", "succeeded")), nil
	}
	return true, "present", nil
}

// condition reports whether obj's status has condition t with status True.
func condition(obj *unstructured.Unstructured, t string) bool {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if ok && m["type"] == t && m["status"] == "True" {
			return true
		}
	}
	return false
}
