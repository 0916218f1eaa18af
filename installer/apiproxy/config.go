package apiproxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/internal/strictyaml"
)

// KindAPIServerProxy is the configuration file's kind.
const KindAPIServerProxy = "APIServerProxy"

// Defaults of the configuration file's optional fields.
const (
	DefaultConfigPath         = "/etc/ferry/apiproxy.yaml"
	DefaultListen             = "127.0.0.1:6444"
	DefaultHealthPath         = "/readyz"
	DefaultInterval           = 5 * time.Second
	DefaultTimeout            = 2 * time.Second
	DefaultHealthyThreshold   = 2
	DefaultUnhealthyThreshold = 3
	DefaultDialTimeout        = 5 * time.Second
	DefaultMaxConnections     = 10000
)

// Bounds of the configuration. A node proxies to its cluster's few
// control-plane nodes; the limits only stop a typo from doing harm.
const (
	MaxConfigSize     = 1 << 20
	MaxBackends       = 64
	maxThreshold      = 100
	maxConnections    = 1_000_000
	minInterval       = 100 * time.Millisecond
	maxDuration       = 10 * time.Minute
	maxPEMFile        = 1 << 20
	maxHealthBodySize = 64 << 10
)

// Config is the proxy's configuration file:
//
//	apiVersion: ferry.dev/v1alpha1
//	kind: APIServerProxy
//	listen: 127.0.0.1:6444              # default; clients dial https://127.0.0.1:6444
//	backends:                           # the API servers, host:port (DNS names or IPs)
//	  - cp1.lab.example.com:6443
//	  - cp2.lab.example.com:6443
//	  - cp3.lab.example.com:6443
//	healthCheck:
//	  caFile: /etc/kubernetes/pki/ca.crt  # verifies the API servers' certificates
//	  serverName: api.lab.example.com     # the name they must carry (default: each backend's host)
//	  path: /readyz                       # default /readyz; HTTP 200 is healthy
//	  interval: 5s                        # between two checks of one backend
//	  timeout: 2s                         # for one check, TLS handshake included
//	  healthyThreshold: 2                 # successes in a row to become healthy
//	  unhealthyThreshold: 3               # failures in a row to become unhealthy
//	dialTimeout: 5s                     # for one connection attempt to a backend
//	maxConnections: 10000               # client connections at once; more are closed
//	metrics:                            # optional Prometheus endpoint, HTTPS only
//	  listen: 127.0.0.1:9444
//	  tlsCert: /etc/ferry/tls/apiproxy-metrics.crt
//	  tlsKey: /etc/ferry/tls/apiproxy-metrics.key
//	  clientCA: /etc/ferry/tls/scrapers.crt   # optional: require client certificates
//
// Durations are Go durations ("5s", "1m30s"). Relative paths resolve
// against the file's directory. Unknown fields are errors.
type Config struct {
	APIVersion     string       `json:"apiVersion"`
	Kind           string       `json:"kind"`
	Listen         string       `json:"listen,omitempty"`
	Backends       []string     `json:"backends"`
	HealthCheck    HealthCheck  `json:"healthCheck"`
	DialTimeout    string       `json:"dialTimeout,omitempty"`
	MaxConnections int          `json:"maxConnections,omitempty"`
	Metrics        *MetricsConf `json:"metrics,omitempty"`

	// Dir is where relative paths resolve (the file's directory; empty:
	// the working directory).
	Dir string `json:"-"`
}

// HealthCheck configures the active checks: an HTTPS GET of Path on every
// backend, the certificate verified against CAFile for ServerName.
type HealthCheck struct {
	CAFile             string `json:"caFile"`
	ServerName         string `json:"serverName,omitempty"`
	Path               string `json:"path,omitempty"`
	Interval           string `json:"interval,omitempty"`
	Timeout            string `json:"timeout,omitempty"`
	HealthyThreshold   int    `json:"healthyThreshold,omitempty"`
	UnhealthyThreshold int    `json:"unhealthyThreshold,omitempty"`
}

