package rollout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// HealthChecker is the optional preflight of a Snapshotter: the cluster's
// etcd is healthy enough to be rolled over (every member started and
// answering, voting, a leader, no alarm).
type HealthChecker interface {
	CheckHealth(ctx context.Context) error
}

// healthTimeout bounds the preflight's look at etcd.
const healthTimeout = 30 * time.Second

// CheckHealth implements HealthChecker: from the member at Endpoint, the
// member list; then every member's status at its own client URL. A member
// that has not started, is a learner, does not answer, reports errors, or
// an active alarm (NOSPACE, CORRUPT) fails the check: a roll-out restarts
// every member in turn, and one already missing would cost the quorum.
func (e *EtcdSnapshotter) CheckHealth(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint}, TLS: e.TLS, DialTimeout: 10 * time.Second, Logger: zap.NewNop(), Context: ctx})
	if err != nil {
		return fmt.Errorf("etcd health: connecting to %s: %w", e.Endpoint, err)
	}
	defer cli.Close()
	ml, err := cli.MemberList(ctx)
	if err != nil {
		return fmt.Errorf("etcd health: listing members at %s: %w", e.Endpoint, err)
	}
	var problems []string
	leaders := map[uint64]bool{}
	for _, m := range ml.Members {
		name := m.Name
		if name == "" {
			name = fmt.Sprintf("%x", m.ID)
		}
		switch {
		case len(m.ClientURLs) == 0:
			problems = append(problems, fmt.Sprintf("member %s (%s) has not started", name, strings.Join(m.PeerURLs, ",")))
			continue
		case m.IsLearner:
			problems = append(problems, fmt.Sprintf("member %s is a learner (a join did not finish)", name))
			continue
		}
		st, err := statusOf(ctx, cli, m.ClientURLs)
		if err != nil {
			problems = append(problems, fmt.Sprintf("member %s does not answer: %v", name, err))
			continue
		}
		if len(st.Errors) > 0 {
			problems = append(problems, fmt.Sprintf("member %s reports %s", name, strings.Join(st.Errors, "; ")))
		}
		if st.Leader == 0 {
			problems = append(problems, fmt.Sprintf("member %s has no leader", name))
		} else {
			leaders[st.Leader] = true
		}
	}
	if len(leaders) > 1 {
		problems = append(problems, fmt.Sprintf("members disagree on the leader (%d leaders)", len(leaders)))
	}
	alarms, err := cli.AlarmList(ctx)
	if err != nil {
		problems = append(problems, fmt.Sprintf("listing alarms: %v", err))
	} else {
		for _, a := range alarms.Alarms {
			if a.Alarm != etcdserverpb.AlarmType_NONE {
				problems = append(problems, fmt.Sprintf("alarm %s on member %x", a.Alarm, a.MemberID))
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("etcd is not healthy: %w", errors.New(strings.Join(problems, "; ")))
	}
	return nil
}

// statusOf asks the first client URL of a member that answers.
func statusOf(ctx context.Context, cli *clientv3.Client, urls []string) (*clientv3.StatusResponse, error) {
	var err error
	for _, u := range urls {
		var st *clientv3.StatusResponse
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err = cli.Status(sctx, u)
		cancel()
		if err == nil {
			return st, nil
		}
	}
	return nil, err
}
