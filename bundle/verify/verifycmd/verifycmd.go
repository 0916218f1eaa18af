package verifycmd

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ferry-k8s/ferry/internal/cliutil"

	"github.com/urfave/cli/v2"

	"github.com/ferry-k8s/ferry/bundle/verify"
	"github.com/ferry-k8s/ferry/internal/progress"
	"github.com/ferry-k8s/ferry/signing"
)

// Command is `verify`, shared by builder and installer.
func Command() *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "check a bundle ISO: signature, validity, and every file's size and sha256",
		UsageText: "verify --iso ferry-1.0.0.iso --keyring ferry.pub.asc [--validity ferry-1.0.0.validity] [--at 2027-06-01T00:00:00Z] [--json]",
		Description: `Reads the ISO in user space (no mount, no root), checks manifest.json.asc
against the keyring, refuses an expired bundle or key, then checks that every
file on the ISO is listed in the manifest and that each listed file has its
size and sha256. Exits 0 only when everything holds; otherwise names each
failing file and exits 1.

The keyring is the publisher's public key, obtained out of band (never the
copy on the ISO itself). Several armored keys may be concatenated in one file.

Validity: a bundle is valid from its build to its manifest's expires (365
days by default), or to the expiry of a signed validity statement that
extends it (builder extend; --validity, or the .validity file beside the
ISO). An expired bundle fails here, as it would for a new import, join or
upgrade; once installed on a cluster it is served still. A warning is
printed when fewer than 30 days are left. --at checks at another time.

Examples:
   verify --iso ferry-1.0.0.iso --keyring ferry-release.pub.asc
   verify --iso ferry-1.0.0.iso --keyring ferry-release.pub.asc --validity ferry-1.0.0.validity --at 2028-01-01T00:00:00Z`,
		Flags: []cli.Flag{
			&cli.PathFlag{Name: "iso", Usage: "the bundle ISO to check", Required: true},
			&cli.PathFlag{Name: "keyring", Usage: "trusted OpenPGP public key(s), armored or binary", Required: true},
			&cli.PathFlag{Name: "validity", Usage: "a signed validity statement extending the bundle (default: the .validity file beside the ISO, if any)"},
			&cli.TimestampFlag{Name: "at", Layout: time.RFC3339, Usage: "check validity (and key expiry) at this time instead of now (RFC 3339)"},
			cliutil.JSONFlag,
		},
		Action: runVerify,
	}
}

func runVerify(c *cli.Context) error {
	log, err := cliutil.Logger(c)
	if err != nil {
		return err
	}
	ring, err := signing.LoadKeyringFile(c.Path("keyring"))
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	opts := verify.Options{ISO: c.Path("iso"), Keyring: ring, ValidityFile: c.Path("validity")}
	if t := c.Timestamp("at"); t != nil {
		opts.Now = *t
	}
	var bar *progress.Bar
	if w := cliutil.ProgressWriter(c); w != nil {
		bar = progress.New(w, true, "verifying", 0)
		var total atomic.Int64
		opts.TotalBytes = func(n int64) { total.Store(n) }
		var done atomic.Int64
		opts.Progress = func(n int64) { bar.Set(done.Add(n), total.Load()) }
	}
	start := time.Now()
	rep, verr := verify.Verify(c.Context, opts)
	if bar != nil {
		bar.Finish()
	}
	log.Info("verify finished", slog.String("iso", opts.ISO), slog.Bool("ok", rep.OK), slog.Int("problems", len(rep.Problems)), slog.Duration("took", time.Since(start)))
	for _, w := range rep.Warnings {
		log.Warn("bundle validity", slog.String("iso", opts.ISO), slog.String("warning", w))
	}
	if c.Bool("json") {
		if err := cliutil.PrintJSON(c, rep); err != nil {
			return err
		}
	} else {
		printReport(c.App.Writer, rep, verr)
	}
	if verr != nil {
		return cli.Exit("", 1)
	}
	return nil
}

func printReport(w io.Writer, rep *verify.Report, err error) {
	if rep.OK {
		fmt.Fprintf(w, "OK      %s %s", rep.Name, rep.Version)
		if rep.KubernetesVersion != "" {
			fmt.Fprintf(w, " (Kubernetes %s)", rep.KubernetesVersion)
		}
		fmt.Fprintf(w, "\nsigned  %s %q on %s\n", rep.Signer.Fingerprint, rep.Signer.Identity, rep.Signer.Created.Format(time.RFC3339))
		fmt.Fprintf(w, "checked %d files, %s; expires %s\n", rep.Files, progress.Bytes(rep.Bytes), rep.Expires.Format(time.RFC3339))
		if e := rep.Extension; e != nil {
			fmt.Fprintf(w, "extended until %s by %s (issued %s, signed by %s)\n", e.Expires.Format(time.RFC3339), e.Path, e.Issued.Format(time.RFC3339), e.Signer.Fingerprint)
		}
		for _, warn := range rep.Warnings {
			fmt.Fprintf(w, "WARNING %s\n", warn)
		}
		return
	}
	fmt.Fprintf(w, "FAILED  %s\n", rep.ISO)
	if len(rep.Problems) == 0 && err != nil {
		fmt.Fprintf(w, "  %v\n", err)
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "  %s: %s\n", p.Path, strings.TrimSpace(p.Reason))
	}
}