// MetricsConf is the optional Prometheus endpoint (GET /metrics), served
// over TLS only.
type MetricsConf struct {
	Listen   string `json:"listen"`
	TLSCert  string `json:"tlsCert"`
	TLSKey   string `json:"tlsKey"`
	ClientCA string `json:"clientCA,omitempty"`
}

// configOptions are what a configuration file must be.
var configOptions = strictyaml.Options{MaxSize: MaxConfigSize, APIVersion: bundle.APIVersion, Kind: KindAPIServerProxy}

// LoadConfig reads, parses and validates a configuration file.
func LoadConfig(file string) (*Config, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, fmt.Errorf("reading apiproxy config %s: %w", file, err)
	}
	var c Config
	if err := strictyaml.Load("apiproxy config", file, &c, configOptions); err != nil {
		return nil, err
	}
	c.Dir = filepath.Dir(abs)
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("apiproxy config %s: %w", file, err)
	}
	return &c, nil
}

// ParseConfig parses a configuration: size, YAML syntax, field types,
// unknown fields (each named by its path), apiVersion and kind. Values are
// checked by Validate.
func ParseConfig(data []byte) (*Config, error) {
	var c Config
	if err := strictyaml.Parse(data, &c, configOptions); err != nil {
		return nil, err
	}
	return &c, nil
}

// settings are a validated configuration with its defaults applied.
type settings struct {
	listen             string
	backends           []string
	caFile             string
	serverName         string
	path               string
	interval           time.Duration
	timeout            time.Duration
	healthyThreshold   int
	unhealthyThreshold int
	dialTimeout        time.Duration
	maxConnections     int
	metrics            *MetricsConf // paths resolved
}

// Validate checks every field's value; each problem is a
// *bundle.FieldError naming the field's path ("backends[1]").
func (c *Config) Validate() error {
	_, err := c.settings()
	return err
}

