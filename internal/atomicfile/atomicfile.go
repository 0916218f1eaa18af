package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Write creates or replaces path with what fill writes into the temporary
// file (which fill may also chown). On any error path is left as it was.
func Write(path string, mode os.FileMode, fill func(f *os.File) error) error {
	_, err := write(filepath.Dir(path), "."+filepath.Base(path)+".tmp-", mode, func(f *os.File) (string, error) {
		return filepath.Base(path), fill(f)
	})
	return err
}

// WriteNamed creates a file in dir whose name is known only once it is
// written (a blob named by its digest): fill writes the temporary file and
// returns the name, and the file is then renamed to dir/name, replacing
// any file of that name. It returns the path written. On any error
// nothing is left behind.
func WriteNamed(dir string, mode os.FileMode, fill func(f *os.File) (name string, err error)) (string, error) {
	return write(dir, ".tmp-", mode, fill)
}

func write(dir, pattern string, mode os.FileMode, fill func(f *os.File) (string, error)) (path string, err error) {
	tmp, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", fmt.Errorf("writing in %s: %w", dir, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	name, err := fill(tmp)
	if err != nil {
		return "", err
	}
	path = filepath.Join(dir, name)
	if name == "" || filepath.Base(name) != name {
		return "", fmt.Errorf("writing in %s: %q is not a file name", dir, name)
	}
	if err = tmp.Chmod(mode); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync() // the rename itself survives a crash
		d.Close()
	}
	return path, nil
}

// WriteFile is Write for data in memory.
func WriteFile(path string, data []byte, mode os.FileMode) error {
	return Write(path, mode, func(f *os.File) error {
		if _, err := f.Write(data); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		return nil
	})
}

// WriteLine makes the file at path hold line (and a newline), creating
// its directory: a one-line record such as a node's target bundle. A file
// that holds line already (surrounding space aside) is not rewritten.
func WriteLine(path, line string, mode os.FileMode) error {
	if data, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(data)) == line {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return WriteFile(path, []byte(line+"\n"), mode)
}
