// Command builder assembles a Ferry bundle: images, RPM repositories and a
// signed manifest in one reproducible ISO. See `builder --help`.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ferry-k8s/ferry/builder"
	"github.com/ferry-k8s/ferry/builder/distro"
	"github.com/ferry-k8s/ferry/bundle/validity"
	"github.com/ferry-k8s/ferry/bundle/verify/verifycmd"
	"github.com/ferry-k8s/ferry/internal/cliutil"
	"github.com/ferry-k8s/ferry/internal/progress"
	"github.com/ferry-k8s/ferry/internal/version"
	"github.com/ferry-k8s/ferry/signing"
)

func main() {
	cliutil.Main(app())
}

func app() *cli.App {
	return &cli.App{
		Name:    "builder",
		Usage:   "build a signed, reproducible Ferry bundle ISO for air-gapped Kubernetes",
		Version: version.Version,
		Description: `builder turns a bundle spec (YAML) into one ISO image holding digest-pinned
OCI images, signed yum repositories and a signed manifest that anyone can
verify offline with 'builder verify', 'installer verify' or plain gpg and
sha256sum.

Quick start:
   builder key generate --name "Release" --email release@example.com \
       --output release.key.asc --public-output release.pub.asc
   SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) \
       builder build --spec bundle.yaml --output ferry-1.0.0.iso --signing-key release.key.asc
   builder verify --iso ferry-1.0.0.iso --keyring release.pub.asc`,
		Flags:                cliutil.GlobalFlags,
		EnableBashCompletion: true,
		Commands: []*cli.Command{
			buildCommand(),
			lockCommand(),
			phaseCommand(),
			verifycmd.Command(),
			extendCommand(),
			keyCommand(),
		},
	}
}

func buildFlags() []cli.Flag {
	return []cli.Flag{
		&cli.PathFlag{Name: "spec", Usage: "bundle spec (kind: Bundle); relative paths in it resolve against its directory"},
		&cli.BoolFlag{Name: "default", Usage: "build the embedded default spec instead of --spec: Kubernetes, etcd, CoreDNS, containerd, runc, CNI plugins, crictl built from source (needs the Go toolchain and its module proxy)"},
		&cli.StringFlag{Name: "kubernetes-version", Usage: "with --default: the Kubernetes version (" + strings.Join(distro.SupportedKubernetesVersions(), ", ") + ", or another patch of these minors; default the newest)"},
		&cli.StringFlag{Name: "bundle-version", Usage: "with --default: the bundle's version (default: the Kubernetes version)"},
		&cli.PathFlag{Name: "output", Aliases: []string{"o"}, Usage: "ISO to write; appears only when complete and verified"},
		&cli.PathFlag{Name: "signing-key", Usage: "OpenPGP secret key (armored or binary) that signs repodata, SHA256SUMS and the manifest", EnvVars: []string{"FERRY_SIGNING_KEY"}},
		&cli.PathFlag{Name: "passphrase-file", Usage: "file whose first line unlocks the signing key", EnvVars: []string{"FERRY_PASSPHRASE_FILE"}},
		&cli.StringFlag{Name: "source-date-epoch", Usage: "the bundle's timestamp in Unix seconds; the same inputs and epoch give a byte-identical ISO", EnvVars: []string{"SOURCE_DATE_EPOCH"}},
		&cli.PathFlag{Name: "installer", Usage: "installer binary to place at /installer on the ISO"},
		&cli.PathFlag{Name: "workdir", Usage: "keep the content tree here (default: a temporary directory next to the output, removed after)"},
		&cli.BoolFlag{Name: "keep-workdir", Usage: "do not remove the temporary work directory"},
		&cli.IntFlag{Name: "workers", Usage: "parallel hashing and blob copies (default: one per CPU)"},
		&cli.PathFlag{Name: "lock", Usage: "lock file pinning registry images named by tag (default: bundle.lock next to the spec, if present)"},
		cacheDirFlag(),
		cliutil.JSONFlag,
	}
}

