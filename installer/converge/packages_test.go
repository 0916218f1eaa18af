package converge

import "testing"

func TestPlanPackages(t *testing.T) {
	d := Desired{Packages: map[string]string{"kubelet": "1.36.3-1.ferry", "containerd": "2.2.9-1.ferry"}, LocalPackages: map[string]string{"ferry-host-provides": "/var/lib/ferry/host-provides.rpm"}}
	runPlanCases(t, alone(planPackages), []planCase{
		{name: "nothing installed", d: d, o: Observed{},
			want: []string{"install packages containerd-2.2.9-1.ferry kubelet-1.36.3-1.ferry /var/lib/ferry/host-provides.rpm (2 missing)"}},
		{name: "one at another version", d: d, o: Observed{Packages: map[string]string{"kubelet": "1.35.4-1.ferry", "containerd": "2.2.9-1.ferry", "ferry-host-provides": "1-1"}},
			want: []string{"install packages kubelet-1.36.3-1.ferry (1 at another version)"}},
		{name: "a local package at any version is kept", d: d, o: Observed{Packages: map[string]string{"kubelet": "1.36.3-1.ferry", "containerd": "2.2.9-1.ferry", "ferry-host-provides": "0-0"}}},
		{name: "only the local package", d: d, o: Observed{Packages: map[string]string{"kubelet": "1.36.3-1.ferry", "containerd": "2.2.9-1.ferry"}},
			want: []string{"install packages /var/lib/ferry/host-provides.rpm"}},
		{name: "missing and other", d: d, o: Observed{Packages: map[string]string{"kubelet": "1.35.4-1.ferry", "ferry-host-provides": "1-1"}},
			want: []string{"install packages containerd-2.2.9-1.ferry kubelet-1.36.3-1.ferry (1 missing, 1 at another version)"}},
	})
}

func TestInstalls(t *testing.T) {
	if Installs([]Op{WriteFile{File: File{Path: "/x"}}, EnableUnit{Unit: "u"}}) {
		t.Error("a plan without an install installs")
	}
	if !Installs([]Op{WriteFile{File: File{Path: "/x"}}, InstallPackages{Packages: []string{"a-1-1"}}}) {
		t.Error("a plan with an install does not install")
	}
}
