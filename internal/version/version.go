// Package version holds the version of Ferry's binaries, stamped at build
// time with -ldflags "-X github.com/ferry-k8s/ferry/internal/version.Version=…".
package version

// Version of this build; "dev" when not stamped.
var Version = "dev"
