package pki

import (
	"crypto/x509"
	"time"
)

// DefaultRotationThreshold renews a certificate when a third of its
// lifetime is left: day 20 of a 30-day leaf, month 8 of a one-year
// intermediate, so that a node that was off for a while still has time.
const DefaultRotationThreshold = 1.0 / 3

// NeedsRotation says whether cert should be replaced at now: when at most
// threshold (a fraction of its whole lifetime, 0–1) of its lifetime is
// left, when it has expired, or when it is not valid yet (a certificate
// from a clock that ran ahead is useless until then). A threshold of 0
// renews only what is expired or not yet valid; 1 renews always. A nil
// certificate needs rotation (there is none).
func NeedsRotation(cert *x509.Certificate, now time.Time, threshold float64) bool {
	if cert == nil || now.Before(cert.NotBefore) || !now.Before(cert.NotAfter) {
		return true
	}
	lifetime := cert.NotAfter.Sub(cert.NotBefore)
	left := cert.NotAfter.Sub(now)
	return float64(left) <= threshold*float64(lifetime)
}
