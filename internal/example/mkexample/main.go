// Command mkexample writes the example bundle input (key, RPMs, OCI layout,
// bundle.yaml) into a directory: `go run ./internal/example/mkexample DIR`.
package main

import (
	"fmt"
	"os"

	"github.com/ferry-k8s/ferry/internal/example"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: mkexample DIR")
		os.Exit(2)
	}
	if err := os.RemoveAll(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "mkexample:", err)
		os.Exit(1)
	}
	ex, err := example.Write(os.Args[1], example.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkexample:", err)
		os.Exit(1)
	}
	fmt.Printf("spec        %s\nsigning key %s\npublic key  %s\n", ex.Spec, ex.SecretKey, ex.PublicKey)
}
