package content

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"time"

	yamlv3 "go.yaml.in/yaml/v3"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/installer/cluster"
	"github.com/ferry-k8s/ferry/internal/atomicfile"
	"github.com/ferry-k8s/ferry/internal/fileutil"
	"github.com/ferry-k8s/ferry/internal/strictyaml"
)

// Configuration file defaults.
const (
	KindContentService = "ContentService"
	DefaultConfigPath  = "/etc/ferry/serve.yaml"
	// DefaultPort is where the content service listens, on every
	// control-plane node: cluster.ContentPort, the one definition.
	DefaultPort            = cluster.ContentPort
	DefaultListen          = ":5443" // ":" + DefaultPort (a test checks)
	DefaultPIDFile         = "/run/ferry/content.pid"
	DefaultShutdownTimeout = 5 * time.Minute
	maxConfigSize          = 1 << 20
)

// Config is the content service's configuration file:
//
//	apiVersion: ferry.dev/v1alpha1
//	kind: ContentService
//	listen: ":5443"                       # host:port; TLS only
//	isos:                                 # the bundles to serve
//	  - /var/lib/ferry/bundles/ferry-1.0.0.iso
//	keyring: /etc/ferry/release.pub.asc   # trusted signing keys
//	tlsCert: /etc/ferry/tls/content.crt   # server certificate (chain), PEM
//	tlsKey: /etc/ferry/tls/content.key
//	clientCA: /etc/ferry/tls/clients.crt  # optional: require client certificates
//	externalURL: https://repo.cluster.internal:5443  # optional: for .repo files
//	pidFile: /run/ferry/content.pid
//	shutdownTimeout: 5m                   # how long in-flight downloads may finish on stop
//
// Relative paths resolve against the file's directory. Unknown fields are
// errors. Command-line flags override the file's fields.
type Config struct {
	APIVersion      string   `json:"apiVersion"`
	Kind            string   `json:"kind"`
	Listen          string   `json:"listen,omitempty"`
	ISOs            []string `json:"isos,omitempty"`
	Keyring         string   `json:"keyring,omitempty"`
	TLSCert         string   `json:"tlsCert,omitempty"`
	TLSKey          string   `json:"tlsKey,omitempty"`
	ClientCA        string   `json:"clientCA,omitempty"`
	ExternalURL     string   `json:"externalURL,omitempty"`
	PIDFile         string   `json:"pidFile,omitempty"`
	ShutdownTimeout string   `json:"shutdownTimeout,omitempty"`

	// Dir is where relative paths resolve (the file's directory, or the
	// working directory for a configuration made of flags only).
	Dir string `json:"-"`
}

// LoadConfig reads and checks a configuration file (syntax, apiVersion,
// kind, unknown fields; see Validate for what serving needs).
func LoadConfig(file string) (*Config, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	var c Config
	if err := strictyaml.Load("config", file, &c, configOptions); err != nil {
		return nil, err
	}
	c.Dir = filepath.Dir(abs)
	return &c, nil
}

// ParseConfig parses a configuration; dir is where relative paths resolve.
func ParseConfig(data []byte, dir string) (*Config, error) {
	var c Config
	if err := strictyaml.Parse(data, &c, configOptions); err != nil {
		return nil, err
	}
	c.Dir = dir
	return &c, nil
}

// configOptions are what a configuration file must be.
var configOptions = strictyaml.Options{MaxSize: maxConfigSize, APIVersion: bundle.APIVersion, Kind: KindContentService}

// Override replaces the fields of c that are set in o (non-empty strings,
// a non-nil ISO list): flags over the file.
func (c *Config) Override(o Config) {
	cv, ov := reflect.ValueOf(c).Elem(), reflect.ValueOf(o)
	for i := range cv.NumField() {
		f := ov.Field(i)
		if cv.Type().Field(i).Name == "Dir" || f.IsZero() {
			continue
		}
		cv.Field(i).Set(f)
	}
}

// Path resolves a path of the configuration ("" stays "").
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// ISOPaths are the configured ISOs, resolved.
func (c *Config) ISOPaths() []string {
	out := make([]string, len(c.ISOs))
	for i, p := range c.ISOs {
		out[i] = c.Path(p)
	}
	return out
}

// ListenAddr is Listen or DefaultListen.
func (c *Config) ListenAddr() string {
	if c.Listen == "" {
		return DefaultListen
	}
	return c.Listen
}

// PIDPath is PIDFile, resolved, or DefaultPIDFile.
func (c *Config) PIDPath() string {
	if c.PIDFile == "" {
		return DefaultPIDFile
	}
	return c.Path(c.PIDFile)
}

// Shutdown is ShutdownTimeout parsed, or DefaultShutdownTimeout.
func (c *Config) Shutdown() time.Duration {
	d, err := time.ParseDuration(c.ShutdownTimeout)
	if c.ShutdownTimeout == "" || err != nil {
		return DefaultShutdownTimeout
	}
	return d
}

