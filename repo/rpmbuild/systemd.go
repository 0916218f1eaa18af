package rpmbuild

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"
)

const (
	unitDir     = "/usr/lib/systemd/system/"
	sysusersDir = "/usr/lib/sysusers.d/"
	// heredocEnd ends the sysusers text in %pre; check refuses a line
	// equal to it.
	heredocEnd = "FERRY_SYSUSERS_EOF"
)

func (s Sysusers) path() string { return sysusersDir + s.Name + ".conf" }

// check validates the name and that every line is a comment or a
// sysusers.d entry (u, g, m or r), so that a wrong file (or one that
// would end the here-document in %pre early) fails the build, not the
// install.
func (s Sysusers) check() error {
	if !sysusersRE.MatchString(s.Name) || strings.HasSuffix(s.Name, ".conf") {
		return fmt.Errorf("want a name such as etcd (installed as %sNAME.conf)", sysusersDir)
	}
	if !utf8.Valid(s.Conf) {
		return fmt.Errorf("not valid UTF-8")
	}
	entries := 0
	for i, line := range strings.Split(string(s.Conf), "\n") {
		if err := checkText(line, false); err != nil {
			return fmt.Errorf("line %d: %v", i+1, err)
		}
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		switch fields[0] {
		case "u", "g", "m", "r":
		default:
			return fmt.Errorf("line %d: type %q: want u, g, m or r", i+1, fields[0])
		}
		if len(fields) < 2 {
			return fmt.Errorf("line %d: no name", i+1)
		}
		entries++
	}
	if entries == 0 {
		return fmt.Errorf("no user or group entries")
	}
	return nil
}

// scripts returns the scriptlets: the ones Sysusers and Units need, then
// the package's own.
func (p *Package) scripts() (Scripts, error) {
	for _, s := range []struct{ name, body string }{
		{"pre", p.Scripts.Pre}, {"post", p.Scripts.Post}, {"preun", p.Scripts.PreUn}, {"postun", p.Scripts.PostUn},
	} {
		if err := checkText(s.body, true); err != nil {
			return Scripts{}, p.invalid("%s script: %v", s.name, err)
		}
	}
	var pre, post, preun, postun []string
	for _, s := range p.Sysusers {
		conf := s.Conf
		if !bytes.HasSuffix(conf, []byte("\n")) {
			conf = append(conf[:len(conf):len(conf)], '\n')
		}
		// No redirection to /dev/null: a fresh install root (dnf
		// --installroot) has no /dev, and the failed redirection would
		// skip the command.
		pre = append(pre, fmt.Sprintf(`if sysusers=$(command -v systemd-sysusers); then
    "$sysusers" --replace=%s - <<'%s'
%s%s
else
    echo "%s: systemd-sysusers not found: the users and groups of %s are not created" >&2
fi`, s.path(), heredocEnd, conf, heredocEnd, p.Name, s.path()))
	}
	if len(p.Units) > 0 {
		names := make([]string, len(p.Units))
		for i, u := range p.Units {
			names[i] = u.Name
		}
		// systemctl's messages (if any) go to rpm's log; a failure does
		// not fail the transaction.
		reload := `if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || :
fi`
		post = append(post, reload)
		preun = append(preun, fmt.Sprintf(`if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl --no-reload disable --now %s || :
fi`, strings.Join(names, " ")))
		postun = append(postun, reload)
	}
	join := func(gen []string, own string) string {
		if own != "" {
			gen = append(gen, own)
		}
		if len(gen) == 0 {
			return ""
		}
		s := strings.Join(gen, "\n")
		if !strings.HasSuffix(s, "\n") {
			s += "\n"
		}
		return s
	}
	return Scripts{
		Pre:    join(pre, p.Scripts.Pre),
		Post:   join(post, p.Scripts.Post),
		PreUn:  join(preun, p.Scripts.PreUn),
		PostUn: join(postun, p.Scripts.PostUn),
	}, nil
}
