//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/builder"
	"github.com/ferry-k8s/ferry/builder/distro"
	"github.com/ferry-k8s/ferry/images/compose"
	"github.com/ferry-k8s/ferry/repo/rpmbuild"
	"github.com/ferry-k8s/ferry/signing"
)

// The e2e cluster's names: the nodes have no DNS, /etc/hosts carries them.
const (
	e2eDomain   = "e2e.internal"
	apiEndpoint = "api." + e2eDomain
	webImage    = "registry.ferry.dev/e2e/web:1.0"
)

// webSource is the workload of the test: an HTTP server that says which
// pod answered. Built static, packaged as an RPM, composed into an image.
const webSource = `package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	host, _ := os.Hostname()
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "ferry-e2e-web %s\n", host) })
	if err := http.ListenAndServe(":8080", nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
`

// distroBundle builds the e2e bundle: the from-source distribution of the
// newest supported Kubernetes plus the web image, signed with a key made
// from fixed entropy (its cached RPMs are reused across runs).
type distroBundle struct {
	iso, pub, installer string
	// signer is the release key (for validity statements).
	signer *signing.Signer
}

func buildDistroBundle(t *testing.T, dir string) *distroBundle {
	t.Helper()
	return buildDistroBundleOf(t, dir, "", "1.0.0")
}

// buildDistroBundleOf builds the e2e bundle of a Kubernetes version (""
// the newest supported) as bundle version version, signed with the same
// key as every e2e bundle.
func buildDistroBundleOf(t *testing.T, dir, kubernetesVersion, version string) *distroBundle {
	t.Helper()
	b := &distroBundle{installer: filepath.Join(dir, "installer"), iso: filepath.Join(dir, "ferry-e2e-"+version+".iso"), pub: filepath.Join(dir, "release.pub.asc")}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	run := func(env []string, name string, args ...string) {
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	run([]string{"CGO_ENABLED=0"}, goBin, "build", "-trimpath", "-tags", "containers_image_openpgp",
		"-ldflags", "-X github.com/ferry-k8s/ferry/internal/version.Version=0.0.0-e2e", "-o", b.installer, "github.com/ferry-k8s/ferry/installer/cmd/installer")

	// The web image, from an RPM of the web server.
	src := filepath.Join(dir, "web")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "main.go"), []byte(webSource), 0o644)
	run([]string{"CGO_ENABLED=0", "GO111MODULE=off", "GOFLAGS="}, goBin, "build", "-trimpath", "-o", filepath.Join(src, "web"), filepath.Join(src, "main.go"))
	created := time.Unix(1767225600, 0).UTC()
	webRPM := filepath.Join(dir, "ferry-e2e-web.rpm")
	if err := rpmbuild.WriteFile(webRPM, rpmbuild.Package{Name: "ferry-e2e-web", Version: "1.0", Release: "1", Arch: "x86_64",
		Summary: "e2e web server", License: "Apache-2.0", BuildTime: created,
		Files: []rpmbuild.File{{Path: "/usr/bin/web", Source: filepath.Join(src, "web"), Mode: 0o755}}}, rpmbuild.Options{}); err != nil {
		t.Fatal(err)
	}
	layout := filepath.Join(dir, "web-layout")
	if _, err := compose.Write(context.Background(), layout, []compose.Image{{Name: webImage, Packages: []string{webRPM},
		Entrypoint: []string{"/usr/bin/web"}, User: "65532:65532", ExposedPorts: []string{"8080/tcp"}, Created: created,
		Annotations: map[string]string{"org.opencontainers.image.title": "ferry-e2e-web"}}}); err != nil {
		t.Fatal(err)
	}

	spec, err := distro.DefaultSpecYAML(kubernetesVersion, version)
	if err != nil {
		t.Fatal(err)
	}
	spec = append(spec, []byte(fmt.Sprintf("  images:\n    - source: oci:%s:%s\n      name: %s\n", layout, webImage, webImage))...)
	specFile := filepath.Join(dir, "bundle.yaml")
	os.WriteFile(specFile, spec, 0o644)

	sec, pub, err := signing.GenerateKey(signing.KeyOptions{Name: "Ferry e2e Release", Email: "release@e2e.invalid",
		Created: created.Add(-time.Hour), Rand: rand.NewChaCha8([32]byte{'e', '2', 'e'})})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(b.pub, pub, 0o644)
	signer, err := signing.LoadSigner(bytes.NewReader(sec), nil)
	if err != nil {
		t.Fatal(err)
	}
	b.signer = signer
	cache := os.Getenv("FERRY_CACHE_DIR")
	if cache == "" {
		cache = filepath.Join(CacheDir(), "builder")
	}
	// The day's start as the bundle's time: valid now, and the same all
	// day, so the cached source builds and RPMs (whose build dates come
	// from it) are reused by every run of the day.
	epoch := time.Now().UTC().Truncate(24 * time.Hour)
	if _, err := builder.Build(context.Background(), builder.Options{SpecPath: specFile, Output: b.iso, Signer: signer,
		SourceDateEpoch: epoch, InstallerBinary: b.installer, CacheDir: cache}); err != nil {
		t.Fatalf("building the e2e bundle: %v", err)
	}
	return b
}

