package libvirtcert

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/incus-access/incus-access/internal/fileutil"
)

// Paths are where the module keeps its three files on the target.
type Paths struct {
	Cert, Key, CA string
}

// Current is what the target has now, read from its files.
type Current struct {
	CertPEM, KeyPEM, CAPEM []byte // nil when the file is missing
	Cert                   *x509.Certificate
	CertErr                error
	Key                    crypto.Signer
	KeyErr                 error
	CA                     []*x509.Certificate
	CAErr                  error
	// PathsWithWrongAttrs are the managed files whose owner, group, mode or label differ
	// from the wanted ones.
	PathsWithWrongAttrs []string
}

// ReadCurrent reads the target's files; a missing or broken file is recorded, not an
// error. installCA says whether the CA file is managed.
func ReadCurrent(p Paths, installCA bool, certAttrs, keyAttrs, caAttrs fileutil.Attrs) (*Current, error) {
	var certPEM, keyPEM, caPEM []byte
	var err error
	if certPEM, _, err = fileutil.Read(p.Cert); err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", p.Cert, err)
	}
	if keyPEM, _, err = fileutil.Read(p.Key); err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", p.Key, err)
	}
	if installCA {
		if caPEM, _, err = fileutil.Read(p.CA); err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", p.CA, err)
		}
	}
	cur := NewCurrent(certPEM, keyPEM, caPEM)
	files := []struct {
		path string
		a    fileutil.Attrs
		has  bool
	}{{p.Cert, certAttrs, cur.CertPEM != nil}, {p.Key, keyAttrs, cur.KeyPEM != nil}}
	if installCA {
		files = append(files, struct {
			path string
			a    fileutil.Attrs
			has  bool
		}{p.CA, caAttrs, cur.CAPEM != nil})
	}
	for _, f := range files {
		if !f.has {
			continue
		}
		differ, err := fileutil.AttrsDiffer(f.path, f.a)
		if err != nil {
			return nil, fmt.Errorf("cannot check %s: %w", f.path, err)
		}
		if differ {
			cur.PathsWithWrongAttrs = append(cur.PathsWithWrongAttrs, f.path)
		}
	}
	return cur, nil
}

// NewCurrent parses the contents of the three files (nil: the file is missing); a
// broken file is recorded in CertErr, KeyErr or CAErr.
func NewCurrent(certPEM, keyPEM, caPEM []byte) *Current {
	cur := &Current{CertPEM: certPEM, KeyPEM: keyPEM, CAPEM: caPEM}
	if certPEM != nil {
		var certs []*x509.Certificate
		if certs, cur.CertErr = ParseCerts(certPEM); cur.CertErr == nil {
			cur.Cert = certs[0]
		}
	}
	if keyPEM != nil {
		cur.Key, cur.KeyErr = ParseKey(keyPEM)
	}
	if caPEM != nil {
		cur.CA, cur.CAErr = ParseCerts(caPEM)
	}
	return cur
}

// Decision is what a run does and why. Reason is "" when nothing needs doing.
type Decision struct {
	Reason string
	// Issue: a new key and certificate. WriteCA: (re)install the CA file.
	// FixAttrsOf: rewrite these unchanged files with the wanted owner, mode and label.
	Issue      bool
	WriteCA    bool
	FixAttrsOf []string
}

// Decide is the one place that decides what a run does, and why: the first reason that
// applies is the one reported. paths.CA is only consulted when installCA is set.
func Decide(cur *Current, want *Desired, paths Paths, installCA bool, now time.Time) Decision {
	d := Decision{Reason: RenewalReason(cur, want, now)}
	d.Issue = d.Reason != ""
	d.WriteCA = installCA && (cur.CAPEM == nil || cur.CAErr != nil || !SameCerts(cur.CA, want.CA))
	for _, p := range cur.PathsWithWrongAttrs {
		// Files that are written anew get their attributes then.
		if (d.Issue && (p == paths.Cert || p == paths.Key)) || (d.WriteCA && p == paths.CA) {
			continue
		}
		d.FixAttrsOf = append(d.FixAttrsOf, p)
	}
	switch {
	case d.Issue:
	case d.WriteCA && cur.CAPEM == nil:
		d.Reason = "CA certificate file missing"
	case d.WriteCA:
		d.Reason = "CA certificate file differs from the CA"
	case len(d.FixAttrsOf) > 0:
		d.Reason = "owner, mode or SELinux label differ: " + strings.Join(d.FixAttrsOf, ", ")
	}
	return d
}

// RenewalReason names why the certificate and key must be made anew, or "".
func RenewalReason(cur *Current, want *Desired, now time.Time) string {
	switch {
	case cur.CertPEM == nil && cur.KeyPEM == nil:
		return "certificate and key missing"
	case cur.CertPEM == nil:
		return "certificate missing"
	case cur.KeyPEM == nil:
		return "key missing"
	case cur.CertErr != nil:
		return "certificate unparsable: " + cur.CertErr.Error()
	case cur.KeyErr != nil:
		return "key unparsable: " + cur.KeyErr.Error()
	case !KeyMatches(cur.Key, cur.Cert.PublicKey):
		return "key does not match the certificate"
	case !signedBy(cur.Cert, want.CA[0]):
		return "not signed by the CA"
	}
	c := cur.Cert
	if have, _ := SpecOf(c.PublicKey); have != want.Key {
		return fmt.Sprintf("key type changed (%s -> %s)", have, want.Key)
	}
	if dn := certDN(c); dn != want.PrintedDN {
		return fmt.Sprintf("subject changed (%s -> %s)", dn, want.PrintedDN)
	}
	if have, w := SANList(c.DNSNames, c.IPAddresses), SANList(want.DNSNames, want.IPs); !slices.Equal(have, w) {
		return fmt.Sprintf("SAN changed ([%s] -> [%s])", strings.Join(have, ", "), strings.Join(w, ", "))
	}
	if p := LibvirtProblems(c, want.Type); len(p) > 0 {
		return "certificate unfit for a libvirt " + want.Type + ": " + strings.Join(p, ", ")
	}
	if !now.Before(c.NotAfter) {
		return "expired (not_after " + utc(c.NotAfter) + ")"
	}
	if now.Before(c.NotBefore) {
		return "not valid yet (not_before " + utc(c.NotBefore) + ")"
	}
	if c.NotAfter.Sub(now) <= want.RenewBefore && !EndsWithItsCA(c, want) {
		return fmt.Sprintf("expires within renew_before_days (not_after %s)", utc(c.NotAfter))
	}
	return ""
}

// EndsWithItsCA reports whether a certificate already lasts as long as its CA (ends
// within a minute of it): renewing it would not extend it, since a certificate cannot
// outlive its CA, so it is not renewed every run; the module warns that the CA needs
// renewing instead.
func EndsWithItsCA(c *x509.Certificate, want *Desired) bool {
	return !c.NotAfter.Before(want.CA[0].NotAfter.Add(-time.Minute))
}
