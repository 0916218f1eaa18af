// Command mkinput writes the benchmark's input: an OCI layout with
// -images images of -layers layers of -layer-mib MiB each (incompressible,
// as real layers are compressed already), -rpms signed RPMs, a signing key
// and a bundle spec. `bench/build.sh` runs it.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ferry-k8s/ferry/images/imagetest"
	"github.com/ferry-k8s/ferry/internal/example"
	"github.com/ferry-k8s/ferry/repo/rpmtest"
	"github.com/ferry-k8s/ferry/signing"
)

func main() {
	dir := flag.String("dir", "_bench/input", "output directory")
	nImages := flag.Int("images", 8, "images")
	nLayers := flag.Int("layers", 4, "layers per image")
	layerMiB := flag.Int("layer-mib", 32, "MiB per layer")
	nRPMs := flag.Int("rpms", 200, "RPMs")
	rpmKiB := flag.Int("rpm-kib", 64, "KiB of content per RPM")
	flag.Parse()
	if err := run(*dir, *nImages, *nLayers, int64(*layerMiB)<<20, *nRPMs, *rpmKiB<<10); err != nil {
		fmt.Fprintln(os.Stderr, "mkinput:", err)
		os.Exit(1)
	}
}

func run(dir string, nImages, nLayers int, layerSize int64, nRPMs, rpmSize int) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "rpms"), 0o755); err != nil {
		return err
	}
	sec, pub, err := signing.GenerateKey(signing.KeyOptions{Name: "Bench", Email: "bench@ferry.invalid", Created: example.Epoch})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "key.asc"), sec, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "pub.asc"), pub, 0o644); err != nil {
		return err
	}
	signer, err := signing.LoadSignerFile(filepath.Join(dir, "key.asc"), nil)
	if err != nil {
		return err
	}
	sign := func(b []byte) ([]byte, error) { return signer.SignBytes(b, example.Epoch, false) }
	if _, err := rpmtest.Many(filepath.Join(dir, "rpms"), nRPMs, rpmSize, sign); err != nil {
		return err
	}
	var spec strings.Builder
	spec.WriteString("apiVersion: ferry.dev/v1alpha1\nkind: Bundle\nmetadata:\n  name: bench\n  version: 1.0.0\nspec:\n  images:\n")
	var refs []string
	for i := range nImages {
		sizes := make([]int64, nLayers)
		for j := range sizes {
			sizes[j] = layerSize
		}
		ref := fmt.Sprintf("img%02d", i)
		if _, err := imagetest.WriteImage(filepath.Join(dir, "layout"), ref, int64(100+i), sizes); err != nil {
			return err
		}
		fmt.Fprintf(&spec, "    - source: oci:layout:%s\n      name: registry.example.com/bench/%s:1.0\n", ref, ref)
		refs = append(refs, ref)
	}
	spec.WriteString("  packages:\n    - directory: rpms/\n")
	if err := os.WriteFile(filepath.Join(dir, "bundle.yaml"), []byte(spec.String()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "refs"), []byte(strings.Join(refs, "\n")+"\n"), 0o644)
}
