package rpmver

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// vercmpCases are rpm's own rpmvercmp test cases and a few of ours.
var vercmpCases = []struct {
	a, b string
	want int
}{
	{"1.0", "1.0", 0}, {"1.0", "2.0", -1}, {"2.0", "1.0", 1},
	{"2.0.1", "2.0.1", 0}, {"2.0", "2.0.1", -1}, {"2.0.1", "2.0", 1},
	{"2.0.1a", "2.0.1a", 0}, {"2.0.1a", "2.0.1", 1}, {"2.0.1", "2.0.1a", -1},
	{"5.5p1", "5.5p1", 0}, {"5.5p1", "5.5p2", -1}, {"5.5p2", "5.5p1", 1},
	{"5.5p10", "5.5p10", 0}, {"5.5p1", "5.5p10", -1}, {"5.5p10", "5.5p1", 1},
	{"10xyz", "10.1xyz", -1}, {"10.1xyz", "10xyz", 1},
	{"xyz10", "xyz10", 0}, {"xyz10", "xyz10.1", -1}, {"xyz10.1", "xyz10", 1},
	{"xyz.4", "xyz.4", 0}, {"xyz.4", "8", -1}, {"8", "xyz.4", 1}, {"xyz.4", "2", -1}, {"2", "xyz.4", 1},
	{"5.5p2", "5.6p1", -1}, {"5.6p1", "5.5p2", 1},
	{"5.6p1", "6.5p1", -1}, {"6.5p1", "5.6p1", 1},
	{"6.0.rc1", "6.0", 1}, {"6.0", "6.0.rc1", -1},
	{"10b2", "10a1", 1}, {"10a2", "10b2", -1},
	{"1.0aa", "1.0aa", 0}, {"1.0a", "1.0aa", -1}, {"1.0aa", "1.0a", 1},
	{"10.0001", "10.0001", 0}, {"10.0001", "10.1", 0}, {"10.1", "10.0001", 0},
	{"10.0001", "10.0039", -1}, {"10.0039", "10.0001", 1},
	{"4.999.9", "5.0", -1}, {"5.0", "4.999.9", 1},
	{"20101121", "20101121", 0}, {"20101121", "20101122", -1}, {"20101122", "20101121", 1},
	{"2_0", "2_0", 0}, {"2.0", "2_0", 0}, {"2_0", "2.0", 0},
	{"a", "a", 0}, {"a+", "a+", 0}, {"a+", "a_", 0}, {"a_", "a+", 0}, {"+a", "+a", 0}, {"+a", "_a", 0}, {"_a", "+a", 0},
	{"+_", "+_", 0}, {"_+", "+_", 0}, {"_+", "_+", 0}, {"+", "_", 0}, {"_", "+", 0},
	{"1.0~rc1", "1.0~rc1", 0}, {"1.0~rc1", "1.0", -1}, {"1.0", "1.0~rc1", 1},
	{"1.0~rc1", "1.0~rc2", -1}, {"1.0~rc2", "1.0~rc1", 1},
	{"1.0~rc1~git123", "1.0~rc1~git123", 0}, {"1.0~rc1~git123", "1.0~rc1", -1}, {"1.0~rc1", "1.0~rc1~git123", 1},
	{"1.0^", "1.0^", 0}, {"1.0^", "1.0", 1}, {"1.0", "1.0^", -1},
	{"1.0^git1", "1.0^git1", 0}, {"1.0^git1", "1.0", 1}, {"1.0", "1.0^git1", -1},
	{"1.0^git1", "1.0^git2", -1}, {"1.0^git2", "1.0^git1", 1},
	{"1.0^git1", "1.01", -1}, {"1.01", "1.0^git1", 1},
	{"1.0^20160101", "1.0^20160101", 0}, {"1.0^20160101", "1.0.1", -1}, {"1.0.1", "1.0^20160101", 1},
	{"1.0^20160101^git1", "1.0^20160101^git1", 0}, {"1.0^20160102", "1.0^20160101^git1", 1},
	{"1.0^20160101^git1", "1.0^20160102", -1},
	{"1.0~rc1^git1", "1.0~rc1^git1", 0}, {"1.0~rc1^git1", "1.0~rc1", 1}, {"1.0~rc1", "1.0~rc1^git1", -1},
	{"1.0^git1~pre", "1.0^git1~pre", 0}, {"1.0^git1", "1.0^git1~pre", 1}, {"1.0^git1~pre", "1.0^git1", -1},
	{"1.0", "1.0a", -1}, {"", "", 0}, {"", "1", -1}, {"1", "", 1}, {"é1", "1", 0},
}