func registryFlags() []cli.Flag {
	return []cli.Flag{
		&cli.PathFlag{Name: "cert-dir", Usage: "directory of CA certificates (*.crt) and client certificates for registries"},
		&cli.PathFlag{Name: "authfile", Usage: "registry credentials (containers-auth.json)", EnvVars: []string{"REGISTRY_AUTH_FILE"}},
	}
}

func registryOptions(c *cli.Context) builder.RegistryOptions {
	return builder.RegistryOptions{CertDir: c.Path("cert-dir"), AuthFile: c.Path("authfile")}
}

func lockCommand() *cli.Command {
	return &cli.Command{
		Name:      "lock",
		Usage:     "pin the registry images a spec names by tag, and the packages it names from yum repositories",
		UsageText: "builder lock --spec bundle.yaml [--output bundle.lock] [--cache-dir DIR] [--cert-dir DIR] [--authfile F]",
		Description: `Resolves every docker:// image of the spec that has no digest to the manifest
digest its tag points to now (and, for an index, the instances of the kept
platforms), resolves the packages named in spec.packages[].names with their
dependencies from spec.repositories (exact files, sha256 from the signed
repository metadata), and writes the lock file. 'builder build' then copies
those digests and downloads those files, whatever the tags point to and the
repositories publish later; it refuses a lock made from another version of
the spec.`,
		Flags: append([]cli.Flag{
			&cli.PathFlag{Name: "spec", Usage: "bundle spec (kind: Bundle)", Required: true},
			&cli.PathFlag{Name: "output", Aliases: []string{"o"}, Usage: "lock file to write (default: bundle.lock next to the spec)"},
			cacheDirFlag(),
			cliutil.JSONFlag,
		}, registryFlags()...),
		Action: func(c *cli.Context) error {
			log, err := cliutil.Logger(c)
			if err != nil {
				return err
			}
			res, err := builder.Lock(c.Context, builder.LockOptions{SpecPath: c.Path("spec"), Output: c.Path("output"), Registry: registryOptions(c), Log: log, CacheDir: c.Path("cache-dir")})
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return cliutil.PrintJSON(c, res)
			}
			for _, im := range res.Lock.Images {
				fmt.Fprintf(c.App.Writer, "locked  %s %s\n", im.Name, im.Digest)
			}
			for _, p := range res.Lock.Packages {
				fmt.Fprintf(c.App.Writer, "locked  %s/%s from %s\n", p.Repo, p.NEVRA(), p.From)
			}
			fmt.Fprintf(c.App.Writer, "wrote   %s (%d images, %d packages)\n", res.Output, len(res.Lock.Images), len(res.Lock.Packages))
			return nil
		},
	}
}

func buildCommand() *cli.Command {
	return &cli.Command{
		Name:      "build",
		Usage:     "build a bundle ISO from a spec",
		UsageText: "builder build --spec bundle.yaml --output ferry-1.0.0.iso --signing-key key.asc [--passphrase-file F]",
		Description: `Runs the phases ` + strings.Join(builder.PhaseNames(), " → ") + `.

A spec:
   apiVersion: ferry.dev/v1alpha1
   kind: Bundle
   metadata:
     name: example
     version: 1.0.0
   spec:
     expiresAfter: 365d          # bundle validity (default 365d)
     images:
       - source: oci:images/layout:app   # oci:, oci-archive:, docker-archive:, dir:, docker://…@sha256:… (or a tag, with 'builder lock')
         name: registry.example.com/app:1.0   # default: derived from the source
     packages:
       - directory: rpms/        # every *.rpm in it
         repo: base              # /packages/base/ on the ISO

Set SOURCE_DATE_EPOCH for a reproducible ISO. On failure nothing is left at
--output. --skip-phases and 'builder phase' run parts of the workflow.`,
		Flags: append(append(buildFlags(), registryFlags()...), &cli.StringSliceFlag{Name: "skip-phases", Usage: "phases to skip (" + strings.Join(builder.PhaseNames(), ", ") + ")"}),
		Action: func(c *cli.Context) error {
			return runBuild(c, nil, c.StringSlice("skip-phases"))
		},
	}
}

