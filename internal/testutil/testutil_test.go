package testutil

import (
	"os"
	"testing"
)

// TestGPGHome: a private, short directory, gone when its test ends.
func TestGPGHome(t *testing.T) {
	var home string
	t.Run("use", func(t *testing.T) {
		home = GPGHome(t)
		fi, err := os.Stat(home)
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Fatalf("%s: %v %v", home, fi, err)
		}
		if len(home) > 60 {
			t.Errorf("%s: too long for gpg-agent's socket", home)
		}
	})
	if _, err := os.Stat(home); !os.IsNotExist(err) {
		t.Errorf("%s after the test: %v", home, err)
	}
}

// TestNeed finds a program every test machine has.
func TestNeed(t *testing.T) {
	if p := Need(t, "sh"); p == "" {
		t.Error("no path for sh")
	}
}
