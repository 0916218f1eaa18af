package rollout

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// The keys of the ConfigMap. Every node has one more key, nodeKeyPrefix +
// its name, holding a NodeRecord as JSON.
const (
	keyPlan       = "plan"
	nodeKeyPrefix = "node."
	// maxStateValue bounds what is read from one value of the ConfigMap
	// (the API server bounds the whole object at about 1 MiB).
	maxStateValue = 64 << 10
)

// Status is where a roll-out stands as a whole.
type Status string

// The statuses of a roll-out.
const (
	StatusRunning  Status = "Running"
	StatusStopped  Status = "Stopped"
	StatusComplete Status = "Complete"
)

// State is the roll-out as the ConfigMap records it: the plan and a
// summary of every node. The nodes' own annotations are the truth about
// their progress (each written in the same request as the change it
// describes); the summary is rewritten from them by every run.
type State struct {
	Plan  PlanRecord
	Nodes map[string]NodeRecord
}

// PlanRecord is the plan of a roll-out.
type PlanRecord struct {
	Version           string `json:"version"`
	KubernetesVersion string `json:"kubernetesVersion,omitempty"`
	MaxUnavailable    string `json:"maxUnavailable"`
	Status            Status `json:"status"`
	// Holder is the run of the orchestrator that owns the roll-out: a new
	// run takes it over, and an older one still running stops when its
	// next write finds another holder.
	Holder   string          `json:"holder,omitempty"`
	Started  time.Time       `json:"started"`
	Updated  time.Time       `json:"updated"`
	Snapshot *SnapshotRecord `json:"snapshot,omitempty"`
	// Rollback records a roll-out to an older bundle, ordered with
	// OrderRollback.
	Rollback bool `json:"rollback,omitempty"`
	// StoppedAt names the failed nodes and Reason says why, when Status
	// is Stopped.
	StoppedAt []string `json:"stoppedAt,omitempty"`
	Reason    string   `json:"reason,omitempty"`
}

// NodeRecord is one node in the ConfigMap's summary.
type NodeRecord struct {
	Phase    Phase     `json:"phase"`
	Version  string    `json:"version,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	Error    string    `json:"error,omitempty"`
}

var errNoPlan = errors.New("no plan")

// ParseState reads the data of the ConfigMap. It is given what the
// cluster holds, which anyone with write access to kube-system may have
// changed: sizes are bounded, and every problem is named by its key.
func ParseState(data map[string]string) (*State, error) {
	raw, ok := data[keyPlan]
	if !ok {
		return nil, fmt.Errorf("configmap %s/%s: key %s: %w", ConfigMapNamespace, ConfigMapName, keyPlan, errNoPlan)
	}
	s := &State{Nodes: map[string]NodeRecord{}}
	if err := decodeValue(keyPlan, raw, &s.Plan); err != nil {
		return nil, err
	}
	if s.Plan.Version == "" {
		return nil, fmt.Errorf("configmap %s/%s: key %s: no target version", ConfigMapNamespace, ConfigMapName, keyPlan)
	}
	switch s.Plan.Status {
	case StatusRunning, StatusStopped, StatusComplete:
	default:
		return nil, fmt.Errorf("configmap %s/%s: key %s: unknown status %q", ConfigMapNamespace, ConfigMapName, keyPlan, s.Plan.Status)
	}
	for k, v := range data {
		name, ok := strings.CutPrefix(k, nodeKeyPrefix)
		if !ok {
			continue
		}
		var r NodeRecord
		if err := decodeValue(k, v, &r); err != nil {
			return nil, err
		}
		switch r.Phase {
		case PhasePending, PhaseCordoned, PhaseDrained, PhaseUpgrading, PhaseDone, PhaseFailed:
		default:
			return nil, fmt.Errorf("configmap %s/%s: key %s: unknown phase %q", ConfigMapNamespace, ConfigMapName, k, r.Phase)
		}
		s.Nodes[name] = r
	}
	return s, nil
}

func decodeValue(key, raw string, v any) error {
	if len(raw) > maxStateValue {
		return fmt.Errorf("configmap %s/%s: key %s: %d bytes, more than %d", ConfigMapNamespace, ConfigMapName, key, len(raw), maxStateValue)
	}
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("configmap %s/%s: key %s: %w", ConfigMapNamespace, ConfigMapName, key, err)
	}
	if dec.More() {
		return fmt.Errorf("configmap %s/%s: key %s: data after the JSON value", ConfigMapNamespace, ConfigMapName, key)
	}
	return nil
}

// Data is the ConfigMap's data for s.
func (s *State) Data() map[string]string {
	data := make(map[string]string, len(s.Nodes)+1)
	b, _ := json.Marshal(s.Plan) // plain structs: cannot fail
	data[keyPlan] = string(b)
	for name, r := range s.Nodes {
		b, _ := json.Marshal(r)
		data[nodeKeyPrefix+name] = string(b)
	}
	return data
}

// Rows is the progress table of s, nodes by name.
func (s *State) Rows(now time.Time) []Row {
	rows := make([]Row, 0, len(s.Nodes))
	for name, r := range s.Nodes {
		row := Row{Node: name, Phase: r.Phase, Version: r.Version, Error: r.Error}
		switch {
		case r.Started.IsZero():
		case !r.Finished.IsZero():
			row.Elapsed = r.Finished.Sub(r.Started)
		default:
			row.Elapsed = now.Sub(r.Started)
		}
		rows = append(rows, row)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Node < rows[j].Node })
	return rows
}