func (c *Config) settings() (*settings, error) {
	var errs []error
	add := func(field, format string, args ...any) { errs = append(errs, fieldErr(field, format, args...)) }
	s := &settings{
		listen:             c.Listen,
		path:               c.HealthCheck.Path,
		serverName:         c.HealthCheck.ServerName,
		healthyThreshold:   c.HealthCheck.HealthyThreshold,
		unhealthyThreshold: c.HealthCheck.UnhealthyThreshold,
		maxConnections:     c.MaxConnections,
	}
	if s.listen == "" {
		s.listen = DefaultListen
	}
	if err := checkHostPort(s.listen, true); err != nil {
		add("listen", "%v", err)
	}

	if len(c.Backends) == 0 {
		add("backends", "required: at least one API server, host:port")
	}
	if len(c.Backends) > MaxBackends {
		add("backends", "%d backends, at most %d", len(c.Backends), MaxBackends)
	}
	seen := map[string]int{}
	for i, b := range c.Backends {
		f := fmt.Sprintf("backends[%d]", i)
		if err := checkHostPort(b, false); err != nil {
			add(f, "%v", err)
			continue
		}
		key := strings.ToLower(b)
		if j, dup := seen[key]; dup {
			add(f, "%s is also backends[%d]", b, j)
			continue
		}
		seen[key] = i
		if host, _, _ := net.SplitHostPort(b); s.serverName == "" && isIP(host) {
			add(f, "%s is an IP address: set healthCheck.serverName to the DNS name its certificate carries", b)
		}
		s.backends = append(s.backends, b)
	}

	hc := "healthCheck."
	if strings.TrimSpace(c.HealthCheck.CAFile) == "" {
		add(hc+"caFile", "required: the CA certificate(s) that issued the API servers' certificates, PEM")
	} else {
		s.caFile = c.path(c.HealthCheck.CAFile)
	}
	if s.serverName != "" && !validDNSName(s.serverName) {
		add(hc+"serverName", "%q is not a DNS name", s.serverName)
	}
	if s.path == "" {
		s.path = DefaultHealthPath
	}
	if err := checkHealthPath(s.path); err != nil {
		add(hc+"path", "%v", err)
	}
	duration := func(field, v string, def, lo time.Duration) time.Duration {
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			add(field, "%q is not a duration such as 5s", v)
		case d < lo || d > maxDuration:
			add(field, "%v is not between %v and %v", d, lo, maxDuration)
		}
		return d
	}
	s.interval = duration(hc+"interval", c.HealthCheck.Interval, DefaultInterval, minInterval)
	s.timeout = duration(hc+"timeout", c.HealthCheck.Timeout, DefaultTimeout, time.Millisecond)
	s.dialTimeout = duration("dialTimeout", c.DialTimeout, DefaultDialTimeout, time.Millisecond)
	threshold := func(field string, v *int, def int) {
		switch {
		case *v == 0:
			*v = def
		case *v < 1 || *v > maxThreshold:
			add(field, "%d is not between 1 and %d", *v, maxThreshold)
		}
	}
	threshold(hc+"healthyThreshold", &s.healthyThreshold, DefaultHealthyThreshold)
	threshold(hc+"unhealthyThreshold", &s.unhealthyThreshold, DefaultUnhealthyThreshold)
	switch {
	case s.maxConnections == 0:
		s.maxConnections = DefaultMaxConnections
	case s.maxConnections < 1 || s.maxConnections > maxConnections:
		add("maxConnections", "%d is not between 1 and %d", s.maxConnections, maxConnections)
	}

	if m := c.Metrics; m != nil {
		rm := *m
		if m.Listen == "" {
			add("metrics.listen", "required when metrics is set (host:port)")
		} else if err := checkHostPort(m.Listen, true); err != nil {
			add("metrics.listen", "%v", err)
		} else if m.Listen == s.listen {
			add("metrics.listen", "%s is also listen", m.Listen)
		}
		if strings.TrimSpace(m.TLSCert) == "" {
			add("metrics.tlsCert", "required: the metrics endpoint speaks TLS only")
		}
		if strings.TrimSpace(m.TLSKey) == "" {
			add("metrics.tlsKey", "required: the metrics endpoint speaks TLS only")
		}
		rm.TLSCert, rm.TLSKey, rm.ClientCA = c.path(m.TLSCert), c.path(m.TLSKey), c.path(m.ClientCA)
		s.metrics = &rm
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// path resolves a path of the configuration ("" stays "").
func (c *Config) path(p string) string {
	if p == "" || filepath.IsAbs(p) || c.Dir == "" {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// checkHostPort checks "host:port": a port from 1 to 65535 and a host that
// is an IP address or a DNS name; listen addresses may leave the host out
// (every address).
func checkHostPort(s string, listen bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number from 1 to 65535", s, port)
	}
	switch {
	case host == "" && listen:
	case host == "":
		return fmt.Errorf("%q: no host", s)
	case isIP(host):
	case listen:
		return fmt.Errorf("%q: listen on an IP address, not a name", s)
	case !validDNSName(host):
		return fmt.Errorf("%q: %q is neither an IP address nor a DNS name", s, host)
	}
	return nil
}

func isIP(host string) bool {
	_, err := netip.ParseAddr(host)
	return err == nil
}

var dnsLabelRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// validDNSName: lowercase letters, digits and hyphens in dot-separated
// labels (RFC 1123), at most 253 characters; no wildcards, no trailing dot.
func validDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(strings.ToLower(s), ".") {
		if !dnsLabelRE.MatchString(l) {
			return false
		}
	}
	return true
}

// checkHealthPath accepts an absolute path with an optional query
// ("/readyz?exclude=etcd"), nothing that would change the host or scheme.
func checkHealthPath(p string) error {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") {
		return fmt.Errorf("%q must start with a single /", p)
	}
	if len(p) > 1024 {
		return fmt.Errorf("longer than 1024 characters")
	}
	u, err := url.ParseRequestURI(p)
	if err != nil {
		return fmt.Errorf("%q: %w", p, err)
	}
	if u.Scheme != "" || u.Host != "" || u.Fragment != "" || strings.ContainsAny(p, " \t\r\n#") {
		return fmt.Errorf("%q must be a path with an optional query", p)
	}
	return nil
}

func fieldErr(field, format string, args ...any) error {
	return strictyaml.Errorf(field, format, args...)
}
