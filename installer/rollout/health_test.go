package rollout

import (
	"context"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ferry-k8s/ferry/installer/cluster"
)

// TestEtcdHealth: the preflight passes on a healthy etcd; a member added
// but never started (a join that stopped half-way) fails it with the
// member named, and a roll-out refuses to start, writing nothing.
func TestEtcdHealth(t *testing.T) {
	c := startCluster(t)
	c.addNodes(t, "n", 3, 1)
	ctx := context.Background()
	s := &EtcdSnapshotter{Endpoint: c.etcdURL, TLS: c.etcdTLS, Dir: c.dir + "/snapshots", Etcdutl: etcdutl(t)}
	if err := s.CheckHealth(ctx); err != nil {
		t.Fatalf("healthy etcd: %v", err)
	}

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{c.etcdURL}, TLS: c.etcdTLS, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	added, err := cli.MemberAddAsLearner(ctx, []string{"https://never-started.invalid:2380"})
	if err != nil {
		t.Fatal(err)
	}
	err = s.CheckHealth(ctx)
	if err == nil || !strings.Contains(err.Error(), "https://never-started.invalid:2380") || !strings.Contains(err.Error(), "has not started") {
		t.Fatalf("a member never started: %v", err)
	}
	t.Log(err)

	d := newSimDaemon(c.client, 100*time.Millisecond, testNewKubelet)
	_, err = Run(ctx, c.options(t, c.client, d, "2.0.0", cluster.Int(1)))
	if err == nil || !strings.Contains(err.Error(), "preflight: etcd is not healthy") {
		t.Fatalf("roll-out over an unhealthy etcd: %v", err)
	}
	if st, _, err := ReadStatus(ctx, c.client); err != nil || st != nil {
		t.Errorf("the refused roll-out wrote its state: %+v %v", st, err)
	}

	if _, err := cli.MemberRemove(ctx, added.Member.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckHealth(ctx); err != nil {
		t.Fatalf("healthy again: %v", err)
	}
}
