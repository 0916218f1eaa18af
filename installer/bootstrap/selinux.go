package bootstrap

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/ferry-k8s/ferry/installer/cluster"
	"github.com/ferry-k8s/ferry/installer/converge"
)

// SELinuxConfig is the host's SELinux configuration file.
const SELinuxConfig = "/etc/selinux/config"

// selinuxState is what observation says of SELinux on the host: nil
// config when the host has none (no SELinux userland: nothing to set).
type selinuxState struct {
	config  []byte
	enabled bool // selinuxenabled: the kernel runs SELinux now
}

func observeSELinux(root string) *selinuxState {
	data, err := os.ReadFile(filepath.Join(root, SELinuxConfig))
	if err != nil {
		return nil
	}
	return &selinuxState{config: data, enabled: exec.Command("selinuxenabled").Run() == nil}
}

// selinuxFile is the host's SELinux configuration with the node's mode
// (R13: spec.nodes[].selinux), the rest of the file as the site has it;
// when the kernel runs SELinux, setenforce follows a change at once. A
// host whose kernel does not run SELinux needs a reboot (and a relabel)
// to enforce: the file is written and the log says so.
func selinuxFile(n *cluster.Node, st *selinuxState, log *slog.Logger) *converge.File {
	if st == nil {
		return nil
	}
	want := "SELINUX=" + string(n.SELinux)
	var out []string
	found := false
	for _, line := range strings.Split(strings.TrimSuffix(string(st.config), "\n"), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "SELINUX=") {
			if found {
				continue // a second SELINUX= line: only the first counts
			}
			found = true
			line = want
		}
		out = append(out, line)
	}
	if !found {
		out = append(out, want)
	}
	content := []byte(strings.Join(out, "\n") + "\n")
	f := &converge.File{Path: SELinuxConfig, Mode: 0o644, Content: content}
	if bytes.Equal(content, st.config) {
		return f
	}
	switch {
	case st.enabled && n.SELinux == cluster.SELinuxEnforcing:
		f.After = []string{"setenforce 1"}
	case st.enabled:
		f.After = []string{"setenforce 0"}
	case n.SELinux != cluster.SELinuxDisabled && log != nil:
		log.Warn(fmt.Sprintf("node %s: SELinux %s is configured but the kernel does not run SELinux: reboot the node (with a relabel) for it to apply", n.Name, n.SELinux))
	}
	return f
}
