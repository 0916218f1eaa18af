package rollout

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ferry-k8s/ferry/builder/distro/distrotest"
	"github.com/ferry-k8s/ferry/internal/testcluster"
	"github.com/ferry-k8s/ferry/internal/testutil"
)

// testCluster is a real control plane started by the test: etcd and
// kube-apiserver (built from source like the bundle's), both on 127.0.0.1
// at free ports, TLS everywhere with certificates of Ferry's realms
// (installer/pki), and kwok simulating the nodes' kubelets.
type testCluster struct {
	dir      string
	config   *rest.Config // the administrator (system:masters)
	client   kubernetes.Interface
	etcdURL  string
	etcdTLS  *tls.Config
	kwokDone <-chan struct{}
	cp       *testcluster.Cluster
}

func startCluster(t testing.TB) *testCluster {
	t.Helper()
	kwokBin := kwok(t)
	// Node,RBAC as on a Ferry cluster: tests act as nodes too.
	cp := testcluster.Start(t, testcluster.Options{KubeAPIServer: distrotest.KubeAPIServer(t), Etcd: distrotest.Etcd(t), Authorization: "Node,RBAC", APIServerArgs: []string{"--max-requests-inflight=2000", "--max-mutating-requests-inflight=1000"}})
	tc := &testCluster{dir: cp.Dir, config: cp.Config, client: cp.Client, etcdURL: cp.EtcdURL, etcdTLS: cp.EtcdTLS, cp: cp}
	home := filepath.Join(cp.Dir, "kwok-home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	tc.kwokDone = startEnv(t, "kwok", []string{"HOME=" + home}, kwokBin, "--kubeconfig="+cp.Kubeconfig, "--config="+strings.Join(kwokStages(t), ","),
		"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake", "--node-lease-duration-seconds=40")
	return tc
}

// countingClient is a client whose requests are counted: the
// orchestrator's, for the figures.
func (tc *testCluster) countingClient(n *atomic.Int64) kubernetes.Interface {
	cfg := rest.CopyConfig(tc.config)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(req *http.Request) (*http.Response, error) {
			n.Add(1)
			return rt.RoundTrip(req)
		})
	}
	return kubernetes.NewForConfigOrDie(cfg)
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// addNodes creates kwok nodes n-000… (the first cps are control-plane
// nodes), at bundle version 1.0.0 and kubelet testOldKubelet, and waits
// until kwok has made every one Ready.
func (tc *testCluster) addNodes(t testing.TB, prefix string, count, cps int) []string {
	t.Helper()
	ctx := context.Background()
	var names []string
	for i := range count {
		name := fmt.Sprintf("%s-%03d", prefix, i)
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", AnnotationVersion: "1.0.0", AnnotationDesiredVersion: "1.0.0"},
			Labels:      map[string]string{"kubernetes.io/hostname": name, "type": "kwok"}},
			Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{KubeletVersion: testOldKubelet}}}
		if i < cps {
			n.Labels[LabelControlPlane] = ""
		}
		if _, err := tc.client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		list, err := tc.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ready := 0
		for i := range list.Items {
			if strings.HasPrefix(list.Items[i].Name, prefix+"-") && Observe(&list.Items[i]).Ready {
				ready++
			}
		}
		if ready == count {
			return names
		}
		select {
		case <-tc.kwokDone:
			t.Fatal("kwok exited")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d kwok nodes Ready after 3 minutes", ready, count)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func startEnv(t testing.TB, name string, env []string, bin string, args ...string) <-chan struct{} {
	return testutil.StartProcess(t, name, env, bin, args...)
}

// kwokStages are the stage configurations kwok's release ships (its
// kustomize/stage directory, in the module built): nodes become Ready and
// keep a lease, Pods run and go when deleted.
func kwokStages(t testing.TB) []string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", kwokComponent.Module+"@"+kwokComponent.Version)
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off", "GOTOOLCHAIN=local")
	cmd.Dir = os.TempDir()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("locating the kwok module: %v\n%s", err, out)
	}
	var info struct{ Dir string }
	if err := json.Unmarshal(out, &info); err != nil || info.Dir == "" {
		t.Fatalf("locating the kwok module: %v %s", err, out)
	}
	var files []string
	for _, f := range []string{"node/fast/node-initialize.yaml", "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
		"pod/general/pod-create.yaml", "pod/general/pod-init-container-running.yaml", "pod/general/pod-init-container-completed.yaml",
		"pod/general/pod-ready.yaml", "pod/general/pod-complete.yaml", "pod/general/pod-delete.yaml"} {
		p := filepath.Join(info.Dir, "kustomize", "stage", f)
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("kwok's stages: %v", err)
		}
		files = append(files, p)
	}
	return files
}
