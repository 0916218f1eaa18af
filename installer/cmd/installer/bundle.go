package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ferry-k8s/ferry/bundle/validity"
	"github.com/ferry-k8s/ferry/installer/content"
	"github.com/ferry-k8s/ferry/internal/cliutil"
	"github.com/ferry-k8s/ferry/signing"
)

// bundleCommand is `bundle add|remove|list`: edit the served set in the
// configuration file and have the running server reload it.
func bundleCommand() *cli.Command {
	configFlag := &cli.PathFlag{Name: "config", Value: content.DefaultConfigPath, Usage: "the content service's configuration file"}
	pidFlag := &cli.PathFlag{Name: "pid-file", Usage: "pid file of the running server (default: the file's pidFile, else " + content.DefaultPIDFile + ")"}
	keyringFlag := &cli.PathFlag{Name: "keyring", Usage: "trusted keys (default: the file's keyring)"}
	return &cli.Command{
		Name:  "bundle",
		Usage: "add, remove, list or extend the bundles the content service serves",
		Description: `Edits the isos of the content service's configuration file (atomically,
keeping comments) and sends SIGHUP to the running server (found by its pid
file), which then verifies and serves or withdraws the bundle.

A bundle past its validity (its manifest's expires, or a validity statement
that extends it) is refused by add, and served still once configured:
installed content is never withdrawn because of a date. extend installs a
signed validity statement (builder extend) beside the configured ISO it is
for, so that nodes can join and upgrade to the bundle again.`,
		Subcommands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "verify an ISO, add it to the configuration, reload the server",
				UsageText: "bundle add --iso ferry-1.1.0.iso [--validity ferry-1.1.0.validity] [--config /etc/ferry/serve.yaml] [--json]",
				Flags: []cli.Flag{&cli.PathFlag{Name: "iso", Required: true, Usage: "the bundle ISO"},
					&cli.PathFlag{Name: "validity", Usage: "a signed validity statement extending the bundle (builder extend; default: the .validity file beside the ISO, if any); kept beside the ISO"},
					configFlag, keyringFlag, pidFlag, cliutil.JSONFlag},
				Action: runBundleAdd,
			},
			{
				Name:      "extend",
				Usage:     "install a signed validity statement for a configured bundle, reload the server",
				UsageText: "bundle extend --validity ferry-1.1.0.validity [--config /etc/ferry/serve.yaml] [--json]",
				Description: `Checks the statement (signed by a key of the keyring, valid now, for a
configured bundle, not older than the statement already accepted for it),
writes it beside that bundle's ISO and sends SIGHUP to the server.

Example:
   builder extend --iso ferry-1.1.0.iso --until 2028-06-01 --signing-key release.key.asc --output ferry-1.1.0.validity
   installer bundle extend --validity ferry-1.1.0.validity`,
				Flags:  []cli.Flag{&cli.PathFlag{Name: "validity", Required: true, Usage: "the statement (builder extend)"}, configFlag, keyringFlag, pidFlag, cliutil.JSONFlag},
				Action: runBundleExtend,
			},
			{
				Name:      "remove",
				Usage:     "remove a bundle (by version or ISO path) from the configuration, reload the server",
				UsageText: "bundle remove [--config /etc/ferry/serve.yaml] [--json] VERSION|PATH",
				Flags:     []cli.Flag{configFlag, pidFlag, cliutil.JSONFlag},
				Action:    runBundleRemove,
			},
			{
				Name:      "list",
				Usage:     "list the configured bundles (signature and expiry checked, files not hashed)",
				UsageText: "bundle list [--config /etc/ferry/serve.yaml] [--json]",
				Flags:     []cli.Flag{configFlag, keyringFlag, cliutil.JSONFlag},
				Action:    runBundleList,
			},
		},
	}
}

// bundleChange is what add and remove print with --json.
type bundleChange struct {
	Action  string              `json:"action"`
	Config  string              `json:"config"`
	Changed bool                `json:"changed"`
	Bundle  *content.BundleInfo `json:"bundle,omitempty"`
	Removed []string            `json:"removed,omitempty"`
	// Extended is the ISO a validity statement was installed for, and
	// ValidUntil the bundle's new end of validity (extend).
	Extended   string    `json:"extended,omitempty"`
	ValidUntil time.Time `json:"validUntil,omitzero"`
	Signalled  int       `json:"signalledPid,omitempty"`
	Note       string    `json:"note,omitempty"`
}

func loadBundleConfig(c *cli.Context) (*content.Config, error) {
	cfg, err := content.LoadConfig(c.Path("config"))
	if err != nil {
		return nil, cli.Exit(err.Error(), 2)
	}
	return cfg, nil
}

func runBundleAdd(c *cli.Context) error {
	log, cfg, ring, err := bundleSetup(c)
	if err != nil {
		return err
	}
	info, err := content.PrepareImport(c.Context, c.Path("iso"), c.Path("validity"), ring, time.Now())
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	changed, err := content.AddISOToConfig(c.Path("config"), info.Path, info.Version)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	out := bundleChange{Action: "add", Config: c.Path("config"), Changed: changed, Bundle: &info}
	return reportChange(c, log, cfg, out)
}

func runBundleExtend(c *cli.Context) error {
	log, cfg, ring, err := bundleSetup(c)
	if err != nil {
		return err
	}
	data, err := validity.ReadFile(c.Path("validity"))
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	iso, v, changed, err := content.ExtendConfigured(cfg, data, ring, time.Now())
	if err != nil {
		return cli.Exit(fmt.Sprintf("%s: %v", c.Path("validity"), err), 1)
	}
	out := bundleChange{Action: "extend", Config: c.Path("config"), Changed: changed, Extended: iso, ValidUntil: v.Expires}
	return reportChange(c, log, cfg, out)
}

