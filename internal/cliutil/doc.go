// Package cliutil holds what Ferry's two command-line programs share: flag
// definitions for logging and JSON output, and the verify command (the same
// check as `builder verify` and `installer verify`). Commands only wire
// flags into the options structs of the packages that do the work.
package cliutil
