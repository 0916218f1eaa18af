package cluster

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ferry-k8s/ferry/bundle"
)

// MaxFileSize bounds a configuration file; real ones are a few KiB.
const MaxFileSize = 1 << 20

// Load reads, parses and validates a configuration file. The result is
// not defaulted: use Defaulted for the values to apply.
func Load(file string) (*Cluster, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("reading cluster config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading cluster config %s: %w", file, err)
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, fmt.Errorf("reading cluster config %s: %w", file, err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("cluster config %s: %w", file, err)
	}
	c.Dir = filepath.Dir(abs)
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("cluster config %s: %w", file, err)
	}
	return c, nil
}

// Parse parses a configuration: size, YAML syntax, field types, unknown
// fields (each reported at its path), apiVersion and kind. It does not
// validate values (see Validate) nor fill in defaults (see Defaulted).
func Parse(data []byte) (*Cluster, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("larger than %d bytes", MaxFileSize)
	}
	var c Cluster
	if err := bundle.StrictYAML(data, &c, "cluster.Role", "cluster.SELinuxMode"); err != nil {
		return nil, err
	}
	var errs []error
	if c.APIVersion != bundle.APIVersion {
		errs = append(errs, fieldErr("apiVersion", "must be %q, got %q", bundle.APIVersion, c.APIVersion))
	}
	if c.Kind != KindCluster {
		errs = append(errs, fieldErr("kind", "must be %q, got %q", KindCluster, c.Kind))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &c, nil
}

func fieldErr(field, format string, args ...any) error {
	return &bundle.FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}
