package distro

import (
	"debug/buildinfo"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/ferry-k8s/ferry/bundle"
)

// R8: a runc (or a kubelet linking runc's libcontainer) older than
// 1.0.0-rc94 is refused; newer ones and kubelets on
// github.com/opencontainers/cgroups pass.
func TestCheckKmem(t *testing.T) {
	mod := func(p, v string) *debug.Module { return &debug.Module{Path: p, Version: v} }
	cases := []struct {
		name    string
		info    buildinfo.BuildInfo
		wantErr string
		want    string
	}{
		{"runc", buildinfo.BuildInfo{Main: *mod("github.com/opencontainers/runc", "v1.4.3")}, "", "runc: github.com/opencontainers/runc v1.4.3"},
		{"runc", buildinfo.BuildInfo{Main: *mod("github.com/opencontainers/runc", "v1.0.0-rc93")}, "older than v1.0.0-rc94", ""},
		{"runc", buildinfo.BuildInfo{Main: *mod("ferry.build/runc", "(devel)"), Deps: []*debug.Module{mod("github.com/opencontainers/runc", "v1.0.0-rc94")}}, "", "v1.0.0-rc94 >="},
		{"runc", buildinfo.BuildInfo{Main: *mod("example.com/other", "v1.0.0")}, "no github.com/opencontainers/runc", ""},
		{"kubelet", buildinfo.BuildInfo{Main: *mod("ferry.build/kubernetes", "(devel)"), Deps: []*debug.Module{mod("github.com/opencontainers/runc", "v0.1.1")}}, "older than", ""},
		{"kubelet", buildinfo.BuildInfo{Main: *mod("ferry.build/kubernetes", "(devel)"), Deps: []*debug.Module{mod("github.com/opencontainers/cgroups", "v0.0.6")}}, "", "opencontainers/cgroups v0.0.6"},
		{"kubelet", buildinfo.BuildInfo{Main: *mod("ferry.build/kubernetes", "(devel)")}, "", "links no runc cgroup code"},
	}
	for _, c := range cases {
		got, err := checkKmem(c.name, &c.info)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), "R8") {
				t.Errorf("%s %v: want an R8 error with %q, got %v", c.name, c.info.Main, c.wantErr, err)
			}
			continue
		}
		if err != nil || !strings.Contains(got, c.want) {
			t.Errorf("%s %v: want %q, got %q, %v", c.name, c.info.Main, c.want, got, err)
		}
	}
}

func TestTagMatches(t *testing.T) {
	ok := [][3]string{
		{"kube-apiserver", "v1.36.3", "v1.36.3"},
		{"etcd", "3.6.8-0", "v3.6.8"},
		{"etcd", "3.6.8-1", "v3.6.8"},
		{"coredns", "v1.14.2", "v1.14.2"},
		{"pause", "3.10.2", "v3.10.2"},
	}
	for _, c := range ok {
		if err := tagMatches(c[0], c[1], c[2]); err != nil {
			t.Errorf("%v: %v", c, err)
		}
	}
	bad := [][3]string{
		{"kube-apiserver", "v1.36.3", "v1.36.2"},
		{"etcd", "3.6.8-0", "v3.6.9"},
		{"coredns", "v1.14.2", "v1.14.3"},
		{"pause", "3.10.1", "v3.10.2"},
	}
	for _, c := range bad {
		if err := tagMatches(c[0], c[1], c[2]); err == nil || !strings.Contains(err.Error(), c[1]) {
			t.Errorf("%v: want an error naming the tag, got %v", c, err)
		}
	}
}

// The default spec of every supported version (and of another patch of a
// supported minor) is a valid spec; an unsupported minor is refused with
// the supported list.
func TestDefaultSpecs(t *testing.T) {
	versions := append(SupportedKubernetesVersions(), "v1.35.9", "1.34.1", "")
	for _, v := range versions {
		data, err := DefaultSpecYAML(v, "")
		if err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		s, err := bundle.ParseSpec(data, t.TempDir())
		if err != nil {
			t.Fatalf("%q: default spec invalid: %v\n%s", v, err, data)
		}
		d := s.Spec.Distribution.Resolved(s.Spec.KubernetesVersion)
		if d.Versions.Kubernetes == "" || d.ImageRepository != bundle.DefaultImageRepository || len(Components(d.Versions)) != 8 {
			t.Errorf("%q: unexpected distribution %+v", v, d)
		}
	}
	if data, _ := DefaultSpecYAML("", "2.0.0"); !strings.Contains(string(data), "version: 2.0.0") {
		t.Errorf("bundle version not used:\n%s", data)
	}
	if len(SupportedKubernetesVersions()) != 3 {
		t.Errorf("R53: want the newest three minors, have %v", SupportedKubernetesVersions())
	}
	_, err := DefaultSpecYAML("v1.29.0", "")
	if err == nil || !strings.Contains(err.Error(), "v1.36.3") {
		t.Errorf("want an error listing the supported versions, got %v", err)
	}
}
