package distributiontest

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-k8s/ferry/images/imagetest"
)

// TestRegistry pushes an image with skopeo, reads it back by tag and by
// digest, counts the requests, deletes it, and stops the registry.
func TestRegistry(t *testing.T) {
	reg := Start(t)
	layout := t.TempDir()
	d, err := imagetest.WriteImage(layout, "app", 1, []int64{8 << 10, 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "oci:"+layout+":app", "team/app:1.0")
	if n := Count(reg.Requests(), "", "upload"); n == 0 {
		t.Errorf("no upload requests recorded for the push: %v", reg.Requests())
	}

	reg.ResetRequests()
	inspect := func(ref string) (string, error) {
		out, err := exec.Command("skopeo", "inspect", "--raw", "--cert-dir", reg.CertDir, "docker://"+reg.Host+"/"+ref).CombinedOutput()
		return string(out), err
	}
	raw, err := inspect("team/app:1.0")
	if err != nil {
		t.Fatalf("skopeo inspect: %v\n%s", err, raw)
	}
	var m struct {
		Layers []struct{ Digest string } `json:"layers"`
	}
	if err := json.Unmarshal([]byte(raw), &m); err != nil || len(m.Layers) != 2 {
		t.Fatalf("manifest read back: %v, %s", err, raw)
	}
	reqs := reg.Requests()
	if Count(reqs, "GET", "manifest") != 1 || Count(reqs, "", "blob") != 0 {
		t.Errorf("skopeo inspect --raw made %v, want one manifest GET and no blob request", reqs)
	}
	if _, err := inspect("team/app@" + d.String()); err != nil {
		t.Fatalf("by digest: %v", err)
	}

	// Without the CA, TLS verification fails.
	if out, err := exec.Command("skopeo", "inspect", "--raw", "--cert-dir", t.TempDir(), "docker://"+reg.Host+"/team/app:1.0").CombinedOutput(); err == nil {
		t.Errorf("a client without the test CA trusted the registry: %s", out)
	}

	reg.Delete(t, "team/app@"+d.String())
	if out, err := inspect("team/app@" + d.String()); err == nil || !strings.Contains(out, "manifest unknown") {
		t.Errorf("deleted manifest still served: %v, %s", err, out)
	}

	reg.Stop()
	if _, err := inspect("team/app:1.0"); err == nil {
		t.Error("the registry still answers after Stop")
	}
}

// TestBinaryCached: the second call reuses the cached binary.
func TestBinaryCached(t *testing.T) {
	a, b := Binary(t), Binary(t)
	if a != b || filepath.Base(a) != "registry" {
		t.Fatalf("Binary: %s then %s", a, b)
	}
	if err := checkBinary(a); err != nil {
		t.Fatal(err)
	}
}
