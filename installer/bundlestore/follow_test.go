package bundlestore

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-k8s/ferry/installer/layout"
	"github.com/ferry-k8s/ferry/internal/bundletest"
)

func TestMayFollow(t *testing.T) {
	b := func(name, v, k string) Release {
		return Release{Name: name, Version: v, KubernetesVersion: k}
	}
	min := func(r Release, v string) Release { r.MinUpgradeFrom = v; return r }
	cur := b("ferry-kubernetes", "1.0.0", "v1.35.4")
	for _, tc := range []struct {
		next      Release
		downgrade bool
		want      string
	}{
		{b("ferry-kubernetes", "1.1.0", "v1.36.3"), false, ""},
		{b("ferry-kubernetes", "1.0.1", "v1.35.5"), false, ""},
		{b("ferry-kubernetes", "1.0.0", "v1.35.4"), false, ""}, // the same: resume or nothing to do
		{b("other", "2.0.0", "v1.36.3"), false, "is not a ferry-kubernetes bundle"},
		{b("ferry-kubernetes", "0.9.0", "v1.35.4"), false, "older than the installed 1.0.0: installer upgrade --allow-downgrade"},
		{b("ferry-kubernetes", "0.9.0", "v1.35.4"), true, ""},
		{b("ferry-kubernetes", "2.0.0", "v1.37.0"), false, "upgrade one minor version at a time (1.36 first)"},
		{b("ferry-kubernetes", "2.0.0", "v1.34.4"), true, "Kubernetes is never downgraded"},
		{b("ferry-kubernetes", "x", "v1.36.3"), false, "want semantic versions"},
		// minUpgradeFrom: enforced when upgrading, on every path.
		{min(b("ferry-kubernetes", "1.2.0", "v1.36.3"), "1.0.0"), false, ""},
		{min(b("ferry-kubernetes", "1.2.0", "v1.36.3"), "1.1.0"), false, "upgrades from 1.1.0 or later only (its minUpgradeFrom), and 1.0.0 is installed"},
		{min(b("ferry-kubernetes", "1.0.0", "v1.35.4"), "1.0.0-rc.1"), false, ""},
		{min(b("ferry-kubernetes", "1.2.0", "v1.36.3"), "one"), false, `minUpgradeFrom "one" is not a semantic version`},
	} {
		err := MayFollow(cur, tc.next, tc.downgrade)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s %s: %v", tc.next.Version, tc.next.KubernetesVersion, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s %s: %v, want %q", tc.next.Version, tc.next.KubernetesVersion, err, tc.want)
		}
	}
}

// TestBootstrapAgainKeepsTheRules: bootstrap or join run again with
// another bundle on a node that runs one follows the roll-out's rules.
func TestBootstrapAgainKeepsTheRules(t *testing.T) {
	root := t.TempDir()
	facts := func(v, k, min string) *Facts {
		return &Facts{Name: "ferry-kubernetes", Version: v, KubernetesVersion: k, MinUpgradeFrom: min}
	}
	if err := MayReplaceTarget(root, facts("1.0.0", "v1.36.3", "")); err != nil {
		t.Fatalf("a new node: %v", err)
	}
	cur := bundletest.ManifestISO(t, filepath.Join(root, layout.BundlesDir), "1.1.0", "v1.36.3", "")
	if err := SetTarget(root, cur); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		next *Facts
		want string
	}{
		{facts("1.1.0", "v1.36.3", ""), ""},
		{facts("1.2.0", "v1.36.4", ""), ""},
		{facts("1.0.0", "v1.36.3", ""), "this node runs ferry-kubernetes 1.1.0: bundle 1.0.0 is older than the installed 1.1.0"},
		{facts("1.3.0", "v1.36.4", "1.2.0"), "its minUpgradeFrom"},
	} {
		err := MayReplaceTarget(root, tc.next)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.next.Version, err, tc.want)
		}
	}
}
