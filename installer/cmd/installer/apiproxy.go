package main

import (
	"github.com/urfave/cli/v2"

	"github.com/ferry-k8s/ferry/installer/apiproxy"
	"github.com/ferry-k8s/ferry/internal/cliutil"
)

func apiproxyCommand() *cli.Command {
	return &cli.Command{
		Name:      "apiproxy",
		Usage:     "the node-local TCP proxy to the API servers (R32; a systemd unit, Type=notify)",
		UsageText: "installer apiproxy [--config " + apiproxy.DefaultConfigPath + "] [--drain-timeout 10s]",
		Description: `Listens on 127.0.0.1:6444 (by default) and forwards every connection,
still encrypted, to a healthy API server: the kubelet, kube-proxy and the node
daemon verify the API server's certificate themselves (its name: the
control-plane endpoint's, given with tls-server-name or through /etc/hosts).
Each API server's /readyz is checked over HTTPS against the cluster CA; a
server that fails is skipped, a failed connection is retried on the next one.
Reports READY to systemd once an API server is healthy; SIGTERM closes the
listener and lets connections drain.

Configuration file:
   apiVersion: ferry.dev/v1alpha1
   kind: APIServerProxy
   listen: 127.0.0.1:6444
   backends: [cp1.lab.example.com:6443, cp2.lab.example.com:6443]
   healthCheck:
     caFile: /etc/kubernetes/pki/ca.crt
     serverName: api.lab.example.com
   metrics: {listen: "127.0.0.1:9444", tlsCert: /etc/ferry/tls/apiproxy.crt, tlsKey: /etc/ferry/tls/apiproxy.key}

Run by ferry-apiproxy.service.`,
		Flags: []cli.Flag{
			&cli.PathFlag{Name: "config", Value: apiproxy.DefaultConfigPath, Usage: "configuration file (kind: APIServerProxy)"},
			&cli.DurationFlag{Name: "drain-timeout", Value: apiproxy.DefaultDrainTimeout, Usage: "on SIGTERM, how long connections in flight (watches) may go on before they are closed"},
		},
		Action: func(c *cli.Context) error {
			log, err := cliutil.Logger(c)
			if err != nil {
				return err
			}
			if c.Args().Len() > 0 {
				return cli.Exit("apiproxy takes no arguments", 2)
			}
			cfg, err := apiproxy.LoadConfig(c.Path("config"))
			if err != nil {
				return cli.Exit(err.Error(), 2)
			}
			p, err := apiproxy.New(*cfg, apiproxy.Options{Log: log, DrainTimeout: c.Duration("drain-timeout")})
			if err != nil {
				return cli.Exit(err.Error(), 2)
			}
			if err := p.Run(c.Context); err != nil {
				return cli.Exit(err.Error(), 1)
			}
			return nil
		},
	}
}
