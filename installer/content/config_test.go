package content

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestConfigParseAndOverride(t *testing.T) {
	c, err := ParseConfig([]byte(`apiVersion: ferry.dev/v1alpha1
kind: ContentService
listen: :6000
isos: [a.iso, /abs/b.iso]
keyring: keys/release.pub.asc
tlsCert: tls/c.crt
tlsKey: tls/c.key
`), "/etc/ferry")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.ISOPaths(); !slices.Equal(got, []string{"/etc/ferry/a.iso", "/abs/b.iso"}) {
		t.Errorf("ISOPaths %v", got)
	}
	c.Override(Config{Listen: "127.0.0.1:7000", ISOs: []string{"/x.iso"}, Dir: "/elsewhere"})
	if c.Listen != "127.0.0.1:7000" || !slices.Equal(c.ISOs, []string{"/x.iso"}) || c.Keyring != "keys/release.pub.asc" || c.Dir != "/etc/ferry" {
		t.Errorf("after Override: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	if c.PIDPath() != DefaultPIDFile || c.Shutdown() != DefaultShutdownTimeout || c.Path(c.Keyring) != "/etc/ferry/keys/release.pub.asc" {
		t.Errorf("defaults: %s %s %s", c.PIDPath(), c.Shutdown(), c.Path(c.Keyring))
	}
	for _, bad := range []string{
		"apiVersion: ferry.dev/v1alpha1\nkind: ContentService\nisos: a.iso\n",     // not a list
		"apiVersion: ferry.dev/v1\nkind: ContentService\n",                        // version
		"apiVersion: ferry.dev/v1alpha1\nkind: ContentService\nlisten: 1\nx: 2\n", // unknown
	} {
		if _, err := ParseConfig([]byte(bad), "/"); err == nil {
			t.Errorf("accepted:\n%s", bad)
		}
	}
}

func TestEditConfigKeepsComments(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "serve.yaml")
	orig := `# Ferry content service
apiVersion: ferry.dev/v1alpha1
kind: ContentService
listen: ":5443" # TLS only
isos:
  # the current release
  - /srv/a.iso # first
keyring: /etc/ferry/release.pub.asc
`
	if err := os.WriteFile(p, []byte(orig), 0o640); err != nil {
		t.Fatal(err)
	}
	changed, err := EditConfigISOs(p, func(isos []string) ([]string, error) { return append(isos, "/srv/b.iso"), nil })
	if err != nil || !changed {
		t.Fatalf("edit: %v %v", changed, err)
	}
	data, _ := os.ReadFile(p)
	for _, want := range []string{"# Ferry content service", "# TLS only", "# the current release", "- /srv/a.iso # first", "- /srv/b.iso", "keyring: /etc/ferry/release.pub.asc"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("edited file lacks %q:\n%s", want, data)
		}
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v", fi.Mode())
	}
	c, err := LoadConfig(p)
	if err != nil || !slices.Equal(c.ISOs, []string{"/srv/a.iso", "/srv/b.iso"}) || c.Listen != ":5443" {
		t.Errorf("reads back as %+v (%v)", c, err)
	}
	// No change, no write; an error, no write; no temporary files left.
	before, _ := os.Stat(p)
	time.Sleep(10 * time.Millisecond)
	if changed, err := EditConfigISOs(p, func(isos []string) ([]string, error) { return isos, nil }); changed || err != nil {
		t.Errorf("no-op edit: %v %v", changed, err)
	}
	if _, err := EditConfigISOs(p, func([]string) ([]string, error) { return nil, errors.New("no") }); err == nil {
		t.Error("edit error not returned")
	}
	if after, _ := os.Stat(p); !after.ModTime().Equal(before.ModTime()) {
		t.Error("file rewritten without a change")
	}
	// A file without isos gets the key; a flow list becomes a block list.
	os.WriteFile(p, []byte("apiVersion: ferry.dev/v1alpha1\nkind: ContentService\n"), 0o644)
	if _, err := EditConfigISOs(p, func(isos []string) ([]string, error) { return append(isos, "/x.iso"), nil }); err != nil {
		t.Fatal(err)
	}
	if c, err := LoadConfig(p); err != nil || !slices.Equal(c.ISOs, []string{"/x.iso"}) {
		t.Errorf("added isos: %+v %v", c, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}
	t.Run("owner kept", func(t *testing.T) {
		if os.Getuid() != 0 {
			t.Skip("needs root to give the file another owner")
		}
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if _, err := EditConfigISOs(p, func(isos []string) ([]string, error) { return nil, nil }); err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(p)
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 65534 || st.Gid != 65534 {
			t.Errorf("owner %d:%d after the edit, want 65534:65534", st.Uid, st.Gid)
		}
	})
}

