package converge

import (
	"context"
	"strings"
)

// RunCommand runs a command a changed file triggers (File.After:
// "sysctl -p …", "systemd-sysusers …").
type RunCommand struct {
	Command []string
	Because
}

func (RunCommand) Kind() string      { return KindRun }
func (op RunCommand) Target() string { return strings.Join(op.Command, " ") }
func (op RunCommand) String() string { return describe(op) }
func (op RunCommand) Apply(ctx context.Context, h *Host) error {
	_, err := h.run(ctx, op.Command[0], op.Command[1:]...)
	return err
}

// ReloadSystemd is systemctl daemon-reload.
type ReloadSystemd struct {
	Because
}

func (ReloadSystemd) Kind() string      { return KindReload }
func (ReloadSystemd) Target() string    { return "daemon-reload" }
func (op ReloadSystemd) String() string { return describe(op) }
func (ReloadSystemd) Apply(ctx context.Context, h *Host) error {
	_, err := h.run(ctx, "systemctl", "daemon-reload")
	return err
}

// EnableUnit is systemctl enable.
type EnableUnit struct {
	Unit string
	Because
}

func (EnableUnit) Kind() string      { return KindEnable }
func (op EnableUnit) Target() string { return op.Unit }
func (op EnableUnit) String() string { return describe(op) }
func (op EnableUnit) Apply(ctx context.Context, h *Host) error {
	_, err := h.run(ctx, "systemctl", "enable", op.Unit)
	return err
}

// StartUnit is systemctl start; NoBlock does not wait for the unit to be
// ready (Unit.NoBlock).
type StartUnit struct {
	Unit    string
	NoBlock bool
	Because
}

func (StartUnit) Kind() string      { return KindStart }
func (op StartUnit) Target() string { return op.Unit }
func (op StartUnit) String() string { return describe(op) }
func (op StartUnit) Apply(ctx context.Context, h *Host) error {
	return h.systemctl(ctx, "start", op.Unit, op.NoBlock)
}

// RestartUnit is systemctl restart; NoBlock does not wait for the unit to
// be ready (Unit.NoBlock).
type RestartUnit struct {
	Unit    string
	NoBlock bool
	Because
}

func (RestartUnit) Kind() string      { return KindRestart }
func (op RestartUnit) Target() string { return op.Unit }
func (op RestartUnit) String() string { return describe(op) }
func (op RestartUnit) Apply(ctx context.Context, h *Host) error {
	return h.systemctl(ctx, "restart", op.Unit, op.NoBlock)
}

func (h *Host) systemctl(ctx context.Context, verb, unit string, noBlock bool) error {
	args := []string{verb, unit}
	if noBlock {
		args = []string{"--no-block", verb, unit}
	}
	_, err := h.run(ctx, "systemctl", args...)
	return err
}

// planCommands plans the commands the files written in batch trigger,
// once each, in order; those a file written in earlier triggers already
// ran with that batch.
func planCommands(batch, earlier []Op) []Op {
	seen := map[string]bool{}
	for _, c := range triggered(earlier) {
		seen[c] = true
	}
	var ops []Op
	for _, c := range triggered(batch) {
		if !seen[c] {
			seen[c] = true
			ops = append(ops, RunCommand{Command: strings.Fields(c), Because: "its configuration changed"})
		}
	}
	return ops
}

// triggered are the commands (File.After) of the files ops write.
func triggered(ops []Op) []string {
	var cs []string
	for _, op := range ops {
		if w, ok := op.(WriteFile); ok {
			cs = append(cs, w.File.After...)
		}
	}
	return cs
}

// planUnits plans daemon-reload when units or their configuration
// change, then enables and starts the units, and restarts those whose
// configuration or package the operations planned before change.
func planUnits(d Desired, o Observed, planned []Op) []Op {
	restart := map[string]bool{}
	for _, op := range planned {
		if w, ok := op.(WriteFile); ok {
			for _, u := range w.File.Restarts {
				restart[u] = true
			}
		}
	}
	for _, u := range packageRestarts(d, o) {
		restart[u] = true
	}
	var ops []Op
	if len(d.Units) > 0 && (Installs(planned) || len(restart) > 0 || unitsMissing(d, o)) {
		ops = append(ops, ReloadSystemd{Because: "units or their configuration changed"})
	}
	for _, u := range d.Units {
		st := o.Units[u.Name]
		if !st.Enabled {
			ops = append(ops, EnableUnit{Unit: u.Name, Because: "disabled"})
		}
		switch {
		case u.Start && !st.Active:
			ops = append(ops, StartUnit{Unit: u.Name, NoBlock: u.NoBlock, Because: "not running"})
		case restart[u.Name] && st.Active:
			ops = append(ops, RestartUnit{Unit: u.Name, NoBlock: u.NoBlock, Because: "its configuration changed"})
		}
	}
	return ops
}

func unitsMissing(d Desired, o Observed) bool {
	for _, u := range d.Units {
		if _, ok := o.Units[u.Name]; !ok {
			return true
		}
	}
	return false
}
