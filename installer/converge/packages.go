package converge

import (
	"context"
	"fmt"
	"strings"
)

// InstallPackages installs (or upgrades, or downgrades) packages in one
// dnf transaction: "name-version-release" of the bundle's repository, or
// the path of an RPM file made on the node.
type InstallPackages struct {
	Packages []string
	Because
}

func (InstallPackages) Kind() string      { return KindInstall }
func (op InstallPackages) Target() string { return strings.Join(op.Packages, " ") }
func (op InstallPackages) String() string { return describe(op) }
func (op InstallPackages) Apply(ctx context.Context, h *Host) error {
	args := append([]string{"--installroot", h.Root, "-y", "--setopt=install_weak_deps=False"}, h.DNFArgs...)
	args = append(append(args, "install"), op.Packages...)
	_, err := h.run(ctx, "dnf", args...)
	return err
}

// Installs says whether a plan installs packages (the first install of a
// bootstrap reads the repository from the ISO).
func Installs(ops []Op) bool {
	for _, op := range ops {
		if _, ok := op.(InstallPackages); ok {
			return true
		}
	}
	return false
}

// planPackages plans one transaction for the packages missing or at
// another version than the bundle's, and the local packages not
// installed.
func planPackages(d Desired, o Observed) []Op {
	var install []string
	for _, name := range sortedKeys(d.Packages) {
		want := d.Packages[name]
		have, ok := o.Packages[name]
		if !ok || have != want {
			install = append(install, name+"-"+want)
		}
	}
	for _, name := range sortedKeys(d.LocalPackages) {
		if _, ok := o.Packages[name]; !ok {
			install = append(install, d.LocalPackages[name])
		}
	}
	if len(install) == 0 {
		return nil
	}
	return []Op{InstallPackages{Packages: install, Because: Because(packagesReason(d.Packages, o.Packages))}}
}

// packageRestarts are the units to restart because their package is
// upgraded (their running binary is the old one).
func packageRestarts(d Desired, o Observed) []string {
	var units []string
	for name, us := range d.PackageRestarts {
		if have, ok := o.Packages[name]; ok && d.Packages[name] != "" && have != d.Packages[name] {
			units = append(units, us...)
		}
	}
	return units
}

func packagesReason(want, have map[string]string) string {
	var missing, other int
	for n, v := range want {
		h, ok := have[n]
		switch {
		case !ok:
			missing++
		case h != v:
			other++
		}
	}
	var parts []string
	if missing > 0 {
		parts = append(parts, fmt.Sprintf("%d missing", missing))
	}
	if other > 0 {
		parts = append(parts, fmt.Sprintf("%d at another version", other))
	}
	return strings.Join(parts, ", ")
}
