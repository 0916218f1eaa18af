package signing

import (
	"fmt"
	"time"
)

// SignBinary returns a binary (not armored) detached signature of data,
// dated at and made as Sign makes it (deterministic, clamped to the key's
// creation time). It is what RPM wants in its signature header, where rpm
// reads exactly one OpenPGP signature packet. rpm (4.18 and older, as on
// Debian 12 and RHEL 9) parses only version 4 signatures, so a key of
// another version is refused here rather than producing packages that rpm
// rejects at install time.
func (s *Signer) SignBinary(data []byte, at time.Time) ([]byte, error) {
	if v := s.entity.PrimaryKey.Version; v != 4 {
		return nil, fmt.Errorf("signing with key %s: a version %d key makes signatures rpm cannot read; use a version 4 key", s.Fingerprint(), v)
	}
	return s.SignBytes(data, at, false)
}
