package rpmver

import (
	"fmt"
	"regexp"
	"strings"
)

// DefaultArches are the package architectures taken when none are named:
// the machine's own and the architecture-independent packages.
var DefaultArches = []string{"x86_64", "noarch"}

// Constraint is a package name and an optional version comparison, as a
// bundle spec names packages (spec.packages[].names) and the resolver takes
// them: "socat", "socat >= 1.7.4".
type Constraint struct {
	Name string
	// Op is "", "=", "<", "<=", ">" or ">=".
	Op string
	// EVR is "[epoch:]version[-release]" when Op is set.
	EVR string
}

func (c Constraint) String() string {
	if c.Op == "" {
		return c.Name
	}
	return c.Name + " " + c.Op + " " + c.EVR
}

var (
	rpmNameRE = regexp.MustCompile(`^[A-Za-z0-9_+][A-Za-z0-9._+-]{0,199}$`)
	rpmEVRRE  = regexp.MustCompile(`^([0-9]{1,10}:)?[A-Za-z0-9._+~^]{1,100}(-[A-Za-z0-9._+~^]{1,100})?$`)
)

// ValidName reports whether s is a package name Ferry accepts: letters,
// digits, . _ + - (not first), at most 200.
func ValidName(s string) bool { return rpmNameRE.MatchString(s) }

// ParseConstraint parses "name", "name OP [epoch:]version[-release]"
// with OP one of = < <= > >= (spaces around OP optional). The version is
// compared as rpm compares versions; without a release any release matches.
func ParseConstraint(s string) (Constraint, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexAny(t, "<>=")
	if i < 0 {
		if !rpmNameRE.MatchString(t) {
			return Constraint{}, fmt.Errorf("%q is not a package name (letters, digits, . _ + -) or a name with a version comparison such as \"socat >= 1.7.4\"", s)
		}
		return Constraint{Name: t}, nil
	}
	c := Constraint{Name: strings.TrimSpace(t[:i])}
	rest := t[i:]
	j := strings.IndexFunc(rest, func(r rune) bool { return !strings.ContainsRune("<>=", r) })
	if j < 0 {
		j = len(rest)
	}
	c.Op, c.EVR = rest[:j], strings.TrimSpace(rest[j:])
	if !rpmNameRE.MatchString(c.Name) {
		return Constraint{}, fmt.Errorf("%q: %q is not a package name (letters, digits, . _ + -)", s, c.Name)
	}
	switch c.Op {
	case "=", "<", "<=", ">", ">=":
	case "==":
		c.Op = "="
	default:
		return Constraint{}, fmt.Errorf("%q: unknown comparison %q (one of =, <, <=, >, >=)", s, c.Op)
	}
	if !rpmEVRRE.MatchString(c.EVR) {
		return Constraint{}, fmt.Errorf("%q: %q is not a version [epoch:]version[-release] (letters, digits, . _ + ~ ^)", s, c.EVR)
	}
	return c, nil
}
