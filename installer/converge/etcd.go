package converge

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"
)

// AddEtcdMember adds a control-plane node's etcd member as a learner and
// records the membership it starts into (see EtcdMember).
type AddEtcdMember struct {
	Member *EtcdMember
	Because
}

func (AddEtcdMember) Kind() string      { return KindEtcdAdd }
func (op AddEtcdMember) Target() string { return op.Member.Name + " " + op.Member.PeerURL }
func (op AddEtcdMember) String() string { return describe(op) }
func (op AddEtcdMember) Apply(ctx context.Context, h *Host) error {
	return h.addEtcdMember(ctx, op.Member)
}

// PromoteEtcdMember promotes a learner that has caught up to a voting
// member and records it.
type PromoteEtcdMember struct {
	Member *EtcdMember
	Because
}

func (PromoteEtcdMember) Kind() string      { return KindEtcdPromote }
func (op PromoteEtcdMember) Target() string { return op.Member.Name }
func (op PromoteEtcdMember) String() string { return describe(op) }
func (op PromoteEtcdMember) Apply(ctx context.Context, h *Host) error {
	return h.promoteEtcdMember(ctx, op.Member)
}

// planEtcdAdd adds a joining control plane's member until its membership
// is recorded.
func planEtcdAdd(d Desired, o Observed) []Op {
	if d.EtcdMember == nil || o.EtcdMemberAdded {
		return nil
	}
	return []Op{AddEtcdMember{Member: d.EtcdMember, Because: "not a member of the cluster's etcd yet"}}
}

// planEtcdPromote promotes the member once the node has joined, until
// the promotion is recorded (kubeadm join promotes it too; this is for a
// join interrupted in between).
func planEtcdPromote(d Desired, o Observed) []Op {
	if d.EtcdMember == nil || !o.EtcdMemberAdded || !o.Joined || o.EtcdPromoted {
		return nil
	}
	return []Op{PromoteEtcdMember{Member: d.EtcdMember, Because: "a learner until its member has caught up"}}
}

// etcdMembers is `etcdctl member list -w json`.
type etcdMembers struct {
	Members []struct {
		ID        uint64   `json:"ID"`
		Name      string   `json:"name"`
		PeerURLs  []string `json:"peerURLs"`
		IsLearner bool     `json:"isLearner"`
	} `json:"members"`
}

// etcdctl runs etcdctl against m's endpoints, tried again while etcd
// fails (a busy member: its disk or CPU shared with the node's other
// work; a learner not yet in sync) up to attempts times.
func (h *Host) etcdctl(ctx context.Context, m *EtcdMember, attempts int, args ...string) ([]byte, error) {
	base := []string{"--endpoints=" + strings.Join(m.Endpoints, ","), "--cacert=" + h.path(m.CACert), "--cert=" + h.path(m.Cert), "--key=" + h.path(m.Key),
		"--dial-timeout=10s", "--command-timeout=30s"}
	for attempt := 1; ; attempt++ {
		out, err := h.run(ctx, "etcdctl", append(base, args...)...)
		if err == nil || attempt >= attempts {
			return out, err
		}
		h.log().Warn("etcdctl failed, trying again", slog.Int("attempt", attempt), slog.Any("err", err))
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(min(attempt, 4)) * 5 * time.Second):
		}
	}
}

func (h *Host) etcdMembers(ctx context.Context, m *EtcdMember) (etcdMembers, error) {
	var ms etcdMembers
	out, err := h.etcdctl(ctx, m, 5, "member", "list", "-w", "json")
	if err != nil {
		return ms, err
	}
	if err := json.Unmarshal(out, &ms); err != nil {
		return ms, fmt.Errorf("etcdctl member list: %w", err)
	}
	return ms, nil
}

// addEtcdMember adds m as a learner unless a member has its peer URL
// already, then records the membership the new member starts into.
func (h *Host) addEtcdMember(ctx context.Context, m *EtcdMember) error {
	ms, err := h.etcdMembers(ctx, m)
	if err != nil {
		return err
	}
	has := func(ms etcdMembers) bool {
		for _, x := range ms.Members {
			if slices.Contains(x.PeerURLs, m.PeerURL) {
				return true
			}
		}
		return false
	}
	if !has(ms) {
		if _, err := h.etcdctl(ctx, m, 1, "member", "add", m.Name, "--learner", "--peer-urls="+m.PeerURL); err != nil {
			// A timed-out add may have been applied: the next list says.
			if ms2, lerr := h.etcdMembers(ctx, m); lerr != nil || !has(ms2) {
				return err
			}
		}
		if ms, err = h.etcdMembers(ctx, m); err != nil {
			return err
		}
	}
	var cluster []string
	for _, x := range ms.Members {
		name := x.Name
		if slices.Contains(x.PeerURLs, m.PeerURL) {
			name = m.Name
		}
		if name == "" {
			return fmt.Errorf("etcd has another member that has not started yet (%s): join one control-plane node at a time", strings.Join(x.PeerURLs, ","))
		}
		for _, u := range x.PeerURLs {
			cluster = append(cluster, name+"="+u)
		}
	}
	slices.Sort(cluster)
	return h.writeState(m.StateFile, strings.Join(cluster, ","))
}

// promoteEtcdMember promotes m from learner to voting member once it has
// caught up with the leader (etcd refuses before: tried again for about
// three minutes), and records it.
func (h *Host) promoteEtcdMember(ctx context.Context, m *EtcdMember) error {
	ms, err := h.etcdMembers(ctx, m)
	if err != nil {
		return err
	}
	for _, x := range ms.Members {
		if !slices.Contains(x.PeerURLs, m.PeerURL) {
			continue
		}
		if x.IsLearner {
			if _, err := h.etcdctl(ctx, m, 12, "member", "promote", strconv.FormatUint(x.ID, 16)); err != nil {
				return err
			}
		}
		return h.writeState(m.PromotedFile, strconv.FormatUint(x.ID, 16))
	}
	return fmt.Errorf("etcd has no member with peer URL %s: it was removed; remove %s and join the node again", m.PeerURL, m.StateFile)
}
