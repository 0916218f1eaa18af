// Command installer runs on air-gapped nodes: it verifies Ferry bundle ISOs
// and (in later releases) serves them and converges the cluster.
package main

import (
	"github.com/urfave/cli/v2"

	"github.com/ferry-k8s/ferry/internal/cliutil"
	"github.com/ferry-k8s/ferry/internal/version"
)

func main() {
	cliutil.Main(app())
}

func app() *cli.App {
	return &cli.App{
		Name:    "installer",
		Usage:   "verify Ferry bundles and install air-gapped Kubernetes from them",
		Version: version.Version,
		Description: `Runs on the nodes, offline. Nothing of a bundle is used before its signed
manifest and every file's digest have been checked.

Example:
   installer verify --iso /media/ferry-1.0.0.iso --keyring /etc/ferry/release.pub.asc`,
		Flags:    cliutil.GlobalFlags,
		Commands: []*cli.Command{cliutil.VerifyCommand()},
	}
}
