package testcluster

import (
	"context"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PlayDeploymentController stands in for the Deployment controller (a
// test cluster runs no kube-controller-manager) until ctx ends: whenever
// a Deployment's status is behind its spec, every replica is written
// updated and available. Tests that wait for Deployments to become ready
// run it in a goroutine.
func (c *Cluster) PlayDeploymentController(ctx context.Context) {
	for {
		list, err := c.Client.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
		if err == nil {
			for i := range list.Items {
				d := &list.Items[i]
				n := int32(1)
				if d.Spec.Replicas != nil {
					n = *d.Spec.Replicas
				}
				if d.Status.ObservedGeneration != d.Generation || d.Status.AvailableReplicas != n || d.Status.UpdatedReplicas != n {
					d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
					_, _ = c.Client.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{})
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}
