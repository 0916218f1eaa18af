package images

import (
	"fmt"
	"strings"

	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// platform is an "os/arch[/variant]" triple.
type platform struct {
	OS, Arch, Variant string
}

const maxPlatformField = 64

// parsePlatform parses "os/arch" or "os/arch/variant". Fields are lower-case
// letters, digits, '.', '_' and '-' (as used by GOOS/GOARCH and OCI).
func parsePlatform(s string) (platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return platform{}, fmt.Errorf("invalid platform %q: want os/arch or os/arch/variant", s)
	}
	for _, p := range parts {
		if !validPlatformField(p) {
			return platform{}, fmt.Errorf("invalid platform %q: bad field %q", s, p)
		}
	}
	p := platform{OS: parts[0], Arch: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

func validPlatformField(s string) bool {
	if s == "" || len(s) > maxPlatformField {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

func (p platform) String() string {
	if p.Variant == "" {
		return p.OS + "/" + p.Arch
	}
	return p.OS + "/" + p.Arch + "/" + p.Variant
}

func platformFromSpec(p *imgspecv1.Platform) platform {
	if p == nil {
		return platform{}
	}
	return platform{OS: p.OS, Arch: p.Architecture, Variant: p.Variant}
}

// defaultVariant is the variant implied when an image of arch states none.
func defaultVariant(arch string) string {
	switch arch {
	case "arm64":
		return "v8"
	case "arm":
		return "v7"
	}
	return ""
}

// matches reports whether an image of platform have satisfies the requested
// platform want. A request without a variant matches every variant of its
// os/arch; a request with a variant matches that variant, where an image that
// states no variant counts as the architecture's default (arm64: v8, arm: v7).
func (want platform) matches(have platform) bool {
	if want.OS != have.OS || want.Arch != have.Arch {
		return false
	}
	if want.Variant == "" {
		return true
	}
	hv := have.Variant
	if hv == "" {
		hv = defaultVariant(have.Arch)
	}
	return want.Variant == hv
}

func matchesAny(wants []platform, have platform) bool {
	for _, w := range wants {
		if w.matches(have) {
			return true
		}
	}
	return false
}

func platformStrings(ps []platform) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		// Instances without a (well-formed) platform are not listed.
		if _, err := parsePlatform(p.String()); err != nil {
			continue
		}
		out = append(out, p.String())
	}
	return out
}
