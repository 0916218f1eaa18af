package rpmver

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Compare compares two version (or release) strings as rpmvercmp: -1 if a
// is older than b, 0 if they are equal, 1 if a is newer.
func Compare(a, b string) int {
	if a == b {
		return 0
	}
	for len(a) > 0 || len(b) > 0 {
		a = strings.TrimLeftFunc(a, isSeparator)
		b = strings.TrimLeftFunc(b, isSeparator)

		// '~' sorts before everything else, the end of the string included.
		if hasPrefix(a, '~') || hasPrefix(b, '~') {
			if !hasPrefix(a, '~') {
				return 1
			}
			if !hasPrefix(b, '~') {
				return -1
			}
			a, b = a[1:], b[1:]
			continue
		}
		// '^' sorts after the end of the string but before anything else.
		if hasPrefix(a, '^') || hasPrefix(b, '^') {
			switch {
			case a == "":
				return -1
			case b == "":
				return 1
			case !hasPrefix(a, '^'):
				return 1
			case !hasPrefix(b, '^'):
				return -1
			}
			a, b = a[1:], b[1:]
			continue
		}
		if a == "" || b == "" {
			break
		}

		// The next segment: digits or letters, by the type of a's.
		numeric := isDigit(a[0])
		class := isAlpha
		if numeric {
			class = isDigit
		}
		sa, ra := span(a, class)
		sb, rb := span(b, class)
		if sb == "" {
			// Segments of different types: a number is newer.
			if numeric {
				return 1
			}
			return -1
		}
		if numeric {
			sa = strings.TrimLeft(sa, "0")
			sb = strings.TrimLeft(sb, "0")
			if len(sa) != len(sb) {
				if len(sa) > len(sb) {
					return 1
				}
				return -1
			}
		}
		if c := strings.Compare(sa, sb); c != 0 {
			return c
		}
		a, b = ra, rb
	}
	switch {
	case a == "" && b == "":
		return 0
	case a == "":
		return -1
	default:
		return 1
	}
}

func hasPrefix(s string, c byte) bool { return len(s) > 0 && s[0] == c }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// isSeparator is what rpmvercmp skips between segments: anything but ASCII
// letters and digits, '~' and '^'.
func isSeparator(r rune) bool {
	if r >= 0x80 {
		return true
	}
	c := byte(r)
	return !isAlpha(c) && !isDigit(c) && c != '~' && c != '^'
}

