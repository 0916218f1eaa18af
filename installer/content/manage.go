package content

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ferry-k8s/ferry/bundle"
	"github.com/ferry-k8s/ferry/bundle/validity"
	"github.com/ferry-k8s/ferry/bundle/verify"
	"github.com/ferry-k8s/ferry/iso"
	"github.com/ferry-k8s/ferry/signing"
)

// ErrNoServer is returned by SignalReload when no content service runs.
var ErrNoServer = errors.New("no running content service found")

// CheckISO verifies and indexes an ISO as Add would, without serving it:
// what `installer bundle add` checks before it changes the configuration.
// Unlike Add it is a new import, so an expired bundle is refused unless a
// validity statement (opts.ValidityFile, or the one beside the ISO)
// extends it. Only opts' Now and ValidityFile are used.
func CheckISO(ctx context.Context, isoPath string, ring *signing.Keyring, opts verify.Options) (BundleInfo, error) {
	abs, err := filepath.Abs(isoPath)
	if err != nil {
		return BundleInfo{}, err
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	vb, _, err := verify.OpenVerified(ctx, abs, ring, verify.Options{Now: opts.Now, ValidityFile: opts.ValidityFile})
	if err != nil {
		return BundleInfo{}, fmt.Errorf("refusing bundle %s: %w", abs, err)
	}
	defer vb.Close()
	b, err := loadBundle(vb, ring, opts.Now, false)
	if err != nil {
		return BundleInfo{}, fmt.Errorf("refusing bundle %s: %w", abs, err)
	}
	b.info.Verified = opts.Now
	return b.infoCopy(), nil
}

// PrepareImport is what `installer bundle add` does before it changes the
// configuration: CheckISO, then the validity statement given
// (validityFile, "" for none) kept beside the ISO, where the service and
// `installer status` find it (validity.Install: no rollback).
func PrepareImport(ctx context.Context, isoPath, validityFile string, ring *signing.Keyring, now time.Time) (BundleInfo, error) {
	info, err := CheckISO(ctx, isoPath, ring, verify.Options{Now: now, ValidityFile: validityFile})
	if err != nil || validityFile == "" {
		return info, err
	}
	data, err := validity.ReadFile(validityFile)
	if err != nil {
		return BundleInfo{}, err
	}
	if _, _, err := validity.Install(info.Path, data, ring, now, info.ManifestSHA256); err != nil {
		return BundleInfo{}, fmt.Errorf("bundle %s: %s: %w", info.Path, validityFile, err)
	}
	return info, nil
}

// ConfiguredBundle is one ISO of a configuration, as `bundle list` shows it.
type ConfiguredBundle struct {
	// Path as written in the configuration, and resolved.
	Entry string `json:"entry"`
	Path  string `json:"path"`
	// Name, Version and Expires are read from the ISO's manifest.
	Name    string    `json:"name,omitempty"`
	Version string    `json:"version,omitempty"`
	Expires time.Time `json:"expires,omitzero"`
	// ValidUntil is Expires, or the expiry of the validity statement
	// beside the ISO; Expired says it has passed (checked: Trusted).
	ValidUntil time.Time `json:"validUntil,omitzero"`
	Expired    bool      `json:"expired"`
	// Trusted is set when the manifest's signature checks against the
	// keyring (files are not hashed here; the server checks every byte
	// when it loads the ISO). A configured bundle is installed content:
	// it stays trusted and served after it expires (Warnings say so).
	Trusted  bool     `json:"trusted"`
	Problem  string   `json:"problem,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// ListConfigured describes every ISO of cfg: its manifest, and whether it
// is signed by a key of ring (nil: not checked), and its validity at now.
func ListConfigured(cfg *Config, ring *signing.Keyring, now time.Time) []ConfiguredBundle {
	out := make([]ConfiguredBundle, 0, len(cfg.ISOs))
	for _, e := range cfg.ISOs {
		cb := ConfiguredBundle{Entry: e, Path: cfg.Path(e)}
		m, err := ReadManifestUnverified(cb.Path)
		if err != nil {
			cb.Problem = err.Error()
			out = append(out, cb)
			continue
		}
		cb.Name, cb.Version, cb.Expires = m.Name, m.Version, m.Expires
		if ring == nil {
			cb.Problem = "not checked: no keyring"
		} else if b, err := verify.Open(cb.Path, ring, verify.Options{Now: now, Installed: true}); err != nil {
			cb.Problem = err.Error()
		} else {
			b.Close()
			cb.Trusted, cb.ValidUntil, cb.Expired, cb.Warnings = true, b.ValidUntil, b.Expired, b.Warnings
		}
		out = append(out, cb)
	}
	return out
}

// ReadManifestUnverified reads an ISO's manifest WITHOUT checking its
// signature: only to find which configured ISO holds a version (for
// removing it, or for a message). Nothing it returns may be trusted.
func ReadManifestUnverified(isoPath string) (*bundle.Manifest, error) {
	m, _, err := readManifestUnverified(isoPath)
	return m, err
}

// readManifestUnverified is ReadManifestUnverified, with the manifest's
// sha256 (what validity statements name).
func readManifestUnverified(isoPath string) (*bundle.Manifest, string, error) {
	fail := func(err error) (*bundle.Manifest, string, error) { return nil, "", err }
	f, err := os.Open(isoPath)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	// The root alone, as verify reads it before trusting anything: this
	// read's memory does not grow with the entries the image claims.
	im, err := iso.OpenRoot(f, fi.Size(), bundle.ManifestPath)
	if err != nil {
		return fail(fmt.Errorf("%s: not a readable ISO image: %w", isoPath, err))
	}
	r, err := im.Open(bundle.ManifestPath)
	if err != nil {
		return fail(fmt.Errorf("%s: %w", isoPath, err))
	}
	data, err := io.ReadAll(io.LimitReader(r, bundle.MaxManifestSize+1))
	if err != nil {
		return fail(fmt.Errorf("%s: reading the manifest: %w", isoPath, err))
	}
	m, err := bundle.ParseManifest(data)
	if err != nil {
		return fail(fmt.Errorf("%s: %w", isoPath, err))
	}
	sum := sha256.Sum256(data)
	return m, hex.EncodeToString(sum[:]), nil
}

// ExtendConfigured installs the validity statement data beside the
// configured ISO it is for (found by its manifest's sha256): checked
// against ring at now, and not older than the statement already there
// (validity.Install). It returns the ISO's path and whether the statement
// changed; the running service picks it up on reload.
func ExtendConfigured(cfg *Config, data []byte, ring *signing.Keyring, now time.Time) (string, *validity.Verified, bool, error) {
	st, err := validity.ParseUnverified(data) // checked by Install below
	if err != nil {
		return "", nil, false, err
	}
	for _, e := range cfg.ISOs {
		p := cfg.Path(e)
		if _, sum, err := readManifestUnverified(p); err != nil || sum != st.Bundle.ManifestSHA256 {
			continue
		}
		v, changed, err := validity.Install(p, data, ring, now, st.Bundle.ManifestSHA256)
		if err != nil {
			return p, nil, false, fmt.Errorf("bundle %s %s (%s): %w", st.Bundle.Name, st.Bundle.Version, p, err)
		}
		return p, v, changed, nil
	}
	return "", nil, false, fmt.Errorf("the statement is for bundle %s %s (manifest sha256 %s), which no configured ISO holds", st.Bundle.Name, st.Bundle.Version, st.Bundle.ManifestSHA256)
}

// AddISOToConfig adds isoPath (made absolute) to the configuration file's
// isos, unless it is there already. It refuses when another configured
// ISO holds the same bundle version (the server would refuse one of them).
func AddISOToConfig(configPath, isoPath, version string) (bool, error) {
	abs, err := filepath.Abs(isoPath)
	if err != nil {
		return false, err
	}
	cfgDir, err := filepath.Abs(filepath.Dir(configPath))
	if err != nil {
		return false, err
	}
	c := &Config{Dir: cfgDir}
	return EditConfigISOs(configPath, func(isos []string) ([]string, error) {
		for _, e := range isos {
			p := c.Path(e)
			if p == abs {
				return isos, nil
			}
			if m, err := ReadManifestUnverified(p); err == nil && m.Version == version {
				return nil, fmt.Errorf("version %s is already configured as %s: remove it first (installer bundle remove %s)", version, e, version)
			}
		}
		return append(isos, abs), nil
	})
}

// RemoveISOFromConfig removes from the configuration file's isos every
// entry whose path is pathOrVersion, or whose bundle (read unverified)
// has that version. It returns the entries removed (none: an error).
func RemoveISOFromConfig(configPath, pathOrVersion string) ([]string, error) {
	abs, _ := filepath.Abs(pathOrVersion)
	cfgDir, err := filepath.Abs(filepath.Dir(configPath))
	if err != nil {
		return nil, err
	}
	c := &Config{Dir: cfgDir}
	var removed []string
	_, err = EditConfigISOs(configPath, func(isos []string) ([]string, error) {
		var keep []string
		for _, e := range isos {
			p := c.Path(e)
			match := e == pathOrVersion || p == abs
			if !match && bundle.ValidVersion(pathOrVersion) {
				if m, err := ReadManifestUnverified(p); err == nil && m.Version == pathOrVersion {
					match = true
				}
			}
			if match {
				removed = append(removed, e)
			} else {
				keep = append(keep, e)
			}
		}
		if len(removed) == 0 {
			return nil, fmt.Errorf("%s: not in the configuration's isos (%s)", pathOrVersion, configPath)
		}
		return keep, nil
	})
	if err != nil {
		return nil, err
	}
	return slices.Clip(removed), nil
}

// SignalReload sends SIGHUP to the content service whose pid file is
// pidFile ("PID STARTTIME", writePIDFile). It returns ErrNoServer when
// there is no pid file or its process is gone, and refuses to signal a
// process that is not the one that wrote the file: another start time
// (the pid was reused) or another program.
func SignalReload(pidFile string) (int, error) {
	data, err := os.ReadFile(pidFile)
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("%w (no pid file %s)", ErrNoServer, pidFile)
	}
	if err != nil {
		return 0, err
	}
	fields := strings.Fields(string(data))
	if len(fields) == 0 || len(fields) > 2 {
		return 0, fmt.Errorf("pid file %s: %q: want \"PID STARTTIME\"", pidFile, strings.TrimSpace(string(data)))
	}
	pid, err := strconv.Atoi(fields[0])
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("pid file %s: %q is not a process id", pidFile, fields[0])
	}
	if len(fields) == 1 {
		return pid, fmt.Errorf("%w: pid file %s has no start time (an older installer wrote it): not signalling process %d; restart the content service", ErrNoServer, pidFile, pid)
	}
	want, err := strconv.ParseUint(fields[1], 10, 64)
	if err != nil {
		return pid, fmt.Errorf("pid file %s: start time %q is not a number", pidFile, fields[1])
	}
	got, err := processStart(pid)
	if err != nil {
		return pid, fmt.Errorf("%w (pid file %s names process %d, which is gone)", ErrNoServer, pidFile, pid)
	}
	if got != want {
		return pid, fmt.Errorf("%w: pid file %s names process %d started at tick %d, but process %d started at tick %d: another process has that pid now; not signalling it", ErrNoServer, pidFile, pid, want, pid, got)
	}
	cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return pid, fmt.Errorf("%w (pid file %s names process %d, which is gone)", ErrNoServer, pidFile, pid)
	}
	argv0, _, _ := strings.Cut(string(cmdline), "\x00")
	if !strings.HasPrefix(filepath.Base(argv0), "installer") {
		return pid, fmt.Errorf("%w: pid file %s names process %d (%s), which is not the installer; not signalling it", ErrNoServer, pidFile, pid, argv0)
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		return pid, fmt.Errorf("signalling content service (pid %d): %w", pid, err)
	}
	return pid, nil
}

// processStart is the start time of process pid, in clock ticks since
// boot (field 22 of /proc/PID/stat): with the pid, it names one process
// for the life of the machine.
func processStart(pid int) (uint64, error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces
	// and parentheses: the fields after it follow the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	rest := strings.Fields(string(data[i+1:]))
	const startField = 22 - 3 // fields counted from 1; rest starts at field 3
	if len(rest) <= startField {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(rest)+2)
	}
	start, err := strconv.ParseUint(rest[startField], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: start time: %w", pid, err)
	}
	return start, nil
}