// Validate checks what serving needs: a keyring, a certificate and its key
// (TLS only: there is no plaintext mode), a host:port to listen on, and
// well-formed optional fields.
func (c *Config) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, strictyaml.Errorf(field, format, args...))
	}
	if c.Keyring == "" {
		add("keyring", "required (the keys bundles must be signed with)")
	}
	if c.TLSCert == "" || c.TLSKey == "" {
		add("tlsCert and tlsKey", "both required (the service speaks TLS only)")
	}
	if _, _, err := net.SplitHostPort(c.ListenAddr()); err != nil {
		add("listen", "%v", err)
	}
	if c.ExternalURL != "" {
		if _, err := checkExternalURL(c.ExternalURL); err != nil {
			add("externalURL", "%v", err)
		}
	}
	if c.ShutdownTimeout != "" {
		if d, err := time.ParseDuration(c.ShutdownTimeout); err != nil || d < 0 {
			add("shutdownTimeout", "%q is not a duration such as 5m", c.ShutdownTimeout)
		}
	}
	for i, p := range c.ISOs {
		if strings.TrimSpace(p) == "" {
			add(fmt.Sprintf("isos[%d]", i), "empty path")
		}
	}
	return errors.Join(errs...)
}

// EditConfigISOs rewrites the isos list of the configuration file with
// edit, atomically (a temporary file renamed over it, same mode), keeping
// the file's comments and the rest of its content. edit gets the list as
// written (unresolved) and returns the new one; an unchanged list leaves
// the file untouched. It returns whether the file changed.
func EditConfigISOs(file string, edit func(isos []string) ([]string, error)) (bool, error) {
	data, err := fileutil.ReadFile(file, configOptions.MaxSize)
	if err != nil {
		return false, fmt.Errorf("reading config: %w", err)
	}
	c, err := ParseConfig(data, filepath.Dir(file))
	if err != nil {
		return false, fmt.Errorf("config %s: %w", file, err)
	}
	next, err := edit(slices.Clone(c.ISOs))
	if err != nil {
		return false, err
	}
	if slices.Equal(next, c.ISOs) {
		return false, nil
	}
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(data, &doc); err != nil {
		return false, fmt.Errorf("config %s: %w", file, err)
	}
	if doc.Kind != yamlv3.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yamlv3.MappingNode {
		return false, fmt.Errorf("config %s: not a YAML mapping", file)
	}
	setISOs(doc.Content[0], next)
	var out bytes.Buffer
	enc := yamlv3.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return false, fmt.Errorf("writing config %s: %w", file, err)
	}
	if err := enc.Close(); err != nil {
		return false, err
	}
	// What we write must read back as what we meant.
	check, err := ParseConfig(out.Bytes(), filepath.Dir(file))
	if err != nil || !slices.Equal(check.ISOs, next) {
		return false, fmt.Errorf("writing config %s: the edited file does not read back (%v)", file, err)
	}
	return true, writeFileAtomic(file, out.Bytes())
}

// setISOs replaces the value of the "isos" key of mapping m (adding the
// key when absent), keeping the nodes, and so the comments, of entries
// that stay.
func setISOs(m *yamlv3.Node, isos []string) {
	var seq *yamlv3.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "isos" {
			seq = m.Content[i+1]
		}
	}
	if seq == nil {
		seq = &yamlv3.Node{Kind: yamlv3.SequenceNode, Tag: "!!seq"}
		m.Content = append(m.Content, &yamlv3.Node{Kind: yamlv3.ScalarNode, Tag: "!!str", Value: "isos"}, seq)
	}
	old := map[string]*yamlv3.Node{}
	if seq.Kind == yamlv3.SequenceNode {
		for _, n := range seq.Content {
			old[n.Value] = n
		}
	}
	// A flow-style or null value becomes a block sequence.
	seq.Kind, seq.Tag, seq.Style, seq.Value = yamlv3.SequenceNode, "!!seq", 0, ""
	seq.Content = nil
	for _, p := range isos {
		if n, ok := old[p]; ok {
			seq.Content = append(seq.Content, n)
			continue
		}
		seq.Content = append(seq.Content, &yamlv3.Node{Kind: yamlv3.ScalarNode, Tag: "!!str", Value: p})
	}
}

// writeFileAtomic replaces file with data: a temporary file in the same
// directory, synced, with the old file's mode and owner (root edits a
// file the service's user must still read), renamed over it.
func writeFileAtomic(file string, data []byte) error {
	mode := os.FileMode(0o644)
	uid, gid := -1, -1
	if fi, err := os.Stat(file); err == nil {
		mode = fi.Mode().Perm()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	}
	return atomicfile.Write(file, mode, func(tmp *os.File) error {
		if _, err := tmp.Write(data); err != nil {
			return fmt.Errorf("writing %s: %w", file, err)
		}
		if uid >= 0 && (uid != os.Getuid() || gid != os.Getgid()) {
			if err := tmp.Chown(uid, gid); err != nil {
				return fmt.Errorf("writing %s: keeping its owner %d:%d: %w", file, uid, gid, err)
			}
		}
		return nil
	})
}
