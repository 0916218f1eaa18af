package yum

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/ferry-k8s/ferry/repo"
	"github.com/ferry-k8s/ferry/repo/rpmver"
)

// dep is a simple dependency: a name and an optional version range.
type dep struct {
	name string
	op   rpmver.Op
	evr  rpmver.EVR
}

func (d dep) String() string {
	if d.op == rpmver.Any {
		return d.name
	}
	return d.name + " " + d.op.Symbol() + " " + d.evr.String()
}

// fromRepo converts a repodata dependency. A version that does not parse
// (repodata is not always tidy) is compared as written.
func fromRepo(d repo.Dependency) dep {
	out := dep{name: d.Name}
	op, err := rpmver.ParseOp(d.Flags)
	if err != nil || d.Version == "" {
		return out
	}
	out.op = op
	out.evr = rpmver.EVR{Version: d.Version, Release: d.Release}
	if e, err := strconv.Atoi(d.Epoch); err == nil && e >= 0 {
		out.evr.Epoch = e
	}
	return out
}

// node is a rich (boolean) dependency: a simple one (op "") or an
// operator over its arguments. For if and unless, args are [then, cond]
// and alt is the else branch, if any.
type node struct {
	op   string // "", "and", "or", "if", "unless", "with", "without"
	leaf dep
	args []*node
	alt  *node
}

func (n *node) String() string {
	if n.op == "" {
		return n.leaf.String()
	}
	parts := make([]string, len(n.args))
	for i, a := range n.args {
		parts[i] = a.String()
	}
	s := "(" + strings.Join(parts, " "+n.op+" ")
	if n.alt != nil {
		s += " else " + n.alt.String()
	}
	return s + ")"
}

var errRich = errors.New("malformed rich dependency")

// maxRichDepth bounds the nesting of a rich dependency from repodata.
const maxRichDepth = 32

// parseRich parses a rich dependency "(a or (b >= 1 and c))".
func parseRich(s string) (*node, error) {
	p := &richParser{s: s}
	n, err := p.rich(0)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", errRich, s, err)
	}
	p.space()
	if p.i != len(p.s) {
		return nil, fmt.Errorf("%w %q: text after the closing parenthesis", errRich, s)
	}
	return n, nil
}

type richParser struct {
	s string
	i int
}

func (p *richParser) space() {
	for p.i < len(p.s) && p.s[p.i] == ' ' {
		p.i++
	}
}

// word reads up to the next space or unbalanced ')'. Names may hold
// balanced parentheses: "libc.so.6(GLIBC_2.34)(64bit)".
func (p *richParser) word() string {
	start, depth := p.i, 0
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c == ' ' || c == ')' && depth == 0 {
			break
		}
		if c == '(' {
			depth++
		} else if c == ')' {
			depth--
		}
		p.i++
	}
	return p.s[start:p.i]
}

func (p *richParser) rich(depth int) (*node, error) {
	if depth > maxRichDepth {
		return nil, errors.New("nested too deeply")
	}
	p.space()
	if p.i >= len(p.s) || p.s[p.i] != '(' {
		return nil, errors.New("expected '('")
	}
	p.i++
	first, err := p.term(depth)
	if err != nil {
		return nil, err
	}
	n := &node{args: []*node{first}}
	for {
		p.space()
		if p.i >= len(p.s) {
			return nil, errors.New("missing ')'")
		}
		if p.s[p.i] == ')' {
			p.i++
			if n.op == "" {
				return first, nil // "(a)"
			}
			return n, nil
		}
		op := p.word()
		switch op {
		case "and", "or", "with", "without", "if", "unless":
		case "else":
			if (n.op != "if" && n.op != "unless") || n.alt != nil || len(n.args) != 2 {
				return nil, errors.New("'else' without 'if' or 'unless'")
			}
			if n.alt, err = p.term(depth); err != nil {
				return nil, err
			}
			continue
		default:
			return nil, fmt.Errorf("unknown operator %q", op)
		}
		switch {
		case n.op == "":
			n.op = op
		case n.op != op || op == "if" || op == "unless" || op == "without":
			return nil, fmt.Errorf("%q after %q needs parentheses", op, n.op)
		}
		arg, err := p.term(depth)
		if err != nil {
			return nil, err
		}
		n.args = append(n.args, arg)
	}
}

// term is a nested rich dependency or "name [op evr]".
func (p *richParser) term(depth int) (*node, error) {
	p.space()
	if p.i < len(p.s) && p.s[p.i] == '(' {
		return p.rich(depth + 1)
	}
	name := p.word()
	if name == "" {
		return nil, errors.New("expected a name")
	}
	if strings.Count(name, "(") != strings.Count(name, ")") {
		return nil, fmt.Errorf("unbalanced parentheses in %q", name)
	}
	d := dep{name: name}
	save := p.i
	p.space()
	if op, ok := symbolOp(p.peekWord()); ok {
		p.word()
		p.space()
		v := p.word()
		evr, err := rpmver.ParseEVR(v)
		if err != nil {
			// Compare what repodata says even if it is not tidy.
			evr = rpmver.EVR{Version: v}
			if v == "" {
				return nil, fmt.Errorf("no version after %s %s", name, op.Symbol())
			}
		}
		d.op, d.evr = op, evr
	} else {
		p.i = save
	}
	return &node{leaf: d}, nil
}

func (p *richParser) peekWord() string {
	save := p.i
	w := p.word()
	p.i = save
	return w
}

// symbolOp maps a comparison as rich dependencies write it.
func symbolOp(s string) (rpmver.Op, bool) {
	switch s {
	case "=", "==", "<", "<=", ">", ">=":
		op, err := rpmver.ParseOp(s)
		return op, err == nil
	}
	return "", false
}