func phaseCommand() *cli.Command {
	cmd := &cli.Command{
		Name:      "phase",
		Usage:     "run one phase of the build against a kept work directory",
		UsageText: "builder phase NAME --spec bundle.yaml --workdir DIR [flags]",
		Description: `Each phase reads what the earlier ones left in --workdir and writes its own
part, as kubeadm's 'init phase'. For example, re-sign and rewrite the ISO of a
kept tree:
   builder phase manifest --spec bundle.yaml --workdir w --signing-key k.asc
   builder phase sign     --spec bundle.yaml --workdir w --signing-key k.asc
   builder phase iso      --spec bundle.yaml --workdir w --output out.iso`,
	}
	for _, p := range builder.Phases {
		cmd.Subcommands = append(cmd.Subcommands, &cli.Command{
			Name:  p.Name,
			Usage: p.Short,
			Flags: append(buildFlags(), registryFlags()...),
			Action: func(c *cli.Context) error {
				if c.Path("workdir") == "" {
					return cli.Exit("builder phase "+p.Name+": --workdir is required (phases share state through it)", 2)
				}
				return runBuild(c, []string{p.Name}, nil)
			},
		})
	}
	return cmd
}

func runBuild(c *cli.Context, only, skip []string) error {
	log, err := cliutil.Logger(c)
	if err != nil {
		return err
	}
	opts := builder.Options{
		SpecPath:          c.Path("spec"),
		Output:            c.Path("output"),
		InstallerBinary:   c.Path("installer"),
		WorkDir:           c.Path("workdir"),
		KeepWorkDir:       c.Bool("keep-workdir"),
		Phases:            only,
		SkipPhases:        skip,
		Progress:          cliutil.ProgressWriter(c),
		Log:               log,
		Workers:           c.Int("workers"),
		Lock:              c.Path("lock"),
		Registry:          registryOptions(c),
		CacheDir:          c.Path("cache-dir"),
		Default:           c.Bool("default"),
		KubernetesVersion: c.String("kubernetes-version"),
		BundleVersion:     c.String("bundle-version"),
	}
	if (opts.SpecPath == "") == !opts.Default {
		return cli.Exit("give a spec (--spec bundle.yaml) or --default", 2)
	}
	if !opts.Default && (opts.KubernetesVersion != "" || opts.BundleVersion != "") {
		return cli.Exit("--kubernetes-version and --bundle-version go with --default (a spec file names its own)", 2)
	}
	if s := c.String("source-date-epoch"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil || sec < 0 {
			return cli.Exit(fmt.Sprintf("--source-date-epoch / SOURCE_DATE_EPOCH: %q is not a number of seconds", s), 2)
		}
		opts.SourceDateEpoch = time.Unix(sec, 0).UTC()
	}
	if key := c.Path("signing-key"); key != "" {
		if opts.Signer, err = loadSigner(c); err != nil {
			return err
		}
	}
	res, err := builder.Build(c.Context, opts)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return cliutil.PrintJSON(c, res)
	}
	if res.Output != "" && res.SHA256 != "" {
		fmt.Fprintf(c.App.Writer, "wrote   %s (%s)\nsha256  %s\n", res.Output, progress.Bytes(res.Size), res.SHA256)
	}
	if res.Signer != "" {
		fmt.Fprintf(c.App.Writer, "bundle  %s %s: %d images, %d repositories, %d files; expires %s\nsigned  %s\n",
			res.Name, res.Version, len(res.Images), len(res.Repositories), res.Files, res.Expires.Format(time.RFC3339), res.Signer)
	}
	if res.WorkDir != "" {
		fmt.Fprintf(c.App.Writer, "workdir %s\n", res.WorkDir)
	}
	return nil
}

