package distro

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// GoBuilder compiles components from Go module sources. Each component is
// built in a small wrapper module that requires the upstream module at its
// pinned version (and, for Kubernetes, its staging modules at v0.<minor>.<patch>),
// so the dependency graph is upstream's own; its go.sum is checked against
// the Go checksum database by the go command.
//
// Linked binaries are cached under CacheDir by a key over everything that
// goes into them (toolchain, go.mod, go.sum, packages, tags, flags); the Go
// build cache (GOCACHE) makes a rebuild after a small change cheap, and the
// binary cache makes a rebuild of the same sources nearly free.
type GoBuilder struct {
	// Go is the go command; empty: "go" from PATH.
	Go string
	// CacheDir holds wrapper modules (src/) and built binaries (bin/).
	CacheDir string
	// BuildTime replaces @BUILDTIME@ in a component's -X settings. The
	// catalog uses none: Kubernetes' buildDate keeps its default, so that
	// one cached binary serves builds of every SOURCE_DATE_EPOCH.
	BuildTime time.Time
	// Log receives progress; nil discards it.
	Log *slog.Logger
	// Output receives the go command's output on failure (and is included,
	// trimmed, in the error); nil: only the error.
	Output io.Writer

	toolchain string
}

// Built is a component's binaries, by name.
type Built struct {
	Component string
	Module    string
	Version   string
	// ModuleSum is the go.sum hash (h1:…) of the main module's content.
	ModuleSum string
	// GoVersion is the toolchain that built it.
	GoVersion string
	// License (SPDX) and URL of the upstream project.
	License, URL string
	// Binaries maps a binary's name to its path in the cache.
	Binaries map[string]string
	// Cached is true when nothing was compiled.
	Cached bool
}

// Build compiles every binary of c (or takes them from the cache).
func (g *GoBuilder) Build(ctx context.Context, c Component) (*Built, error) {
	log := g.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := g.init(ctx); err != nil {
		return nil, err
	}
	src := filepath.Join(g.CacheDir, "src", c.Name+"@"+c.Version)
	// Builds sharing the cache (parallel test packages, two builders) take
	// turns per component: the wrapper module and the binaries are written
	// in place.
	unlock, err := lockFile(src + ".lock")
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := g.prepareModule(ctx, c, src); err != nil {
		return nil, fmt.Errorf("preparing the module of %s %s: %w", c.Name, c.Version, err)
	}
	goMod, err := os.ReadFile(filepath.Join(src, "go.mod"))
	if err != nil {
		return nil, err
	}
	goSum, err := os.ReadFile(filepath.Join(src, "go.sum"))
	if err != nil && !errors.Is(err, os.ErrNotExist) { // no go.sum: no dependencies
		return nil, err
	}
	env := c.env()
	ldflags := c.ldflags(g.BuildTime)
	key := cacheKey(g.toolchain, goMod, goSum, c, env, ldflags)
	out := filepath.Join(g.CacheDir, "bin", c.Name+"@"+c.Version+"-"+key[:16])
	built := &Built{Component: c.Name, Module: c.Module, Version: c.Version, GoVersion: g.toolchain,
		ModuleSum: moduleSum(goSum, c.Module, c.Version), License: c.License, URL: c.URL, Binaries: map[string]string{}}
	for _, b := range c.Binaries {
		built.Binaries[b.Name] = filepath.Join(out, b.Name)
	}
	if complete(built.Binaries) {
		built.Cached = true
		log.Info("component from cache", slog.String("component", c.Name), slog.String("version", c.Version))
		return built, nil
	}
	tmp, err := os.MkdirTemp(filepath.Dir(out), ".build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	start := time.Now()
	log.Info("compiling", slog.String("component", c.Name), slog.String("version", c.Version), slog.Int("binaries", len(c.Binaries)))
	// One go build per binary name: `go build -o dir/` names outputs after
	// the package directory, which is not always the binary's name.
	for _, b := range c.Binaries {
		args := []string{"build", "-trimpath", "-buildvcs=false", "-o", filepath.Join(tmp, b.Name)}
		if len(c.Tags) > 0 {
			args = append(args, "-tags", strings.Join(c.Tags, ","))
		}
		args = append(args, "-ldflags", ldflags, b.Package)
		if err := g.run(ctx, src, env, args...); err != nil {
			return nil, fmt.Errorf("building %s of %s %s: %w", b.Name, c.Name, c.Version, err)
		}
	}
	if err := os.RemoveAll(out); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, out); err != nil {
		return nil, err
	}
	log.Info("compiled", slog.String("component", c.Name), slog.String("version", c.Version), slog.Duration("took", time.Since(start).Round(time.Second)))
	return built, nil
}