// bundleSetup loads what add and extend need: the logger, the
// configuration and its keyring.
func bundleSetup(c *cli.Context) (*slog.Logger, *content.Config, *signing.Keyring, error) {
	log, err := cliutil.Logger(c)
	if err != nil {
		return nil, nil, nil, err
	}
	cfg, err := loadBundleConfig(c)
	if err != nil {
		return nil, nil, nil, err
	}
	ring, err := configKeyring(c, cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	return log, cfg, ring, nil
}

// configKeyring loads --keyring, else the configuration file's keyring.
func configKeyring(c *cli.Context, cfg *content.Config) (*signing.Keyring, error) {
	keyring := cfg.Path(cfg.Keyring)
	if c.IsSet("keyring") {
		keyring = c.Path("keyring")
	}
	if keyring == "" {
		return nil, cli.Exit("no keyring: set keyring in "+c.Path("config")+" or give --keyring", 2)
	}
	return loadKeyring(keyring)
}

func runBundleRemove(c *cli.Context) error {
	log, err := cliutil.Logger(c)
	if err != nil {
		return err
	}
	if c.Args().Len() != 1 {
		msg := "bundle remove takes one argument: a bundle version or ISO path"
		if c.Args().Len() > 1 && strings.HasPrefix(c.Args().Get(1), "-") {
			msg += " (flags go before it: bundle remove --config F 1.0.0)"
		}
		return cli.Exit(msg, 2)
	}
	cfg, err := loadBundleConfig(c)
	if err != nil {
		return err
	}
	removed, err := content.RemoveISOFromConfig(c.Path("config"), c.Args().First())
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	out := bundleChange{Action: "remove", Config: c.Path("config"), Changed: true, Removed: removed}
	return reportChange(c, log, cfg, out)
}

// reportChange signals the server and prints the outcome.
func reportChange(c *cli.Context, log interface{ Info(string, ...any) }, cfg *content.Config, out bundleChange) error {
	pidFile := cfg.PIDPath()
	if c.IsSet("pid-file") {
		pidFile = c.Path("pid-file")
	}
	if out.Changed {
		pid, err := content.SignalReload(pidFile)
		switch {
		case errors.Is(err, content.ErrNoServer):
			out.Note = fmt.Sprintf("%v; the change applies when it starts (installer serve --config %s, or systemctl start ferry-content)", err, out.Config)
		case err != nil:
			return cli.Exit(fmt.Sprintf("%s changed, but: %v", out.Config, err), 1)
		default:
			out.Signalled = pid
			log.Info("content service signalled to reload", "pid", pid)
		}
	}
	if c.Bool("json") {
		return cliutil.PrintJSON(c, out)
	}
	w := c.App.Writer
	switch {
	case out.Action == "add" && !out.Changed:
		fmt.Fprintf(w, "%s %s (%s) is already in %s\n", out.Bundle.Name, out.Bundle.Version, out.Bundle.Path, out.Config)
	case out.Action == "add":
		fmt.Fprintf(w, "added   %s %s (%s) to %s, valid until %s\n", out.Bundle.Name, out.Bundle.Version, out.Bundle.Path, out.Config, out.Bundle.ValidUntil.Format(time.RFC3339))
	case out.Action == "extend" && !out.Changed:
		fmt.Fprintf(w, "%s already has this validity statement (valid until %s)\n", out.Extended, out.ValidUntil.Format(time.RFC3339))
	case out.Action == "extend":
		fmt.Fprintf(w, "extended %s: valid until %s\n", out.Extended, out.ValidUntil.Format(time.RFC3339))
	default:
		for _, r := range out.Removed {
			fmt.Fprintf(w, "removed %s from %s\n", r, out.Config)
		}
	}
	if out.Signalled != 0 {
		fmt.Fprintf(w, "content service (pid %d) is reloading\n", out.Signalled)
	} else if out.Note != "" {
		fmt.Fprintln(w, out.Note)
	}
	return nil
}

func runBundleList(c *cli.Context) error {
	cfg, err := loadBundleConfig(c)
	if err != nil {
		return err
	}
	keyring := cfg.Path(cfg.Keyring)
	if c.IsSet("keyring") {
		keyring = c.Path("keyring")
	}
	var list []content.ConfiguredBundle
	if keyring == "" {
		list = content.ListConfigured(cfg, nil, time.Now())
	} else {
		ring, err := loadKeyring(keyring)
		if err != nil {
			return err
		}
		list = content.ListConfigured(cfg, ring, time.Now())
	}
	if c.Bool("json") {
		return cliutil.PrintJSON(c, list)
	}
	w := c.App.Writer
	if len(list) == 0 {
		fmt.Fprintf(w, "no bundles in %s\n", c.Path("config"))
	}
	for _, b := range list {
		state := "ok"
		switch {
		case !b.Trusted:
			state = "PROBLEM: " + b.Problem
		case b.Expired:
			state = "EXPIRED (served; extend it to join or upgrade)"
		}
		until := b.ValidUntil
		if until.IsZero() {
			until = b.Expires
		}
		fmt.Fprintf(w, "%-10s %-12s %s  valid until %s  %s\n", b.Version, b.Name, b.Path, until.Format(time.DateOnly), state)
		for _, warn := range b.Warnings {
			fmt.Fprintf(w, "           warning: %s\n", warn)
		}
	}
	return nil
}

func loadKeyring(path string) (*signing.Keyring, error) {
	ring, err := signing.LoadKeyringFile(path)
	if err != nil {
		return nil, cli.Exit(err.Error(), 2)
	}
	return ring, nil
}
