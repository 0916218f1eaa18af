package rollout

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// phaseClock is a slog.Handler that keeps when the orchestrator logged
// each node's phases, for the scale test's breakdown of the overhead.
type phaseClock struct {
	mu    *sync.Mutex
	times map[string]map[string]time.Time // node → phase → first time
	msgs  []string                        // other messages, in order
	at    []time.Time
}

func newPhaseClock() *phaseClock {
	return &phaseClock{mu: &sync.Mutex{}, times: map[string]map[string]time.Time{}}
}

func (c *phaseClock) Enabled(context.Context, slog.Level) bool { return true }
func (c *phaseClock) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *phaseClock) WithGroup(string) slog.Handler            { return c }

func (c *phaseClock) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "node" {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.msgs, c.at = append(c.msgs, r.Message), append(c.at, r.Time)
		return nil
	}
	var node, phase string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "node":
			node = a.Value.String()
		case "phase":
			phase = a.Value.String()
		}
		return true
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.times[node] == nil {
		c.times[node] = map[string]time.Time{}
	}
	if _, ok := c.times[node][phase]; !ok {
		c.times[node][phase] = r.Time
	}
	return nil
}

// breakdown says where the time beyond the simulated work went: before
// the first cordon (preflight, staging, snapshot), each node's steps
// around its work (cordon to the desired version: drain and patches; the
// end of its work to done: seeing it back and uncordoning), and the delay
// of each admission after the node whose end made room for it.
func (c *phaseClock) breakdown(begin time.Time, work time.Duration) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var cordons, dones []time.Time
	var before, after []time.Duration
	for _, p := range c.times {
		co, ok1 := p[string(PhaseCordoned)]
		up, ok2 := p[string(PhaseUpgrading)]
		do, ok3 := p[string(PhaseDone)]
		if !ok1 || !ok2 || !ok3 {
			continue
		}
		cordons, dones = append(cordons, co), append(dones, do)
		before, after = append(before, up.Sub(co)), append(after, do.Sub(up)-work)
	}
	if len(cordons) == 0 {
		return "no node logged all its phases"
	}
	slices.SortFunc(cordons, func(a, b time.Time) int { return a.Compare(b) })
	slices.SortFunc(dones, func(a, b time.Time) int { return a.Compare(b) })
	var admit []time.Duration
	for _, co := range cordons {
		// The last node done before this cordon made room for it.
		i, _ := slices.BinarySearchFunc(dones, co, func(a, b time.Time) int { return a.Compare(b) })
		if i > 0 {
			admit = append(admit, co.Sub(dones[i-1]))
		}
	}
	med := func(d []time.Duration) time.Duration {
		if len(d) == 0 {
			return 0
		}
		slices.Sort(d)
		return d[len(d)/2].Round(time.Millisecond)
	}
	var steps []string
	for i, m := range c.msgs {
		if c.at[i].Before(cordons[0]) {
			steps = append(steps, fmt.Sprintf("%s at %s", m, c.at[i].Sub(begin).Round(10*time.Millisecond)))
		}
	}
	return fmt.Sprintf("%s; first cordon after %s; per node, median: cordon → desired version %s, work's end → done %s; admission after room was made, median %s (%d admissions)",
		strings.Join(steps, ", "), cordons[0].Sub(begin).Round(10*time.Millisecond), med(before), med(after), med(admit), len(admit))
}