// loadSigner loads --signing-key, unlocked with --passphrase-file.
func loadSigner(c *cli.Context) (*signing.Signer, error) {
	var pass []byte
	if pf := c.Path("passphrase-file"); pf != "" {
		var err error
		if pass, err = signing.ReadPassphraseFile(pf); err != nil {
			return nil, cli.Exit(err.Error(), 2)
		}
	}
	s, err := signing.LoadSignerFile(c.Path("signing-key"), pass)
	if err != nil {
		if errors.Is(err, signing.ErrPassphrase) {
			return nil, cli.Exit(err.Error()+": give --passphrase-file", 2)
		}
		return nil, cli.Exit(err.Error(), 2)
	}
	return s, nil
}

func extendCommand() *cli.Command {
	return &cli.Command{
		Name:      "extend",
		Usage:     "sign a validity statement that extends a bundle's expiry, without rebuilding its ISO",
		UsageText: "builder extend --iso ferry-1.0.0.iso --until 2028-06-01 --signing-key release.key.asc [--output ferry-1.0.0.validity] [--keyring old.pub.asc]",
		Description: `A bundle is valid for spec.expiresAfter (365 days) from its build. Past that,
installers refuse to newly import, join or upgrade to it (freeze protection;
a cluster that runs it keeps being served). A site that keeps its DVD in a
vault gets a small signed statement instead of a new image: it binds the
sha256 of the ISO's signed manifest to a new expiry, issued now. The
statement is a cleartext-signed OpenPGP message: 'gpg --verify' checks it.

Installers take it as --validity FILE, or as the .validity file beside the
ISO; on a running cluster 'installer bundle extend --validity FILE' hands it
to the content service. They refuse a statement for another bundle, one
signed by a key they do not trust or that has expired, and one issued before
a statement they already accepted for the bundle (no rollback).

The manifest's signature is checked first, with the signing key's own
public half, or with --keyring when another key built the ISO.

Example:
   builder extend --iso ferry-1.0.0.iso --until 2028-06-01 --signing-key release.key.asc
   builder verify --iso ferry-1.0.0.iso --keyring release.pub.asc   # finds ferry-1.0.0.validity beside it`,
		Flags: []cli.Flag{
			&cli.PathFlag{Name: "iso", Required: true, Usage: "the bundle ISO to extend"},
			&cli.StringFlag{Name: "until", Required: true, Usage: "the new end of validity: a date (2028-06-01, midnight UTC) or an RFC 3339 time"},
			&cli.PathFlag{Name: "signing-key", Required: true, Usage: "OpenPGP secret key that signs the statement (its public key must be in the nodes' keyring)", EnvVars: []string{"FERRY_SIGNING_KEY"}},
			&cli.PathFlag{Name: "passphrase-file", Usage: "file whose first line unlocks the signing key", EnvVars: []string{"FERRY_PASSPHRASE_FILE"}},
			&cli.PathFlag{Name: "keyring", Usage: "public key(s) the ISO's manifest is signed by (default: the signing key's)"},
			&cli.PathFlag{Name: "output", Aliases: []string{"o"}, Usage: "the statement to write (default: the ISO's path with .validity)"},
			cliutil.JSONFlag,
		},
		Action: runExtend,
	}
}

