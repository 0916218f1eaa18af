package cluster

import (
	"fmt"
	"path/filepath"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/internal/strictyaml"
)

// MaxFileSize bounds a configuration file; real ones are a few KiB.
const MaxFileSize = strictyaml.DefaultMaxSize

// parseOptions are what a cluster.yaml must be.
var parseOptions = strictyaml.Options{
	MaxSize:     MaxFileSize,
	APIVersion:  bundle.APIVersion,
	Kind:        KindCluster,
	StringTypes: []string{"cluster.Role", "cluster.SELinuxMode"},
}

// Load reads, parses and validates a configuration file. The result is
// not defaulted: use Defaulted for the values to apply.
func Load(file string) (*Cluster, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, fmt.Errorf("reading cluster config %s: %w", file, err)
	}
	var c Cluster
	if err := strictyaml.Load("cluster config", file, &c, parseOptions); err != nil {
		return nil, err
	}
	c.Dir = filepath.Dir(abs)
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("cluster config %s: %w", file, err)
	}
	return &c, nil
}

// Parse parses a configuration: size, YAML syntax, field types, unknown
// fields (each reported at its path), apiVersion and kind. It does not
// validate values (see Validate) nor fill in defaults (see Defaulted).
func Parse(data []byte) (*Cluster, error) {
	var c Cluster
	if err := strictyaml.Parse(data, &c, parseOptions); err != nil {
		return nil, err
	}
	return &c, nil
}

func fieldErr(field, format string, args ...any) error {
	return strictyaml.Errorf(field, format, args...)
}
