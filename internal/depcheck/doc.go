// Package depcheck holds no code: its test keeps the import graph honest
// (as go-containerregistry's depcheck_test.go does). It lists the module's
// packages with `go list -deps` and fails on any import a rule forbids,
// directly or through other packages, naming the path that leads there;
// and on a standard package a package must not import itself (the pure
// installer/desired: no os, os/exec or random source), where a package it
// uses for types may.
package depcheck