func TestCompareTable(t *testing.T) {
	for _, c := range vercmpCases {
		if got := Compare(c.a, c.b); got != c.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

// rpmEval runs lua in rpm (rpm --eval) and returns one output line per
// print.
func rpmEval(t *testing.T, lua string) []string {
	t.Helper()
	if _, err := exec.LookPath("rpm"); err != nil {
		t.Fatalf("rpm is required by this test (Debian package rpm): %v", err)
	}
	script := filepath.Join(t.TempDir(), "cmp.lua")
	if err := os.WriteFile(script, []byte(lua), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("rpm", "--eval", "%{lua: dofile('"+script+"')}").CombinedOutput()
	if err != nil {
		t.Fatalf("rpm --eval: %v\n%s", err, out)
	}
	return strings.Fields(string(out))
}

// randomVersion makes version strings from the characters that matter to
// rpmvercmp (no '-' or ':', which rpm.vercmp would take as EVR syntax).
func randomVersion(r *rand.Rand) string {
	const chars = "0001239aabzZ.._+~^"
	n := r.IntN(8)
	b := make([]byte, n)
	for i := range b {
		b[i] = chars[r.IntN(len(chars))]
	}
	return string(b)
}

// TestCompareAgreesWithRPM compares Compare with rpm's own rpmvercmp (rpm's
// Lua rpm.vercmp) on the table and on many random pairs.
func TestCompareAgreesWithRPM(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var pairs [][2]string
	for _, c := range vercmpCases {
		if strings.ContainsAny(c.a+c.b, "-:") || c.a == "" || c.b == "" {
			continue
		}
		pairs = append(pairs, [2]string{c.a, c.b})
	}
	for len(pairs) < 4000 {
		a, b := randomVersion(r), randomVersion(r)
		if a == "" || b == "" {
			continue // rpm.vercmp refuses empty EVRs
		}
		if r.IntN(4) == 0 {
			b = a + b[:1] // a common prefix makes the end-of-string rules matter
		}
		pairs = append(pairs, [2]string{a, b})
	}
	var lua strings.Builder
	for _, p := range pairs {
		fmt.Fprintf(&lua, "io.write(rpm.vercmp(%q, %q), '\\n')\n", p[0], p[1])
	}
	got := rpmEval(t, lua.String())
	if len(got) != len(pairs) {
		t.Fatalf("rpm printed %d results for %d pairs", len(got), len(pairs))
	}
	for i, p := range pairs {
		want, err := strconv.Atoi(got[i])
		if err != nil {
			t.Fatalf("rpm printed %q", got[i])
		}
		if c := Compare(p[0], p[1]); c != want {
			t.Errorf("Compare(%q, %q) = %d, rpm says %d", p[0], p[1], c, want)
		}
	}
}

// TestCompareEVRAgreesWithRPM checks epochs and releases against rpm.
func TestCompareEVRAgreesWithRPM(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var evrs [][2]string
	for len(evrs) < 2000 {
		mk := func() string {
			v := randomVersion(r)
			if v == "" || strings.Trim(v, "._+") == "" {
				v = "1" + v
			}
			s := v
			if r.IntN(3) == 0 {
				s = strconv.Itoa(r.IntN(3)) + ":" + s
			}
			rel := randomVersion(r)
			if rel != "" && r.IntN(2) == 0 {
				s += "-" + rel
			}
			return s
		}
		evrs = append(evrs, [2]string{mk(), mk()})
	}
	var lua strings.Builder
	for _, p := range evrs {
		fmt.Fprintf(&lua, "io.write(rpm.vercmp(%q, %q), '\\n')\n", p[0], p[1])
	}
	got := rpmEval(t, lua.String())
	if len(got) != len(evrs) {
		t.Fatalf("rpm printed %d results for %d pairs", len(got), len(evrs))
	}
	for i, p := range evrs {
		a, err := ParseEVR(p[0])
		if err != nil {
			t.Fatal(err)
		}
		b, err := ParseEVR(p[1])
		if err != nil {
			t.Fatal(err)
		}
		if c := CompareEVR(a, b); strconv.Itoa(c) != got[i] {
			t.Errorf("CompareEVR(%q, %q) = %d, rpm says %s", p[0], p[1], c, got[i])
		}
	}
}

func TestParseEVR(t *testing.T) {
	for in, want := range map[string]EVR{
		"1.0":              {Version: "1.0"},
		"1.0-1":            {Version: "1.0", Release: "1"},
		"2:1.8.10-11.el9":  {Epoch: 2, Version: "1.8.10", Release: "11.el9"},
		"0:1^git1~rc":      {Version: "1^git1~rc"},
		"2147483647:1-2_3": {Epoch: MaxEpoch, Version: "1", Release: "2_3"},
	} {
		got, err := ParseEVR(in)
		if err != nil || got != want {
			t.Errorf("ParseEVR(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", ":1", "a:1", "1:", "1.0-", "-1", "1-2-3", "1 0", "1/0", "2147483648:1", "1:2:3", "ü"} {
		if e, err := ParseEVR(in); err == nil {
			t.Errorf("ParseEVR(%q) = %+v, want an error", in, e)
		}
	}
	if s := (EVR{Epoch: 1, Version: "2", Release: "3"}).String(); s != "1:2-3" {
		t.Errorf("String = %q", s)
	}
}

func TestOverlaps(t *testing.T) {
	v := func(s string) EVR {
		e, err := ParseEVR(s)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	for _, c := range []struct {
		aOp  Op
		a    string
		bOp  Op
		b    string
		want bool
	}{
		{GE, "1.7.4", EQ, "1.7.4-1", true},  // a release on one side only
		{GE, "1.7.4", EQ, "1.7.3-9", false}, //
		{EQ, "1.8.10-11.el9", EQ, "1.8.10-11.el9", true},
		{EQ, "1.8.10-11.el9", EQ, "1.8.10-12.el9", false},
		{EQ, "1.8.10", EQ, "1.8.10-12.el9", true},
		{LT, "2", EQ, "1.9", true},
		{LT, "2", EQ, "2", false},
		{LE, "2", EQ, "2-5", true},
		{GT, "2", EQ, "2-5", false}, // "> 2" without release: 2-5 is not newer
		{GT, "2-4", EQ, "2-5", true},
		{GE, "1:1", EQ, "2", false}, // epochs first
		{GE, "1", EQ, "1:0.1", true},
		{GE, "2", LT, "3", true}, // two ranges
		{GE, "3", LT, "3", false},
		{LE, "3", GE, "3", true},
		{Any, "", EQ, "1", true},
		{GE, "5", Any, "", true},
	} {
		if got := Overlaps(c.aOp, v2(v, c.a), c.bOp, v2(v, c.b)); got != c.want {
			t.Errorf("%s %s ~ %s %s: %v, want %v", c.aOp, c.a, c.bOp, c.b, got, c.want)
		}
		if got := Overlaps(c.bOp, v2(v, c.b), c.aOp, v2(v, c.a)); got != c.want {
			t.Errorf("%s %s ~ %s %s (swapped): %v, want %v", c.bOp, c.b, c.aOp, c.a, got, c.want)
		}
	}
	for _, s := range []string{"=", "==", "EQ", "<", "<=", ">", ">=", "LT", "LE", "GT", "GE", ""} {
		op, err := ParseOp(s)
		if err != nil {
			t.Errorf("ParseOp(%q): %v", s, err)
		}
		if again, _ := ParseOp(op.Symbol()); again != op {
			t.Errorf("%q: symbol %q does not parse back", s, op.Symbol())
		}
	}
	if _, err := ParseOp("=>"); err == nil {
		t.Error("ParseOp(=>) accepted")
	}
}

func v2(v func(string) EVR, s string) EVR {
	if s == "" {
		return EVR{}
	}
	return v(s)
}

func FuzzParseEVR(f *testing.F) {
	for _, s := range []string{"1.0", "2:1.8.10-11.el9", "1^git~rc", ":", "1:", "-", "99999999999:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseEVR(s)
		if err != nil {
			return
		}
		// What parses prints back to something that parses to the same.
		again, err := ParseEVR(e.String())
		if err != nil || again != e {
			t.Fatalf("%q → %+v → %q → %+v, %v", s, e, e.String(), again, err)
		}
		if CompareEVR(e, e) != 0 {
			t.Fatalf("%q is not equal to itself", s)
		}
	})
}

// FuzzCompare: Compare is an order on each triple: reflexive,
// antisymmetric (Compare(a, b) = -Compare(b, a), in {-1, 0, 1}) and
// transitive (a ≤ b ≤ c implies a ≤ c, with a = c only if a = b = c).
func FuzzCompare(f *testing.F) {
	for i, c := range vercmpCases {
		next := vercmpCases[(i+1)%len(vercmpCases)]
		f.Add(c.a, c.b, next.a)
		f.Add(c.a, c.b, c.a+"~")
	}
	f.Fuzz(func(t *testing.T, a, b, c string) {
		for _, p := range [][2]string{{a, b}, {b, c}, {a, c}} {
			x, y := p[0], p[1]
			xy, yx := Compare(x, y), Compare(y, x)
			if xy != -yx || xy < -1 || xy > 1 {
				t.Fatalf("Compare(%q, %q) = %d but Compare(%q, %q) = %d", x, y, xy, y, x, yx)
			}
		}
		for _, x := range []string{a, b, c} {
			if Compare(x, x) != 0 {
				t.Fatalf("%q is not equal to itself", x)
			}
		}
		// Each of the six orders of the triple: x ≤ y ≤ z ⇒ x ≤ z.
		for _, o := range [][3]string{{a, b, c}, {a, c, b}, {b, a, c}, {b, c, a}, {c, a, b}, {c, b, a}} {
			x, y, z := o[0], o[1], o[2]
			xy, yz, xz := Compare(x, y), Compare(y, z), Compare(x, z)
			if xy <= 0 && yz <= 0 && (xz > 0 || xz == 0 && (xy != 0 || yz != 0)) {
				t.Fatalf("not transitive: Compare(%q, %q) = %d, Compare(%q, %q) = %d, but Compare(%q, %q) = %d", x, y, xy, y, z, yz, x, z, xz)
			}
		}
	})
}