// TestBootstrapSingleServer bootstraps one air-gapped node from the
// from-source bundle with `installer bootstrap`: the node goes Ready, a
// Deployment with a PodDisruptionBudget serves, the hardening holds on the
// running node, and `installer apply` then changes nothing.
func TestBootstrapSingleServer(t *testing.T) {
	st := newSteps(t)
	phase := st.phase
	Prerequisites(t)
	b := buildDistroBundle(t, t.TempDir())
	phase("bundle built")

	c := NewCluster(t, NodeSpec{Name: "node1"})
	node := c.Nodes[0]
	fqdn := "node1." + e2eDomain
	phase(fmt.Sprintf("node booted at %s", node.IP))

	// What the machine needs that a real server has: names (no DNS here),
	// and its kubelet cgroup root (cgroupRoot below; the machine's own
	// cgroup subtree, see E2E-NODES.md).
	node.MustExec(t, "/bin/sh", "-ec", fmt.Sprintf("echo '%s %s node1 %s' >> /etc/hosts", node.IP, fqdn, apiEndpoint))
	// A site's resolver (CoreDNS forwards what is not the cluster's to the
	// node's; kubeadm's Corefile needs one to start). Nothing answers at the
	// bridge address: forwarded queries fail, as they would for names
	// outside an air-gapped site.
	node.MustExec(t, "/bin/sh", "-ec", fmt.Sprintf("echo 'nameserver %s' > /etc/resolv.conf", c.Bridge().HostIP))
	node.MustExec(t, "/bin/sh", "-ec", `for h in /sys/fs/cgroup/*/; do mkdir -p "$h/node1"; done`)
	clusterYAML := fmt.Sprintf(`apiVersion: ferry.dev/v1alpha1
kind: Cluster
metadata: {name: e2e}
spec:
  controlPlaneEndpoint: %s:6443
  security:
    # Debian machines have no SELinux.
    allowNonEnforcingControlPlane: true
  authentication:
    staticUsers:
      - {name: e2e-viewer, groups: [e2e-viewers]}
  nodes:
    - name: node1
      hostname: %s
      roles: [control-plane, worker]
      labels: {topology.kubernetes.io/zone: e2e-a}
      selinux: disabled
      # systemd-nspawn machine overrides (cgroup v1 hybrid host, no swap
      # accounting, no CAP_SYS_RESOURCE): documented in E2E-NODES.md.
      kubelet:
        cgroupDriver: cgroupfs
        cgroupRoot: /node1
        failCgroupV1: false
        failSwapOn: false
        # The machines share the host's disk with the build caches.
        evictionHard: {memory.available: 100Mi, nodefs.available: 1%%, imagefs.available: 1%%, nodefs.inodesFree: 1%%}
        imageGCHighThresholdPercent: 100
        imageGCLowThresholdPercent: 99
      containerd:
        restrictOOMScoreAdj: true
`, apiEndpoint, fqdn)
	for src, dst := range map[string]string{b.installer: nodeInstaller, b.iso: "/root/ferry.iso", b.pub: "/root/release.pub.asc"} {
		mode := os.FileMode(0o644)
		if src == b.installer {
			mode = 0o755
		}
		if err := node.CopyIn(src, dst, mode); err != nil {
			t.Fatal(err)
		}
	}
	node.WriteFile("/root/cluster.yaml", []byte(clusterYAML), 0o644)
	node.WriteFile("/root/passphrase", []byte("e2e root key passphrase\n"), 0o600)
	phase("bundle, config and installer copied in")

	bootstrap := func(args ...string) string { return installer(t, node, args...) }
	ignore := ignorePreflight
	out := bootstrap("bootstrap", "--iso", "/root/ferry.iso", "--config", "/root/cluster.yaml", "--keyring", "/root/release.pub.asc",
		"--root-passphrase-file", "/root/passphrase", ignore)
	t.Logf("bootstrap:\n%s", out)
	phase("installer bootstrap done")

	kubectl := func(args ...string) (string, error) { return kubectl(node, args...) }
	waitFor := st.waitFor
	waitFor("node Ready", 5*time.Minute, func() (bool, string) {
		out, err := kubectl("get", "node", "node1", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		return err == nil && out == "True", out
	})

	// A Deployment with a PodDisruptionBudget, reached through its Service.
	web{Replicas: 2, PDB: "minAvailable: 1"}.apply(t, node)
	waitFor("web Deployment available", 3*time.Minute, func() (bool, string) {
		out, err := kubectl("get", "deployment", "web", "-o", "jsonpath={.status.availableReplicas}")
		return err == nil && out == "2", out
	})
	svcIP, err := kubectl("get", "service", "web", "-o", "jsonpath={.spec.clusterIP}")
	if err != nil {
		t.Fatal(err)
	}
	waitFor("web answers through its Service (kube-proxy)", time.Minute, func() (bool, string) {
		out, err := node.Exec("curl", "-sS", "--max-time", "5", "http://"+svcIP+"/")
		return err == nil && strings.HasPrefix(out, "ferry-e2e-web web-"), out
	})
	waitFor("CoreDNS available (from the bundle's image, as its non-root user)", 2*time.Minute, func() (bool, string) {
		out, err := kubectl("-n", "kube-system", "get", "deployment", "coredns", "-o", "jsonpath={.status.availableReplicas}")
		if err == nil && out == "2" {
			return true, out
		}
		pods, _ := kubectl("-n", "kube-system", "get", "pods", "-l", "k8s-app=kube-dns", "-o", "wide")
		logs, _ := kubectl("-n", "kube-system", "logs", "-l", "k8s-app=kube-dns", "--tail", "5", "--previous")
		return false, out + "\n" + pods + "\n" + logs
	})
	if pdb, err := kubectl("get", "pdb", "web", "-o", "jsonpath={.status.disruptionsAllowed}"); err != nil || pdb != "1" {
		t.Errorf("PDB disruptionsAllowed %q %v", pdb, err)
	}

	t.Run("hardening", func(t *testing.T) {
		// R12: the control plane runs as its own users.
		for proc, user := range map[string]string{"etcd": "etcd", "kube-apiserver": "kube-apiserver", "kube-controller-manager": "kube-controller-manager", "kube-scheduler": "kube-scheduler"} {
			out, err := node.Exec("ps", "-o", "user=", "-C", proc)
			if err != nil || strings.TrimSpace(out) != user {
				t.Errorf("%s runs as %q (%v), want %s", proc, strings.TrimSpace(out), err, user)
			}
		}
		if out := node.MustExec(t, "stat", "-c", "%U:%G %a", "/var/lib/etcd"); strings.TrimSpace(out) != "etcd:etcd 700" {
			t.Errorf("/var/lib/etcd is %s", out)
		}
		// R14: read-only root file systems for every container Ferry deploys.
		out, err := kubectl("get", "pods", "-n", "kube-system", "-o", `jsonpath={range .items[*]}{.metadata.name}{" "}{range .spec.containers[*]}{.securityContext.readOnlyRootFilesystem}{","}{end}{"\n"}{end}`)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if !strings.Contains(line, " true,") || strings.Contains(line, ",,") || strings.Contains(line, "false") {
				t.Errorf("kube-system pod without a read-only root file system: %s", line)
			}
		}
		// R27: no kubelet read-only port; R21: the listening ports speak TLS.
		if ss := node.MustExec(t, "ss", "-ltnH"); strings.Contains(ss, ":10255 ") {
			t.Errorf("something listens on 10255:\n%s", ss)
		}
		// Checked from the node itself: the firewall admits the node's own
		// traffic (loopback), not the bridge's (below).
		for _, port := range []string{"6443", "10250", "2379", "5443", "10257", "10259"} {
			for _, host := range []string{node.IP.String(), "127.0.0.1"} {
				// curl -k: a TLS handshake and an HTTP answer of any status;
				// plain HTTP or no listener fail.
				args := []string{"curl", "-sk", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}", "https://" + net.JoinHostPort(host, port) + "/healthz"}
				if port == "2379" {
					// etcd wants a client certificate for the handshake.
					args = append(args, "--cert", "/etc/kubernetes/pki/etcd/healthcheck-client.crt", "--key", "/etc/kubernetes/pki/etcd/healthcheck-client.key")
				}
				out, err := node.Exec(args...)
				if err == nil && out != "000" {
					break
				}
				if host == "127.0.0.1" {
					// Bound to loopback (10257, 10259) or the planes' addresses (R31).
					t.Errorf("port %s: no TLS on the node's address nor on loopback (%v, %s)", port, err, out)
				}
			}
		}
		// R26: the host firewall. The bridge's address is not a node of
		// the cluster: it reaches the API server and nothing else of
		// Kubernetes' (a dropped SYN is never answered: the dial gives up).
		if conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", net.JoinHostPort(node.IP.String(), "6443"), &tls.Config{InsecureSkipVerify: true}); err != nil {
			t.Errorf("API server from the bridge: %v", err)
		} else {
			conn.Close()
		}
		for _, port := range []string{"2379", "2380", "10250", "5443", "10257", "10259"} {
			if conn, err := net.DialTimeout("tcp", net.JoinHostPort(node.IP.String(), port), 3*time.Second); err == nil {
				conn.Close()
				t.Errorf("port %s reachable from the bridge (%s): the firewall should drop it (R26)", port, c.Bridge().HostIP)
			}
		}
		if rules := node.MustExec(t, "nft", "list", "table", "inet", "ferry"); !strings.Contains(rules, "etcd from control-plane nodes") {
			t.Errorf("nft list table inet ferry:\n%s", rules)
		}
		// R29: DNS SANs only, except the API server's service IP; R23: one
		// chain per realm.
		var k8sCA, etcdServer []byte
		filepath.Walk(filepath.Join(node.Root, "etc/kubernetes/pki"), func(p string, fi os.FileInfo, err error) error {
			if err != nil || !strings.HasSuffix(p, ".crt") {
				return err
			}
			data, _ := os.ReadFile(p)
			blk, _ := pem.Decode(data)
			cert, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				t.Errorf("%s: %v", p, err)
				return nil
			}
			switch {
			case strings.HasSuffix(p, "/apiserver.crt"):
				if len(cert.IPAddresses) != 2 || cert.IPAddresses[0].String() != "10.96.0.1" || !cert.IPAddresses[1].Equal(node.IP) {
					t.Errorf("apiserver.crt IP SANs %v: want the service IP and the node's API address", cert.IPAddresses)
				}
			case len(cert.IPAddresses) > 0:
				t.Errorf("%s has IP SANs %v", p, cert.IPAddresses)
			}
			if strings.HasSuffix(p, "pki/ca.crt") {
				k8sCA = data
			}
			if strings.HasSuffix(p, "etcd/server.crt") {
				etcdServer = data
			}
			return nil
		})
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(k8sCA)
		if blk, _ := pem.Decode(etcdServer); blk != nil {
			cert, _ := x509.ParseCertificate(blk.Bytes)
			if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
				t.Error("etcd's server certificate verifies under the kubernetes CA")
			}
		} else {
			t.Error("no etcd server certificate")
		}
		// R9: Secrets are encrypted in etcd.
		if out, err := kubectl("create", "secret", "generic", "e2e-secret", "--from-literal=k=plaintext-e2e-value"); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		raw, err := node.Exec("etcdctl", "--endpoints=https://localhost:2379", "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
			"--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt", "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key",
			"get", "/registry/secrets/default/e2e-secret", "--print-value-only")
		if err != nil || strings.Contains(raw, "plaintext-e2e-value") || !strings.Contains(raw, "k8s:enc:") {
			t.Errorf("the Secret in etcd is not encrypted (%v): %q", err, firstN(raw, 120))
		}
	})

	// R17: a static user's kubeconfig; RBAC decides what it may do.
	out = bootstrap("user", "kubeconfig", "--name", "e2e-viewer", "--out", "/root/viewer.conf")
	if !strings.Contains(out, "kubeconfig for e2e-viewer written to /root/viewer.conf") {
		t.Errorf("user kubeconfig: %s", out)
	}
	if out, err := kubectl("create", "clusterrolebinding", "e2e-viewers", "--clusterrole=view", "--group=e2e-viewers"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if out, err := node.Exec("kubectl", "--kubeconfig", "/root/viewer.conf", "get", "deployment", "web", "-o", "name"); err != nil || strings.TrimSpace(out) != "deployment.apps/web" {
		t.Errorf("the static user cannot read: %v %s", err, out)
	}
	if out, err := node.Exec("kubectl", "--kubeconfig", "/root/viewer.conf", "delete", "deployment", "web", "--dry-run=server"); err == nil || !strings.Contains(out, "forbidden") {
		t.Errorf("the static user (view role) may delete: %v %s", err, out)
	}
	if out, err := node.Exec("kubectl", "--kubeconfig", "/root/viewer.conf", "auth", "whoami", "-o", "jsonpath={.status.userInfo.username} {.status.userInfo.groups}"); err != nil || !strings.HasPrefix(out, "e2e-viewer ") || !strings.Contains(out, "e2e-viewers") {
		t.Errorf("whoami: %v %s", err, out)
	}
	if _, err := node.Exec(nodeInstaller, "user", "kubeconfig", "--name", "mallory", "--out", "/root/mallory.conf"); err == nil {
		t.Error("a kubeconfig for a user not in cluster.yaml")
	}

	// R3: a second run changes nothing, and says so; so does the plan alone.
	if out := bootstrap("apply", "--dry-run"); !strings.Contains(out, "\n0 changes") {
		t.Errorf("installer apply --dry-run after bootstrap:\n%s", out)
	}
	again := time.Now()
	before := nodeState(t, node)
	out = bootstrap("apply")
	if !zeroChanges.MatchString(out) {
		t.Errorf("installer apply after bootstrap:\n%s", out)
	}
	// ... and judged by the node's state, not only by its own words.
	if diff := stateDiff(before, nodeState(t, node)); diff != "" {
		t.Errorf("installer apply said 0 changes, and the node changed:\n%s", diff)
	}
	phase(fmt.Sprintf("installer apply: 0 changes in %s", time.Since(again).Round(time.Millisecond)))
	// The node daemon (ferry-node.service, from the installer RPM) serves
	// the same status and runs apply on demand.
	daemonStatus := node.MustExec(t, "curl", "-fsS", "--max-time", "10", "--unix-socket", "/run/ferry/node/node.sock", "http://node/status")
	if !strings.Contains(daemonStatus, `"initialized": true`) {
		t.Errorf("node daemon status:\n%s", daemonStatus)
	}
	daemonApply := node.MustExec(t, "curl", "-sS", "--max-time", "120", "--unix-socket", "/run/ferry/node/node.sock", "-X", "POST", "http://node/apply")
	if !strings.Contains(daemonApply, `"changes": 0`) {
		t.Errorf("node daemon apply:\n%s", daemonApply)
	}
	status := bootstrap("status", "--json")
	for _, want := range []string{`"initialized": true`, `"kubelet": "1.36.3-1.ferry"`, `"status": "done"`, `"name": "ferry-kubernetes"`, `"kind": "ca"`, `"kind": "bundle"`} {
		if !strings.Contains(status, want) {
			t.Errorf("installer status lacks %s:\n%s", want, status)
		}
	}

	t.Run("validity", func(t *testing.T) { checkValidity(t, node, b, fqdn, svcIP) })
	t.Run("ca-renewal", func(t *testing.T) { checkCARenewal(t, node) })

	// R30: the server's address changes and DNS (here /etc/hosts) follows:
	// `installer apply` reconverges with the fewest changes (the files that
	// carry the address, kubeadm's static Pods and kubelet configuration,
	// the firewall), the node comes back Ready at its new address and the
	// workload serves again; the next apply changes nothing.
	oldIP, newIP := node.IP, c.Bridge().IP(200)
	node.MustExec(t, "/bin/sh", "-ec", fmt.Sprintf(`ip addr flush dev host0
ip addr add %[1]s/24 dev host0
ip route replace default via %[3]s
sed -i -E 's/^%[4]s([[:space:]])/%[1]s\1/' /etc/hosts`, newIP, oldIP, c.Bridge().HostIP, strings.ReplaceAll(oldIP.String(), ".", `\.`)))
	node.IP = newIP
	phase(fmt.Sprintf("node address changed from %s to %s", oldIP, newIP))
	moved := time.Now()
	packagesBefore := node.MustExec(t, "/bin/sh", "-c", "rpm -qa | sort")
	stateBefore := nodeState(t, node)
	out = bootstrap("apply")
	t.Logf("apply after the address change:\n%s", out)
	// What changed on disk, judged by the files' hashes (the apply's own
	// list is checked below too).
	changed := changedFiles(stateBefore, nodeState(t, node))
	for _, want := range []string{"/etc/ferry/kubeadm/kubeadm.yaml", "/etc/kubernetes/pki/apiserver.crt", "/etc/ferry/firewall.nft"} {
		if !changed[want] {
			t.Errorf("after the address change %s is unchanged", want)
		}
	}
	for _, unwanted := range []string{"/etc/kubernetes/pki/ca.crt", "/etc/kubernetes/pki/etcd/server.crt", "/etc/containerd/config.toml"} {
		if changed[unwanted] {
			t.Errorf("the address change rewrote %s: not needed for a new address", unwanted)
		}
	}
	if after := node.MustExec(t, "/bin/sh", "-c", "rpm -qa | sort"); after != packagesBefore {
		t.Errorf("the address change changed the installed packages")
	}
	for _, want := range []string{"write file " + "/etc/ferry/kubeadm/kubeadm.yaml", "kubeadm reconfigure", "write file /etc/kubernetes/pki/apiserver.crt", "write file /etc/ferry/firewall.nft"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply after the address change lacks %q", want)
		}
	}
	for _, unwanted := range []string{"install packages", "kubeadm init ", "/etc/kubernetes/pki/ca.crt", "etcd/server.crt", "containerd/config.toml"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("apply after the address change did %q: not needed for a new address", unwanted)
		}
	}
	waitFor("node Ready at its new address", 5*time.Minute, func() (bool, string) {
		out, err := kubectl("get", "node", "node1", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status} {.status.addresses[?(@.type=="InternalIP")].address}`)
		return err == nil && out == "True "+newIP.String(), out
	})
	waitFor("web answers through its Service after the address change", 3*time.Minute, func() (bool, string) {
		out, err := node.Exec("curl", "-sS", "--max-time", "5", "http://"+svcIP+"/")
		return err == nil && strings.HasPrefix(out, "ferry-e2e-web web-"), out
	})
	phase(fmt.Sprintf("reconverged after the address change in %s", time.Since(moved).Round(time.Second)))
	if out := bootstrap("apply"); !zeroChanges.MatchString(out) {
		t.Errorf("installer apply after the reconvergence:\n%s", out)
	}
	if conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", net.JoinHostPort(newIP.String(), "6443"), &tls.Config{InsecureSkipVerify: true}); err != nil {
		t.Errorf("API server at the new address: %v", err)
	} else {
		if ips := conn.ConnectionState().PeerCertificates[0].IPAddresses; len(ips) != 2 || !ips[1].Equal(newIP) {
			t.Errorf("apiserver.crt IP SANs after the address change: %v", ips)
		}
		conn.Close()
	}
	c.AssertNoForwarding(t)
}

func firstN(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// checkValidity is R59 on a running node: the installed bundle's validity
// ends, and the node keeps converging (apply: 0 changes) and serving it
// (registry, readiness); a new import of it is refused until a newer
// statement extends it; an older statement is refused (no rollback).
//
// The calendar cannot be moved for a real node, so its validity ends the
// way a publisher can end it: a signed statement whose expiry has passed
// (the manifest's own expiry passing has the same effect, tested with an
// injected clock in installer/content and installer/bootstrap).
func checkValidity(t *testing.T, node *Node, b *distroBundle, fqdn, svcIP string) {
	ended, renewed := validityStatements(t, b)
	node.WriteFile("/root/ended.validity", ended, 0o644)
	if out := installer(t, node, "bundle", "extend", "--validity", "/root/ended.validity"); !strings.Contains(out, "extended /var/lib/ferry/bundles/ferry-kubernetes-1.0.0.iso") {
		t.Errorf("bundle extend:\n%s", out)
	}
	readyz := func() (string, error) {
		return node.Exec("curl", "-sS", "--max-time", "10", "--cacert", "/etc/ferry/pki/content/ca.crt", "-w", " %{http_code}", "https://"+fqdn+":5443/readyz")
	}
	deadline := time.Now().Add(time.Minute)
	for {
		out, err := readyz()
		if err == nil && strings.Contains(out, "validity ended") && strings.HasSuffix(out, " 200") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz does not name the ended validity while staying 200: %v %s", err, out)
		}
		time.Sleep(time.Second)
	}
	// Installed content is converged and served still.
	if out := installer(t, node, "apply"); !zeroChanges.MatchString(out) {
		t.Errorf("installer apply with the bundle's validity ended:\n%s", out)
	}
	if out, err := node.Exec("curl", "-sS", "--max-time", "10", "--cacert", "/etc/ferry/pki/content/ca.crt", "-o", "/dev/null", "-w", "%{http_code}",
		"-H", "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
		"https://"+fqdn+":5443/v2/"+strings.TrimSuffix(webImage, ":1.0")+"/manifests/1.0"); err != nil || out != "200" {
		t.Errorf("the registry with the bundle's validity ended: %v %s", err, out)
	}
	if out, err := node.Exec("curl", "-sS", "--max-time", "5", "http://"+svcIP+"/"); err != nil || !strings.HasPrefix(out, "ferry-e2e-web web-") {
		t.Errorf("the workload with the bundle's validity ended: %v %s", err, out)
	}
	if out := installer(t, node, "status"); !strings.Contains(out, "EXPIRED on") {
		t.Errorf("installer status does not say the bundle expired:\n%s", out)
	}
	// A new import of it, with that statement, is refused and names why.
	if out, err := node.Exec(nodeInstaller, "bundle", "add", "--iso", "/root/ferry.iso", "--validity", "/root/ended.validity"); err == nil || !strings.Contains(out, "ended on") {
		t.Errorf("bundle add of a bundle whose validity ended: %v\n%s", err, out)
	}
	// The publisher extends it (builder extend): valid again.
	node.WriteFile("/root/renewed.validity", renewed, 0o644)
	installer(t, node, "bundle", "extend", "--validity", "/root/renewed.validity")
	deadline = time.Now().Add(time.Minute)
	for {
		out, err := readyz()
		if err == nil && !strings.Contains(out, "validity ended") && strings.HasSuffix(out, " 200") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz after the renewal: %v %s", err, out)
		}
		time.Sleep(time.Second)
	}
	// The ended statement again is a rollback: refused.
	if out, err := node.Exec(nodeInstaller, "bundle", "extend", "--validity", "/root/ended.validity"); err == nil || !strings.Contains(out, "rollback") {
		t.Errorf("bundle extend with an older statement: %v\n%s", err, out)
	}
	if out := installer(t, node, "apply"); !zeroChanges.MatchString(out) {
		t.Errorf("installer apply after the renewal:\n%s", out)
	}
}

// checkCARenewal: the intermediate CAs (one year) are renewed from the
// offline roots. The root keys leave the node as R25 asks; renewal without
// them is refused and changes nothing; with them every realm's ca.crt is
// renewed (same key), the apply that follows hands kubeadm the new
// certificates, the API answers with the admin's kubeconfig of before, and
// the next apply changes nothing.
func checkCARenewal(t *testing.T, node *Node) {
	sum := func(p string) string { return strings.Fields(node.MustExec(t, "sha256sum", p))[0] }
	node.MustExec(t, "/bin/sh", "-ec", `for d in /etc/ferry/pki/*/; do
  r=$(basename "$d"); mkdir -p /root/offline-pki/$r; mv "$d/root.key" /root/offline-pki/$r/root.key; done`)
	caBefore, keyBefore := sum("/etc/kubernetes/pki/ca.crt"), sum("/etc/kubernetes/pki/ca.key")
	if out := installer(t, node, "pki", "renew-ca"); !strings.Contains(out, "kubernetes   not due") {
		t.Errorf("renew-ca with nothing due:\n%s", out)
	}
	if out, err := node.Exec(nodeInstaller, "pki", "renew-ca", "--force", "--root-passphrase-file", "/root/passphrase"); err == nil || !strings.Contains(out, "give --root-keys DIR") {
		t.Errorf("renew-ca without the root keys: %v\n%s", err, out)
	}
	if sum("/etc/kubernetes/pki/ca.crt") != caBefore {
		t.Fatal("a refused renewal changed ca.crt")
	}
	out := installer(t, node, "pki", "renew-ca", "--force", "--root-keys", "/root/offline-pki", "--root-passphrase-file", "/root/passphrase")
	for _, realm := range []string{"kubernetes", "etcd", "front-proxy", "content"} {
		if !regexp.MustCompile(`(?m)^` + realm + ` +renewed: valid until `).MatchString(out) {
			t.Errorf("renew-ca: %s not renewed:\n%s", realm, out)
		}
	}
	if sum("/etc/kubernetes/pki/ca.crt") == caBefore || sum("/etc/kubernetes/pki/ca.key") != keyBefore {
		t.Error("want kubeadm's ca.crt renewed and its ca.key kept")
	}
	if _, err := node.Exec("test", "-e", "/etc/ferry/pki/kubernetes/root.key"); err == nil {
		t.Error("the root key was written back to the node")
	}
	if out, err := kubectl(node, "get", "nodes", "-o", "jsonpath={.items[*].status.conditions[?(@.type==\"Ready\")].status}"); err != nil || out != "True" {
		t.Errorf("after the renewal: kubectl get nodes: %q %v", out, err)
	}
	if out := installer(t, node, "apply"); !zeroChanges.MatchString(out) {
		t.Errorf("apply after the renewal:\n%s", out)
	}
}

// nodeState is what an apply that changes nothing leaves as it is, one
// line each: the hash of every file under the directories Ferry manages,
// each service's main pid, restart count and start time, and each running
// container's id (a restarted static Pod is a new container).
func nodeState(t *testing.T, n *Node) []string {
	t.Helper()
	out := n.MustExec(t, "/bin/sh", "-ec", `find /etc/kubernetes /etc/ferry /etc/containerd /etc/systemd/system /etc/yum.repos.d -type f -print0 | sort -z | xargs -0 sha256sum
for u in kubelet containerd ferry-content ferry-node ferry-apiproxy ferry-firewall; do
  echo "$u $(systemctl show -p MainPID -p NRestarts -p ActiveEnterTimestampMonotonic --value $u | tr '\n' ' ')"
done
crictl --runtime-endpoint unix:///run/containerd/containerd.sock ps -q | sort | sed 's/^/container /'`)
	return strings.Split(strings.TrimSpace(out), "\n")
}

// stateDiff lists the lines of before and after that differ ("" when none).
func stateDiff(before, after []string) string {
	in := func(lines []string) map[string]bool {
		m := make(map[string]bool, len(lines))
		for _, l := range lines {
			m[l] = true
		}
		return m
	}
	b, a := in(before), in(after)
	var diff []string
	for _, l := range before {
		if !a[l] {
			diff = append(diff, "- "+l)
		}
	}
	for _, l := range after {
		if !b[l] {
			diff = append(diff, "+ "+l)
		}
	}
	return strings.Join(diff, "\n")
}

// changedFiles are the files whose hash differs between two nodeStates
// (or that one of them lacks).
func changedFiles(before, after []string) map[string]bool {
	hashes := func(lines []string) map[string]string {
		m := map[string]string{}
		for _, l := range lines {
			if sum, file, ok := strings.Cut(l, "  "); ok && len(sum) == 64 {
				m[file] = sum
			}
		}
		return m
	}
	b, a := hashes(before), hashes(after)
	changed := map[string]bool{}
	for f, sum := range b {
		if a[f] != sum {
			changed[f] = true
		}
	}
	for f := range a {
		if _, ok := b[f]; !ok {
			changed[f] = true
		}
	}
	return changed
}
