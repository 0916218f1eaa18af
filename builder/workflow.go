package builder

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Phase is one named step of the build.
type Phase struct {
	Name  string
	Short string
	Run   func(b *build, ctx context.Context) error
}

// Phases lists the build's phases in order.
var Phases = []Phase{
	{"resolve", "load and check the spec and its sources", (*build).resolve},
	{"distro", "build the from-source distribution: binaries, RPMs, images (spec.distribution)", (*build).distribution},
	{"fetch", "copy images into the bundle's OCI layout", (*build).fetch},
	{"compose", "place packages, installer binary and public key", (*build).compose},
	{"repodata", "write and sign yum repodata", (*build).repodata},
	{"manifest", "hash every file; write SHA256SUMS and manifest.json", (*build).manifest},
	{"sign", "sign manifest.json", (*build).sign},
	{"iso", "write the ISO image", (*build).writeISO},
	{"check", "verify the written ISO with the signing key", (*build).check},
}

// PhaseNames returns the names of all phases, in order.
func PhaseNames() []string {
	names := make([]string, len(Phases))
	for i, p := range Phases {
		names[i] = p.Name
	}
	return names
}

// selectPhases returns the phases to run given --phases/--skip-phases.
func selectPhases(only, skip []string) ([]Phase, error) {
	known := PhaseNames()
	for _, n := range append(append([]string{}, only...), skip...) {
		if !slices.Contains(known, n) {
			return nil, fmt.Errorf("unknown phase %q (phases: %s)", n, strings.Join(known, ", "))
		}
	}
	var out []Phase
	for _, p := range Phases {
		if len(only) > 0 && !slices.Contains(only, p.Name) {
			continue
		}
		if slices.Contains(skip, p.Name) {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

func (b *build) runPhases(ctx context.Context, phases []Phase) error {
	for _, p := range phases {
		if err := ctx.Err(); err != nil {
			return err
		}
		start := time.Now()
		b.log.Info("phase started", slog.String("phase", p.Name))
		if err := p.Run(b, ctx); err != nil {
			return fmt.Errorf("phase %s: %w", p.Name, err)
		}
		d := time.Since(start)
		b.timings = append(b.timings, PhaseTiming{Phase: p.Name, Seconds: d.Seconds()})
		b.log.Info("phase done", slog.String("phase", p.Name), slog.Duration("took", d))
	}
	return nil
}
