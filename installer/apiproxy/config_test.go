package apiproxy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-k8s/ferry/bundle"
)

const exampleConfig = `apiVersion: ferry.dev/v1alpha1
kind: APIServerProxy
listen: 127.0.0.1:6444
backends:
  - cp1.lab.example.com:6443
  - cp2.lab.example.com:6443
  - 10.0.0.13:6443
healthCheck:
  caFile: pki/ca.crt
  serverName: api.lab.example.com
  path: /readyz?exclude=etcd
  interval: 5s
  timeout: 2s
  healthyThreshold: 2
  unhealthyThreshold: 3
dialTimeout: 5s
maxConnections: 10000
metrics:
  listen: 127.0.0.1:9444
  tlsCert: tls/metrics.crt
  tlsKey: /etc/ferry/tls/metrics.key
`

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "apiproxy.yaml")
	if err := os.WriteFile(file, []byte(exampleConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(file)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.settings()
	if err != nil {
		t.Fatal(err)
	}
	if s.caFile != filepath.Join(dir, "pki/ca.crt") || s.metrics.TLSCert != filepath.Join(dir, "tls/metrics.crt") || s.metrics.TLSKey != "/etc/ferry/tls/metrics.key" {
		t.Errorf("paths not resolved against the file's directory: %s %s %s", s.caFile, s.metrics.TLSCert, s.metrics.TLSKey)
	}
	if len(s.backends) != 3 || s.interval != 5*time.Second || s.path != "/readyz?exclude=etcd" || s.unhealthyThreshold != 3 {
		t.Errorf("settings %+v", s)
	}
}

func TestDefaults(t *testing.T) {
	c, err := ParseConfig([]byte("apiVersion: ferry.dev/v1alpha1\nkind: APIServerProxy\nbackends: [cp1.example.com:6443]\nhealthCheck: {caFile: /ca.crt}\n"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.settings()
	if err != nil {
		t.Fatal(err)
	}
	want := settings{
		listen: DefaultListen, backends: []string{"cp1.example.com:6443"}, caFile: "/ca.crt", path: DefaultHealthPath,
		interval: DefaultInterval, timeout: DefaultTimeout, healthyThreshold: DefaultHealthyThreshold,
		unhealthyThreshold: DefaultUnhealthyThreshold, dialTimeout: DefaultDialTimeout, maxConnections: DefaultMaxConnections,
	}
	if s.listen != want.listen || s.path != want.path || s.interval != want.interval || s.timeout != want.timeout ||
		s.healthyThreshold != want.healthyThreshold || s.unhealthyThreshold != want.unhealthyThreshold ||
		s.dialTimeout != want.dialTimeout || s.maxConnections != want.maxConnections || s.metrics != nil || s.serverName != "" {
		t.Errorf("defaults %+v, want %+v", *s, want)
	}
}

// Every problem names its field; all problems are reported at once.
func TestConfigErrorsNameTheField(t *testing.T) {
	const head = "apiVersion: ferry.dev/v1alpha1\nkind: APIServerProxy\n"
	const ok = "backends: [cp1.example.com:6443]\nhealthCheck: {caFile: /ca.crt}\n"
	for _, tc := range []struct {
		name, yaml string
		want       []string // each a substring of the error
	}{
		{"wrong kind", "apiVersion: v1\nkind: Pod\n" + ok, []string{`apiVersion: must be "ferry.dev/v1alpha1"`, `kind: must be "APIServerProxy", got "Pod"`}},
		{"unknown top-level field", head + ok + "listenAddress: :6444\n", []string{"listenAddress: unknown field"}},
		{"unknown nested field", head + "backends: [cp1.example.com:6443]\nhealthCheck: {caFile: /ca.crt, intervall: 5s}\n", []string{"healthCheck.intervall: unknown field"}},
		{"unknown metrics field", head + ok + "metrics: {listen: '127.0.0.1:9444', tlsCert: c, tlsKey: k, port: 9}\n", []string{"metrics.port: unknown field"}},
		{"wrong type", head + "backends: [cp1.example.com:6443]\nhealthCheck: {caFile: /ca.crt, healthyThreshold: two}\n", []string{"healthCheck.healthyThreshold: must be a whole number, got string"}},
		{"backends not a list", head + "backends: cp1.example.com:6443\nhealthCheck: {caFile: /ca.crt}\n", []string{"backends: must be a list, got string"}},
		{"not YAML", head + "backends: [\n", []string{"parsing:"}},
		{"no backends", head + "healthCheck: {caFile: /ca.crt}\n", []string{"backends: required"}},
		{"no CA", head + "backends: [cp1.example.com:6443]\n", []string{"healthCheck.caFile: required"}},
		{"backend without port", head + "backends: [cp1.example.com, 'cp2.example.com:99999', ':6443']\nhealthCheck: {caFile: /ca.crt}\n",
			[]string{`backends[0]: "cp1.example.com" is not host:port`, "backends[1]: ", "port \"99999\"", `backends[2]: ":6443": no host`}},
		{"backend bad name", head + "backends: ['cp_1.example.com:6443', 'https://cp2:6443']\nhealthCheck: {caFile: /ca.crt}\n",
			[]string{`backends[0]: "cp_1.example.com:6443": "cp_1.example.com" is neither`, "backends[1]: "}},
		{"duplicate backend", head + "backends: [cp1.example.com:6443, CP1.example.com:6443]\nhealthCheck: {caFile: /ca.crt}\n", []string{"backends[1]: CP1.example.com:6443 is also backends[0]"}},
		{"IP backend without server name", head + "backends: ['10.0.0.1:6443']\nhealthCheck: {caFile: /ca.crt}\n", []string{"backends[0]: 10.0.0.1:6443 is an IP address: set healthCheck.serverName"}},
		{"bad listen", head + ok + "listen: localhost:6444\n", []string{"listen: \"localhost:6444\": listen on an IP address"}},
		{"listen without port", head + ok + "listen: 127.0.0.1\n", []string{"listen: "}},
		{"bad durations", head + "backends: [cp1.example.com:6443]\nhealthCheck: {caFile: /ca.crt, interval: 5, timeout: -1s}\ndialTimeout: 1h\n",
			[]string{`healthCheck.interval: "5" is not a duration`, "healthCheck.timeout: -1s is not between", "dialTimeout: 1h0m0s is not between"}},
		{"interval too short", head + "backends: [cp1.example.com:6443]\nhealthCheck: {caFile: /ca.crt, interval: 1ms}\n", []string{"healthCheck.interval: 1ms is not between 100ms"}},
		{"bad thresholds", head + "backends: [cp1.example.com:6443]\nhealthCheck: {caFile: /ca.crt, healthyThreshold: -1, unhealthyThreshold: 1000}\n",
			[]string{"healthCheck.healthyThreshold: -1 is not between 1 and 100", "healthCheck.unhealthyThreshold: 1000 is not between 1 and 100"}},
		{"bad path", head + "backends: [cp1.example.com:6443]\nhealthCheck: {caFile: /ca.crt, path: 'http://evil/readyz'}\n", []string{"healthCheck.path: \"http://evil/readyz\" must start with a single /"}},
		{"path with host", head + "backends: [cp1.example.com:6443]\nhealthCheck: {caFile: /ca.crt, path: '//evil/readyz'}\n", []string{"healthCheck.path: "}},
		{"bad server name", head + "backends: [cp1.example.com:6443]\nhealthCheck: {caFile: /ca.crt, serverName: '*.example.com'}\n", []string{`healthCheck.serverName: "*.example.com" is not a DNS name`}},
		{"bad max connections", head + ok + "maxConnections: -5\n", []string{"maxConnections: -5 is not between 1 and 1000000"}},
		{"metrics without TLS", head + ok + "metrics: {listen: '127.0.0.1:9444'}\n", []string{"metrics.tlsCert: required", "metrics.tlsKey: required"}},
		{"metrics without listen", head + ok + "metrics: {tlsCert: c, tlsKey: k}\n", []string{"metrics.listen: required"}},
		{"metrics on the proxy's port", head + ok + "metrics: {listen: '127.0.0.1:6444', tlsCert: c, tlsKey: k}\n", []string{"metrics.listen: 127.0.0.1:6444 is also listen"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.yaml))
			if err == nil {
				err = c.Validate()
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
			if !strings.HasPrefix(tc.want[0], "parsing") {
				var fe *bundle.FieldError
				if !errors.As(err, &fe) {
					t.Errorf("no *bundle.FieldError in %v", err)
				}
			}
		})
	}
}

func TestLoadConfigRefuses(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte(exampleConfig+"#"+strings.Repeat("x", MaxConfigSize)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("a huge file: %v", err)
	}
	if _, err := LoadConfig(filepath.Join(dir, "missing.yaml")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(strings.Replace(exampleConfig, "interval: 5s", "interval: often", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(bad); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "healthCheck.interval") {
		t.Errorf("an invalid file: %v", err)
	}
}

// New reads the files the configuration names and says which is wrong.
func TestNewRefusesBadFiles(t *testing.T) {
	k := newPKI(t)
	certFile, keyFile := k.writeServerCert(t, "metrics.lab.example.com")
	otherCert, _ := k.writeServerCert(t, "other.lab.example.com")
	notPEM := filepath.Join(k.dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := func() Config {
		c := baseConfig(k)
		c.Backends = []string{"cp1.lab.example.com:6443"}
		return c
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"CA missing", func(c *Config) { c.HealthCheck.CAFile = filepath.Join(k.dir, "nope.crt") }, "healthCheck.caFile: open "},
		{"CA not PEM", func(c *Config) { c.HealthCheck.CAFile = notPEM }, "healthCheck.caFile: " + notPEM + ": no PEM certificate"},
		{"metrics key mismatch", func(c *Config) {
			c.Metrics = &MetricsConf{Listen: "127.0.0.1:9444", TLSCert: otherCert, TLSKey: keyFile}
		}, "metrics.tlsCert: " + otherCert + " with " + keyFile},
		{"metrics key missing", func(c *Config) {
			c.Metrics = &MetricsConf{Listen: "127.0.0.1:9444", TLSCert: certFile, TLSKey: keyFile + ".gone"}
		}, "metrics.tlsKey: open "},
		{"metrics client CA not PEM", func(c *Config) {
			c.Metrics = &MetricsConf{Listen: "127.0.0.1:9444", TLSCert: certFile, TLSKey: keyFile, ClientCA: notPEM}
		}, "metrics.clientCA: "},
		{"invalid config", func(c *Config) { c.Backends = nil }, "backends: required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.edit(&c)
			_, err := New(c, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want %q", err, tc.want)
			}
		})
	}
}

// FuzzParseConfig: any input gives a configuration or an error, never a
// panic; what parses and validates yields settings within the bounds.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(exampleConfig))
	f.Add([]byte("apiVersion: ferry.dev/v1alpha1\nkind: APIServerProxy\nbackends: [a:1]\nhealthCheck: {caFile: x}\n"))
	f.Add([]byte("apiVersion: ferry.dev/v1alpha1\nkind: APIServerProxy\nbackends: ['[::1]:6443']\nhealthCheck: {caFile: x, serverName: a.b, path: '/r?x=1'}\nmetrics: {listen: ':1', tlsCert: a, tlsKey: b}\n"))
	f.Add([]byte("{}"))
	f.Add([]byte("- a\n- b\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			return
		}
		s, err := c.settings()
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if len(s.backends) == 0 || len(s.backends) > MaxBackends || s.interval < minInterval || s.timeout <= 0 ||
			s.dialTimeout <= 0 || s.healthyThreshold < 1 || s.unhealthyThreshold < 1 || s.maxConnections < 1 ||
			!strings.HasPrefix(s.path, "/") || s.caFile == "" {
			t.Fatalf("valid configuration with settings out of bounds: %+v", s)
		}
	})
}
