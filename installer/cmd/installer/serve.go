package main

import (
	"fmt"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/ferry-k8s/ferry/installer/content"
	"github.com/ferry-k8s/ferry/internal/cliutil"
)

// serveFlags are the flags that mirror the configuration file's fields.
var serveFlags = []cli.Flag{
	&cli.PathFlag{Name: "config", Usage: "configuration file (kind: ContentService); flags override its fields"},
	&cli.StringSliceFlag{Name: "iso", Usage: "a bundle ISO to serve (repeatable; replaces the file's isos)"},
	&cli.StringFlag{Name: "listen", Usage: "host:port to listen on, TLS only (default " + content.DefaultListen + ")"},
	&cli.PathFlag{Name: "tls-cert", Usage: "server certificate (chain), PEM"},
	&cli.PathFlag{Name: "tls-key", Usage: "server certificate's private key, PEM"},
	&cli.PathFlag{Name: "client-ca", Usage: "require client certificates issued by these CAs (PEM)"},
	&cli.PathFlag{Name: "keyring", Usage: "trusted OpenPGP public key(s) bundles must be signed with"},
	&cli.StringFlag{Name: "external-url", Usage: "https URL clients reach this service at, for .repo files (default: from the request's Host)"},
	&cli.PathFlag{Name: "pid-file", Usage: "where to write the pid, for `bundle add|remove` (default " + content.DefaultPIDFile + ")"},
	&cli.DurationFlag{Name: "shutdown-timeout", Usage: "on SIGTERM, how long downloads in flight may finish (default 5m)"},
}

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:      "serve",
		Usage:     "serve verified bundles as an OCI registry and yum repositories over HTTPS",
		UsageText: "serve [--config /etc/ferry/serve.yaml] [--iso A.iso …] [--listen :5443] --tls-cert C --tls-key K [--client-ca CA] --keyring PUB.asc",
		Description: `Verifies every ISO (signature, expiry, every file) and serves it, reading
straight from the ISO and checking every byte again as it is sent:

   /v2/…                              OCI registry, pull only (containerd mirror)
   /repos/<version|latest>/<repo>/…   yum repositories
   /repos/<version|latest>/ferry.repo a dnf .repo file for them
   /keys/ferry.pub.asc                the trusted signing key(s)
   /healthz, /readyz, /metrics

TLS only (1.2 or later); with --client-ca every client must present a
certificate. An ISO that fails verification is refused and logged; the
others serve. SIGHUP re-reads the configuration file and the certificate
and adds or withdraws ISOs without dropping downloads in flight; SIGTERM
lets them finish. Under systemd it reports READY, STATUS and the watchdog.

Configuration file (every field is optional but keyring, tlsCert, tlsKey):
   apiVersion: ferry.dev/v1alpha1
   kind: ContentService
   listen: ":5443"
   isos: [/var/lib/ferry/bundles/ferry-1.0.0.iso]
   keyring: /etc/ferry/release.pub.asc
   tlsCert: /etc/ferry/tls/content.crt
   tlsKey: /etc/ferry/tls/content.key
   clientCA: /etc/ferry/tls/clients.crt
   externalURL: https://repo.cluster.internal:5443
   pidFile: /run/ferry/content.pid
   shutdownTimeout: 5m

Example:
   serve --config /etc/ferry/serve.yaml`,
		Flags:  serveFlags,
		Action: runServe,
	}
}

// flagsConfig collects the flags given on the command line (only those:
// a flag left out keeps the file's value). Paths are made absolute: they
// are relative to the working directory, not to the configuration file.
func flagsConfig(c *cli.Context) content.Config {
	var f content.Config
	set := func(name string, dst *string, isPath bool) {
		if !c.IsSet(name) {
			return
		}
		*dst = c.String(name)
		if isPath {
			*dst = absPath(*dst)
		}
	}
	set("listen", &f.Listen, false)
	set("tls-cert", &f.TLSCert, true)
	set("tls-key", &f.TLSKey, true)
	set("client-ca", &f.ClientCA, true)
	set("keyring", &f.Keyring, true)
	set("external-url", &f.ExternalURL, false)
	set("pid-file", &f.PIDFile, true)
	if c.IsSet("iso") {
		for _, p := range c.StringSlice("iso") {
			f.ISOs = append(f.ISOs, absPath(p))
		}
	}
	if c.IsSet("shutdown-timeout") {
		f.ShutdownTimeout = c.Duration("shutdown-timeout").String()
	}
	return f
}

func runServe(c *cli.Context) error {
	log, err := cliutil.Logger(c)
	if err != nil {
		return err
	}
	if c.Args().Len() > 0 {
		return cli.Exit(fmt.Sprintf("serve takes no arguments (got %q); ISOs are given with --iso", c.Args().Slice()), 2)
	}
	srv, err := content.NewServer(content.ServerOptions{ConfigPath: c.Path("config"), Flags: flagsConfig(c), Log: log})
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	if err := srv.Run(c.Context); err != nil {
		return cli.Exit(err.Error(), 1)
	}
	return nil
}

func absPath(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}
