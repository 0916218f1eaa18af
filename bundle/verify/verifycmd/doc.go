// Package verifycmd is the `verify` command of both programs (`builder
// verify` and `installer verify`: the same check), wiring its flags into
// bundle/verify's Options. It lives beside bundle/verify so that
// internal/cliutil, which every command uses, does not pull the verifier in.
package verifycmd