// span splits s after its leading run of bytes in class.
func span(s string, class func(byte) bool) (string, string) {
	i := 0
	for i < len(s) && class(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

// EVR is an RPM [epoch:]version[-release]. An empty Release is "any
// release" in Overlaps.
type EVR struct {
	Epoch   int
	Version string
	Release string
}

// MaxEpoch is the largest epoch rpm stores (an unsigned 32-bit tag is read
// as signed by most tools, so Ferry keeps to the positive half).
const MaxEpoch = 1<<31 - 1

// ErrSyntax is wrapped by the errors of ParseEVR.
var ErrSyntax = errors.New("invalid version")

// ParseEVR parses "[epoch:]version[-release]". The epoch is a decimal
// number; version and release are non-empty and hold letters, digits and
// ". _ + ~ ^" only (no '-' in either: the release starts at the last '-').
func ParseEVR(s string) (EVR, error) {
	var e EVR
	rest := s
	if i := strings.IndexByte(rest, ':'); i >= 0 {
		ep := rest[:i]
		if ep == "" || len(ep) > 10 || strings.Trim(ep, "0123456789") != "" {
			return EVR{}, fmt.Errorf("%w %q: the epoch before ':' must be a number", ErrSyntax, s)
		}
		n, err := strconv.ParseInt(ep, 10, 64)
		if err != nil || n > MaxEpoch {
			return EVR{}, fmt.Errorf("%w %q: epoch out of range", ErrSyntax, s)
		}
		e.Epoch = int(n)
		rest = rest[i+1:]
	}
	e.Version = rest
	if i := strings.LastIndexByte(rest, '-'); i >= 0 {
		e.Version, e.Release = rest[:i], rest[i+1:]
		if e.Release == "" {
			return EVR{}, fmt.Errorf("%w %q: empty release after '-'", ErrSyntax, s)
		}
	}
	if e.Version == "" {
		return EVR{}, fmt.Errorf("%w %q: empty version", ErrSyntax, s)
	}
	for _, part := range []string{e.Version, e.Release} {
		if strings.ContainsFunc(part, func(r rune) bool { return !validChar(r) }) {
			return EVR{}, fmt.Errorf("%w %q: only letters, digits and . _ + ~ ^ may appear in a version or release", ErrSyntax, s)
		}
	}
	return e, nil
}

func validChar(r rune) bool {
	return r < 0x80 && (isAlpha(byte(r)) || isDigit(byte(r))) || strings.ContainsRune("._+~^", r)
}

// String formats the EVR as rpm does: the epoch only when it is not 0.
func (e EVR) String() string {
	s := e.Version
	if e.Epoch != 0 {
		s = strconv.Itoa(e.Epoch) + ":" + s
	}
	if e.Release != "" {
		s += "-" + e.Release
	}
	return s
}

// CompareEVR orders two EVRs: epoch, then version, then release, each
// newer-wins. An empty release is older than any other.
func CompareEVR(a, b EVR) int {
	return compare(a, b, false)
}

// compare is CompareEVR; with matchRelease an empty release on either side
// compares equal to any release, as rpm matches dependencies.
func compare(a, b EVR, matchRelease bool) int {
	switch {
	case a.Epoch < b.Epoch:
		return -1
	case a.Epoch > b.Epoch:
		return 1
	}
	if c := Compare(a.Version, b.Version); c != 0 {
		return c
	}
	if matchRelease && (a.Release == "" || b.Release == "") {
		return 0
	}
	return Compare(a.Release, b.Release)
}

// Op is a dependency's comparison as repodata writes it: "" (any
// version), "EQ", "LT", "LE", "GT" or "GE".
type Op string

// The comparisons.
const (
	Any Op = ""
	EQ  Op = "EQ"
	LT  Op = "LT"
	LE  Op = "LE"
	GT  Op = "GT"
	GE  Op = "GE"
)

// ParseOp maps an operator as written in a spec file ("=", ">=", …) or in
// repodata ("EQ", "GE", …) to an Op.
func ParseOp(s string) (Op, error) {
	switch s {
	case "":
		return Any, nil
	case "=", "==", "EQ":
		return EQ, nil
	case "<", "LT":
		return LT, nil
	case "<=", "LE":
		return LE, nil
	case ">", "GT":
		return GT, nil
	case ">=", "GE":
		return GE, nil
	}
	return "", fmt.Errorf("unknown comparison %q (one of =, <, <=, >, >=)", s)
}

// Symbol is the operator as rpm prints it ("=", ">=", …).
func (o Op) Symbol() string {
	switch o {
	case EQ:
		return "="
	case LT:
		return "<"
	case LE:
		return "<="
	case GT:
		return ">"
	case GE:
		return ">="
	}
	return ""
}

func (o Op) less() bool    { return o == LT || o == LE }
func (o Op) greater() bool { return o == GT || o == GE }
func (o Op) equal() bool   { return o == EQ || o == LE || o == GE }

// Overlaps reports whether the version ranges "aOp a" and "bOp b" have a
// version in common: whether a provide satisfies a requirement (either
// way round). Any on either side overlaps everything. Releases are
// compared only when both sides have one.
func Overlaps(aOp Op, a EVR, bOp Op, b EVR) bool {
	if aOp == Any || bOp == Any {
		return true
	}
	switch c := compare(a, b, true); {
	case c < 0:
		return aOp.greater() || bOp.less()
	case c > 0:
		return aOp.less() || bOp.greater()
	default:
		return aOp.equal() && bOp.equal() || aOp.less() && bOp.less() || aOp.greater() && bOp.greater()
	}
}
