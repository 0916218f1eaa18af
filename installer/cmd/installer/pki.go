package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/ferry-k8s/ferry/installer/bootstrap"
	"github.com/ferry-k8s/ferry/installer/certrenew"
	"github.com/ferry-k8s/ferry/installer/pki"
	"github.com/ferry-k8s/ferry/internal/cliutil"
)

func pkiCommand() *cli.Command {
	return &cli.Command{
		Name:  "pki",
		Usage: "the cluster's certificate authorities (on a control-plane node)",
		Subcommands: []*cli.Command{{
			Name:      "renew-ca",
			Usage:     "renew the intermediate CAs that are due from their offline roots, then apply",
			UsageText: "installer pki renew-ca --root-keys /media/offline/pki --root-passphrase-file F [--force]",
			Description: `Each realm's intermediate CA (kubernetes, etcd, front-proxy, content,
node-daemon) lives one year and is renewed from month 8 on, from its root,
whose key is kept off the node (R25). Bring the root keys back (the copy of
/etc/ferry/pki taken after bootstrap: REALM/root.key), run this on every
control-plane node, and take the keys away again. Each intermediate keeps
its key: leaves, kubeconfigs and join hashes stay valid; only ca.crt
changes, and the apply that follows updates kubeadm's copies. Nothing is
written unless every due realm renews. installer status lists the CAs'
ends of validity.

Example:
  installer pki renew-ca --root-keys /media/offline/pki --root-passphrase-file /media/offline/passphrase`,
			Flags: []cli.Flag{
				&cli.PathFlag{Name: "root-keys", Usage: "directory with each realm's root key as REALM/root.key (default: /etc/ferry/pki, for keys that never left the node)"},
				&cli.PathFlag{Name: "root-passphrase-file", Usage: "file whose first line decrypts the root keys", EnvVars: []string{"FERRY_ROOT_PASSPHRASE_FILE"}},
				&cli.BoolFlag{Name: "force", Usage: "renew every intermediate, due or not"},
				cliutil.JSONFlag,
			},
			Action: func(c *cli.Context) error {
				log, err := cliutil.Logger(c)
				if err != nil {
					return err
				}
				o := certrenew.RenewCAOptions{RootKeys: c.Path("root-keys"), Force: c.Bool("force"), Log: log}
				if f := c.Path("root-passphrase-file"); f != "" {
					if o.Passphrase, err = pki.ReadPassphraseFile(f); err != nil {
						return err
					}
				}
				cas, err := certrenew.RenewCAs(o)
				if err != nil {
					return err
				}
				renewed := 0
				for _, ca := range cas {
					if ca.Renewed {
						renewed++
					}
				}
				if renewed > 0 {
					// kubeadm's copies of the CA certificates follow.
					if _, err := bootstrap.Run(c.Context, bootstrap.Options{Log: log}); err != nil {
						return fmt.Errorf("intermediate CAs renewed; applying them: %w (run installer apply)", err)
					}
				}
				if c.Bool("json") {
					return cliutil.PrintJSON(c, cas)
				}
				for _, ca := range cas {
					what := "not due, valid until " + ca.NotAfter.Format("2006-01-02")
					if ca.Renewed {
						what = fmt.Sprintf("renewed: valid until %s (was %s)", ca.NotAfter.Format("2006-01-02"), ca.Before.Format("2006-01-02"))
					}
					fmt.Fprintf(c.App.Writer, "%-12s %s\n", ca.Realm, what)
				}
				return nil
			},
		}},
	}
}
