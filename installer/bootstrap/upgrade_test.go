package bootstrap

import (
	"strings"
	"testing"
)

func TestMayFollow(t *testing.T) {
	b := func(name, v, k string) *BundleFacts {
		return &BundleFacts{Name: name, Version: v, KubernetesVersion: k}
	}
	cur := b("ferry-kubernetes", "1.0.0", "v1.35.4")
	for _, tc := range []struct {
		next      *BundleFacts
		downgrade bool
		want      string
	}{
		{b("ferry-kubernetes", "1.1.0", "v1.36.3"), false, ""},
		{b("ferry-kubernetes", "1.0.1", "v1.35.5"), false, ""},
		{b("ferry-kubernetes", "1.0.0", "v1.35.4"), false, ""}, // the same: resume or nothing to do
		{b("other", "2.0.0", "v1.36.3"), false, "is not a ferry-kubernetes bundle"},
		{b("ferry-kubernetes", "0.9.0", "v1.35.4"), false, "older than the installed 1.0.0: give --allow-downgrade"},
		{b("ferry-kubernetes", "0.9.0", "v1.35.4"), true, ""},
		{b("ferry-kubernetes", "2.0.0", "v1.37.0"), false, "upgrade one minor version at a time (1.36 first)"},
		{b("ferry-kubernetes", "2.0.0", "v1.34.4"), true, "Kubernetes is never downgraded"},
		{b("ferry-kubernetes", "x", "v1.36.3"), false, "want semantic versions"},
	} {
		err := mayFollow(cur, tc.next, tc.downgrade)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s %s: %v", tc.next.Version, tc.next.KubernetesVersion, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s %s: %v, want %q", tc.next.Version, tc.next.KubernetesVersion, err, tc.want)
		}
	}
}