func TestConfigBundleAddRemove(t *testing.T) {
	f := bundles(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "serve.yaml")
	os.WriteFile(p, []byte("apiVersion: ferry.dev/v1alpha1\nkind: ContentService\nisos:\n  - "+f.iso100+"\n"), 0o644)
	if changed, err := AddISOToConfig(p, f.iso100, "1.0.0"); err != nil || changed {
		t.Errorf("adding a configured ISO again: %v %v", changed, err)
	}
	dup := copyISO(t, f.iso100)
	if _, err := AddISOToConfig(p, dup, "1.0.0"); err == nil || !strings.Contains(err.Error(), "already configured") {
		t.Errorf("adding a second 1.0.0: %v", err)
	}
	if changed, err := AddISOToConfig(p, f.iso110, "1.1.0"); err != nil || !changed {
		t.Fatalf("add: %v %v", changed, err)
	}
	c, _ := LoadConfig(p)
	list := ListConfigured(c, f.ring, time.Now())
	if len(list) != 2 || list[1].Version != "1.1.0" || !list[1].Trusted || list[0].Name != "example" {
		t.Errorf("list: %+v", list)
	}
	// A year later the configured (installed) bundles are still trusted,
	// and said to be expired.
	if list := ListConfigured(c, f.ring, time.Now().Add(400*24*time.Hour)); !list[0].Trusted || !list[0].Expired || len(list[0].Warnings) == 0 || !strings.Contains(list[0].Warnings[0], "validity ended") {
		t.Errorf("list a year later: %+v", list)
	}
	if removed, err := RemoveISOFromConfig(p, "1.0.0"); err != nil || !slices.Equal(removed, []string{f.iso100}) {
		t.Errorf("remove by version: %v %v", removed, err)
	}
	if removed, err := RemoveISOFromConfig(p, f.iso110); err != nil || len(removed) != 1 {
		t.Errorf("remove by path: %v %v", removed, err)
	}
	if _, err := RemoveISOFromConfig(p, "1.1.0"); err == nil {
		t.Error("removing what is not configured succeeded")
	}
}

func TestSignalReload(t *testing.T) {
	dir := t.TempDir()
	if _, err := SignalReload(filepath.Join(dir, "none.pid")); !errors.Is(err, ErrNoServer) {
		t.Errorf("no pid file: %v", err)
	}
	// A stale pid file naming another program: not signalled (SIGHUP
	// would kill a sleep).
	sleep := exec.Command("sleep", "30")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer sleep.Process.Kill()
	pf := filepath.Join(dir, "content.pid")
	start, err := processStart(sleep.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(pf, fmt.Appendf(nil, "%d %d\n", sleep.Process.Pid, start), 0o644)
	if _, err := SignalReload(pf); !errors.Is(err, ErrNoServer) || !strings.Contains(err.Error(), "not the installer") {
		t.Errorf("foreign process: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- sleep.Wait() }()
	select {
	case err := <-done:
		t.Errorf("sleep was signalled: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	os.WriteFile(pf, []byte("abc"), 0o644)
	if _, err := SignalReload(pf); err == nil {
		t.Error("garbage pid file accepted")
	}
}

// TestSignalReloadOnlyTheServer: the pid in a pid file may be reused by
// any process. The attack: a process whose argv[0] starts with
// "installer" (a stand-in: sleep started under that name) has the pid a
// stale pid file names. The argv[0] check alone signalled it (SIGHUP
// kills a sleep); the start time in the pid file refuses it. The pid file
// this process writes for itself is signalled.
func TestSignalReloadOnlyTheServer(t *testing.T) {
	dir := t.TempDir()
	sleepBin, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	impostor := &exec.Cmd{Path: sleepBin, Args: []string{"installer-impostor", "30"}}
	if err := impostor.Start(); err != nil {
		t.Fatal(err)
	}
	defer impostor.Process.Kill()
	done := make(chan error, 1)
	go func() { done <- impostor.Wait() }()
	start, err := processStart(impostor.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	pf := filepath.Join(dir, "content.pid")
	for _, tc := range []struct{ content, want string }{
		{fmt.Sprintf("%d\n", impostor.Process.Pid), "has no start time"},                        // an old pid file
		{fmt.Sprintf("%d %d\n", impostor.Process.Pid, start+1), "another process has that pid"}, // the pid reused
		{fmt.Sprintf("%d %d extra\n", impostor.Process.Pid, start), "want \"PID STARTTIME\""},
	} {
		os.WriteFile(pf, []byte(tc.content), 0o644)
		if _, err := SignalReload(pf); !errors.Is(err, ErrNoServer) && !strings.Contains(fmt.Sprint(err), tc.want) || !strings.Contains(fmt.Sprint(err), tc.want) {
			t.Errorf("%q: %v, want %q", tc.content, err, tc.want)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("the impostor was signalled: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	// The server's own pid file: a child under the installer's name
	// (this test binary run again) writes it and waits for SIGHUP.
	child := &exec.Cmd{Path: os.Args[0], Args: []string{"installer-pidfile-child"},
		Env: append(os.Environ(), "FERRY_TEST_PIDFILE="+pf), Stderr: os.Stderr}
	os.Remove(pf)
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	for i := 0; ; i++ {
		data, _ := os.ReadFile(pf)
		if f := strings.Fields(string(data)); len(f) == 2 && f[0] == strconv.Itoa(child.Process.Pid) {
			break
		}
		if i == 500 {
			t.Fatal("the child wrote no pid file")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if pid, err := SignalReload(pf); err != nil || pid != child.Process.Pid {
		t.Fatalf("the server's own pid file: pid %d: %v", pid, err)
	}
	if err := child.Wait(); err != nil {
		t.Fatalf("the child did not get its SIGHUP: %v", err)
	}
}

// pidFileChild is the child of TestSignalReloadOnlyTheServer (TestMain
// runs it under the installer's name): it writes its pid file and exits 0
// on SIGHUP, 1 after 20 s without.
func pidFileChild(pf string) int {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	if err := writePIDFile(pf); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	select {
	case <-hup:
		return 0
	case <-time.After(20 * time.Second):
		fmt.Fprintln(os.Stderr, "no SIGHUP")
		return 1
	}
}

func TestDefaultListenIsDefaultPort(t *testing.T) {
	if want := ":" + strconv.Itoa(DefaultPort); DefaultListen != want {
		t.Fatalf("DefaultListen %q, want %q", DefaultListen, want)
	}
}
