package pki

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/ferry-k8s/ferry/internal/fileutil"
)

// MinPassphraseLength is the shortest passphrase a root key is encrypted
// with (reading keys made elsewhere accepts any).
const MinPassphraseLength = 12

// maxPassphraseFile bounds a passphrase file.
const maxPassphraseFile = 4096

// Passphrase protects a root CA's private key. It prints as [redacted] in
// every fmt verb, so a passphrase in a logged struct or error stays out of
// the log. It comes from a file (ReadPassphraseFile) or an environment
// variable (PassphraseFromEnv), never from the command line, where any
// user could read it in /proc.
type Passphrase []byte

// Format prints [redacted] whatever the verb.
func (Passphrase) Format(f fmt.State, _ rune) { io.WriteString(f, "[redacted]") }

// String is [redacted].
func (Passphrase) String() string { return "[redacted]" }

func (p Passphrase) check() error {
	if len(p) < MinPassphraseLength {
		return fmt.Errorf("passphrase too short: at least %d characters", MinPassphraseLength)
	}
	return nil
}

// ReadPassphraseFile reads a passphrase from the first line of file (a
// trailing newline is not part of it).
func ReadPassphraseFile(file string) (Passphrase, error) {
	data, err := fileutil.ReadFile(file, maxPassphraseFile)
	if err != nil {
		return nil, fmt.Errorf("reading passphrase: %w", err)
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) == 0 {
		return nil, fmt.Errorf("reading passphrase %s: the first line is empty", file)
	}
	return Passphrase(line), nil
}

// PassphraseFromEnv reads a passphrase from the environment variable name.
func PassphraseFromEnv(name string) (Passphrase, error) {
	v, ok := os.LookupEnv(name)
	if !ok {
		return nil, fmt.Errorf("reading passphrase: environment variable %s is not set", name)
	}
	if v == "" {
		return nil, errors.New("reading passphrase: environment variable " + name + " is empty")
	}
	return Passphrase(v), nil
}
