// Package depcheck holds no code: its test keeps the import graph honest
// (as go-containerregistry's depcheck_test.go does). It lists the module's
// packages with `go list -deps` and fails on any import a rule forbids,
// directly or through other packages, naming the path that leads there.
package depcheck
