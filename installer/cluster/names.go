package cluster

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

var (
	dnsLabelRE    = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	labelNameRE   = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
	featureGateRE = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)
	quantityRE    = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$`)
	percentRE     = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?%$`)
	cpuSetRE      = regexp.MustCompile(`^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$`)
)

// checkDNSLabel: lower-case letters, digits and '-', at most 63.
func checkDNSLabel(s string) error {
	if len(s) > 63 || !dnsLabelRE.MatchString(s) {
		return fmt.Errorf("must be a DNS label (lower-case letters, digits, '-'; at most 63), got %q", s)
	}
	return nil
}

// checkDNSName: DNS labels joined by dots, at most 253, not an IP address
// (R29). fqdn requires at least two labels.
func checkDNSName(s string, fqdn bool) error {
	if _, err := netip.ParseAddr(s); err == nil {
		return fmt.Errorf("%q is an IP address: use a DNS name (R29)", s)
	}
	if s == "" || len(s) > 253 {
		return fmt.Errorf("must be a DNS name (at most 253 characters), got %q", s)
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if len(l) > 63 || !dnsLabelRE.MatchString(l) {
			return fmt.Errorf("must be a DNS name of lower-case letters, digits, '-' and '.', got %q", s)
		}
	}
	if fqdn && len(labels) < 2 {
		return fmt.Errorf("must be a fully qualified DNS name (host.example.com), got %q", s)
	}
	return nil
}

// checkLabelKey: a Kubernetes label key, [prefix/]name.
func checkLabelKey(k string) error {
	prefix, name, ok := strings.Cut(k, "/")
	if !ok {
		name, prefix = prefix, ""
	} else if err := checkDNSName(prefix, false); err != nil {
		return fmt.Errorf("label key %q: prefix %w", k, err)
	}
	if len(name) > 63 || !labelNameRE.MatchString(name) {
		return fmt.Errorf("label key %q: name must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", k)
	}
	return nil
}

// checkLabelValue: empty, or like a label key's name.
func checkLabelValue(v string) error {
	if v != "" && (len(v) > 63 || !labelNameRE.MatchString(v)) {
		return fmt.Errorf("label value %q: must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", v)
	}
	return nil
}

// parseCIDR reads a network such as 10.0.0.0/16, refusing set host bits
// (a typo for a different network, most of the time).
func parseCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR such as 10.0.0.0/16", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set: did you mean %s?", s, p.Masked())
	}
	return p, nil
}
