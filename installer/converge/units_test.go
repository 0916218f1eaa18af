package converge

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

func TestPlanCommands(t *testing.T) {
	sysctl := WriteFile{File: File{Path: "/etc/sysctl.d/90-ferry.conf", After: []string{"sysctl -p /etc/sysctl.d/90-ferry.conf"}}}
	sysusers := WriteFile{File: File{Path: "/etc/sysusers.d/ferry.conf", After: []string{"systemd-sysusers  /etc/sysusers.d/ferry.conf"}}}
	same := WriteFile{File: File{Path: "/etc/sysctl.d/91-other.conf", After: []string{"sysctl -p /etc/sysctl.d/90-ferry.conf"}}}
	for _, tc := range []struct {
		name           string
		batch, earlier []Op
		want           []string
	}{
		{"none", []Op{WriteFile{File: File{Path: "/x"}}, FixPerms{Path: "/y"}}, nil, nil},
		{"in order, fields joined by one space", []Op{sysctl, sysusers}, nil, []string{
			"run sysctl -p /etc/sysctl.d/90-ferry.conf (its configuration changed)",
			"run systemd-sysusers /etc/sysusers.d/ferry.conf (its configuration changed)"}},
		{"once per plan", []Op{sysctl, same}, nil, []string{"run sysctl -p /etc/sysctl.d/90-ferry.conf (its configuration changed)"}},
		{"ran with an earlier batch", []Op{same, sysusers}, []Op{sysctl}, []string{"run systemd-sysusers /etc/sysusers.d/ferry.conf (its configuration changed)"}},
	} {
		if got := strs(planCommands(tc.batch, tc.earlier)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: plan %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestPlanUnits(t *testing.T) {
	units := []Unit{{Name: "containerd.service", Start: true}, {Name: "kubelet.service"}, {Name: "ferry-apiproxy.service", Start: true, NoBlock: true}}
	running := map[string]UnitState{"containerd.service": {Enabled: true, Active: true}, "kubelet.service": {Enabled: true}, "ferry-apiproxy.service": {Enabled: true, Active: true}}
	d := Desired{Units: units, Packages: map[string]string{"containerd": "2.2.9-1.ferry"}, PackageRestarts: map[string][]string{"containerd": {"containerd.service"}}}
	config := WriteFile{File: File{Path: "/etc/containerd/config.toml", Restarts: []string{"containerd.service"}}}
	runPlanCases(t, planUnits, []planCase{
		{name: "converged", d: d, o: Observed{Units: running, Packages: map[string]string{"containerd": "2.2.9-1.ferry"}}},
		{name: "new node", d: d, o: Observed{}, want: []string{
			"reload systemd daemon-reload (units or their configuration changed)",
			"enable unit containerd.service (disabled)", "start unit containerd.service (not running)",
			"enable unit kubelet.service (disabled)",
			"enable unit ferry-apiproxy.service (disabled)", "start unit ferry-apiproxy.service (not running)"}},
		{name: "configuration written", d: d, o: Observed{Units: running, Packages: map[string]string{"containerd": "2.2.9-1.ferry"}}, planned: []Op{config}, want: []string{
			"reload systemd daemon-reload (units or their configuration changed)",
			"restart unit containerd.service (its configuration changed)"}},
		{name: "package upgraded", d: d, o: Observed{Units: running, Packages: map[string]string{"containerd": "2.1.0-1.ferry"}},
			planned: []Op{InstallPackages{Packages: []string{"containerd-2.2.9-1.ferry"}}}, want: []string{
				"reload systemd daemon-reload (units or their configuration changed)",
				"restart unit containerd.service (its configuration changed)"}},
		{name: "package installed: reload only", d: d, o: Observed{Units: running, Packages: map[string]string{"containerd": "2.2.9-1.ferry"}},
			planned: []Op{InstallPackages{Packages: []string{"other-1-1"}}}, want: []string{"reload systemd daemon-reload (units or their configuration changed)"}},
		{name: "a stopped unit is started, not restarted", d: d, o: Observed{Units: map[string]UnitState{"containerd.service": {Enabled: true}, "kubelet.service": {Enabled: true}, "ferry-apiproxy.service": {Enabled: true, Active: true}}, Packages: map[string]string{"containerd": "2.2.9-1.ferry"}},
			planned: []Op{config}, want: []string{
				"reload systemd daemon-reload (units or their configuration changed)",
				"start unit containerd.service (not running)"}},
		{name: "a unit not running is not restarted", d: d, o: Observed{Units: running, Packages: map[string]string{"containerd": "2.2.9-1.ferry"}},
			planned: []Op{WriteFile{File: File{Path: "/etc/kubernetes/kubelet.env", Restarts: []string{"kubelet.service"}}}},
			want:    []string{"reload systemd daemon-reload (units or their configuration changed)"}},
		{name: "no units: no reload", d: Desired{}, o: Observed{}, planned: []Op{config, InstallPackages{Packages: []string{"a-1-1"}}}},
	})
}

// Start and restart pass NoBlock on as systemctl --no-block.
func TestUnitOpsApply(t *testing.T) {
	var ran []string
	h := &Host{Root: t.TempDir(), Run: func(_ context.Context, name string, args ...string) ([]byte, error) {
		ran = append(ran, name+" "+strings.Join(args, " "))
		return nil, nil
	}}
	for _, op := range []Op{ReloadSystemd{}, EnableUnit{Unit: "a"}, StartUnit{Unit: "a"}, StartUnit{Unit: "b", NoBlock: true},
		RestartUnit{Unit: "a"}, RestartUnit{Unit: "b", NoBlock: true}, RunCommand{Command: []string{"sysctl", "-p", "/x"}}} {
		if err := op.Apply(context.Background(), h); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"systemctl daemon-reload", "systemctl enable a", "systemctl start a", "systemctl --no-block start b",
		"systemctl restart a", "systemctl --no-block restart b", "sysctl -p /x"}
	if !reflect.DeepEqual(ran, want) {
		t.Errorf("ran %q, want %q", ran, want)
	}
}
