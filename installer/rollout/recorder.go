package rollout

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// recorder keeps the ConfigMap's summary: the workers change the state in
// memory and one goroutine writes it, coalescing the changes made while a
// write is under way. Every write is conditional on the resourceVersion
// last written; on a conflict the ConfigMap is read again and, if it still
// names this run as the holder, written again.
type recorder struct {
	client kubernetes.Interface
	id     string
	log    *slog.Logger

	mu    sync.Mutex
	state *State
	cm    *corev1.ConfigMap // as last read or written
	dirty chan struct{}
}

func newRecorder(c kubernetes.Interface, s *State, id string, log *slog.Logger) *recorder {
	return &recorder{client: c, id: id, log: log, state: s, dirty: make(chan struct{}, 1)}
}

// node changes one node's record.
func (r *recorder) node(name string, f func(*NodeRecord)) {
	r.mu.Lock()
	rec := r.state.Nodes[name]
	f(&rec)
	r.state.Nodes[name] = rec
	r.mu.Unlock()
	select {
	case r.dirty <- struct{}{}:
	default:
	}
}

// run writes the state whenever it changed, until ctx ends.
func (r *recorder) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.dirty:
		}
		if err := r.flush(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("recording the roll-out's progress", "err", err)
		}
	}
}

// flush writes the state now.
func (r *recorder) flush(ctx context.Context) error {
	cms := r.client.CoreV1().ConfigMaps(ConfigMapNamespace)
	for attempt := 0; ; attempt++ {
		if r.cm == nil {
			cm, err := cms.Get(ctx, ConfigMapName, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("reading configmap %s/%s: %w", ConfigMapNamespace, ConfigMapName, err)
			}
			s, err := ParseState(cm.Data)
			if err != nil {
				return err
			}
			if s.Plan.Holder != r.id {
				return fmt.Errorf("configmap %s/%s: held by run %s: %w", ConfigMapNamespace, ConfigMapName, s.Plan.Holder, ErrSuperseded)
			}
			r.cm = cm
		}
		r.mu.Lock()
		r.state.Plan.Updated = time.Now().UTC()
		cm := r.cm.DeepCopy()
		cm.Data = r.state.Data()
		r.mu.Unlock()
		out, err := cms.Update(ctx, cm, metav1.UpdateOptions{})
		switch {
		case err == nil:
			r.cm = out
			return nil
		case apierrors.IsConflict(err) && attempt < 5:
			r.cm = nil
		default:
			return fmt.Errorf("writing configmap %s/%s: %w", ConfigMapNamespace, ConfigMapName, err)
		}
	}
}
