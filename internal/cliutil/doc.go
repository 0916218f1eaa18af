// Package cliutil holds what Ferry's two command-line programs share: flag
// definitions for logging, progress and JSON output, and Main. The verify
// command both share is bundle/verify/verifycmd. Commands only wire flags
// into the options structs of the packages that do the work.
package cliutil
