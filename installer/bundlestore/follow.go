package bundlestore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/semver"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/installer/content"
	"github.com/ferry-k8s/ferry/installer/layout"
)

// Release is what decides whether a node or a cluster may move from one
// bundle to another: read from a verified bundle (Facts) or from the
// manifest of one the node verified when it stored it.
type Release struct {
	Name, Version     string
	KubernetesVersion string
	// MinUpgradeFrom is the oldest bundle version this one upgrades
	// (the manifest's minUpgradeFrom); empty: any.
	MinUpgradeFrom string
}

// Release is what MayFollow reads of f.
func (f *Facts) Release() Release {
	return Release{Name: f.Name, Version: f.Version, KubernetesVersion: f.KubernetesVersion, MinUpgradeFrom: f.MinUpgradeFrom}
}

// ManifestRelease is what MayFollow reads of a stored bundle's manifest.
func ManifestRelease(m *bundle.Manifest) Release {
	return Release{Name: m.Name, Version: m.Version, KubernetesVersion: m.KubernetesVersion, MinUpgradeFrom: m.MinUpgradeFrom}
}

// semVersion is v as golang.org/x/mod/semver wants it ("v1.2.3").
func semVersion(v string) string { return "v" + strings.TrimPrefix(v, "v") }

// Older says bundle version next is older than cur (a valid semantic
// version; false when it is not).
func Older(next, cur string) bool {
	cv := semVersion(cur)
	return semver.IsValid(cv) && semver.Compare(semVersion(next), cv) < 0
}

// MayFollow checks that next may follow cur, on every path that moves a
// node or a cluster to another bundle (installer upgrade, the node
// daemon's roll-out watch): the same distribution; a newer bundle, unless
// a rollback is allowed (upgrade --allow-downgrade; on a node, only when
// the orchestrator recorded the order, rollout.RollbackOrdered); when
// upgrading, cur no older than next's minUpgradeFrom; and Kubernetes at
// most one minor ahead (kubeadm upgrades minor by minor), never behind.
func MayFollow(cur, next Release, allowDowngrade bool) error {
	if cur.Name != next.Name {
		return fmt.Errorf("bundle %s %s is not a %s bundle (the cluster runs %s %s)", next.Name, next.Version, cur.Name, cur.Name, cur.Version)
	}
	cv, nv := semVersion(cur.Version), semVersion(next.Version)
	if !semver.IsValid(cv) || !semver.IsValid(nv) {
		return fmt.Errorf("bundle versions %q and %q: want semantic versions", cur.Version, next.Version)
	}
	switch c := semver.Compare(nv, cv); {
	case c < 0 && !allowDowngrade:
		return fmt.Errorf("bundle %s is older than the installed %s: installer upgrade --allow-downgrade rolls it out anyway", next.Version, cur.Version)
	case c > 0 && next.MinUpgradeFrom != "":
		min := semVersion(next.MinUpgradeFrom)
		if !semver.IsValid(min) {
			return fmt.Errorf("bundle %s: minUpgradeFrom %q is not a semantic version", next.Version, next.MinUpgradeFrom)
		}
		if semver.Compare(cv, min) < 0 {
			return fmt.Errorf("bundle %s upgrades from %s or later only (its minUpgradeFrom), and %s is installed: roll out a bundle between them first", next.Version, next.MinUpgradeFrom, cur.Version)
		}
	}
	ck, nk := cur.KubernetesVersion, next.KubernetesVersion
	if !semver.IsValid(ck) || !semver.IsValid(nk) {
		return fmt.Errorf("kubernetes versions %q and %q: want vX.Y.Z", ck, nk)
	}
	if semver.Compare(nk, ck) < 0 {
		return fmt.Errorf("bundle %s carries Kubernetes %s, older than the cluster's %s: Kubernetes is never downgraded", next.Version, nk, ck)
	}
	var cmaj, cmin, nmaj, nmin int
	fmt.Sscanf(semver.MajorMinor(ck), "v%d.%d", &cmaj, &cmin)
	fmt.Sscanf(semver.MajorMinor(nk), "v%d.%d", &nmaj, &nmin)
	if nmaj != cmaj || nmin > cmin+1 {
		return fmt.Errorf("bundle %s carries Kubernetes %s: from %s, upgrade one minor version at a time (%d.%d first)", next.Version, nk, ck, cmaj, cmin+1)
	}
	return nil
}

// MayReplaceTarget checks a bootstrap or join run again on a node that
// already targets a bundle: moving it to next follows MayFollow, without
// a downgrade (installer upgrade --allow-downgrade orders one).
func MayReplaceTarget(root string, next *Facts) error {
	if _, err := os.Stat(filepath.Join(root, layout.TargetFile)); errors.Is(err, fs.ErrNotExist) {
		return nil // a new node: install is an upgrade from nothing
	}
	iso, err := Imported(root)
	if err != nil {
		return err
	}
	cur, err := content.ReadManifestUnverified(iso)
	if err != nil {
		return fmt.Errorf("the bundle this node runs, %s: %w", iso, err)
	}
	if cur.Name == next.Name && cur.Version == next.Version {
		return nil
	}
	if err := MayFollow(ManifestRelease(cur), next.Release(), false); err != nil {
		return fmt.Errorf("this node runs %s %s: %w", cur.Name, cur.Version, err)
	}
	return nil
}