func runExtend(c *cli.Context) error {
	until, err := parseUntil(c.String("until"))
	if err != nil {
		return cli.Exit("--until: "+err.Error(), 2)
	}
	signer, err := loadSigner(c)
	if err != nil {
		return err
	}
	o := builder.ExtendOptions{ISO: c.Path("iso"), Until: until, Signer: signer, Output: c.Path("output")}
	if k := c.Path("keyring"); k != "" {
		if o.Keyring, err = signing.LoadKeyringFile(k); err != nil {
			return cli.Exit(err.Error(), 2)
		}
	}
	st, out, err := builder.Extend(o)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	if c.Bool("json") {
		return cliutil.PrintJSON(c, struct {
			Output    string              `json:"output"`
			Statement *validity.Statement `json:"statement"`
		}{out, st})
	}
	fmt.Fprintf(c.App.Writer, "wrote %s: bundle %s %s valid until %s (issued %s, signed by %s)\n",
		out, st.Bundle.Name, st.Bundle.Version, st.Expires.Format(time.RFC3339), st.Issued.Format(time.RFC3339), signer.Fingerprint())
	return nil
}

// parseUntil reads a date (midnight UTC) or an RFC 3339 time.
func parseUntil(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a date (2028-06-01) nor an RFC 3339 time", s)
	}
	return t.UTC(), nil
}

func keyCommand() *cli.Command {
	return &cli.Command{
		Name:  "key",
		Usage: "manage bundle signing keys",
		Subcommands: []*cli.Command{{
			Name:      "generate",
			Usage:     "make a new Ed25519 OpenPGP signing key",
			UsageText: "builder key generate --name NAME --email EMAIL --output key.asc --public-output pub.asc [--expires 730d] [--passphrase-file F]",
			Description: `Writes the secret key (mode 0600) and its public half. Keep the secret key
off the build machine when you can (gpg on a smart card works as well: export
a signing subkey). Give the public key to admins out of band: it is the
keyring that 'installer verify' trusts.`,
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "name", Required: true, Usage: "user ID name"},
				&cli.StringFlag{Name: "email", Required: true, Usage: "user ID email"},
				&cli.PathFlag{Name: "output", Required: true, Usage: "secret key file to create"},
				&cli.PathFlag{Name: "public-output", Required: true, Usage: "public key file to create"},
				&cli.StringFlag{Name: "expires", Value: "730d", Usage: "key lifetime (days as 365d, or a Go duration); 0 for none"},
				&cli.PathFlag{Name: "passphrase-file", Usage: "protect the secret key with the first line of this file"},
			},
			Action: runKeyGenerate,
		}},
	}
}

func runKeyGenerate(c *cli.Context) error {
	life, err := parseLifetime(c.String("expires"))
	if err != nil {
		return cli.Exit("--expires: "+err.Error(), 2)
	}
	o := signing.KeyOptions{Name: c.String("name"), Email: c.String("email"), Lifetime: life}
	if pf := c.Path("passphrase-file"); pf != "" {
		if o.Passphrase, err = signing.ReadPassphraseFile(pf); err != nil {
			return cli.Exit(err.Error(), 2)
		}
	}
	sec, pub, err := signing.GenerateKey(o)
	if err != nil {
		return err
	}
	if err := writeNew(c.Path("output"), sec, 0o600); err != nil {
		return err
	}
	if err := writeNew(c.Path("public-output"), pub, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "secret key %s\npublic key %s\n", c.Path("output"), c.Path("public-output"))
	return nil
}

// writeNew refuses to overwrite: losing a signing key is not undoable.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}

func parseLifetime(s string) (time.Duration, error) {
	if s == "0" || s == "" {
		return 0, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("%q is not a number of days", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// cacheDirFlag is the cache shared by builds: downloads by digest, source
// builds, built RPMs.
func cacheDirFlag() cli.Flag {
	def := os.Getenv("XDG_CACHE_HOME")
	if def == "" {
		if home, err := os.UserHomeDir(); err == nil {
			def = filepath.Join(home, ".cache")
		}
	}
	if def != "" {
		def = filepath.Join(def, "ferry")
	}
	return &cli.PathFlag{Name: "cache-dir", Usage: "cache shared across builds (downloads by digest, source builds, RPMs)", Value: def, EnvVars: []string{"FERRY_CACHE_DIR"}}
}
