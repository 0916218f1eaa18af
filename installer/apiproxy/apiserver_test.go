package apiproxy

import (
	"context"
	"net/url"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ferry-k8s/ferry/builder/distro/distrotest"
	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/installer/nodeconfig/nodeconfigtest"
	"github.com/ferry-k8s/ferry/internal/testcluster"
)

// TestRealAPIServer puts the proxy in front of a real kube-apiserver
// (internal/testcluster, with the AuthenticationConfiguration Ferry
// renders): the proxy's health check, anonymous, finds it ready and
// systemd hears READY=1; a Kubernetes client that reaches the API through
// the proxy verifies the API server's own certificate, is served, and a
// watch through the proxy carries an event made after it opened. The other
// tests use the apiServer stand-in (helpers_test.go), for the faults.
func TestRealAPIServer(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{KubeAPIServer: distrotest.KubeAPIServer(t), Etcd: distrotest.Etcd(t), AuthenticationConfig: nodeconfigtest.AuthenticationConfig(t)})
	u, err := url.Parse(c.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		APIVersion: bundle.APIVersion,
		Kind:       KindAPIServerProxy,
		HealthCheck: HealthCheck{
			CAFile:             c.CAFile,
			ServerName:         "localhost", // what the API server's certificate names
			Interval:           "100ms",
			Timeout:            "5s",
			HealthyThreshold:   1,
			UnhealthyThreshold: 2,
		},
		DialTimeout: "5s",
		Backends:    []string{u.Host},
	}
	r := startProxy(t, cfg, Options{})
	select {
	case <-r.Ready():
	case <-time.After(waitLimit):
		t.Fatalf("the proxy did not find the real API server ready: %+v", r.Status())
	}
	r.notes.Wait(t, "READY=1", 1)

	rc := rest.CopyConfig(c.Config)
	rc.Host = "https://" + r.addr // TLS ServerName stays localhost: the API server's certificate is checked
	client := kubernetes.NewForConfigOrDie(rc)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if _, err := client.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	w, err := client.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("watch through the proxy: %v", err)
	}
	defer w.Stop()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "through-the-proxy"}}
	if _, err := client.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create through the proxy: %v", err)
	}
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("the watch through the proxy ended before the event")
			}
			if m, isCM := ev.Object.(*corev1.ConfigMap); ev.Type == watch.Added && isCM && m.Name == cm.Name {
				return
			}
		case <-ctx.Done():
			t.Fatal("no event for the ConfigMap through the proxy's watch")
		}
	}
}