func complete(bins map[string]string) bool {
	for _, p := range bins {
		if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
			return false
		}
	}
	return len(bins) > 0
}

func (g *GoBuilder) init(ctx context.Context) error {
	if g.toolchain != "" {
		return nil
	}
	if g.Go == "" {
		p, err := exec.LookPath("go")
		if err != nil {
			return fmt.Errorf("building from source needs the Go toolchain (go on PATH): %w", err)
		}
		g.Go = p
	}
	if g.CacheDir == "" {
		return errors.New("no cache directory for source builds")
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, g.Go, "env", "-json", "GOVERSION", "GOOS", "GOARCH")
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("asking %s for its version: %w", g.Go, err)
	}
	var env struct{ GOVERSION, GOOS, GOARCH string }
	if err := json.Unmarshal(out.Bytes(), &env); err != nil {
		return fmt.Errorf("reading go env: %w", err)
	}
	g.toolchain = env.GOVERSION + " " + env.GOOS + "/" + env.GOARCH
	return os.MkdirAll(filepath.Join(g.CacheDir, "bin"), 0o755)
}

// prepareModule writes the wrapper module of c and resolves its go.sum. A
// wrapper whose go.mod is unchanged is reused as it is.
func (g *GoBuilder) prepareModule(ctx context.Context, c Component, dir string) error {
	goMod, err := c.wrapperGoMod(ctx, g)
	if err != nil {
		return err
	}
	var imports strings.Builder
	imports.WriteString("//go:build tools\n\n// Package wrapper pins the sources Ferry builds; generated by the builder.\npackage wrapper\n\nimport (\n")
	for _, b := range c.Binaries {
		fmt.Fprintf(&imports, "\t_ %q\n", b.Package)
	}
	imports.WriteString(")\n")
	stamp := filepath.Join(dir, ".ready")
	h := sha256.New()
	h.Write(goMod)
	h.Write([]byte(imports.String()))
	for _, name := range sortedKeys(c.Files) {
		fmt.Fprintf(h, "%s\x00%s\x00", name, c.Files[name])
	}
	want := h.Sum(nil)
	if have, err := os.ReadFile(stamp); err == nil && string(have) == hex.EncodeToString(want) {
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), goMod, 0o644); err != nil {
		return err
	}
	if c.Module != "" {
		if err := os.WriteFile(filepath.Join(dir, "tools.go"), []byte(imports.String()), 0o644); err != nil {
			return err
		}
	}
	for name, data := range c.Files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	// tidy fills in the requirement graph and go.sum, verified against
	// the checksum database; -e is not used: a missing module is an error.
	if err := g.run(ctx, dir, c.env(), "mod", "tidy"); err != nil {
		return err
	}
	return os.WriteFile(stamp, []byte(hex.EncodeToString(want)), 0o644)
}

func (g *GoBuilder) run(ctx context.Context, dir string, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, g.Go, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Env = append(cmd.Env, "GOFLAGS=-mod=mod", "GOWORK=off", "GOTOOLCHAIN=local")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if g.Output != nil {
			_, _ = g.Output.Write(out.Bytes())
		}
		return fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, tail(out.String(), 2000))
	}
	return nil
}

// tail keeps the last n bytes of s, where the go command's error is.
func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func cacheKey(toolchain string, goMod, goSum []byte, c Component, env []string, ldflags string) string {
	h := sha256.New()
	fmt.Fprintf(h, "ferry-gobuild-v1\x00%s\x00%s\x00%s\x00", toolchain, goMod, goSum)
	bins := make([]string, 0, len(c.Binaries))
	for _, b := range c.Binaries {
		bins = append(bins, b.Name+"="+b.Package)
	}
	sort.Strings(bins)
	fmt.Fprintf(h, "%q\x00%q\x00%q\x00%s\x00", bins, c.Tags, env, ldflags)
	for _, name := range sortedKeys(c.Files) {
		fmt.Fprintf(h, "%s\x00%s\x00", name, c.Files[name])
	}
	if c.CGO {
		// The C toolchain goes into cgo binaries; its version is part of the key.
		if out, err := exec.Command("cc", "--version").Output(); err == nil {
			h.Write(out)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// moduleSum finds "module version h1:…" in a go.sum.
func moduleSum(goSum []byte, module, version string) string {
	for _, line := range strings.Split(string(goSum), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == module && f[1] == version {
			return f[2]
		}
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// lockFile takes an exclusive flock on path (created if missing); the
// returned function releases it.
func lockFile(path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
