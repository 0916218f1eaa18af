// Command installer runs on air-gapped nodes: it verifies Ferry bundle ISOs,
// serves them (registry and yum repositories), and installs, joins,
// upgrades and keeps up the cluster's nodes. It only wires flags into the
// options of the packages under installer/ (see installer/doc.go).
package main

import (
	"github.com/urfave/cli/v2"

	"github.com/ferry-k8s/ferry/bundle/verify/verifycmd"
	"github.com/ferry-k8s/ferry/internal/cliutil"
	"github.com/ferry-k8s/ferry/internal/version"
)

func main() {
	cliutil.Main(app())
}

func app() *cli.App {
	return &cli.App{
		Name:    "installer",
		Usage:   "verify and serve Ferry bundles, and install air-gapped Kubernetes from them",
		Version: version.Version,
		Description: `Runs on the nodes, offline. Nothing of a bundle is used before its signed
manifest and every file's digest have been checked.

Examples:
   installer verify --iso /media/ferry-1.0.0.iso --keyring /etc/ferry/release.pub.asc
   installer serve --config /etc/ferry/serve.yaml
   installer bundle add --iso /var/lib/ferry/bundles/ferry-1.1.0.iso`,
		Flags:    cliutil.GlobalFlags,
		Commands: []*cli.Command{verifycmd.Command(), serveCommand(), bundleCommand(), bootstrapCommand(), joinCommand(), tokenCommand(), userCommand(), upgradeCommand(), applyCommand(), apiproxyCommand(), statusCommand(), daemonCommand(), pkiCommand()},
	}
}
